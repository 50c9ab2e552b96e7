"""The `serve` section of the schema: adapters, keys, limits, the feedback store and the guards."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from r1tune.config.base import PiiType, ProjectPath, _Section

ADAPTER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def _compiles(patterns: list[str]) -> list[str]:

    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(f"{pattern!r} is not a valid regular expression: {err}") from None
    return patterns


RegexList = Annotated[list[str], AfterValidator(_compiles)]
# The vLLM child's flags r1tune sets itself (serve/gateway.py): the gateway depends on each of them.
VLLM_FLAGS_SET_BY_R1TUNE = ("--model", "--served-model-name", "--host", "--port", "--enable-lora",
                            "--max-lora-rank", "--tensor-parallel-size", "-tp")


def vllm_flag_name(arg: str) -> str:
    """The flag an argument of `vllm serve` sets, as vLLM's parser reads it: `--max_model_len=8192` and
    `--max-model-len` are the same flag."""
    flag = arg.split("=", 1)[0]
    return "--" + flag[2:].replace("_", "-") if flag.startswith("--") else flag


def _not_set_by_r1tune(args: list[str]) -> list[str]:
    for arg in args:
        if vllm_flag_name(arg) in VLLM_FLAGS_SET_BY_R1TUNE:
            flag = arg.split("=", 1)[0]
            raise ValueError(f"{flag} is set by r1tune itself (serve.vllm_port, serve.max_lora_rank, the model, "
                             f"all GPUs); remove it from serve.vllm_args")
    return args


class AdapterSpec(_Section):
    name: str = Field(
        pattern=ADAPTER_NAME_PATTERN,
        description="Model id clients use for this adapter (letters, digits, `.`, `_`, `-`; at most 64).",
    )
    path: ProjectPath = Field(description="A run folder (`runs/<run-id>`) or a PEFT LoRA adapter folder.")
    router_data: ProjectPath | None = Field(
        None,
        description="Records (JSONL) whose user prompts train the `auto` router for this adapter; "
        "default: the run's `data/train.jsonl`.",
    )



class DisclaimerRule(_Section):
    text: str = Field(min_length=1, description="Appended to the answer, after a blank line.")
    models: list[str] = Field(
        default_factory=list, description="Model ids (adapters or the base) this applies to; empty: all."
    )
    when_matches: RegexList = Field(
        default_factory=list,
        description="Regexes (case-insensitive) over the prompt and answer; empty: always. E.g. `diagnos|dose`.",
    )


class GuardsConfig(_Section):
    input_block: RegexList = Field(
        default_factory=list,
        description="Regexes (case-insensitive); a request whose messages match one is refused with 400.",
    )
    output_block: RegexList = Field(
        default_factory=list,
        description="Regexes (case-insensitive); an answer that matches one is cut off with finish_reason "
        "`content_filter`.",
    )
    output_block_message: str = Field(
        "[answer withheld by the output filter]",
        description="Replaces a blocked non-streamed answer.",
    )
    scrub_pii: bool = Field(True, description="Mask personal data in answers with the data stage's PII detector.")
    pii_strategy: Literal["placeholder", "pseudonym"] = Field(
        "placeholder", description="`placeholder`: `[PHONE]`; `pseudonym`: a consistent realistic fake."
    )
    pii_types: list[PiiType] | None = Field(None, description="PII types to scrub; default: all.")
    stream_holdback_chars: int = Field(
        48,
        ge=0,
        description="Streamed text is released this many characters late, so a phone number or blocked word "
        "is never half-sent before it is recognised.",
    )
    disclaimers: list[DisclaimerRule] = Field(
        default_factory=list, description="Domain disclaimers (medical, financial, ...) appended to answers."
    )


class ServeConfig(_Section):
    host: str = Field("127.0.0.1", description="Bind address (loopback by default).")
    port: int = Field(8000, gt=0, lt=65536, description="TCP port.")
    engine: Literal["auto", "builtin", "vllm", "openai"] = Field(
        "auto", description="Who generates: `builtin` (r1tune's continuous batching, any device); `vllm` "
        "(starts `vllm serve` as a child process on this machine's GPUs, `pip install vllm`); `openai` (any "
        "OpenAI-compatible server already running at `upstream_url`: vLLM, SGLang, llama.cpp, TGI); `auto`: "
        "vllm on a CUDA machine that has it, else builtin. With `vllm`/`openai` r1tune stays the front (keys, "
        "limits, guards, PII scrub, store, routing, metrics) and sends the upstream its own rendering as token "
        "ids to `/v1/completions`; JSON grammars and logprobs need `builtin`."
    )
    upstream_url: str | None = Field(
        None, description="`engine: openai`: the upstream's base URL, e.g. `http://10.0.0.7:8000/v1`."
    )
    upstream_api_key_env: str = Field(
        "R1TUNE_UPSTREAM_API_KEY", description="Environment variable with the upstream's API key (if it needs one)."
    )
    vllm_port: int = Field(8100, gt=0, lt=65536, description="`engine: vllm`: the child server's port on 127.0.0.1.")
    max_lora_rank: Literal[8, 16, 32, 64, 128, 256, 320, 512] = Field(
        64, description="`engine: vllm`: the largest LoRA rank the child accepts (vLLM reserves memory for it); "
        "an adapter of higher rank is refused when it is loaded."
    )
    vllm_args: Annotated[list[str], AfterValidator(_not_set_by_r1tune)] = Field(
        default_factory=list,
        description="`engine: vllm`: more flags for the child `vllm serve`, e.g. `[--max-model-len, \"16384\", "
        "--gpu-memory-utilization, \"0.85\"]`. Without `--max-model-len` here, r1tune asks vLLM 0.14+ for "
        "`auto` (the longest context whose KV cache fits the GPU); older vLLM reserves the model's whole window. "
        "Flags r1tune sets itself (model, host, port, LoRA, tensor parallel) are refused.",
    )
    adapters: list[AdapterSpec] = Field(
        default_factory=list,
        description="LoRA adapters served on the one base model, each as its own model id. Serving a run "
        "folder adds that run's adapter (named after the project).",
    )
    serve_base: bool = Field(True, description="Also serve the base model itself, as its own model id.")
    base_model_id: str | None = Field(
        None, description="Model id of the base model; default: the preset name or the model folder's name."
    )
    router: Literal["auto", "tfidf", "embedding"] = Field(
        "auto",
        description=(
            "How `model: auto` compares a request with each adapter's training prompts: `tfidf` (character "
            "n-grams), `embedding` (packaged all-MiniLM-L6-v2, needs `r1tune[quality]`), or `auto`: embeddings "
            "for non-Chinese prompts, TF-IDF for Chinese, the best of both on a held-out set (see serve/router.py)."
        ),
    )
    auto_min_similarity: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="`model: auto` routes to the adapter whose training prompts are most similar; below this "
        "similarity it uses the base model (if served).",
    )
    allow_runtime_adapters: bool = Field(
        True, description="Enable the admin endpoints that load and unload adapters while serving."
    )
    adapter_dirs: list[ProjectPath] = Field(
        default_factory=list,
        description="Folders the admin endpoint may load adapters from; default: `project.runs_dir`.",
    )
    api_keys_file: ProjectPath | None = Field(
        None,
        description="File of hashed API keys (`name role sha256:<hex>` per line; role `user` or `admin`), "
        "written by `r1tune serve CONFIG --new-api-key NAME`.",
    )
    api_keys_env: str = Field(
        "R1TUNE_API_KEYS", description="Environment variable with comma-separated plain API keys (role `user`)."
    )
    allow_unauthenticated: bool = Field(
        False, description="Allow serving on a non-loopback address without API keys."
    )
    rate_limit_per_minute: int = Field(
        600, ge=0, description="Requests per minute per API key (per client address without keys); 0: off."
    )
    auth_failures_per_minute: int = Field(
        10, ge=1, description="Failed API-key attempts allowed per client address and minute (bursts up to "
        "this many); past it every attempt from that address, right or wrong, gets 429 until the budget refills."
    )
    allow_weak_keys: bool = Field(
        False, description="Accept keys shorter than 32 characters in `api_keys_env`; off, such a key stops "
        "the server at start-up (a short key can be guessed)."
    )
    max_request_bytes: int = Field(1_000_000, gt=0, description="Larger request bodies are refused with 413.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (e.g. `https://app.example.com`); empty: off."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the completion and feedback store (e.g. "
        "`postgresql+psycopg://user@host/db`, with `pip install 'r1tune[postgres]'`); default: SQLite "
        "`<runs_dir>/feedback.db` in WAL mode.",
    )
    log_completions: bool = Field(
        True, description="Store every completion (PII masked) so it can be rated and exported for retraining."
    )
    live_versions: bool = Field(
        True, description="At start-up, serve each adapter name's live version from the project's version "
        "registry (`r1tune versions`), in place of what `adapters` names for it."
    )
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="Weights dtype for serving: `auto` is bf16 where the hardware computes bf16 natively, "
        "fp16 on GPUs without bf16, else fp32."
    )
    pack_weights: bool = Field(
        True, description="On the CPU with bf16 weights, pre-pack every linear layer's weight for oneDNN once at "
        "start-up: identical outputs, decoding steps about 20% faster (SmolLM2-135M, batch 1: 30.5 → 24.5 ms), "
        "at the cost of a second copy of those weights in memory."
    )
    threads: int | None = Field(
        None, gt=0, description="CPU threads for the model (torch); default: one less than the cores (at least "
        "1), leaving a core to the HTTP side. On 2 shared cores, 2 threads made decoding 3-30x slower than 1."
    )
    max_batch_size: int = Field(16, gt=0, description="Most sequences decoded together in one step.")
    max_waiting: int = Field(256, gt=0, description="Queued requests beyond this are refused with 503.")
    prefill_token_budget: int = Field(
        4096, gt=0, description="Most prompt tokens (padded) prefilled together when requests join the batch."
    )
    max_prompt_tokens: int = Field(2048, gt=0, description="Longer prompts are refused with 400.")
    default_max_tokens: int = Field(256, gt=0, description="Answer length limit when a request sets none.")
    max_tokens_limit: int = Field(2048, gt=0, description="Requests asking for more tokens are refused with 400.")
    request_timeout_s: float = Field(300.0, gt=0, description="A request still generating after this is stopped.")
    guards: GuardsConfig = Field(default_factory=dict, validate_default=True, description="Input/output filters.")
