"""Data engine at scale: 1,000,000 mixed zh/en records with planted duplicates and PII, full `prepare` pipeline.

Measures, in one run and on the same generated corpus:

* r1tune's pipeline (read → clean/filter → PII masking → exact dedup → MinHash near-dedup → split → write)
  with `num_proc` workers: records/s, peak RSS of the whole process tree (parent + workers, sampled every
  0.2 s; shared pages are counted in every process, so this over-states), and recall on the planted
  duplicate pairs (a copy counts as found when it is quarantined by `dedup` or `near_dedup`);
* a naive pandas baseline: `read_json(lines=True)`, `drop_duplicates` on prompt + answer and the usual PII
  regexes with `str.replace` (exact duplicates only, no checksums, no look-alike protection);
* datasketch used record by record (`MinHash.update_batch` + `MinHashLSH.insert`) on a sample, against the
  vectorised signatures and banding in `r1tune.data.dedup`.

Targets (issue 3): ≥ 2,000 records/s on 2 cores, peak RSS < 4 GiB, dedup recall ≥ 0.95.

    .venv/bin/python benchmarks/bench_data.py [--records 1000000] [--num-proc 2] [--keep]

Results: bench-results/bench_data.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-results" / "bench_data.json"

ZH_CHARS = ("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面"
            "而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好"
            "应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命"
            "此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老")
EN_WORDS = ("order delivery refund product quality service customer account payment invoice warranty return shipping "
            "package address update support request issue replacement battery screen size color fabric cotton steel "
            "discount coupon member points balance transfer branch loan rate deposit card limit statement clinic "
            "appointment doctor report result dosage insurance claim policy premium contract schedule meeting").split()
ZH_PII = ["联系人张伟，电话138-1234-5678。", "客户身份证号110105194912310021已核验。", "收货地址：上海市徐汇区漕溪北路88号。",
          "卡号6217 9564 1906 9784 437已挂失。", "邮箱zhang.wei@example.cn。", "手机+86 139 8765 4321。"]
EN_PII = ["Contact John Smith at (415) 555-0132.", "My email is jane.doe@example.com.", "Login from 203.0.113.45.",
          "Card 4539 1488 0343 6467 was charged.", "Reset link https://shop.example.com/reset?token=abcDEF123456."]
LOOKALIKES = ["订单号20240512123456已发货。", "Order #A1234567 shipped on 2024-05-12.", "SKU 6217956419069784 in stock.",
              "运单SF1234567890123。", "价格¥1,299.00。"]


def _zh_text(rng: random.Random, n_chars: int) -> str:
    chars = rng.choices(ZH_CHARS, k=n_chars)
    for pos in range(rng.randint(12, 20), n_chars, rng.randint(14, 24)):
        chars[pos] = rng.choice("，。；！？")
    return "".join(chars) + "。"


def _en_text(rng: random.Random, n_words: int) -> str:
    words = rng.choices(EN_WORDS, k=n_words)
    words += [str(rng.randint(1, 9999))]
    rng.shuffle(words)
    return " ".join(words).capitalize() + "."


def _record(rng: random.Random, i: int) -> dict:
    zh = rng.random() < 0.5
    if zh:
        prompt = f"请介绍商品{i}的{rng.choice(['材质', '售后', '物流', '价格', '保修'])}情况。"
        answer = _zh_text(rng, rng.randint(80, 180))
    else:
        prompt = f"Tell me about the {rng.choice(['material', 'warranty', 'shipping', 'price'])} of item {i}."
        answer = _en_text(rng, rng.randint(30, 70))
    roll = rng.random()
    if roll < 0.15:
        answer += " " + rng.choice(ZH_PII if zh else EN_PII)
    elif roll < 0.30:
        answer += " " + rng.choice(LOOKALIKES)
    elif roll < 0.32:
        answer = f"<p>{answer}</p><br><b>{rng.choice(['欢迎选购', 'Thanks'])}</b>&nbsp;"
    elif roll < 0.33:
        answer = (answer[:12] + " ") * 12  # repetitive: the filter's job
        return {"instruction": prompt, "input": "", "output": answer, "label": "repetitive"}
    return {"instruction": prompt, "input": "", "output": answer}


def _exact_variant(rng: random.Random, row: dict) -> dict:
    """Verbatim, or differing only in case, spacing and punctuation (normalised text is identical)."""
    out = dict(row)
    if rng.random() < 0.5:
        out["output"] = "  " + row["output"].replace("，", ",").replace("。", ".").upper() + " "
    return out


def _near_variant(rng: random.Random, row: dict) -> dict:
    """One small edit: a word or character replaced, or a short phrase appended."""
    out = dict(row)
    text = row["output"]
    kind = rng.random()
    if kind < 0.5:
        words = text.split(" ")
        if len(words) > 10:
            words[rng.randrange(len(words))] = rng.choice(EN_WORDS)
            out["output"] = " ".join(words)
        else:
            pos = rng.randrange(len(text) // 3, 2 * len(text) // 3)
            out["output"] = text[:pos] + rng.choice(ZH_CHARS) + text[pos + 1:]
    else:
        out["output"] = text + rng.choice([" 谢谢！", " Thanks!", "祝您购物愉快。", " Have a nice day."])
    return out


def generate(path: Path, n: int, seed: int = 11) -> dict:
    """Write the corpus; ~5% exact and ~5% near duplicates of earlier records. Returns the planted pairs."""
    rng = random.Random(seed)
    pairs = {"exact": [], "near": []}
    originals: list[tuple[int, dict]] = []
    with path.open("w", encoding="utf-8") as fh:
        for line in range(1, n + 1):
            roll = rng.random()
            if originals and roll < 0.05:
                src_line, src = rng.choice(originals)
                row, kind = _exact_variant(rng, src), "exact"
            elif originals and roll < 0.10:
                src_line, src = rng.choice(originals)
                row, kind = _near_variant(rng, src), "near"
            else:
                row, kind = _record(rng, line), None
                if len(originals) < 200_000 and "label" not in row and rng.random() < 0.5:
                    originals.append((line, row))
            if kind:
                pairs[kind].append((line, src_line))
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return pairs


# ---------------------------------------------------------------------------------------------------------
# measured runs (each in its own process so peak memory is its own)


class PeakRss:
    """Samples the RSS of this process and all its children (datasets workers) every 0.2 s."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for proc in [self.process, *self.process.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.2)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_engine(corpus: Path, out_dir: Path, num_proc: int) -> dict:
    from r1tune.config import DataConfig, SourceConfig
    from r1tune.data.prepare import run_data_pipeline

    cfg = DataConfig(sources=[SourceConfig(path=corpus, format="alpaca")], num_proc=num_proc)
    with PeakRss() as rss:
        start = time.perf_counter()
        report = run_data_pipeline(cfg, out_dir, seed=1)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss": rss.peak, "report": {k: report[k] for k in (
        "funnel", "timings", "pii", "num_proc")} | {"duplicates": {k: v for k, v in report["duplicates"].items()
                                                                   if k != "largest_clusters"}}}


