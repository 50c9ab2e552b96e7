"""Export stage: turn a run's result (adapter or whole trained model) into a standalone model folder."""

from r1tune.export.merge import copy_whole_model, export_run, merge_adapter

__all__ = ["copy_whole_model", "export_run", "merge_adapter"]
