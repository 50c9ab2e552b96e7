"""Rows of the running batch's KV cache join left-padded and leave with the columns that became padding."""

from __future__ import annotations

import torch
from transformers import DynamicCache

from r1tune.serve.batch_cache import cut_columns, join_rows, keep_rows


def _cache(rows: int, length: int, fill: float) -> DynamicCache:
    cache = DynamicCache()
    cache.update(torch.full((rows, 2, length, 4), fill), torch.full((rows, 2, length, 4), -fill), 0)
    return cache


def test_rows_join_left_padded_and_leave_with_the_dead_padding_trimmed():
    cache, mask = _cache(1, 5, 1.0), torch.ones(1, 5, dtype=torch.long)
    mask = join_rows(cache, mask, _cache(2, 2, 2.0), torch.ones(2, 2, dtype=torch.long))
    assert mask.tolist() == [[1] * 5, [0, 0, 0, 1, 1], [0, 0, 0, 1, 1]]
    keys = cache.layers[0].keys
    assert keys.shape == (3, 2, 5, 4) and float(keys[1, :, :3].abs().sum()) == 0 and float(keys[1, 0, 3, 0]) == 2.0
    mask = keep_rows(cache, mask, [1, 2])  # the long row leaves: three columns are padding in both others
    assert mask.tolist() == [[1, 1], [1, 1]]
    assert cache.layers[0].keys.shape == (2, 2, 2, 4) and float(cache.layers[0].values.min()) == -2.0
    cut_columns(cache, 1)
    assert cache.layers[0].keys.shape == cache.layers[0].values.shape == (2, 2, 1, 4)
