"""Loop stage: the end-to-end pipeline over one project file, and the improvement loop (served feedback →
a gated candidate version, `loop/improve.py`)."""

from r1tune.loop.pipeline import PipelineResult, eval_stage, run_pipeline, train_stage

__all__ = ["PipelineResult", "eval_stage", "run_pipeline", "train_stage"]
