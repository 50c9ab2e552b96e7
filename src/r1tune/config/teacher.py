"""The `teacher` section: the one model client behind reasoning traces, synthetic data and distillation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from r1tune.config.base import ProjectPath, _Section


class TeacherConfig(_Section):
    source: Literal["endpoint", "self"] = Field(
        "endpoint", description="`endpoint`: the API at `base_url`; `self`: the base model itself, in this process "
        "(self-distillation: its own reasoning, kept only where it reaches the reference answer)."
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible API of the teacher, e.g. `https://api.deepseek.com/v1` or a vLLM or "
        "r1tune server's `http://10.0.0.7:8000/v1`. Unset: no teacher."
    )
    model: str = Field("deepseek-reasoner", min_length=1, description="The model name the endpoint serves.")
    api_key_env: str = Field(
        "R1TUNE_TEACHER_API_KEY", description="Environment variable holding the API key (keys never go in files)."
    )
    max_concurrency: int = Field(4, ge=1, le=256, description="Requests in flight at once.")
    max_retries: int = Field(5, ge=0, le=20, description="Retries of a request after 429, 5xx, timeouts or lost "
                             "connections, with exponential backoff (the server's Retry-After when it sends one).")
    timeout_s: float = Field(300.0, gt=0, description="Per-request timeout; reasoning models answer slowly.")
    max_requests: int | None = Field(
        None, ge=0, description="Budget: network requests this job may make (cache hits are free); at the "
        "budget the job stops with everything so far kept, and a re-run continues. Unset: no limit."
    )
    temperature: float = Field(0.6, ge=0.0, le=2.0, description="Sampling temperature (DeepSeek-R1: 0.6).")
    max_tokens: int = Field(4096, gt=0, description="Completion limit per request.")
    price_per_million_prompt_tokens: float = Field(0.0, ge=0, description="For the cost ledger (your currency).")
    price_per_million_completion_tokens: float = Field(0.0, ge=0, description="For the cost ledger.")
    trace_samples: int = Field(4, ge=1, le=32, description="`r1tune traces`: samples per record; the first that "
                               "agrees with the reference answer is kept.")
    trace_check: Literal["rougeL", "exact", "judge"] = Field(
        "rougeL", description="How a sample's final answer must agree with the reference: ROUGE-L of at least "
        "`trace_min_rouge_l`; equal after normalising case, width and punctuation (`exact`); or the teacher, "
        "asked whether both state the same facts and conclusion (`judge`, one more request per sample)."
    )
    trace_min_rouge_l: float = Field(0.5, gt=0, le=1, description="The ROUGE-L F1 a kept sample needs.")
    synth_documents: list[ProjectPath] = Field(
        default_factory=list, description="`r1tune synth`: document files or folders (TXT, Markdown, PDF, DOCX, "
        "HTML) the teacher writes question-answer records from, one request per chunk (`data.chunking`)."
    )
    synth_per_chunk: int = Field(3, ge=1, le=20, description="Questions the teacher is asked to write per chunk.")
    synth_min_support: float = Field(
        0.6, gt=0, le=1, description="Grounding: the share of an answer's words (characters for Chinese) that must "
        "occur in its chunk; besides, every key fact of the answer (numbers, codes, URLs...) must be in the chunk."
    )
    synth_augment: list[Literal["paraphrase", "back_translation"]] = Field(
        default_factory=list, description="Extra questions per kept record, with the same answer: `paraphrase` "
        "(reworded by the teacher), `back_translation` (to the other of Chinese/English and back)."
    )
