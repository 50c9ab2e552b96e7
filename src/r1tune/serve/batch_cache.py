"""The running batch's KV cache, row by row: how rows join, leave, roll back and split.

The cache is a transformers `DynamicCache` whose layers hold tensors `[batch, heads, time, dim]`, one row per
running request, left-padded to one length, with a `[batch, time]` attention mask that marks the padding.
Joining rows left-pads whichever side is shorter; leaving rows drops them and the columns that became padding
in every remaining row. The engine (`serve/engine.py`) decides when; this module only moves tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

LayerTensors = list[tuple["torch.Tensor", "torch.Tensor"]]  # (keys, values) per layer


def join_rows(cache: Any, mask: torch.Tensor, new_cache: Any, new_mask: torch.Tensor) -> torch.Tensor:
    """Append `new_cache`'s rows to `cache` (in place) and return the joined mask."""
    import torch

    width = max(mask.shape[1], new_mask.shape[1])
    for layer, new_layer in zip(cache.layers, new_cache.layers, strict=True):
        layer.keys = torch.cat([pad_time(layer.keys, width), pad_time(new_layer.keys, width)])
        layer.values = torch.cat([pad_time(layer.values, width), pad_time(new_layer.values, width)])
    return torch.cat([pad_mask(mask, width), pad_mask(new_mask, width)])


def keep_rows(cache: Any, mask: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """Keep only `rows` of `cache` (in place), trimming the columns that are padding in all of them; returns
    their mask."""
    import torch

    index = torch.tensor(rows, device=mask.device)
    mask = mask[index]
    start = int(mask.any(dim=0).nonzero()[0])  # columns before this are padding in every remaining row
    for layer in cache.layers:
        layer.keys = layer.keys[index, :, start:]
        layer.values = layer.values[index, :, start:]
    return mask[:, start:]


def cut_columns(cache: Any, length: int) -> None:
    """Drop the columns past `length` (a failed step's layers that ran appended one)."""
    for layer in cache.layers:
        layer.keys, layer.values = layer.keys[:, :, :length], layer.values[:, :, :length]


def layer_tensors(cache: Any) -> LayerTensors:
    return [(layer.keys, layer.values) for layer in cache.layers]


def show_rows(cache: Any, full: LayerTensors, index: torch.Tensor) -> None:
    """Point `cache` at rows `index` of the tensors `full` (taken before with `layer_tensors`)."""
    for layer, (keys, values) in zip(cache.layers, full, strict=True):
        layer.keys, layer.values = keys[index], values[index]


def stack_rows(cache: Any, parts: list[LayerTensors]) -> None:
    """Make `cache` the rows of `parts`, one after the other."""
    import torch

    for n, layer in enumerate(cache.layers):
        layer.keys = torch.cat([part[n][0] for part in parts])
        layer.values = torch.cat([part[n][1] for part in parts])


def pad_time(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """Left-pad `[batch, heads, time, dim]` with zeros along time to `width` (masked out anyway)."""
    import torch

    missing = width - tensor.shape[2]
    if missing == 0:
        return tensor
    pad = torch.zeros(tensor.shape[0], tensor.shape[1], missing, tensor.shape[3], dtype=tensor.dtype, device=tensor.device)
    return torch.cat([pad, tensor], dim=2)


def pad_mask(mask: torch.Tensor, width: int) -> torch.Tensor:
    import torch

    missing = width - mask.shape[1]
    if missing == 0:
        return mask
    return torch.cat([torch.zeros(mask.shape[0], missing, dtype=mask.dtype, device=mask.device), mask], dim=1)
