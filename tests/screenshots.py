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
    """The showcase payment's timeline (a phone shows it from the Attempts heading on)."""
    record = showcase(base) if page.viewport_size["width"] > PHONE["width"] else \
        api(base, "GET", "/api/transactions/" + SHOWCASE_ID)
    page.goto(f"{base}/admin/transactions/{quote(record['transaction_id'], safe='')}"
              f"?connector={quote(record['connector'], safe='')}")
    expect(page.locator("li.attempt").nth(1)).to_be_visible()
    bottom = page.locator("main").evaluate(
        "main => main.getBoundingClientRect().bottom + window.scrollY")
    viewport = page.viewport_size
    if viewport["width"] > PHONE["width"]:
        page.set_viewport_size({"width": viewport["width"], "height": min(int(bottom), 1400)})
    else:  # a phone screen, scrolled to the attempts
        page.get_by_role("heading", name="Attempts").evaluate("h => window.scrollTo(0, "
                                                              "h.offsetTop - 8)")
    page.screenshot(path=path)
    page.set_viewport_size(viewport)


SHOWCASE_ID = "PKshowcase0f6a1c2e9b8d7a6f5e4d3c2b1a0"
SHOWCASE = [  # one payment whose attempts meet five different faults, one rule each
    {"type": "malformed", "variant": "not_json", "charge": True},
    {"type": "delay", "seconds": 12},
    {"type": "hang", "seconds": 12},
    {"type": "drop"},
    {"type": "http_error", "status": 503},
    None,  # the last retry meets no fault: the answer
]


def showcase(base: str) -> dict[str, Any]:
    """A payment Twilio tries six times, each attempt meeting another fault: the timeline that
    shows most of the marks. Real traffic through the processor endpoint, as Twilio sends it."""
    transaction_id = SHOWCASE_ID
    for number, action in enumerate(SHOWCASE, start=1):
        if action is None:
            continue
        api(base, "POST", "/api/rules", {"match": {"transaction_id": transaction_id,
                                                   "attempt": number}, "action": action,
                                  "remaining": 1})
    body = {"method": "charge", "transaction_id": transaction_id, "amount": "42.00",
            "cardnumber": "4111111111111111", "cvv": "123", "expiry_month": "08",
            "expiry_year": "2035", "currency_code": "USD", "description": "Order 1042"}
    for _ in SHOWCASE:
        with contextlib.suppress(requests.RequestException):
            requests.post(base + "/", json=body, timeout=30)
    return api(base, "GET", f"/api/transactions/{transaction_id}")


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
        with contextlib.suppress(requests.ConnectionError, requests.Timeout):
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