def run_pandas(corpus: Path, out_dir: Path) -> dict:
    """What a script without r1tune would do: exact drop_duplicates and the usual PII regexes."""
    import pandas as pd

    patterns = {
        "[PHONE]": r"(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}",
        "[EMAIL]": r"[\w.+-]+@[\w-]+\.[\w.]+",
        "[CN_ID]": r"\d{17}[\dXx]",
        "[BANK_CARD]": r"(?:\d{4}[ -]?){3}\d{4}(?:\d{1,3})?",
        "[IP]": r"\d{1,3}(?:\.\d{1,3}){3}",
    }
    with PeakRss() as rss:
        start = time.perf_counter()
        df = pd.read_json(corpus, lines=True)
        df["line"] = range(1, len(df) + 1)
        before = set(df["line"])
        df = df.drop_duplicates(subset=["instruction", "output"])
        for column in ("instruction", "output"):
            for placeholder, pattern in patterns.items():
                df[column] = df[column].str.replace(pattern, placeholder, regex=True)
        df.drop(columns=["line"]).to_json(out_dir / "pandas.jsonl", orient="records", lines=True, force_ascii=False)
        seconds = time.perf_counter() - start
    dropped = sorted(before - set(df["line"]))
    (out_dir / "pandas_dropped.json").write_text(json.dumps(dropped))
    return {"seconds": seconds, "peak_rss": rss.peak, "kept": len(df)}


