"""The base model as its own teacher (`teacher.source: self`): the same ask interface as the endpoint
client, answered by r1tune's generation on the loaded model (sampled, seeded)."""

from __future__ import annotations

from typing import Any

from r1tune.data.records import Message
from r1tune.models.decoding import THINK_CLOSE
from r1tune.models.generation import generate
from r1tune.teacher.client import TeacherReply


class LocalTeacher:
    def __init__(self, loaded: Any, temperature: float, max_new_tokens: int, seed: int, precision: str = "fp32",
                 batch_size: int = 8) -> None:
        self.loaded, self.temperature, self.max_new_tokens = loaded, temperature, max_new_tokens
        self.seed, self.precision, self.batch_size = seed, precision, batch_size
        self.ledger: dict[str, Any] = {"requests": 0, "completion_tokens": 0}

    def ask_many(self, conversations: list[list[dict[str, str]]], n: int = 1) -> list[list[TeacherReply]]:
        renderer = self.loaded.renderer
        prompts = [renderer.render_prompt([Message(m["role"], m["content"]) for m in conv])
                   for conv in conversations for _ in range(n)]
        gens = generate(self.loaded.model, renderer, prompts, self.max_new_tokens, temperature=self.temperature,
                        top_p=0.95, seed=self.seed, batch_size=self.batch_size, precision=self.precision)
        self.ledger["requests"] += len(prompts)
        self.ledger["completion_tokens"] += sum(g.num_tokens for g in gens)
        replies = [TeacherReply(g.answer, g.reasoning if THINK_CLOSE in g.text else None, g.finish_reason)
                   for g in gens]
        return [replies[i * n:(i + 1) * n] for i in range(len(conversations))]
