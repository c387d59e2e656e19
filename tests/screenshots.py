"""Take the README's screenshots of the admin panel: demo traffic in a fresh SQLite store,
`fakeproc serve` on it, Chromium driven by Playwright.

    python tests/screenshots.py [--out docs] [--seed 42]

Needs Debian's Chromium at /usr/bin/chromium (no browser is ever downloaded). Not a test: pytest
collects only test_*.py."""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from playwright.sync_api import expect, sync_playwright

from fakeproc.web.admin.attempt_marks import mark_of

CHROMIUM = "/usr/bin/chromium"
TIME_SCALE = "0.01"  # the demo's own: the timeline's budget line matches how the attempts ran
VIEWPORT = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
RULES = [  # armed after the demo, so that the dashboard's "Armed rules" is not empty
    {"match": {"attempt": 1, "amount_min": "100.00"}, "remaining": 3,
     "note": "large orders: Twilio times out and retries",
     "action": {"type": "delay", "seconds": 12}},
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"),
                        help="directory for the PNG files (default: docs)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the demo traffic")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fakeproc-screenshots-") as scratch:
        database_url = f"sqlite:///{Path(scratch) / 'fakeproc.db'}"
        run_fakeproc("demo", "--database-url", database_url, "--seed", str(args.seed))
        with serving(database_url, Path(scratch) / "serve.log") as base:
            for rule in RULES:
                api(base, "POST", "/api/rules", rule)
            take_screenshots(base, args.out)
    for name in ("dashboard", "timeline", "rule-form", "dashboard-phone", "timeline-phone"):
        path = args.out / f"screenshot-{name}.png"
        print(f"{path}: {path.stat().st_size // 1024} KiB")


def take_screenshots(base: str, out: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
            page.set_default_timeout(15_000)
            dashboard(page, base, out / "screenshot-dashboard.png")
            timeline(page, base, out / "screenshot-timeline.png")
            rule_form(page, base, out / "screenshot-rule-form.png")
            phone = browser.new_page(viewport=PHONE, device_scale_factor=2)
            phone.set_default_timeout(15_000)
            dashboard(phone, base, out / "screenshot-dashboard-phone.png")
            timeline(phone, base, out / "screenshot-timeline-phone.png")
        finally:
            browser.close()


def dashboard(page: Any, base: str, path: Path) -> None:
    page.goto(base + "/admin/")
    expect(page.locator("tr[data-transaction-id]").first).to_be_visible()
    expect(page.locator(".armed-rule")).to_have_count(len(RULES))
    page.screenshot(path=path)


def timeline(page: Any, base: str, path: Path) -> None:
    """The demo's transaction whose attempts show the most kinds of mark."""
    record = most_marks(base)
    page.goto(f"{base}/admin/transactions/{quote(record['transaction_id'], safe='')}"
              f"?connector={quote(record['connector'], safe='')}")
    expect(page.locator("li.attempt").nth(1)).to_be_visible()
    bottom = page.locator("main").evaluate(
        "main => main.getBoundingClientRect().bottom + window.scrollY")
    viewport = page.viewport_size
    if viewport["width"] > PHONE["width"]:  # a phone shows its first screen, as a phone does
        page.set_viewport_size({"width": viewport["width"], "height": min(int(bottom), 1100)})
    page.screenshot(path=path)
    page.set_viewport_size(viewport)


def most_marks(base: str) -> dict[str, Any]:
    """Among the demo's retried transactions, the one with the most kinds of mark (answered,
    late, broken, hung…), then the fewest attempts: the timeline that shows the most."""
    best, best_key = None, None
    for retry in api(base, "GET", "/api/retries?limit=200")["data"]:
        record = api(base, "GET", f"/api/transactions/{quote(retry['transaction_id'], safe='')}"
                                  f"?connector={quote(retry['connector'], safe='')}")
        key = (len({mark_of(a) for a in record["attempts"]}), -len(record["attempts"]))
        if best_key is None or key > best_key:
            best, best_key = record, key
    if best is None:
        raise SystemExit("the demo left no retried transaction")
    return best


def rule_form(page: Any, base: str, path: Path) -> None:
    """The rule form with a preset applied: from the "New rule" heading to the save button."""
    page.goto(base + "/admin/rules?preset=delay-next#new-rule")
    form = page.locator("form#rule-form")
    expect(form.locator('[name="action"]')).to_have_value("delay")
    top = page.locator("#new-rule").evaluate(
        "h => h.getBoundingClientRect().top + window.scrollY")
    box = form.evaluate("f => { const r = f.getBoundingClientRect();"
                        " return {x: r.left, bottom: r.bottom + window.scrollY, width: r.width}; }")
    margin = 16
    page.screenshot(path=path, full_page=True, clip={
        "x": max(box["x"] - margin, 0), "y": max(top - margin, 0),
        "width": box["width"] + 2 * margin, "height": box["bottom"] - top + 2 * margin})


@contextlib.contextmanager
def serving(database_url: str, log_path: Path) -> Iterator[str]:
    """`fakeproc serve` on a free loopback port: an open panel (no password), one worker."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FAKEPROC_")}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fakeproc", "serve", "--port", str(port), "--workers", "1",
             "--database-url", database_url, "--time-scale", TIME_SCALE],
            stdout=log, stderr=subprocess.STDOUT, env=environment)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, process, log_path)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def wait_ready(base: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"fakeproc serve exited:\n{log_path.read_text(errors='replace')}")
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(base + "/api/health", timeout=1).ok:
                return
        time.sleep(0.1)
    raise SystemExit(f"fakeproc serve did not start:\n{log_path.read_text(errors='replace')}")


def run_fakeproc(*arguments: str) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FAKEPROC_")}
    subprocess.run([sys.executable, "-m", "fakeproc", *arguments], check=True, env=environment)


def api(base: str, method: str, path: str, body: Any = None) -> Any:
    response = requests.request(method, base + path, json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    main()
