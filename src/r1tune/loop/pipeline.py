"""The whole pipeline for one project file: prepare → train → evaluate → report, in one run folder.

Each stage gets only its own config section; this module is the only place that sees the whole tree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from r1tune.artifacts import EvalMetrics
from r1tune.config import R1TuneConfig
from r1tune.data import PreparedData, load_prepared, prepare
from r1tune.rundir import RunDir, create_run

log = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    run: RunDir
    metrics: EvalMetrics


def run_pipeline(cfg: R1TuneConfig, show_progress: bool = True, on_stage=lambda name, run: None,
                 launch=None) -> PipelineResult:
    """Run every stage in a fresh run folder; the folder records a failure as well as a success. With
    `launch` (train.Launch) training runs in launched processes on GPUs, and eval loads its result."""
    from r1tune.eval import check_eval_config
    from r1tune.models.device import current_plan

    check_eval_config(cfg.eval)  # a broken schema or probe file fails now, not after training
    current_plan(cfg.train.precision, cfg.model.attn_implementation)  # e.g. fp16 on a CPU: before any work
    if launch is not None:
        import torch

        launch.check(torch.cuda.device_count())
    run = create_run(cfg)
    from r1tune import models
    from r1tune.eval import write_report

    on_stage("prepare", run)
    with run.stage("prepare", "prepared"):
        # The tokenizer (no weights) sizes document chunks and token histograms exactly.
        tokenizer = models.load(cfg.model, cfg.train.reasoning, with_weights=False).tokenizer
        data = prepare(cfg.data, run.data, cfg.project.seed, tokenizer=tokenizer, show_progress=show_progress,
                       answer_scorer=base_answer_scorer(cfg))
    if cfg.data.replay_from is not None:
        data = with_replay(cfg, run)
    if cfg.data.reasoning_traces:
        on_stage("traces", run)
        data = _with_traces(run, data)
    on_stage("train", run)
    with run.stage("train", "trained"):
        loaded = train_stage(cfg, run, data, show_progress) if launch is None else _launched(cfg, run, launch)
    on_stage("eval", run)
    with run.stage("eval", "done"):
        metrics = eval_stage(cfg, run, data, loaded, show_progress)
        on_stage("report", run)
        write_report(run)
    return PipelineResult(run, metrics)


def with_replay(cfg: R1TuneConfig, run: RunDir) -> PreparedData:
    """Mix `data.replay_share` x (own training records) of the version's training records into the training
    split (never into val/test), tagged `meta.replay`; records already present are not added twice."""
    import random

    from r1tune.data.records import read_jsonl, write_jsonl
    from r1tune.errors import ConfigError

    source = cfg.data.replay_from / "data" / "train.jsonl"
    if not source.is_file():
        raise ConfigError(f"data.replay_from: {source} does not exist", hint="point it at a prepared run folder")
    own = list(read_jsonl(run.data / "train.jsonl"))
    seen = {r.id for r in own}
    pool = [r for r in read_jsonl(source) if r.id not in seen]
    picked = random.Random(cfg.project.seed).sample(pool, min(len(pool), round(cfg.data.replay_share * len(own))))
    for record in picked:
        record.meta["replay"] = str(cfg.data.replay_from)
    write_jsonl(own + picked, run.data / "train.jsonl")
    run.update_info(replayed_records=len(picked), replayed_from=str(cfg.data.replay_from))
    return load_prepared(run.data)


def _with_traces(run: RunDir, data: PreparedData) -> PreparedData:
    """The teacher's traces on the prepared training records (teacher/traces.py); the data reloaded."""
    from r1tune.teacher.traces import traces_for_run

    with run.stage("traces", "prepared"):
        traces_for_run(run)
    return load_prepared(run.data)


def _launched(cfg: R1TuneConfig, run: RunDir, launch) -> None:
    from r1tune.errors import R1TuneError
    from r1tune.train import launch_on_gpus

    code = launch_on_gpus(cfg.train, run.path, launch, resume=False)
    if code:
        raise R1TuneError(f"the launched training exited with code {code}",
                          hint=f"fix the error above, then `r1tune train {run.path} --resume --gpus {launch.gpus}`")


def base_answer_scorer(cfg: R1TuneConfig):
    """The base model's mean answer-token NLL per record, for `clean.quality.use_perplexity` (None when the
    quality filter does not ask for it: loading the model is only paid for when it is used)."""
    quality = cfg.data.clean.quality
    if not (quality.enabled and quality.use_perplexity):
        return None

    def score(records: list[dict]):
        import numpy as np

        from r1tune import models
        from r1tune.data.records import Record
        from r1tune.models.scoring import per_example_nll

        plan = models.inference_plan(cfg.train.precision, cfg.model)
        loaded = models.load(cfg.model, cfg.train.reasoning, plan=plan)
        examples = [loaded.renderer.render_training(Record.from_dict(r), cfg.train.max_seq_len) for r in records]
        nll = per_example_nll(loaded.model, examples, loaded.tokenizer.pad_token_id, cfg.eval.batch_size,
                              plan.compute)
        return np.array([total / max(tokens, 1) for total, tokens in nll])

    return score


def training_weights_dtype(cfg: R1TuneConfig, plan):
    """Adapter methods hold the frozen base in the compute dtype (bf16/fp16: a 70B base needs 2 bytes per
    parameter, not 4; PEFT keeps the adapter itself in fp32; QLoRA computes in it); everything trained in
    full keeps fp32 weights (models/device.py)."""
    from r1tune.train.methods import PEFT_METHODS

    return plan.training_weights_dtype if cfg.train.method in PEFT_METHODS else None