def run_datasketch_sample(corpus: Path, n: int) -> dict:
    """datasketch record by record vs the vectorised path, on the first `n` answers."""
    import numpy as np
    import xxhash
    from datasketch import MinHash, MinHashLSH

    from r1tune.data.clean import detect_language
    from r1tune.data.dedup import MinHasher, lsh_params, near_duplicate_clusters

    texts = []
    with corpus.open(encoding="utf-8") as fh:
        for line in fh:
            texts.append(json.loads(line)["output"])
            if len(texts) >= n:
                break
    hasher = MinHasher()
    langs = [detect_language(t) for t in texts]
    start = time.perf_counter()
    shingles = [hasher.shingle_hashes(t, lang) for t, lang in zip(texts, langs, strict=True)]
    shingle_seconds = time.perf_counter() - start
    start = time.perf_counter()
    signatures = hasher.signatures(shingles)
    ours_sig = time.perf_counter() - start
    start = time.perf_counter()
    near_duplicate_clusters(signatures, 0.8)
    ours_lsh = time.perf_counter() - start
    import tracemalloc

    bands, rows = lsh_params(0.8, 128)
    start = time.perf_counter()
    minhashes = []
    for hashes in shingles:
        m = MinHash(num_perm=128, hashfunc=int)
        m.update_batch(hashes.tolist())
        minhashes.append(m)
    ds_sig = time.perf_counter() - start
    assert all(np.array_equal(m.hashvalues, s) for m, s in zip(minhashes[:100], signatures[:100], strict=True))
    tracemalloc.start()
    start = time.perf_counter()
    lsh = MinHashLSH(num_perm=128, params=(bands, rows))
    for i, m in enumerate(minhashes):
        lsh.insert(i, m)
    ds_lsh = time.perf_counter() - start
    lsh_bytes = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del xxhash
    return {"records": len(texts), "shingle_us": 1e6 * shingle_seconds / len(texts),
            "ours_signature_us": 1e6 * ours_sig / len(texts), "datasketch_signature_us": 1e6 * ds_sig / len(texts),
            "ours_lsh_us": 1e6 * ours_lsh / len(texts), "datasketch_lsh_us": 1e6 * ds_lsh / len(texts),
            "datasketch_lsh_bytes_per_record": lsh_bytes / len(texts),
            "ours_bytes_per_record": 128 * 4 + bands * 8}


# ---------------------------------------------------------------------------------------------------------
# scoring and the table


