"""`model: "auto"`: send each request to the adapter whose training prompts it resembles most.

A mixture of domain experts needs a cheap, explainable router, not another neural network: TF-IDF over
character 2-4-grams (within word boundaries, so it works for Chinese, which has no spaces, as well as for
English) and one centroid per adapter; a request goes to the adapter with the highest cosine similarity.
Refit takes milliseconds, so the router is rebuilt whenever an adapter is loaded or unloaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Route:
    adapter: str | None  # None: the base model
    scores: dict[str, float]


class DomainRouter:
    """Nearest-centroid classifier over TF-IDF character n-grams of each adapter's training prompts."""

    def __init__(self, prompts_by_adapter: Mapping[str, Sequence[str]], min_similarity: float = 0.05,
                 fallback: str | None = None) -> None:
        self.min_similarity = min_similarity
        self.fallback = fallback
        self.names = [name for name, prompts in prompts_by_adapter.items() if any(p.strip() for p in prompts)]
        self._vectorizer: Any = None
        self._centroids: Any = None
        if self.names:
            self._fit({name: prompts_by_adapter[name] for name in self.names})

    @property
    def available(self) -> bool:
        return bool(self.names)

    def _fit(self, prompts_by_adapter: Mapping[str, Sequence[str]]) -> None:
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.preprocessing import normalize

        texts = [p for prompts in prompts_by_adapter.values() for p in prompts]
        self._vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True,
                                           lowercase=True, min_df=1)
        matrix = self._vectorizer.fit_transform(texts)
        centroids, start = [], 0
        for prompts in prompts_by_adapter.values():
            rows = matrix[start : start + len(prompts)]
            centroids.append(np.asarray(rows.mean(axis=0)).ravel())
            start += len(prompts)
        self._centroids = normalize(np.vstack(centroids))

    def route(self, text: str) -> Route:
        """The adapter for `text`, or the fallback when nothing is similar enough."""
        if not self.names:
            return Route(self.fallback, {})
        vector = self._vectorizer.transform([text])
        similarities = (vector @ self._centroids.T).ravel()
        scores = {name: round(float(s), 4) for name, s in zip(self.names, similarities, strict=True)}
        best = max(scores, key=scores.__getitem__)
        if scores[best] < self.min_similarity:
            return Route(self.fallback, scores)
        return Route(best, scores)
