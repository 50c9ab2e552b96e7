"""JSON answers by grammar-constrained decoding: `response_format` `json_object` and `json_schema`.

At every step the grammar's mask leaves only the tokens that keep the output a valid prefix of a document
that matches the schema, and the stop token only once the document is complete; so a finished answer always
parses and validates (one cut short by `max_tokens` ends with finish_reason `length`, as in OpenAI's API).

The grammar engine is xgrammar (a maintained C++ library, also vLLM's default). Chosen by measurement on the
embedded SmolLM2-135M tokenizer (49,152 tokens), one schema with three fields, 36 answer tokens, this 2-core
CPU: xgrammar 0.2.9 needed 0.16 s to set up and 0.28 ms per token (median; p95 0.34 ms) to compute and apply
the mask; lm-format-enforcer 0.11.3 does not import under transformers 5; outlines pulls a much larger
dependency tree for the same job. Whitespace between JSON tokens is not allowed (`any_whitespace=False`):
with it, small models filled whole answers with newlines.

Reasoning models think first: for a `think` chat format the grammar starts after the `</think>` token, so the
reasoning stays free text and only the answer is constrained.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from r1tune.serve.protocol import ApiError, ResponseFormat

if TYPE_CHECKING:
    import torch

INSTALL_HINT = "pip install 'r1tune[structured]'"


@dataclass(frozen=True)
class Grammar:
    """A compiled grammar, shared by every request that asks for the same format."""

    compiled: Any  # xgrammar.CompiledGrammar
    starts_after: int | None  # the token that opens the constrained part (`</think>`); None: the first token

    def new_state(self) -> GrammarState:
        return GrammarState(self)


class GrammarState:
    """One sequence's position in its grammar; used on the engine thread only."""

    def __init__(self, grammar: Grammar) -> None:
        import xgrammar as xgr

        self.matcher = xgr.GrammarMatcher(grammar.compiled)
        self.bitmask = xgr.allocate_token_bitmask(1, grammar.compiled.tokenizer_info.vocab_size)
        self.starts_after = grammar.starts_after
        self.stop_token_ids = list(grammar.compiled.tokenizer_info.stop_token_ids)
        self.active = grammar.starts_after is None

    def mask(self, row: torch.Tensor) -> None:
        """Set the logits of every token the grammar forbids now to -inf (in place, one row). Before the
        grammar starts (while a reasoning model thinks) only the stop tokens are forbidden: an answer must
        come."""
        if not self.active:
            row[self.stop_token_ids] = float("-inf")
            return
        import xgrammar as xgr

        self.matcher.fill_next_token_bitmask(self.bitmask)
        xgr.apply_token_bitmask_inplace(row.unsqueeze(0), self.bitmask.to(row.device))

    def accept(self, token: int) -> None:
        if not self.active:
            self.active = token == self.starts_after
            return
        if not self.matcher.accept_token(token):
            raise RuntimeError(f"token {token} does not fit the response format's grammar")


class StructuredOutputs:
    """Compiles response formats for one tokenizer; compiled grammars are cached by their schema."""

    def __init__(self, tokenizer: Any, stop_token_ids: list[int], vocab_size: int, think_close_id: int | None,
                 think: bool) -> None:
        try:
            import xgrammar as xgr
        except ImportError:
            raise ApiError(400, f"response_format needs the xgrammar package on the server ({INSTALL_HINT})",
                           param="response_format", code="unsupported_parameter") from None
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stop_token_ids)
        self._compiler = xgr.GrammarCompiler(info, max_threads=1)
        self._starts_after = think_close_id if think else None
        self._think_without_token = think and think_close_id is None
        self._lock = threading.Lock()

    def compile(self, response_format: ResponseFormat | None) -> Grammar | None:
        """The grammar for a request's `response_format`; None for free text. Invalid schemas are 400s."""
        if response_format is None or response_format.type == "text":
            return None
        if self._think_without_token:
            raise ApiError(400, "this model's reasoning format has no single `</think>` token to start the "
                           "JSON grammar after", param="response_format", code="unsupported_parameter")
        schema = {"type": "object"} if response_format.type == "json_object" else response_format.json_schema.schema_
        _check_schema(schema)
        try:
            with self._lock:  # the compiler's cache is shared across worker threads
                compiled = self._compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
        except Exception as err:  # xgrammar raises RuntimeError for schema features it cannot compile
            raise ApiError(400, f"response_format.json_schema.schema cannot be compiled: {err}",
                           param="response_format.json_schema.schema", code="invalid_value") from None
        return Grammar(compiled, self._starts_after)


    def compile_tool_call(self, functions: list[Any]) -> Grammar:
        """One `<tool_call>` block calling one of `functions` with arguments that fit its `parameters`
        (`tool_choice: required`, or a named function); then only the stop token may follow."""
        import xgrammar as xgr

        from r1tune.serve.tools import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, call_schema

        bodies = []
        for f in functions:
            _check_schema(f.parameters, where=f"tools: {f.name}.parameters")
            bodies.append(xgr.Grammar.from_json_schema(json.dumps(call_schema(f)), any_whitespace=False))
        body = bodies[0] if len(bodies) == 1 else xgr.Grammar.union(*bodies)
        grammar = xgr.Grammar.concat(xgr.Grammar.from_ebnf(f"root ::= {json.dumps(TOOL_CALL_OPEN + chr(10))}"), body,
                                     xgr.Grammar.from_ebnf(f"root ::= {json.dumps(chr(10) + TOOL_CALL_CLOSE)}"))
        with self._lock:
            compiled = self._compiler.compile_grammar(grammar)
        return Grammar(compiled, self._starts_after)


def _check_schema(schema: dict[str, Any], where: str = "response_format.json_schema.schema") -> None:
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as err:
        at = "/".join(str(p) for p in err.absolute_path) or "(top)"
        param = "tools" if where.startswith("tools") else where
        raise ApiError(400, f"{where} is not a valid JSON Schema at {at}: {err.message}", param=param,
                       code="invalid_value") from None