def _quarantined(out_dir: Path) -> dict[int, str]:
    stages = {}
    with (out_dir / "quarantine.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            item = json.loads(line)
            if item["action"] == "rejected":
                stages[int(item["source"].rsplit(":", 1)[1])] = item["stage"]
    return stages


def recall(pairs: dict, dropped_stage: dict[int, str], dropped_pandas: set[int] | None = None) -> dict:
    out = {}
    for kind, items in pairs.items():
        eligible = [(copy, orig) for copy, orig in items if dropped_stage.get(orig) not in ("filter",)]
        if dropped_pandas is not None:
            found = sum(copy in dropped_pandas for copy, _ in eligible)
        else:
            found = sum(dropped_stage.get(copy) in ("dedup", "near_dedup") for copy, _ in eligible)
        out[kind] = round(found / len(eligible), 4) if eligible else None
    all_eligible = sum(len(v) for v in pairs.values())
    out["all"] = round(sum((out[k] or 0) * len(v) for k, v in pairs.items()) / all_eligible, 4) if all_eligible else None
    return out


def _child(args: list[str]) -> dict:
    """Run one measured step in a fresh process; adds the CPU seconds of its whole process tree."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"benchmark step {args[1]} failed:\n{result.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    out["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out["load_average"] = [load_before, os.getloadavg()[0]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--sample", type=int, default=20_000, help="records for the datasketch comparison")
    parser.add_argument("--keep", action="store_true", help="keep the generated corpus and outputs")
    parser.add_argument("--step", choices=["engine", "pandas", "datasketch"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "engine":
        print(json.dumps(run_engine(args.corpus, args.out, args.num_proc)))
        return
    if args.step == "pandas":
        print(json.dumps(run_pandas(args.corpus, args.out)))
        return
    if args.step == "datasketch":
        print(json.dumps(run_datasketch_sample(args.corpus, args.sample)))
        return

    work = Path(tempfile.mkdtemp(prefix="bench-data-"))
    try:
        corpus = work / "corpus.jsonl"
        start = time.perf_counter()
        pairs = generate(corpus, args.records)
        generate_seconds = time.perf_counter() - start
        print(f"generated {args.records:,} records in {generate_seconds:.0f}s "
              f"({len(pairs['exact']):,} exact and {len(pairs['near']):,} near duplicates planted)", flush=True)
        engine_dir, pandas_dir = work / "engine", work / "pandas"
        engine_dir.mkdir()
        pandas_dir.mkdir()
        engine = _child(["--step", "engine", "--corpus", str(corpus), "--out", str(engine_dir),
                         "--num-proc", str(args.num_proc)])
        print(f"r1tune pipeline done in {engine['seconds']:.0f}s", flush=True)
        baseline = _child(["--step", "pandas", "--corpus", str(corpus), "--out", str(pandas_dir)])
        print(f"pandas baseline done in {baseline['seconds']:.0f}s", flush=True)
        sketch = _child(["--step", "datasketch", "--corpus", str(corpus), "--sample", str(args.sample)])
        stages = _quarantined(engine_dir)
        engine_recall = recall(pairs, stages)
        pandas_dropped = set(json.loads((pandas_dir / "pandas_dropped.json").read_text()))
        pandas_recall = recall(pairs, stages, pandas_dropped)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results = {
        "records": args.records, "num_proc": args.num_proc, "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "planted": {k: len(v) for k, v in pairs.items()},
        "r1tune": {"records_per_second": args.records / engine["seconds"], "seconds": engine["seconds"],
                   **_cpu(engine, args.records, args.num_proc),
                   "peak_rss_gib": engine["peak_rss"] / 2**30, "dedup_recall": engine_recall, **engine["report"]},
        "pandas_baseline": {"records_per_second": args.records / baseline["seconds"], "seconds": baseline["seconds"],
                            **_cpu(baseline, args.records, 1),
                            "peak_rss_gib": baseline["peak_rss"] / 2**30, "dedup_recall": pandas_recall,
                            "kept": baseline["kept"]},
        "datasketch_per_record_sample": sketch,
        "targets": {"records_per_second": 2000, "peak_rss_gib": 4.0, "dedup_recall": 0.95},
        "work_dir": str(work) if args.keep else None,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    _print_table(results)


def _cpu(step: dict, records: int, cores: int) -> dict:
    """CPU accounting: on a shared machine wall time depends on the neighbours, CPU time much less."""
    return {"cpu_seconds": step["cpu_seconds"], "cpu_us_per_record": 1e6 * step["cpu_seconds"] / records,
            "machine_share_used": step["cpu_seconds"] / (step["seconds"] * cores), "load_average": step["load_average"]}


def _print_table(r: dict) -> None:
    ours, base, sketch = r["r1tune"], r["pandas_baseline"], r["datasketch_per_record_sample"]
    rows = [
        ("records/s (full pipeline)", f"{ours['records_per_second']:,.0f}", f"{base['records_per_second']:,.0f}", "≥ 2,000"),
        ("CPU µs per record (all processes)", f"{ours['cpu_us_per_record']:,.0f}",
         f"{base['cpu_us_per_record']:,.0f}", ""),
        ("share of the cores actually got", f"{ours['machine_share_used']:.0%}", f"{base['machine_share_used']:.0%}", ""),
        ("peak RSS, process tree (GiB)", f"{ours['peak_rss_gib']:.2f}", f"{base['peak_rss_gib']:.2f}", "< 4"),
        ("recall, exact duplicates", f"{ours['dedup_recall']['exact']:.3f}", f"{base['dedup_recall']['exact']:.3f}", ""),
        ("recall, near duplicates", f"{ours['dedup_recall']['near']:.3f}", f"{base['dedup_recall']['near']:.3f}", ""),
        ("recall, all planted pairs", f"{ours['dedup_recall']['all']:.3f}", f"{base['dedup_recall']['all']:.3f}", "≥ 0.95"),
    ]
    print(f"\n{r['records']:,} records, num_proc={r['num_proc']} on {r['cpu_count']} CPUs "
          f"(load average at end {r['load_average_at_end'][0]:.1f})")
    print(f"{'':34}{'r1tune':>12}{'pandas':>12}{'target':>10}")
    for label, a, b, target in rows:
        print(f"{label:34}{a:>12}{b:>12}{target:>10}")
    print(f"\nstage seconds: {ours['timings']}")
    print(f"MinHash on {sketch['records']:,} records, µs/record: signatures {sketch['ours_signature_us']:.1f} vectorised "
          f"vs {sketch['datasketch_signature_us']:.1f} datasketch; LSH {sketch['ours_lsh_us']:.1f} banding "
          f"vs {sketch['datasketch_lsh_us']:.1f} MinHashLSH.insert "
          f"({sketch['datasketch_lsh_bytes_per_record']:.0f} vs {sketch['ours_bytes_per_record']} bytes/record)")
    print(f"results: {OUT}")


if __name__ == "__main__":
    main()
