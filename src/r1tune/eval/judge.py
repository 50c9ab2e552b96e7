"""Optional pairwise judge: an LLM says which of two answers is better, asked in both orders.

LLM judges prefer whichever answer they read first (or second) often enough to flip a close comparison,
so every pair is judged as (base, tuned) and as (tuned, base). A model wins an example only if it wins one
order and does not lose the other; a split decision is a tie, and the share of pairs where both orders
agree is reported as the judge's consistency. Every verdict keeps the judge's reason (eval/judge.jsonl).

The judge is an OpenAI-compatible endpoint (`eval.judge.endpoint`, key from an environment variable), or a
model loaded in-process (`eval.judge.model` alone). A failing endpoint stops judging after three errors in
a row, keeps the verdicts so far and reports why: the generations already made are never lost.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from r1tune.config import JudgeConfig
from r1tune.data.records import Record, write_json_lines
from r1tune.models.decoding import split_reasoning

log = logging.getLogger(__name__)
MAX_CONSECUTIVE_ERRORS = 3

JUDGE_TEMPLATE = """You are an impartial expert judge. Compare two answers to the same request.
Prefer the answer that is correct, helpful, fluent and safe; length alone is not quality.
{reference_block}
[Request]
{prompt}

[Answer A]
{answer_a}

[Answer B]
{answer_b}

Reply with one JSON object and nothing else: {{"winner": "A" or "B" or "tie", "reason": "<one sentence>"}}"""



class JudgeError(Exception):
    """One judge call failed (network, HTTP status, malformed response)."""


def judge_prompt(prompt: str, reference: str | None, answer_a: str, answer_b: str) -> str:
    block = f"\n[Reference answer, for guidance]\n{reference}\n" if reference else ""
    return JUDGE_TEMPLATE.format(reference_block=block, prompt=prompt, answer_a=answer_a or "(empty)",
                                 answer_b=answer_b or "(empty)")


def reply_field(text: str, field: str, allowed: tuple[str, ...]) -> tuple[str | None, str]:
    """(value, reason) of `field` in a judge's reply, lower-cased and one of `allowed`: from the first JSON
    object that has it, else from a loose `field: value`; reasoning blocks are ignored. The reason is the
    object's `reason`, or the start of the reply."""
    body = split_reasoning(text, think=True)[1].strip() or text  # no tags: all "reasoning", so the whole text
    for match in re.finditer(r"\{.*?\}", body, re.DOTALL):
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        value = str(obj.get(field, "")).strip().lower() if isinstance(obj, dict) else ""
        if value in allowed:
            return value, str(obj.get("reason", "")).strip()
    loose = re.search(rf'"?{field}"?\s*[:=]\s*"?({"|".join(allowed)})\b', body, re.IGNORECASE)
    if loose:
        return loose.group(1).lower(), body[:300]
    return None, f"unparseable {field}: {body[:200]!r}"


def parse_verdict(text: str) -> tuple[str | None, str]:
    """("A" | "B" | "tie" | None, reason) from a judge's reply."""
    winner, reason = reply_field(text, "winner", ("a", "b", "tie"))
    return (winner if winner in (None, "tie") else winner.upper()), reason


