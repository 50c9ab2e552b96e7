"""Conversation formats, and the one renderer that turns messages into token ids plus a training mask.

Why not `tokenizer.apply_chat_template`? DeepSeek-R1's shipped template deletes everything before `</think>`
from *every* assistant turn, so training through it silently drops the reasoning we want to teach. We
therefore render from the format strings below, segment by segment: each segment is tokenised on its own
and carries a flag saying whether its tokens are trained. Three consequences, each tested:
- the generation prompt is, token for token, the prefix of the training rendering (same segments);
- there is never a double BOS (BOS comes from the format string, special tokens are never auto-added);
- the mask is positional (prompt vs answer), so a pad id equal to eos cannot hide the eos we must learn.
User text is tokenised with `split_special_tokens=True`, so a customer message containing `<｜User｜>` or
`<|im_end|>` stays plain text instead of becoming a role marker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from r1tune.data.records import Message, Record
from r1tune.errors import ModelLoadError
from r1tune.models.decoding import THINK_CLOSE, THINK_OPEN

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

R1_BOS = "<｜begin▁of▁sentence｜>"
R1_EOS = "<｜end▁of▁sentence｜>"
R1_USER = "<｜User｜>"
R1_ASSISTANT = "<｜Assistant｜>"

ReasoningMode = Literal["empty_think", "keep_prompt_think"]


@dataclass(frozen=True)
class ChatFormat:
    """The strings around each role's content. `think` formats wrap the answer as
    `<think>\\n{reasoning}\\n</think>\\n\\n{answer}` and open `<think>\\n` in the generation prompt."""

    name: str
    bos: str
    system: tuple[str, str]
    user: tuple[str, str]
    assistant: tuple[str, str]  # (prefix, suffix); the suffix ends with the end-of-turn token, which is trained
    stop: tuple[str, ...]
    think: bool = False
    default_system: str | None = None


CHAT_FORMATS: dict[str, ChatFormat] = {
    # DeepSeek-R1 distills: system text sits raw after BOS; the template adds no newlines between turns.
    "deepseek-r1": ChatFormat(
        name="deepseek-r1",
        bos=R1_BOS,
        system=("", ""),
        user=(R1_USER, ""),
        assistant=(R1_ASSISTANT, R1_EOS),
        stop=(R1_EOS,),
        think=True,
    ),
    "chatml": ChatFormat(
        name="chatml",
        bos="",
        system=("<|im_start|>system\n", "<|im_end|>\n"),
        user=("<|im_start|>user\n", "<|im_end|>\n"),
        assistant=("<|im_start|>assistant\n", "<|im_end|>"),
        stop=("<|im_end|>",),
    ),
    "llama3": ChatFormat(
        name="llama3",
        bos="<|begin_of_text|>",
        system=("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>"),
        user=("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
        assistant=("<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
        stop=("<|eot_id|>", "<|end_of_text|>"),
    ),
}

# ChatML with a think block, as Qwen3 and SmolLM3 write it: gives a ChatML model (the embedded SmolLM2) R1's
# reasoning layout, so traces and reasoning retention can be tried on a CPU.
CHAT_FORMATS["chatml-think"] = dataclasses.replace(CHAT_FORMATS["chatml"], name="chatml-think", think=True)

# Between turns, chatml puts a newline after <|im_end|>; the assistant suffix stops at the token itself
# (that is what the model must generate), and the newline is emitted as an untrained separator.
_TURN_SEPARATOR = {"chatml": "\n", "chatml-think": "\n"}


def turn_separator(fmt: ChatFormat) -> str:
    """Untrained text between an assistant turn's end-of-turn token and the next turn."""
    return _TURN_SEPARATOR.get(fmt.name, "")


def chat_format_for(name: str, tokenizer: PreTrainedTokenizerBase, default_system: str | None = None) -> ChatFormat:
    """Resolve a format by name, or detect it from the tokenizer's special tokens when `name` is 'auto'."""
    if name == "auto":
        vocab = tokenizer.get_vocab()
        detected = next(
            (n for n, marker in (("deepseek-r1", R1_USER), ("chatml", "<|im_start|>"), ("llama3", "<|eot_id|>"))
             if marker in vocab),
            None,
        )
        if detected is None:
            raise ModelLoadError(
                "cannot tell this tokenizer's chat format (no DeepSeek-R1, ChatML or Llama-3 markers)",
                hint=f"set model.chat_format to one of: {', '.join(CHAT_FORMATS)}",
            )
        name = detected
    fmt = CHAT_FORMATS[name]
    return dataclasses.replace(fmt, default_system=default_system) if default_system else fmt


def resolve_mask_history(mask_history: bool | None, fmt: ChatFormat) -> bool:
    """`train.mask_history` unset: formats without a think block train every assistant turn; R1 trains the
    last only, because its history turns are rendered without reasoning (as its template does at inference)
    and learning them would teach answering without thinking."""
    return fmt.think if mask_history is None else mask_history


@dataclass
class Rendered:
    """Token ids with a parallel mask (True = trained) and the text segments, for the mask viewer."""

    input_ids: list[int]
    trained: list[bool]
    segments: list[tuple[str, bool]]
    truncated: bool = False

    @property
    def num_trained(self) -> int:
        return sum(self.trained)