def distill_teacher(cfg: R1TuneConfig, student_tokenizer, plan):
    """The frozen teacher of `train.distill_teacher` (None without one); its tokenizer must be the student's,
    checked before its weights load (logits over different vocabularies cannot be compared)."""
    if not cfg.train.distill_teacher:
        return None
    from r1tune import models
    from r1tune.config import ModelConfig
    from r1tune.errors import ConfigError

    teacher_cfg = ModelConfig(name=cfg.train.distill_teacher, attn_implementation=cfg.model.attn_implementation)
    teacher = models.load(teacher_cfg, with_weights=False)
    if teacher.tokenizer.get_vocab() != student_tokenizer.get_vocab():
        raise ConfigError(f"train.distill_teacher {cfg.train.distill_teacher!r} does not share the student's "
                          "tokenizer, so their next-token distributions cannot be compared",
                          hint="choose a teacher of the same family, or distil at the sequence level with `r1tune traces`")
    return models.load_model(teacher.source, teacher_cfg, dtype=plan.weights_dtype)


def train_stage(cfg: R1TuneConfig, run: RunDir, data: PreparedData | None = None, show_progress: bool = True,
                resume: bool = False):
    """Load the base model and train on the run's prepared data (continuing from its newest checkpoint with
    `resume`); returns the loaded bundle. In a multi-process run only the main process writes run.json."""
    from r1tune import models
    from r1tune.models.device import current_plan
    from r1tune.train import check_method_runnable, distributed, is_main_process, train

    check_method_runnable(cfg.train)  # before loading weights: e.g. qlora on a machine without CUDA
    plan = current_plan(cfg.train.precision, cfg.model.attn_implementation)  # fails before any loading too
    data = data or load_prepared(run.data)
    loaded = models.load(cfg.model, reasoning=cfg.train.reasoning, train_on_prompt=cfg.train.train_on_prompt,
                         mask_history=cfg.train.mask_history, with_weights=False)
    teacher = distill_teacher(cfg, loaded.tokenizer, plan)  # a tokenizer mismatch fails before any weights load
    # Started after the teacher (which no strategy shards) and before the student loads: under ZeRO-3 the
    # student's weights are then partitioned across the processes as they load.
    runtime = distributed.start_runtime(plan.compute)
    frozen_dtype = training_weights_dtype(cfg, plan)
    qlora = cfg.train.method == "qlora"  # accelerate hands on no 4-bit weights: every process reads them
    loaded.model = models.load_model(loaded.source, cfg.model, dtype=frozen_dtype, nf4=qlora,
                                     attn_implementation=plan.attn_implementation,
                                     empty=not (runtime.reads_weights or qlora))
    if is_main_process():
        run.update_info(model=loaded.source.display_name, model_location=loaded.source.location,
                        chat_format=loaded.renderer.fmt.name)
    model, result = train(cfg.train, loaded.model, loaded.renderer, data.train, data.val, run.train,
                          cfg.project.seed, loaded.target_modules, show_progress, resume=resume, teacher_model=teacher,
                          runtime=runtime)
    # Evaluation goes on with the trained model in memory unless inference wants other weights (fp32 on a
    # CPU, where the base trained in bf16): then it loads the saved result afresh.
    loaded.model = model if frozen_dtype in (None, plan.weights_dtype) else None
    if is_main_process():
        run.update_info(precision=result.precision, train_seconds=result.seconds)
    return loaded


def eval_stage(cfg: R1TuneConfig, run: RunDir, data: PreparedData | None = None, loaded=None,
               show_progress: bool = True) -> EvalMetrics:
    """Evaluate the run's result (loaded from disk unless given) against its base; writes metrics.json.

    An adapter run scores its base by switching the adapter off; a `full`/`freeze` run changed the weights
    themselves, so the base is loaded a second time beside it."""
    from r1tune import models
    from r1tune.eval import evaluate
    from r1tune.eval.engines import make_engine
    from r1tune.models.device import choose_engine

    data = data or load_prepared(run.data)
    plan = models.inference_plan(cfg.train.precision, cfg.model)
    choose_engine(cfg.eval.engine, plan.device)  # a vLLM request this machine cannot honour fails before loading
    if loaded is None or loaded.model is None:
        loaded = models.load(cfg.model, cfg.train.reasoning, cfg.train.train_on_prompt, plan=plan,
                             **run.trained_weights())
    base_model = None
    if cfg.eval.compare_base and run.trains_whole_model:
        base_model = models.load_model(loaded.source, cfg.model, plan=plan)
    engine = make_engine(cfg.eval.engine, plan, loaded, None if run.trains_whole_model else run.adapter)
    metrics = evaluate(cfg.eval, loaded, data.test, run.eval, plan.compute,
                       cfg.train.max_seq_len, show_progress, seed=cfg.project.seed, base_model=base_model,
                       label_key=cfg.data.split.stratify_by, engine=engine)
    run.write_metrics(metrics)
    _track_eval(cfg, run, metrics)
    return metrics


def _track_eval(cfg: R1TuneConfig, run: RunDir, metrics: EvalMetrics) -> None:
    """Send the headline metrics of base and tuned to the run's trackers, at its last training step."""
    from r1tune.eval.metric_info import METRICS
    from r1tune.train.tracking import log_eval_scalars

    scalars = {}
    for name, scores in (("base", metrics.base), ("tuned", metrics.tuned)):
        for info in METRICS if scores is not None else ():
            value = scores.value(info.key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
                scalars[f"eval/{name}/{info.key}"] = float(value)
    step = run.read_train_summary().steps if run.train_summary_file.is_file() else 0
    log_eval_scalars(run.train, cfg.train.trackers, scalars, step)
