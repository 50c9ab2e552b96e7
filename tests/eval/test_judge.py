"""Pairwise judge: verdict parsing, both orders cancel position bias, a fake OpenAI-compatible endpoint,
and a failing endpoint that stops judging without losing the evaluation."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from helpers import product_records

from r1tune.config import JudgeConfig
from r1tune.eval.judge import judge_prompt, parse_verdict, run_judge

RECORDS = product_records(4)
BASE = ["meh", "meh", "meh", "meh"]
TUNED = [r.answer.content for r in RECORDS]


@pytest.mark.parametrize(("reply", "winner"), [
    ('{"winner": "B", "reason": "more specific"}', "B"),
    ('<think>\nA looks short\n</think>\n{"winner": "a", "reason": "x"}', "A"),
    ('Verdict:\n```json\n{"winner": "tie", "reason": "same"}\n```', "tie"),
    ('winner: B because it names the material', "B"),
    ("I like both.", None),
])
def test_parse_verdict(reply, winner) -> None:
    assert parse_verdict(reply)[0] == winner


def _caller(choose):
    """A fake judge: `choose(answer_a, answer_b)` returns "A", "B" or "tie"."""
    def call(prompts):
        replies = []
        for p in prompts:
            a = p.split("[Answer A]\n")[1].split("\n\n[Answer B]")[0]
            b = p.split("[Answer B]\n")[1].split("\n\nReply with")[0]
            replies.append(json.dumps({"winner": choose(a, b), "reason": f"chose between {a[:8]} and {b[:8]}"}))
        return replies
    return call


def test_a_judge_preferring_the_tuned_answer_gives_wins_in_both_orders(tmp_path) -> None:
    result = run_judge(JudgeConfig(model="fake"), RECORDS, BASE, TUNED, tmp_path / "judge.jsonl",
                       caller=_caller(lambda a, b: "A" if a != "meh" else "B"))
    assert (result["wins"], result["losses"], result["ties"]) == (4, 0, 0)
    assert result["win_rate"] == 100.0 and result["consistency"] == 100.0
    rows = [json.loads(line) for line in (tmp_path / "judge.jsonl").read_text().splitlines()]
    assert [v["order"] for v in rows[0]["verdicts"]] == ["A=base, B=tuned", "A=tuned, B=base"]
    assert rows[0]["verdicts"][0]["reason"].startswith("chose between")  # reasons are kept


def test_a_judge_that_always_picks_the_first_answer_is_a_tie(tmp_path) -> None:
    result = run_judge(JudgeConfig(model="fake", max_examples=3), RECORDS, BASE, TUNED, tmp_path / "j.jsonl",
                       caller=_caller(lambda a, b: "A"))
    assert (result["n"], result["wins"], result["losses"], result["ties"]) == (3, 0, 0, 3)
    assert result["consistency"] == 0.0


def test_one_order_tie_and_one_order_win_is_a_win_and_nonsense_is_invalid(tmp_path) -> None:
    def lean(a, b):
        return "tie" if a == "meh" else "A"  # (base, tuned): tie; (tuned, base): tuned
    assert run_judge(JudgeConfig(model="f"), RECORDS, BASE, TUNED, tmp_path / "j.jsonl", caller=_caller(lean))["wins"] == 4
    result = run_judge(JudgeConfig(model="f"), RECORDS, BASE, TUNED, tmp_path / "j.jsonl",
                       caller=lambda prompts: ["no idea"] * len(prompts))
    assert result["invalid"] == 4 and result["win_rate"] is None


class _FakeOpenAI(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        prompt = body["messages"][0]["content"]
        winner = "A" if prompt.split("[Answer A]\n")[1].startswith("This") else "B"
        reply = {"choices": [{"message": {"role": "assistant", "content": json.dumps({"winner": winner,
                                                                                       "reason": "names it"})}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_openai_compatible_endpoint_gets_both_orders_and_the_key_from_the_environment(tmp_path, monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    try:
        cfg = JudgeConfig(model="judge-7b", endpoint=f"http://127.0.0.1:{server.server_port}/v1",
                          api_key_env="JUDGE_KEY", max_examples=2)
        result = run_judge(cfg, RECORDS, BASE, TUNED, tmp_path / "judge.jsonl")
    finally:
        server.shutdown()
    assert result["wins"] == 2 and result["via"] == "endpoint" and result["status"] == "ok"
    assert len(_FakeOpenAI.seen) == 4
    assert {s["path"] for s in _FakeOpenAI.seen} == {"/v1/chat/completions"}
    assert {s["auth"] for s in _FakeOpenAI.seen} == {"Bearer sk-test"}
    assert _FakeOpenAI.seen[0]["body"]["model"] == "judge-7b" and _FakeOpenAI.seen[0]["body"]["temperature"] == 0


def test_unreachable_endpoint_stops_after_three_failures_and_keeps_going(tmp_path) -> None:
    server = HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_port
    server.server_close()  # nothing listens on this port any more
    cfg = JudgeConfig(model="judge", endpoint=f"http://127.0.0.1:{port}/v1", timeout_seconds=2)
    result = run_judge(cfg, RECORDS, BASE, TUNED, tmp_path / "judge.jsonl")
    assert result["errors"] == 3 and result["n"] == 3
    assert result["status"].startswith("stopped after 3 failed calls in a row: cannot reach")


def test_local_judge_model_runs_in_process(tiny_llama_dir, tmp_path) -> None:
    # A random model cannot give verdicts: they are counted as invalid, with the raw text kept as the reason.
    cfg = JudgeConfig(model=str(tiny_llama_dir), max_examples=2, max_new_tokens=4)
    result = run_judge(cfg, RECORDS, BASE, TUNED, tmp_path / "judge.jsonl")
    assert result["via"] == "local" and result["n"] == 2
    assert result["wins"] + result["losses"] + result["ties"] + result["invalid"] == 2


def test_judge_prompt_marks_empty_answers() -> None:
    assert "[Answer A]\n(empty)" in judge_prompt("q", None, "", "b")