class ChatRenderer:
    """Renders records for training and prompts for generation, identically up to the answer."""

    def __init__(
        self,
        fmt: ChatFormat,
        tokenizer: PreTrainedTokenizerBase,
        reasoning: ReasoningMode = "empty_think",
        train_on_prompt: bool = False,
        mask_history: bool | None = True,
    ) -> None:
        """`mask_history`: False trains every assistant turn of a conversation, True only the last; None
        decides by format (see `resolve_mask_history`). Evaluation keeps the default (True), so its
        perplexity is over final answers only."""
        self.fmt = fmt
        self.tokenizer = tokenizer
        self.reasoning = reasoning
        self.train_on_prompt = train_on_prompt
        self.mask_history = resolve_mask_history(mask_history, fmt)
        self._check_tokens()

    def final_answer_only(self) -> ChatRenderer:
        """This renderer with history turns masked: what evaluation scores (the answer to the last turn)."""
        if self.mask_history:
            return self
        return ChatRenderer(self.fmt, self.tokenizer, self.reasoning, self.train_on_prompt, mask_history=True)

    def _check_tokens(self) -> None:
        vocab = self.tokenizer.get_vocab()
        stop = self.fmt.stop[0]
        if stop not in vocab:
            raise ModelLoadError(
                f"chat format {self.fmt.name!r} needs the token {stop!r}, which this tokenizer does not have",
                hint="set model.chat_format to the model's real format",
            )
        self.stop_token_ids = [vocab[s] for s in self.fmt.stop if s in vocab]

    # -- segments -----------------------------------------------------------------------------------------

    def prompt_segments(self, messages: Sequence[Message], train_history: bool = False) -> list[tuple[str, bool, bool]]:
        """(text, trained, is_content) for everything up to and including the generation prompt; with
        `train_history`, earlier assistant turns (their content and end-of-turn token) are trained."""
        segs: list[tuple[str, bool, bool]] = []
        fmt, sep = self.fmt, turn_separator(self.fmt)
        if fmt.bos:
            segs.append((fmt.bos, False, False))
        messages = list(messages)
        if fmt.default_system and not (messages and messages[0].role == "system"):
            messages.insert(0, Message("system", fmt.default_system))
        for m in messages:
            if m.role == "system":
                segs += [(fmt.system[0], False, False), (m.content, False, True), (fmt.system[1], False, False)]
            elif m.role == "user":
                segs += [(fmt.user[0], False, False), (m.content, False, True), (fmt.user[1], False, False)]
            else:  # a history turn: rendered as at inference (R1 drops history reasoning)
                segs += [(fmt.assistant[0], False, False), (m.content, train_history, True),
                         (fmt.assistant[1], train_history, False)]
                if sep:
                    segs.append((sep, False, False))
        segs.append((self.generation_prompt(), False, False))
        return [s for s in segs if s[0]]

    def generation_prompt(self) -> str:
        """The text after the last turn that asks the model to answer (R1: opens the think block)."""
        text = self.fmt.assistant[0]
        if self.fmt.think:
            text += THINK_OPEN + "\n"
            if self.reasoning == "keep_prompt_think":
                text += "\n" + THINK_CLOSE + "\n\n"
        return text

    def answer_segments(self, answer: Message) -> list[tuple[str, bool, bool]]:
        """The trained continuation after the generation prompt, ending with the end-of-turn token."""
        segs: list[tuple[str, bool, bool]] = []
        if self.fmt.think and (answer.reasoning or self.reasoning == "empty_think"):
            segs.append((answer.reasoning or "", True, True))
            segs.append(("\n" + THINK_CLOSE + "\n\n", True, False))
        segs.append((answer.content, True, True))
        segs.append((self.fmt.assistant[1], True, False))
        return [s for s in segs if s[0]]

    # -- token ids ----------------------------------------------------------------------------------------

    def _encode(self, segs: list[tuple[str, bool, bool]]) -> tuple[list[int], list[bool]]:
        ids: list[int] = []
        trained: list[bool] = []
        for text, train, is_content in segs:
            piece = self.tokenizer(text, add_special_tokens=False, split_special_tokens=is_content)["input_ids"]
            ids += piece
            trained += [train or self.train_on_prompt] * len(piece)
        return ids, trained

    def render_prompt(self, messages: Sequence[Message]) -> list[int]:
        """Token ids that ask the model to answer `messages` (ends with the generation prompt)."""
        ids, _ = self._encode(self.prompt_segments(messages))
        return ids

    def prompt_text(self, messages: Sequence[Message]) -> str:
        return "".join(s[0] for s in self.prompt_segments(messages))

    def render_training(self, record: Record, max_len: int | None = None) -> Rendered:
        """Prompt + answer ids, a trained-token mask, and whether `max_len` cut the example."""
        if record.answer.reasoning and self.fmt.think and self.reasoning == "keep_prompt_think":
            # A trace is present: train it, whatever the default for trace-less records is.
            renderer = ChatRenderer(self.fmt, self.tokenizer, "empty_think", self.train_on_prompt, self.mask_history)
            return renderer.render_training(record, max_len)
        segs = self.prompt_segments(record.prompt_messages, not self.mask_history) + self.answer_segments(record.answer)
        ids, trained = self._encode(segs)
        truncated = max_len is not None and len(ids) > max_len
        if truncated:
            ids, trained = ids[:max_len], trained[:max_len]
        return Rendered(ids, trained, [(t, tr) for t, tr, _ in segs], truncated)
