"""PII detector quality and speed: per-type precision/recall/F1 on both labelled sets, plus throughput.

Sets: tests/data/pii_cases.jsonl (438 cases, checksum types and cue-based names) and
tests/data/pii_hard_cases.jsonl (names without cue words, cards in every grouping, mixed records and
business look-alikes). Each name finder (`cues`, `free` = the default, `thulac` = the learned tagger) is
scored and timed; thulac is timed on fewer records because it is about 100x slower.

Baseline, scored in the same run on the same cases and corpus: the usual regexes a script without r1tune
would use (the same ones as the pandas baseline in bench_data.py): no checksums, no written variants beyond
spaces and dashes, no names or addresses.

Why: the masking step sits in the data pipeline that must push 1,000,000 records at >= 2,000 records/s on
2 cores (clean + dedup + PII), so both numbers are tracked together. Results go to bench-results/pii_eval.json.

    .venv/bin/python benchmarks/pii_eval.py [--records 5000] [--learned-records 300]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from pathlib import Path

from r1tune.data.pii import PII_TYPES, PiiDetector, PiiMasker, PiiSpan, evaluate_pii

ROOT = Path(__file__).resolve().parents[1]
SETS = {"original": ROOT / "tests" / "data" / "pii_cases.jsonl", "hard": ROOT / "tests" / "data" / "pii_hard_cases.jsonl"}
FINDERS = ("cues", "free", "thulac")
OUT = ROOT / "bench-results" / "pii_eval.json"

ZH_FILLER = [
    "您好，关于您反馈的问题我们已经记录，预计三个工作日内给出处理结果。",
    "本月理财产品年化收益率为3.85%，起购金额1000元，可随时赎回。",
    "患者主诉头痛三天，伴有轻度发热，建议完善血常规检查后复诊。",
    "订单号202311221234567890已于2023-11-22 15:30:45发货，运单SF1234567890123。",
    "商品售价¥1,299.00，会员再享九五折，活动截止到本周日晚上十点。",
    "系统升级到版本1.2.3.4之后，部分用户反映登录变慢，技术部正在排查。",
    "请在工作日上午九点到下午五点之间前往营业网点办理相关业务。",
    "信用卡账单日为每月5日，最后还款日为每月23日，逾期将产生利息。",
]
EN_FILLER = [
    "Thanks for reaching out. We have logged your request and will follow up within two business days.",
    "The quarterly report shows revenue of $12,345.67 thousand, up 4.2% year over year.",
    "Order #A1234567 shipped on 2023-11-22 and should arrive by Friday; tracking 1Z999AA10123456784.",
    "Please restart the router after upgrading the firmware to version 10.2.0.1.",
    "Our support team is available Monday through Friday from 9am to 6pm local time.",
    "The patient was advised to rest, drink fluids and return if symptoms persist beyond a week.",
]
ZH_PII = [
    "联系人张伟，电话138-1234-5678。", "客户身份证号110105194912310021已核验。", "收货地址：上海市徐汇区漕溪北路88号。",
    "王经理说卡号6217 9564 1906 9784 437已挂失。", "邮箱zhang.wei@example.cn收到附件了吗？", "李女士您好，",
]
EN_PII = [
    "Dear John Smith, ", "Call me at (415) 555-0132. ", "My email is jane.doe@example.com. ",
    "Ship to 221 Baker Street. ", "Login from 203.0.113.45 flagged. ", "Reset link ?token=abcDEF123456 expires soon. ",
]


class NaiveRegexDetector:
    """The baseline: one regex per type, first match wins where two overlap (order below)."""

    PATTERNS = {
        "EMAIL": r"[\w.+-]+@[\w-]+\.[\w.]+",
        "CN_ID": r"\d{17}[\dXx]",
        "BANK_CARD": r"(?:\d{4}[ -]?){3}\d{4}(?:\d{1,3})?",
        "PHONE": r"(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}",
        "IP": r"\d{1,3}(?:\.\d{1,3}){3}",
    }

    def __init__(self) -> None:
        self.compiled = [(t, re.compile(p)) for t, p in self.PATTERNS.items()]

    def detect(self, text: str) -> list[PiiSpan]:
        taken: list[PiiSpan] = []
        for pii_type, pattern in self.compiled:
            for m in pattern.finditer(text):
                if not any(m.start() < s.end and s.start < m.end() for s in taken):
                    taken.append(PiiSpan(m.start(), m.end(), pii_type, m.group(), 1.0))
        return sorted(taken, key=lambda s: s.start)

    def mask(self, text: str) -> tuple[str, list[PiiSpan]]:
        spans = self.detect(text)
        for span in reversed(spans):
            text = text[: span.start] + f"[{span.type}]" + text[span.end :]
        return text, spans


def make_corpus(n: int, seed: int = 7) -> list[str]:
    """~200-character records (capped at 240), half Chinese and half English, about 40% with one or two PII snippets."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        zh = rng.random() < 0.5
        filler, pii = (ZH_FILLER, ZH_PII) if zh else (EN_FILLER, EN_PII)
        parts = rng.sample(filler, 4 if zh else 3)
        if rng.random() < 0.4:
            for snippet in rng.sample(pii, rng.randint(1, 2)):
                parts.insert(rng.randrange(len(parts) + 1), snippet)
        out.append(("" if zh else " ").join(parts)[:240])
    return out


