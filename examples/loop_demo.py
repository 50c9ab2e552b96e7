"""`make demo-loop`: staff corrections teach the embedded model a fact it gets wrong, through `r1tune loop`.

1. v1: a short LoRA run of the bundled shop example, registered and promoted as the live `shop` version;
2. `r1tune serve` serves it; a scripted support desk asks 24 return-policy questions, rates each answer
   down and corrects it with the shop's real policy (45 days, free label at a URL), through `/v1/feedback`;
3. `r1tune loop` trains v2 from v1 on those corrections (DPO pairs, v1's data replayed), gates it against
   v1 and, if it passes, swaps it into the running server;
4. eight paraphrases that no one corrected are asked of v1, of the candidate (loaded under its own name,
   whatever the gate decided) and of what the server serves after the loop: the share of the policy's facts
   the answers state (r1tune's key-fact recall) is the before/after figure.

Writes `<workdir>/loop_demo.json` and prints a table. Everything runs on this machine's CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console

FACT = ("Lumen Home takes returns within 45 days of delivery, and the return label is free: print it at "
        "https://lumen-home.example/returns.")
ITEMS = ["the oak chair", "my blue mug", "the brass lamp", "a wool scarf", "the linen pillow", "my steel kettle"]
ASKS = ["How long do I have to return {item}?", "Can I still send back {item}?",
        "What is your return policy for {item}?", "Who pays the return shipping for {item}?"]
PARAPHRASES = [
    "I changed my mind about my order. Until when can I send it back?",
    "How many days is the return window at Lumen Home?",
    "Do I have to pay for the return label?",
    "My lamp arrived three weeks ago. Is it too late to return it?",
    "Where can I get a return label?",
    "What are the rules for returning something I bought from you?",
    "Is there a deadline for returns?",
    "I want a refund for a vase. How do I return it?",
]
LOOP_YAML = """
serve: {{adapters: [{{name: shop, path: '{v1}'}}], adapter_dirs: ['{runs}'], port: {port}}}
loop: {{adapter: shop, min_feedback: 12, holdout_share: 0.25, replay_share: 1.0}}
"""
QUICK_EVAL = ["eval.max_examples=12", "eval.max_new_tokens=80", "eval.reasoning_probes=0", "eval.redteam=[]",
              "eval.batch_size=12"]


def r1tune(*args: str) -> str:
    """Run the CLI (the same one a user runs); stop the demo with its output on failure."""
    done = subprocess.run([sys.executable, "-m", "r1tune", *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"r1tune {' '.join(args[:2])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def ask(url: str, question: str, model: str = "shop") -> dict:
    reply = httpx.post(f"{url}/v1/chat/completions", timeout=600, json={
        "model": model, "messages": [{"role": "user", "content": question}], "max_tokens": 80, "temperature": 0})
    reply.raise_for_status()
    return reply.json()


def fact_recall(answers: list[str]) -> float:
    from r1tune.eval.facts import fact_scores

    scores = [fact_scores(answer, FACT, "")[0] or 0.0 for answer in answers]  # 0-100 per answer
    return sum(scores) / len(scores)


def start_server(project: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "r1tune", "serve", str(project)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            sys.exit("the server did not start")
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("demo-loop"))
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    work, url = args.workdir.resolve(), f"http://127.0.0.1:{args.port}"
    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    r1tune("init", str(work), "--example", "ecommerce")
    project = work / "r1tune.yaml"
    r1tune("run", str(project), "train.max_steps=30", *QUICK_EVAL, "--no-progress")
    v1 = next((work / "runs").glob("*/train/adapter")).parent.parent
    with project.open("a", encoding="utf-8") as fh:
        fh.write(LOOP_YAML.format(v1=v1, runs=work / "runs", port=args.port))
    r1tune("versions", "register", str(project), str(v1), "--name", "shop")
    r1tune("versions", "promote", str(project), v1.name, "--reason", "first version")
    server = start_server(project, args.port)
    try:
        before = [ask(url, q)["choices"][0]["message"]["content"] for q in PARAPHRASES]
        for item in ITEMS:
            for template in ASKS:
                answer = ask(url, template.format(item=item))
                httpx.post(f"{url}/v1/feedback", timeout=60, json={
                    "completion_id": answer["id"], "rating": "down", "corrected_answer": FACT}).raise_for_status()
        loop_out = r1tune("loop", str(project), "--server", url, "train.epochs=5", "train.lr=1e-3",
                          "train.pref_beta=0.5", *QUICK_EVAL)
        served = [ask(url, q)["choices"][0]["message"]["content"] for q in PARAPHRASES]
        # the candidate answers under its own name too, so its effect shows whatever the gate decided
        candidate = max(p for p in (work / "runs").iterdir() if (p / "loop" / "gate.json").is_file())
        httpx.post(f"{url}/v1/load_lora_adapter", timeout=600,
                   json={"lora_name": "candidate", "lora_path": str(candidate)}).raise_for_status()
        after = [ask(url, q, "candidate")["choices"][0]["message"]["content"] for q in PARAPHRASES]
    finally:
        server.terminate()
        server.wait(60)
    gate = json.loads((candidate / "loop" / "gate.json").read_text())
    result = {"minutes": round((time.perf_counter() - started) / 60, 1), "loop_output": loop_out,
              "gate_passed": gate["passed"], "gate_reasons": gate["reasons"],
              "key_fact_recall_before": round(fact_recall(before), 1),
              "key_fact_recall_candidate": round(fact_recall(after), 1),
              "key_fact_recall_served_after_loop": round(fact_recall(served), 1),
              "paraphrases": [{"question": q, "before": b, "candidate": a} for q, b, a in zip(PARAPHRASES, before, after,
                                                                                          strict=True)]}
    (work / "loop_demo.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    out = Console()
    out.print(loop_out, markup=False, highlight=False)
    for row in result["paraphrases"]:
        out.print(f"Q: {row['question']}\n  before: {row['before'][:150]!r}\n  candidate: {row['candidate'][:150]!r}",
                  markup=False, highlight=False)
    out.print(f"key-fact recall on paraphrases no one corrected: v1 {result['key_fact_recall_before']}, candidate "
              f"{result['key_fact_recall_candidate']}; gate {'passed' if gate['passed'] else 'failed'}, so the server "
              f"now scores {result['key_fact_recall_served_after_loop']} ({result['minutes']} min); details in "
              f"{work / 'loop_demo.json'}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
