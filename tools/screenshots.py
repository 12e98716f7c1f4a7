"""Retake the README's web UI screenshots (docs/img/) from a real `ragapp serve` over
sample_docs/, driven by Playwright in Debian's chromium (no browser download).

    .venv/bin/python tools/screenshots.py

Uses a throw-away data dir; the models are the bundled ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"
QUESTION = "What was the cooperative's total income for 2025?"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def main() -> None:
    from playwright.sync_api import sync_playwright

    port = 8765
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "RAGAPP_DATA_DIR": data, "RAGAPP_COLLECTION": "sample-docs"}
        ragapp = [sys.executable, "-m", "ragapp"]
        subprocess.run([*ragapp, "ingest", str(ROOT / "sample_docs")], env=env, check=True)
        server = subprocess.Popen([*ragapp, "serve", "--port", str(port)], env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    urllib.request.urlopen(url + "/healthz", timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
                )
                for scheme, name in (("light", "web-ui-answer"), ("dark", "web-ui-source-dark")):
                    context = browser.new_context(
                        viewport={"width": 1280, "height": 760}, color_scheme=scheme
                    )
                    page = context.new_page()
                    page.goto(url + "/")
                    page.wait_for_function(
                        "() => document.querySelector('#status-model').textContent !== 'Loading…'"
                    )
                    page.fill("#question", QUESTION)
                    page.press("#question", "Enter")
                    card = page.locator(".msg.assistant .card").last
                    card.locator(".meta-line").wait_for(timeout=120_000)
                    if scheme == "dark":
                        card.locator(".source-chip").nth(2).click()
                        page.locator("#source-dialog").wait_for(state="visible")
                    page.screenshot(path=str(OUT / f"{name}.png"))
                    context.close()
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"wrote {OUT}/web-ui-answer.png and web-ui-source-dark.png")


if __name__ == "__main__":
    main()