def endpoint_caller(cfg: JudgeConfig) -> Callable[[list[str]], list[str]]:
    """Calls an OpenAI-compatible /chat/completions one prompt at a time (temperature 0)."""
    url = cfg.endpoint.rstrip("/") + "/chat/completions"
    key = os.environ.get(cfg.api_key_env, "")

    def call_one(prompt: str) -> str:
        body = json.dumps({"model": cfg.model, "temperature": 0, "max_tokens": cfg.max_new_tokens,
                           "messages": [{"role": "user", "content": prompt}]}).encode("utf-8")
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=cfg.timeout_seconds) as response:
                payload = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as err:
            raise JudgeError(f"{url} answered HTTP {err.code}: {err.read()[:200]!r}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise JudgeError(f"cannot reach {url}: {err}") from None
        except json.JSONDecodeError:
            raise JudgeError(f"{url} did not return JSON") from None
        try:
            return str(payload["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError):
            raise JudgeError(f"{url} returned no choices[0].message.content: {str(payload)[:200]}") from None

    return lambda prompts: [call_one(p) for p in prompts]


def local_caller(cfg: JudgeConfig, precision: str) -> Callable[[list[str]], list[str]]:
    """Loads `cfg.model` (preset or folder) once and answers judge prompts greedily, in batches."""
    from r1tune import models
    from r1tune.config import ModelConfig
    from r1tune.data.records import Message
    from r1tune.models.generation import generate

    loaded = models.load(ModelConfig(name=cfg.model))

    def call(prompts: list[str]) -> list[str]:
        ids = [loaded.renderer.render_prompt([Message("user", p)]) for p in prompts]
        return [g.text for g in generate(loaded.model, loaded.renderer, ids, cfg.max_new_tokens, precision=precision)]

    return call


def make_caller(cfg: JudgeConfig, precision: str = "fp32") -> Callable[[list[str]], list[str]]:
    """The configured judge: its endpoint, or the model loaded in-process."""
    return endpoint_caller(cfg) if cfg.endpoint else local_caller(cfg, precision)


def ask_each(call: Callable[[list[str]], list[str]], batches: Sequence[list[str]]
             ) -> tuple[list[list[str] | JudgeError], str]:
    """One judge call per batch of prompts, in order. A dead judge must not stall the evaluation, so after
    MAX_CONSECUTIVE_ERRORS failures in a row it stops; what was answered is kept. Returns the replies (or
    the error) of every batch asked, and the status ("ok" or why it stopped)."""
    out: list[list[str] | JudgeError] = []
    in_a_row = 0
    for batch in batches:
        try:
            out.append(call(batch))
            in_a_row = 0
        except JudgeError as err:
            out.append(err)
            in_a_row += 1
            if in_a_row >= MAX_CONSECUTIVE_ERRORS:
                status = f"stopped after {MAX_CONSECUTIVE_ERRORS} failed calls in a row: {err}"
                log.warning("judge %s", status)
                return out, status
    return out, "ok"


def _combine(first: str | None, second: str | None) -> str:
    """Verdicts as model names ("base"/"tuned"/"tie"/None) from both orders -> one outcome."""
    valid = [v for v in (first, second) if v is not None]
    if not valid:
        return "invalid"
    if len(set(valid)) == 1:
        return valid[0]
    if "tie" in valid:
        return next(v for v in valid if v != "tie")
    return "tie"  # each order picked a different model: position bias, not a preference


def run_judge(cfg: JudgeConfig, records: Sequence[Record], base_answers: Sequence[str],
              tuned_answers: Sequence[str], out_path: Path, precision: str = "fp32",
              caller: Callable[[list[str]], list[str]] | None = None) -> dict[str, Any]:
    """Judge base vs tuned on up to `cfg.max_examples` examples, both orders; writes judge.jsonl."""
    n = min(cfg.max_examples, len(records))
    summary: dict[str, Any] = {"judge": cfg.model, "via": "endpoint" if cfg.endpoint else "local", "status": "ok"}
    try:
        call = caller or make_caller(cfg, precision)
    except Exception as err:  # a judge that cannot load must not lose the evaluation it is attached to
        log.warning("judge unavailable: %s", err)
        return {**summary, "status": f"judge unavailable: {err}", "n": 0}
    orders = (("base", "tuned"), ("tuned", "base"))
    asked = [(records[i].prompt_messages[-1].content, records[i].answer.content) for i in range(n)]
    batches = [[judge_prompt(prompt, reference, *(base_answers[i] if m == "base" else tuned_answers[i] for m in order))
                for order in orders] for i, (prompt, reference) in enumerate(asked)]
    replies, summary["status"] = ask_each(call, batches)
    rows: list[dict[str, Any]] = []
    for i, answer in enumerate(replies):
        if isinstance(answer, JudgeError):
            rows.append({"id": records[i].id, "outcome": "error", "error": str(answer)})
            continue
        verdicts = []
        for order, reply in zip(orders, answer, strict=True):
            letter, reason = parse_verdict(reply)
            verdicts.append({"order": f"A={order[0]}, B={order[1]}", "raw": letter, "reason": reason,
                             "winner": None if letter is None else {"A": order[0], "B": order[1]}.get(letter, "tie")})
        outcome = _combine(verdicts[0]["winner"], verdicts[1]["winner"])
        consistent = verdicts[0]["winner"] is not None and verdicts[0]["winner"] == verdicts[1]["winner"]
        rows.append({"id": records[i].id, "prompt": asked[i][0], "outcome": outcome, "consistent": consistent,
                     "verdicts": verdicts})
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_json_lines(rows, out_path)
    counts = Counter(r["outcome"] for r in rows)
    decided = counts["tuned"] + counts["base"] + counts["tie"]
    judged = [r for r in rows if r["outcome"] not in ("error", "invalid")]
    summary.update({
        "n": len(rows), "wins": counts["tuned"], "losses": counts["base"], "ties": counts["tie"],
        "invalid": counts["invalid"], "errors": counts["error"],
        "win_rate": 100.0 * counts["tuned"] / decided if decided else None,
        "loss_rate": 100.0 * counts["base"] / decided if decided else None,
        "consistency": 100.0 * sum(r["consistent"] for r in judged) / len(judged) if judged else None,
        "examples": [{"id": r["id"], "outcome": r["outcome"], "reasons": [v["reason"] for v in r["verdicts"]]}
                     for r in judged[:5]],
    })
    return summary
