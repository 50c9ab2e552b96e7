"""/health latency of `r1tune serve` (embedded model) while 3 clients flood it with 950 KB prompts, against
the same server quiet in the same run: median and max ms, and how the flood requests were answered.

    .venv/bin/python benchmarks/health_under_flood.py     (from the repository root; JSON in bench-results/)

Run it with another checkout's venv and working directory to compare two versions of the server.
"""

from __future__ import annotations

import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, "tests")

FLOOD_PROMPT = "mug " * 237_000  # 948,000 characters
OUT = Path("bench-results") / "health_under_flood.json"


def start_server() -> tuple[str, object, str]:
    import uvicorn
    from helpers import write_project

    from r1tune.models.loading import ensure_embedded_cache
    from r1tune.models.presets import presets
    from r1tune.serve import ServeTarget, build_runtime, create_app

    try:
        from r1tune.configfile import load_config
    except ImportError:  # an older tree, where the loader lived in r1tune.config
        from r1tune.config import load_config
    model_dir = ensure_embedded_cache(presets()["smollm2-135m-instruct"])
    project = write_project(Path(tempfile.mkdtemp()), model_dir, extra="serve: {log_completions: false}\n")
    runtime = build_runtime(ServeTarget(load_config(project)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, runtime.base_id


def probe(url: str, model: str, flood: bool) -> dict:
    import httpx

    stop, statuses, timings = threading.Event(), [], []
    body = {"model": model, "messages": [{"role": "user", "content": FLOOD_PROMPT}]}

    def flood_client() -> None:
        with httpx.Client(base_url=url, timeout=300) as client:
            while not stop.is_set():
                statuses.append(client.post("/v1/chat/completions", json=body).status_code)

    with ThreadPoolExecutor(3) as pool:
        for _ in range(3 if flood else 0):
            pool.submit(flood_client)
        time.sleep(0.5)
        with httpx.Client(base_url=url, timeout=60) as client:
            for _ in range(60):
                start = time.perf_counter()
                client.get("/health")
                timings.append(time.perf_counter() - start)
                time.sleep(0.05)
        stop.set()
    return {"median_ms": round(1000 * statistics.median(timings), 1), "max_ms": round(1000 * max(timings), 1),
            "flood_requests": len(statuses), "flood_statuses": sorted(set(statuses))}


def main() -> None:
    url, server, model = start_server()
    results = {"quiet": probe(url, model, flood=False), "flooded": probe(url, model, flood=True)}
    server.should_exit = True
    for name, r in results.items():
        print(f"{name:8} /health median {r['median_ms']:7.1f} ms, max {r['max_ms']:7.1f} ms"
              + (f", {r['flood_requests']} flood requests answered {r['flood_statuses']}" if name == "flooded" else ""))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
