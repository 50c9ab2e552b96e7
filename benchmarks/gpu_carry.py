"""`make gpu-carry`: everything `make gpu-check` needs on a lent GPU machine that reaches no registry.

That machine has its own python3 (3.12) with torch, transformers, peft, accelerate and the science stack, but
none of r1tune's other needs. This writes `.gpu-carry/` (git-ignored) beside the repo:

    .gpu-carry/wheels/          cp312 manylinux wheels of the packages the check imports and the machine lacks,
                                pinned to the versions installed here (the ones the test suite ran against)
    .gpu-carry/r1-tokenizer/    the real DeepSeek-R1 tokenizer (from the packaged GGUF shard, built here)
    .gpu-carry/run.sh           installs the wheels into /tmp/site and runs benchmarks/gpu_check.py

and prints the one device call: `bash .gpu-carry/run.sh` with `.gpu-carry` carried. The working tree and the
carried folder travel together under the device tool's 64 MiB, which this checks before saying it is ready.

    .venv/bin/python benchmarks/gpu_carry.py [--out .gpu-carry]

Which packages: those gpu_check.py imported in a `--cpu-smoke` run here, less the H200 image's package list
(`/work/.library/device/KINDS.md`), peft at this venv's version (see PINNED_OVER_MACHINE), and bitsandbytes
for the QLoRA section: its wheel (41 MiB) holds a CUDA library per toolkit, of which only the CUDA 13 ones
(the machine's torch is cu130) and the CPU one are kept (7 MiB).
jieba (the served answers' PII scrub segments Chinese text with it, and a random model's answers hold CJK
tokens) is published only as a source archive: its pure-Python wheel (18 MiB, mostly its dictionary) is built
here.
vLLM is far over the limit and is not carried: its section reports "skipped" unless the machine has it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
LIMIT_BYTES = 64 * 2**20
MISSING_ON_MACHINE = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "fastapi", "starlette",
                      "sniffio", "opentelemetry-api", "sqlalchemy", "datasets", "dill", "multiprocess", "uvicorn")
# The machine has peft, at a version nobody has read: r1tune's fused LoRA layers use peft's experimental
# custom-layer registration (train/fused_lora.py), so the version the test suite ran against travels too.
PINNED_OVER_MACHINE = ("peft",)
BUILT_HERE = ("jieba",)  # source archives only: built into pure-Python wheels
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
BITSANDBYTES = "bitsandbytes==0.50.2"
KEEP_LIBRARY = re.compile(r"libbitsandbytes_(cpu|cuda13\d)\.so$")
RUN_SH = """#!/usr/bin/env bash
# Written by benchmarks/gpu_carry.py. On the lent GPU machine, from the repo root: bash .gpu-carry/run.sh
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \\
    .gpu-carry/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 benchmarks/gpu_check.py --tokenizer .gpu-carry/r1-tokenizer --out "${OUT:-bench-results}/gpu_check.json" "$@"
"""


def download_wheels(names: tuple[str, ...], folder: Path) -> None:
    """One cp312 x86-64 binary wheel per package, at the version installed here, without dependencies."""
    download([arg for p in PLATFORMS for arg in ("--platform", p)], folder,
             [f"{name}=={version(name)}" for name in names])


def download(platforms: list[str], folder: Path, pins: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(folder), *pins]
    if subprocess.run(command).returncode != 0:
        raise SystemExit(f"pip could not download cp312 wheels for {' '.join(pins)}")


def build_wheels(names: tuple[str, ...], folder: Path) -> None:
    """Pure-Python wheels built from the source archives of `names`, at the versions installed here."""
    folder.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={version(name)}" for name in names]
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder), *pins]
    if subprocess.run(command).returncode != 0:
        raise SystemExit(f"pip could not build wheels for {' '.join(pins)}")


def thin_bitsandbytes(folder: Path) -> None:
    """Download bitsandbytes and keep only the native libraries the lent machine can load."""
    download(["--platform", "manylinux_2_24_x86_64"], folder, [BITSANDBYTES])
    thin_wheel(next(folder.glob("bitsandbytes-*.whl")), KEEP_LIBRARY)


def thin_wheel(wheel: Path, keep: re.Pattern[str]) -> None:
    """Rewrite a wheel without the `.so` files `keep` does not match. pip installs a wheel without checking
    that each RECORD entry exists, so the thinned wheel installs (checked by installing it here)."""
    thinned = wheel.with_suffix(".thin")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(thinned, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename.endswith(".so") and not keep.search(item.filename):
                continue
            dst.writestr(item, src.read(item.filename))
    thinned.replace(wheel)


def tree_bytes(paths: list[Path]) -> int:
    return sum(f.stat().st_size for p in paths for f in (p.rglob("*") if p.is_dir() else [p]) if f.is_file())


def tracked_bytes() -> int:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return tree_bytes([ROOT / name for name in files.decode().split("\0") if name])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu-carry")
    args = parser.parse_args()
    from gpu_check import r1_tokenizer

    download_wheels(MISSING_ON_MACHINE + PINNED_OVER_MACHINE, args.out / "wheels")
    build_wheels(BUILT_HERE, args.out / "wheels")
    thin_bitsandbytes(args.out / "wheels")
    r1_tokenizer(None).save_pretrained(args.out / "r1-tokenizer")
    (args.out / "run.sh").write_text(RUN_SH)
    carried, repo = tree_bytes([args.out]), tracked_bytes()
    print(f"{args.out}: {carried / 2**20:.1f} MiB carried + {repo / 2**20:.1f} MiB of tracked files "
          f"(limit {LIMIT_BYTES / 2**20:.0f} MiB)")
    if carried + repo > LIMIT_BYTES:
        print("over the device tool's limit: carry less", file=sys.stderr)
        return 1
    print(f'device call: run(command="bash {args.out.name}/run.sh 2>&1 | tee $OUT/log", '
          f'carry=["{args.out.name}"], timeout_s=540)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
