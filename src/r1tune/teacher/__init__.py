"""The teacher: one client for every job that asks a stronger model (reasoning traces, synthetic data,
distillation). See `teacher/client.py`."""

from r1tune.teacher.client import TeacherBudgetExhausted, TeacherClient, TeacherError, TeacherReply

__all__ = ["TeacherBudgetExhausted", "TeacherClient", "TeacherError", "TeacherReply"]