def throughput(texts: list[str], masker: PiiMasker | NaiveRegexDetector) -> dict[str, float]:
    """Records per wall-clock second and per CPU second (the machine is shared, so wall time is noisy)."""
    masker.mask("联系人张伟先生")  # warm-up: loads jieba once
    w0, c0 = time.perf_counter(), time.process_time()
    for text in texts:
        masker.mask(text)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"wall": len(texts) / wall, "cpu": len(texts) / max(cpu, 1e-9)}


def print_table(scores: dict[str, dict[str, float]], baseline: dict[str, dict[str, float]]) -> None:
    """Human-readable per-type table, r1tune beside the regex baseline (types with no case are left out)."""
    print(f"{'':<11} {'r1tune':^34} | {'regex baseline':^20}")
    print(f"{'type':<11} {'prec':>6} {'recall':>6} {'F1':>6} {'tp':>4} {'fp':>4} {'fn':>4} | "
          f"{'prec':>6} {'recall':>6} {'F1':>6}")
    for t in PII_TYPES:
        s, b = scores[t], baseline[t]
        if s["tp"] + s["fp"] + s["fn"] + b["fp"] == 0:
            continue
        print(f"{t:<11} {s['precision']:6.3f} {s['recall']:6.3f} {s['f1']:6.3f} {s['tp']:4d} {s['fp']:4d} "
              f"{s['fn']:4d} | {b['precision']:6.3f} {b['recall']:6.3f} {b['f1']:6.3f}")


def kept_lookalikes(cases: list[dict], detector: PiiDetector) -> float:
    """Share of negative cases (no PII) left untouched."""
    negatives = [c for c in cases if not c["spans"]]
    return sum(not detector.detect(c["text"]) for c in negatives) / max(1, len(negatives))


def score_sets() -> dict:
    out: dict = {}
    for name, path in SETS.items():
        cases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        baseline = evaluate_pii(cases, NaiveRegexDetector())
        out[name] = {"cases": len(cases), "negatives": sum(not c["spans"] for c in cases),
                     "baseline_per_type": baseline, "finders": {}}
        for finder in FINDERS:
            detector = PiiDetector(names=finder)
            scores = evaluate_pii(cases, detector)
            out[name]["finders"][finder] = {"per_type": scores, "lookalikes_kept": kept_lookalikes(cases, detector)}
            print(f"\n{name} set: {len(cases)} cases ({out[name]['negatives']} negatives), names={finder}, "
                  f"look-alikes kept {100 * out[name]['finders'][finder]['lookalikes_kept']:.1f}%")
            print_table(scores, baseline)
    return out


def main() -> None:
    """Evaluate, time, print and save."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--learned-records", type=int, default=300, help="records timed with names=thulac")
    args = ap.parse_args()
    quality = score_sets()
    corpus = make_corpus(args.records)
    avg_len = sum(map(len, corpus)) / len(corpus)
    speed = {f"{s} (names=free)": throughput(corpus, PiiMasker(s, salt="bench")) for s in ("placeholder", "pseudonym", "hash")}
    speed["placeholder (names=cues)"] = throughput(corpus, PiiMasker("placeholder", names="cues"))
    speed["placeholder (names=thulac)"] = throughput(corpus[: args.learned_records], PiiMasker("placeholder", names="thulac"))
    speed["regex baseline"] = throughput(corpus, NaiveRegexDetector())
    print()
    for label, rps in speed.items():
        print(f"throughput {label:<27} {rps['wall']:7.0f} records/s wall, {rps['cpu']:7.0f} records/CPU-s "
              f"(1 process, avg {avg_len:.0f} chars)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"sets": quality, "throughput_records_per_s": speed, "corpus_records": len(corpus),
                               "learned_records": args.learned_records, "corpus_avg_chars": avg_len}, indent=2),
                   encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
