"""The `train` section: how one run optimises (method, schedule, objective, precision, checkpoints)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from r1tune.config.base import ProjectPath, _Section

TrainMethod = Literal["lora", "dora", "qlora", "full", "freeze", "prefix", "prompt"]
PROMPT_LEARNING_METHODS = ("prefix", "prompt")


class TrainConfig(_Section):
    # Fields that steer bookkeeping (validation, checkpoints, logging) but not the optimisation itself. Every
    # other field shapes the training trajectory: a resumed run must match the checkpoint in all of those, so
    # a new field counts as trajectory unless it is listed here.
    BOOKKEEPING_FIELDS: ClassVar[frozenset[str]] = frozenset({
        "gradient_checkpointing", "eval_every", "early_stopping_patience", "keep_best", "save_every",
        "keep_checkpoints", "log_every", "trackers"})

    method: TrainMethod = Field(
        "lora",
        description=(
            "Tuning method. `lora`: low-rank adapters on `target_modules`; `dora`: LoRA with a learned "
            "per-column magnitude (weight-decomposed, a little slower); `qlora`: LoRA on a 4-bit NF4 "
            "double-quantised base (bitsandbytes, needs a CUDA GPU); `full`: every weight; `freeze`: only the "
            "last `freeze_trainable_layers` blocks and the final norm; `prefix` / `prompt`: learned virtual "
            "tokens (peft prefix / prompt tuning), the smallest adapters. `full` and `freeze` save a whole "
            "model (`train/model/`), the others a PEFT adapter (`train/adapter/`)."
        ),
    )
    lora_rank: int = Field(16, gt=0, description="LoRA rank r (`lora`, `dora`, `qlora`).")
    lora_alpha: int = Field(32, gt=0, description="LoRA scaling numerator (the update is scaled by alpha/r).")
    init_from: ProjectPath | None = Field(
        None, description="Continue training a version instead of starting from the bare base: a run folder (or "
        "adapter folder) whose LoRA/DoRA adapter is loaded trainable, with its own rank and targets. (To continue "
        "a full/freeze version, set model.name to its train/model folder.)"
    )
    lora_dropout: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Dropout on the LoRA input. Off by default: peft then skips a copy of every adapted layer's "
                    "input, which on CPU makes steps about 1.4x faster and uses a third less memory.",
    )
    target_modules: list[str] | None = Field(
        None, description="Module names that get adapters; default: the preset's (all linear layers)."
    )
    freeze_trainable_layers: int = Field(
        2, gt=0, description="`freeze`: how many of the last decoder blocks train; all lower layers stay frozen."
    )
    num_virtual_tokens: int = Field(20, gt=0, description="`prefix` / `prompt`: number of learned virtual tokens.")
    lr: float = Field(2e-4, gt=0.0, description="Peak learning rate (AdamW).")
    epochs: float = Field(2.0, gt=0.0, description="Passes over the training split.")
    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimiser steps (overrides epochs).")
    batch_size: int = Field(
        8, gt=0,
        description="Examples per micro-batch, on average: batches of similar-length records (or packed rows) "
                    "hold as many tokens as this many average examples, so short records go many to a batch, long "
                    "ones few; memory stays bounded and packing changes speed, not the number of steps.",
    )
    grad_accum: int = Field(1, gt=0, description="Micro-batches per optimiser step (per process).")
    max_seq_len: int = Field(
        512, ge=16, description="Longer records are truncated (counted and reported); also the packed sequence length."
    )
    packing: bool = Field(
        False,
        description=(
            "Pack several examples into each row of up to `max_seq_len` tokens, position ids restarting per "
            "example so none attends to another. Off (default): batches group records of similar length, which "
            "leaves under 10% padding on typical data and keeps attention per example; a packed row pays "
            "attention over its whole length. On this project's CPU at batch_size 8, packed steps were 8-14% slower "
            "on the bundled example (short records, many to a row) and from 5% slower to 7% faster on "
            "LLaMA-Factory's alpaca demo (about 2 to a row). "
            "Not possible with `prefix` / `prompt` (their virtual tokens would precede only a row's first example)."
        ),
    )
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0, description="Share of steps with linear warm-up before cosine decay.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay (matrices only; never biases or norms).")
    max_grad_norm: float = Field(1.0, gt=0.0, description="Gradient clipping norm.")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="Label smoothing of the training loss (0 = off).")
    stage: Literal["sft", "dpo", "kto"] = Field(
        "sft",
        description=(
            "Training objective. `sft`: answer NLL. `dpo`: records with a `rejected` answer (preference files, "
            "served answers their correction replaced) train by Direct Preference Optimization against the "
            "starting weights, plus `pref_sft_weight` x the chosen answer's per-token NLL; `kto`: records with a "
            "thumbs-up/down `kto_label` train by Kahneman-Tversky Optimization (pairs count as one up and one "
            "down). In both, records with neither (replay data, plain corrections) keep their per-token NLL, "
            "so one run mixes them; every record weighs the same in a step. Not with `packing` or "
            "`distill_teacher`."
        ),
    )
    pref_beta: float = Field(0.1, gt=0.0, description="`dpo`/`kto`: strength of the pull towards the starting "
                             "weights (higher: stays closer; DPO papers use 0.1-0.5).")
    pref_sft_weight: float = Field(
        1.0, ge=0.0, description="`dpo`: weight of the chosen answer's per-token NLL added to each pair's loss "
        "(RPO); keeps chosen answers likely, where pure DPO can lower both. 0 = pure DPO."
    )
    distill_teacher: str | None = Field(
        None, description="Logit distillation: a preset or local folder of a larger model with the same tokenizer "
        "(e.g. a 7B distill teaching a 1.5B one), run frozen in the same process; the loss becomes "
        "`distill_alpha` x answer NLL + (1 - `distill_alpha`) x the divergence from its next-token "
        "distributions on the answer tokens. Works with every `method`. Unset: plain SFT. (Sequence-level "
        "distillation, the teacher's answers and traces as targets, is `r1tune traces`.)"
    )
    distill_alpha: float = Field(0.5, ge=0.0, le=1.0, description="Weight of the NLL against the divergence.")
    distill_divergence: Literal["forward_kl", "reverse_kl", "jsd"] = Field(
        "forward_kl", description="KL(teacher||student) covers the teacher's mass; reverse KL seeks its modes; "
        "jsd sits between (the generalized-JSD family of GKD at beta 0.5)."
    )
    distill_temperature: float = Field(1.0, gt=0.0, description="Softmax temperature of both distributions "
                                       "(the divergence is scaled by its square).")
    neftune_alpha: float | None = Field(
        None, gt=0.0,
        description="NEFTune: uniform noise of scale alpha/sqrt(seq_len*hidden) on input embeddings while "
                    "training (the paper uses 5); unset = off.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations during backward: about a third slower, far less memory."
    )
    train_on_prompt: bool = Field(False, description="Also take loss on prompt tokens (default: answers only).")
    mask_history: bool | None = Field(
        None,
        description=(
            "`false`: every assistant turn of a multi-turn or tool-calling conversation trains (tool calls "
            "included); `true`: only the last. Unset: `false` for ChatML/Llama-3, `true` for DeepSeek-R1, "
            "whose earlier turns are rendered without reasoning as its template does at inference: training "
            "them would teach the model to answer without thinking. `show-sample` marks the trained turns."
        ),
    )
    reasoning: Literal["empty_think", "keep_prompt_think"] = Field(
        "empty_think",
        description=(
            "DeepSeek-R1 records without reasoning (records with it always train their whole think block): "
            "`empty_think` trains `\\n</think>\\n\\n{answer}` after the prompt's `<think>\\n`, so the model keeps "
            "closing its think tag; `keep_prompt_think` puts the empty block in the untrained prompt, cheaper, "
            "but a model tuned only this way can stop thinking or leave `<think>` unclosed."
        ),
    )
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="`auto`: bf16 where the GPU or CPU computes it natively; fp16 with loss scaling on "
        "GPUs without bf16 (T4, V100); else fp32. The frozen base of adapter methods is held in that dtype while "
        "it trains (adapters and optimiser state stay fp32); CPU inference keeps fp32 weights under autocast. "
        "`fp16` on a CPU or `bf16` on a GPU without it fail."
    )
    curriculum: Literal["none", "length", "difficulty"] = Field(
        "none",
        description=(
            "Order of the training examples in every epoch: `none` shuffles; `length` goes short to long; "
            "`difficulty` goes up `meta[difficulty_key]` (a number per record, easy first)."
        ),
    )
    difficulty_key: str = Field("difficulty", min_length=1, description="Record meta key read by `curriculum: difficulty`.")
    eval_every: int | None = Field(
        None, gt=0, description="Validate every N optimiser steps; unset = at the end of every epoch (and always at the end)."
    )
    early_stopping_patience: int | None = Field(
        None, gt=0, description="Stop after this many validations without a lower validation loss; unset = never stop early."
    )
    keep_best: bool = Field(
        True, description="Save the weights with the lowest validation loss as the result (else: the last step's)."
    )
    save_every: int = Field(
        100, gt=0, description="Write a crash-safe checkpoint every N optimiser steps (resume with `r1tune train --resume`)."
    )
    keep_checkpoints: int = Field(2, gt=0, description="Keep the newest N checkpoints (plus the best one).")
    log_every: int = Field(5, gt=0, description="Print loss and throughput every N optimiser steps (metrics.jsonl gets every step).")
    trackers: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=lambda: ["tensorboard", "mlflow"],
        description=(
            "Where metrics go besides `train/train_metrics.jsonl`: `tensorboard` (logs in `train/tensorboard/`, "
            "needs the tensorboard package), `mlflow` (used only when mlflow is installed and "
            "MLFLOW_TRACKING_URI is set). A missing package is reported once and skipped."
        ),
    )

    @model_validator(mode="after")
    def _check_method_combinations(self) -> TrainConfig:
        if self.method in PROMPT_LEARNING_METHODS and self.packing:
            raise ValueError(
                f"train.packing: true cannot be combined with train.method: {self.method}: the learned virtual "
                "tokens would precede only the first example of each pack; set train.packing: false"
            )
        if self.stage != "sft" and self.packing:
            raise ValueError(f"train.stage: {self.stage} cannot be combined with train.packing: true (each record's "
                             "answer log-probability is summed per row); set train.packing: false")
        if self.stage != "sft" and self.distill_teacher:
            raise ValueError(f"train.stage: {self.stage} cannot be combined with train.distill_teacher; "
                             "distil first, then run the preference stage from that run (train.init_from)")
        if self.method == "prefix" and self.gradient_checkpointing:
            raise ValueError("train.gradient_checkpointing cannot be combined with train.method: prefix "
                             "(its virtual keys/values bypass the recomputed blocks); set one of them off")
        return self
