"""report.html in a real browser: headless Chromium (Debian `chromium`, installed by `make browser`) loads
the page, every <img> must decode, and no request may leave the page (only the file itself and data: URIs).

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`, fds 3/4, NUL-separated
JSON), so the test needs no websocket client and sees every network request the page makes. A control page
with a remote image and a broken image proves the checks can fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from r1tune.eval import write_report
from r1tune.rundir import RunDir

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed and `make browser` could not install it (needs apt-get as root)",
)

IMAGE_CHECK = """(async () => {
  const imgs = [...document.images];
  const decoded = await Promise.all(imgs.map(i => i.decode().then(() => true, () => false)));
  return JSON.stringify(imgs.map((i, k) => ({src: i.src.slice(0, 60), decoded: decoded[k],
                                               width: i.naturalWidth, height: i.naturalHeight})));
})()"""


class DevToolsPipe:
    """Minimal CDP client over Chromium's debugging pipe: send commands, collect events."""

    def __init__(self, user_data_dir: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
                "--remote-debugging-pipe", f"--user-data-dir={user_data_dir}",
                "--host-resolver-rules=MAP * ~NOTFOUND", "about:blank"]
        # The browser reads commands on fd 3 and writes replies on fd 4; the shell wires our pipe ends there.
        wiring = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-'
        self.proc = subprocess.Popen(["bash", "-c", wiring, CHROMIUM, *args], pass_fds=(to_browser_r, from_browser_w),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        reply = self._read_until(lambda m: m.get("id") == self._next_id, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        for event in self.events:
            if event.get("method") == method:
                return event
        return self._read_until(lambda m: m.get("method") == method, timeout)

    def _read_until(self, done, timeout: float) -> dict:
        import select

        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if done(message):
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._from_browser], [], [], remaining)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the debugging pipe")
            self._buffer += chunk

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_browser)
        os.close(self._from_browser)


def load_in_chromium(page: Path, tmp_path: Path) -> tuple[list[dict], list[str]]:
    """(images with decode status, URLs of every request the page made) for a local HTML file."""
    browser = DevToolsPipe(tmp_path / "chromium-profile")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network", "Page", "Runtime"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        browser.wait_event("Page.loadEventFired")
        result = browser.send("Runtime.evaluate", {"expression": IMAGE_CHECK, "awaitPromise": True,
                                                   "returnByValue": True}, session=session)
        images = json.loads(result["result"]["value"])
        requests = [e["params"]["request"]["url"] for e in browser.events
                    if e.get("method") == "Network.requestWillBeSent"]
        return images, requests
    finally:
        browser.close()


def _leaks(requests: list[str], page: Path) -> list[str]:
    own = page.resolve().as_uri()
    return [u for u in requests if u != own and not u.startswith("data:")]


def test_report_renders_every_image_and_makes_no_request(fake_run, tmp_path):
    run = RunDir(fake_run(tmp_path / "run", redteam_regression=True))
    report = write_report(run)
    images, requests = load_in_chromium(report, tmp_path)
    # loss curve, data funnel, metric deltas, red-team, judge: all present and decoded
    assert len(images) == 5, images
    assert all(i["decoded"] and i["width"] > 0 and i["height"] > 0 for i in images), images
    assert requests and not _leaks(requests, report), requests


def test_checks_catch_a_remote_and_a_broken_image(tmp_path):
    page = tmp_path / "control.html"
    page.write_text('<html><body><img src="https://cdn.example.invalid/logo.png">'
                    '<img src="data:image/png;base64,bm90IGFuIGltYWdl"></body></html>')
    images, requests = load_in_chromium(page, tmp_path)
    assert [i["decoded"] for i in images] == [False, False]
    assert _leaks(requests, page) == ["https://cdn.example.invalid/logo.png"]


def test_report_of_a_real_tiny_model_evaluation_renders(tiny_llama_dir, tmp_path):
    from helpers import product_records
    from peft import LoraConfig, get_peft_model

    from r1tune import models
    from r1tune.config import EvalConfig, ModelConfig
    from r1tune.eval import evaluate

    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    loaded.model = get_peft_model(loaded.model, LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.config_file.write_text(f"data: {{sources: [{{path: /srv/d.jsonl}}]}}\nmodel: {{name: '{tiny_llama_dir}'}}\n")
    cfg = EvalConfig(max_new_tokens=4, redteam=["ecommerce"], latency_prompts=1, bootstrap_resamples=100)
    metrics = evaluate(cfg, loaded, product_records(4), run.eval, "fp32", 96, show_progress=False)
    run.write_metrics(metrics)
    report = write_report(run)
    images, requests = load_in_chromium(report, tmp_path)
    assert len(images) == 2 and all(i["decoded"] and i["width"] > 0 for i in images)  # deltas + red-team
    assert not _leaks(requests, report), requests


def test_report_of_the_bundled_example_renders(tiny_llama_dir, tmp_path):
    """The report `make demo` shows, on the bundled example's real data (English and Chinese products, the
    e-commerce red-team set), from the real pipeline; only the model is the tiny one, to keep it fast."""
    from typer.testing import CliRunner

    from r1tune.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["init", str(tmp_path / "shop"), "--example", "ecommerce"]).exit_code == 0
    result = runner.invoke(app, ["run", str(tmp_path / "shop" / "r1tune.yaml"), f"model.name={tiny_llama_dir}",
                                 "train.max_steps=2", "train.log_every=1", "eval.max_examples=8",
                                 "eval.max_new_tokens=8", "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run = RunDir(next((tmp_path / "shop" / "runs").iterdir()))
    report = run.report
    images, requests = load_in_chromium(report, tmp_path)
    # loss curve, data funnel, metric deltas, red-team: all present and decoded
    assert len(images) == 4, images
    assert all(i["decoded"] and i["width"] > 0 and i["height"] > 0 for i in images), images
    assert requests and not _leaks(requests, report), requests
    samples = [json.loads(line) for line in (run.eval / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    html = report.read_text(encoding="utf-8")
    assert any("Chinese" in s["prompt"] for s in samples)  # the Chinese share reached the report's samples
    redteam = run.read_metrics().redteam
    assert redteam["n"] == 9 and redteam["domains"] == ["ecommerce"] and "Red-team probes" in html
