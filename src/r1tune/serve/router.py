"""`model: "auto"`: send each request to the adapter whose training prompts it resembles most.

A mixture of domain experts needs a cheap, explainable router: one centroid per adapter and the highest
cosine similarity wins. Two representations, chosen by `serve.router` from a held-out measurement
(tests/serve/routing_cases.json, four domains, new wording in the held-out prompts):
- TF-IDF over character 2-4-grams (within word boundaries, so it works for Chinese without spaces):
  0.875 of English and 0.750 of Chinese held-out prompts routed right;
- sentence embeddings (the packaged all-MiniLM-L6-v2): 1.000 of English, 0.542 of Chinese (the model is
  English-centric).
`auto` (the default) therefore routes English prompts by embeddings and Chinese ones by TF-IDF: 0.875
overall against 0.812 for TF-IDF alone; without the embedding package installed it is TF-IDF alone, logged
once. Refit takes well under a second, so the router is rebuilt whenever an adapter is loaded or unloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)
RouterMethod = Literal["auto", "tfidf", "embedding"]
# A centroid of a few hundred embeddings is as good as one of thousands, and embedding 5,000 prompts on a CPU
# (~100/s) would hold up loading an adapter for close to a minute.
EMBED_PER_ADAPTER = 256


def _spread(items: list[str], n: int) -> list[str]:
    """At most `n` items, evenly spaced over the list (the router's prompts keep their file order)."""
    if len(items) <= n:
        return items
    return [items[i * len(items) // n] for i in range(n)]


@dataclass(frozen=True)
class Route:
    adapter: str | None  # None: the base model
    scores: dict[str, float]


class DomainRouter:
    """Nearest-centroid classifier over TF-IDF character n-grams of each adapter's training prompts."""

    def __init__(self, prompts_by_adapter: Mapping[str, Sequence[str]], min_similarity: float = 0.05,
                 fallback: str | None = None, method: RouterMethod = "tfidf") -> None:
        self.min_similarity = min_similarity
        self.fallback = fallback
        self.method = method
        self.names = [name for name, prompts in prompts_by_adapter.items() if any(p.strip() for p in prompts)]
        self._vectorizer: Any = None
        self._centroids: Any = None
        self._embedded: Any = None  # embedding centroids, when the method uses them
        if self.names:
            chosen = {name: prompts_by_adapter[name] for name in self.names}
            self._fit(chosen)
            if method != "tfidf":
                self._fit_embeddings(chosen)

    def _fit_embeddings(self, prompts_by_adapter: Mapping[str, Sequence[str]]) -> None:
        import numpy as np

        from r1tune.errors import R1TuneError

        try:
            from r1tune.data.embeddings import embed

            centroids = np.stack([embed(_spread(list(prompts), EMBED_PER_ADAPTER)).mean(axis=0)
                                  for prompts in prompts_by_adapter.values()])
        except R1TuneError as err:
            if self.method == "embedding":
                raise
            log.warning("router: %s; routing by TF-IDF alone", err.message)
            return
        self._embedded = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)

    def _similarities(self, text: str) -> Any:
        from r1tune.data.clean import detect_language

        use_embedding = self._embedded is not None and (self.method == "embedding" or detect_language(text) != "zh")
        if use_embedding:
            from r1tune.data.embeddings import embed

            return (embed([text]) @ self._embedded.T).ravel()
        return (self._vectorizer.transform([text]) @ self._centroids.T).ravel()

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
        similarities = self._similarities(text)
        scores = {name: round(float(s), 4) for name, s in zip(self.names, similarities, strict=True)}
        best = max(scores, key=scores.__getitem__)
        if scores[best] < self.min_similarity:
            return Route(self.fallback, scores)
        return Route(best, scores)
