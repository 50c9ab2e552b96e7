"""The `loop` section: how `r1tune loop` turns served answers and staff corrections into the next version."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from r1tune.config.base import _Section


class LoopConfig(_Section):
    adapter: str | None = Field(
        None, description="The served adapter name the loop improves: its live version (`r1tune versions`) is "
        "the parent of every candidate, and its feedback is the new training data. Required by `r1tune loop`."
    )
    min_feedback: int = Field(
        20, ge=1, description="Fewer usable corrections and rated pairs than this since the live version went "
        "live: the loop does nothing and says so."
    )
    stage: Literal["dpo", "kto", "sft"] = Field(
        "dpo", description="How the candidate learns from the feedback (`train.stage`): `dpo` trains each "
        "correction as preferred over the answer it replaced (plus its NLL) and rated answers to one prompt as "
        "pairs; `kto` also uses lone thumbs up/down; `sft` trains the corrections only."
    )
    holdout_share: float = Field(
        0.2, gt=0.0, lt=1.0, description="Share of the corrections kept out of training: the gate measures the "
        "candidate on them (at least one when there are two or more)."
    )
    replay_share: float = Field(
        0.5, ge=0.0, le=1.0, description="Records of the live version's own training data mixed into the "
        "candidate's training split, as a share of the feedback records (against forgetting)."
    )
    heldout_metric: str = Field(
        "key_fact_recall", description="The metric the candidate must improve on the held-out corrections to be "
        "promoted: a `delta` key of the eval metrics. `key_fact_recall` (default) counts the corrections' facts "
        "(numbers with units, codes, menu paths...) in the generated answers; for corrections without such "
        "facts use `rougeL`; `perplexity_change_pct` only says the wording became likelier, which any "
        "training on similar text achieves."
    )
    guard_metrics: list[str] | None = Field(
        None, description="Metrics of the live version's test set that must not get worse beyond their 95% "
        "interval (candidate vs live), plus the reasoning probes' solve rate when measured. Unset: every "
        "metric that has an interval."
    )
