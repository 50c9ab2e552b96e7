"""A stand-in for vLLM's OpenAI server as a child process: /health, /v1/models (the base and the adapters loaded
into this process) and /v1/load_lora_adapter, so a restarted child starts without the adapters, as vLLM does.

    python fake_vllm.py PORT [broken-models]   (broken-models: /v1/models answers 500)
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOADED: list[str] = []


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            self._answer({})
        elif self.path == "/v1/models" and "broken-models" in sys.argv:
            self._answer({"error": {"message": "engine core died"}}, 500)
        elif self.path == "/v1/models":
            # vLLM's cards carry the context it allocated, the same for the base and each adapter
            self._answer({"data": [{"id": name, "max_model_len": 40960} for name in ["base", *LOADED]]})
        else:
            self._answer({"error": {"message": "not found"}}, 404)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/v1/load_lora_adapter":
            LOADED.append(body["lora_name"])
            self._answer({})
        else:
            self._answer({"error": {"message": "not found"}}, 404)

    def _answer(self, payload: dict, status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
