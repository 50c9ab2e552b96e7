"""Guards around the model: input filters, output filters, PII scrubbing of answers and domain disclaimers.

Output text passes through an `OutputFilter` before any client sees it. When streaming, the filter releases
text `holdback` characters late: a PII value or blocked phrase no longer than that is therefore always
complete (and recognised) before its first character could be sent. Detection runs on the whole answer so
far, so context cues before a number (订单号 vs 电话) work as in the data stage; a value crossing the release
point holds the release back until it is complete.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from r1tune.config import GuardsConfig

# Below this many new characters a streaming filter waits instead of re-running detection.
_MIN_RELEASE_CHARS = 16


@dataclass
class GuardReport:
    """What the guards did to one answer; returned in the response metadata and stored with the log."""

    pii_masked: Counter = field(default_factory=Counter)
    output_blocked: str | None = None  # the pattern that matched
    disclaimers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"pii_masked": dict(self.pii_masked), "output_blocked": self.output_blocked,
                "disclaimers": list(self.disclaimers)}


class Guards:
    """The configured filters, compiled once per server."""

    def __init__(self, cfg: GuardsConfig) -> None:
        self.cfg = cfg
        self.input_patterns = [re.compile(p, re.IGNORECASE) for p in cfg.input_block]
        self.output_patterns = [re.compile(p, re.IGNORECASE) for p in cfg.output_block]
        self.disclaimer_rules = [(rule, [re.compile(p, re.IGNORECASE) for p in rule.when_matches])
                                 for rule in cfg.disclaimers]
        from r1tune.data.pii import PiiMasker

        self._masker = PiiMasker(cfg.pii_strategy, types=cfg.pii_types) if cfg.scrub_pii else None
        # The completion log is always masked, even when answers are sent unmasked.
        self._storage_masker = self._masker or PiiMasker("placeholder")

    def blocked_input(self, texts: list[str]) -> str | None:
        """The first input pattern any of `texts` matches, or None."""
        for pattern in self.input_patterns:
            if any(pattern.search(t) for t in texts):
                return pattern.pattern
        return None

    def output_filter(self, report: GuardReport, stream: bool) -> OutputFilter:
        return OutputFilter(self, report, self.cfg.stream_holdback_chars if stream else None)

    def disclaimers_for(self, model_id: str, prompt: str, answer: str) -> list[str]:
        out = []
        for rule, patterns in self.disclaimer_rules:
            if rule.models and model_id not in rule.models:
                continue
            if patterns and not any(p.search(prompt) or p.search(answer) for p in patterns):
                continue
            out.append(rule.text)
        return out

    def mask_for_storage(self, text: str) -> str:
        """PII-masked copy of a text for the completion log."""
        return self._storage_masker.mask(text)[0] if text else text

    def replacement(self, pii_type: str, value: str) -> str:
        assert self._masker is not None
        if self.cfg.pii_strategy == "pseudonym":
            return self._masker.pseudonym(pii_type, value)
        return f"[{pii_type}]"

    @property
    def scrubs(self) -> bool:
        return self._masker is not None

    def detect(self, text: str):
        assert self._masker is not None
        return self._masker.detector.detect(text)


class OutputFilter:
    """Filters one channel (answer or reasoning) of one completion; `holdback=None` means not streaming
    (everything is released at `finish`)."""

    def __init__(self, guards: Guards, report: GuardReport, holdback: int | None) -> None:
        self.guards = guards
        self.report = report
        self.holdback = holdback
        self.raw = ""
        self.released_upto = 0
        self.blocked = False

    def feed(self, text: str) -> str:
        """Add generated text; return the part that is safe to send now."""
        self.raw += text
        if self.blocked or self.holdback is None:
            return ""
        if len(self.raw) - self.released_upto < self.holdback + _MIN_RELEASE_CHARS:
            return ""
        return self._release(len(self.raw) - self.holdback)

    def finish(self) -> str:
        """Release everything that is left (the generation has ended)."""
        if self.blocked:
            return ""
        return self._release(len(self.raw))

    def _release(self, cut: int) -> str:
        for pattern in self.guards.output_patterns:
            if pattern.search(self.raw):
                self.blocked = True
                self.report.output_blocked = pattern.pattern
                return ""
        if not self.guards.scrubs:
            out, self.released_upto = self.raw[self.released_upto : cut], cut
            return out
        spans = [s for s in self.guards.detect(self.raw) if s.end > self.released_upto]
        for span in spans:  # never cut through a PII value: release up to its start instead
            if span.start < cut < span.end:
                cut = span.start
        parts, pos = [], self.released_upto
        for span in spans:
            if span.start >= cut:
                break
            start = max(span.start, pos)
            parts.append(self.raw[pos:start])
            parts.append(self.guards.replacement(span.type, span.text))
            self.report.pii_masked[span.type] += 1
            pos = span.end
        parts.append(self.raw[pos:cut])
        self.released_upto = max(cut, pos)
        return "".join(parts)
