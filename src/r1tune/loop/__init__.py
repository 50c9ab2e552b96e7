"""Loop stage: the end-to-end pipeline over one project file (and, later, feedback → retrain)."""

from r1tune.loop.pipeline import PipelineResult, eval_stage, run_pipeline, train_stage

__all__ = ["PipelineResult", "eval_stage", "run_pipeline", "train_stage"]
