"""Export stage: turn a run's adapter into a standalone model folder."""

from r1tune.export.merge import merge_adapter

__all__ = ["merge_adapter"]
