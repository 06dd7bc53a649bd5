"""The HTML report in a real browser: it plays, seeks on click, and the cursor and genre follow.

Needs Debian's chromium and the playwright package (no browser download);
skips with the reason where either is absent. `.ci/run` installs both.
"""

import json
import re
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from genre_infer.cli import main

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt install chromium)")

ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required"]


def wait_until(page, expression: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Poll ``expression`` from outside the page: the page's CSP forbids the eval behind
    Playwright's ``wait_for_function``."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def report(toy_model: Path, audio_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("html") / "change.html"
    r = CliRunner().invoke(main, [str(audio_dir / "change.wav"), "--model", str(toy_model), "--html", str(out),
                                  "-f", "json"])
    assert r.exit_code == 0, r.stderr
    return out, json.loads(r.stdout)["results"][0]


def test_report_plays_seeks_and_follows(report: tuple[Path, dict]) -> None:
    path, result = report
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        page.wait_for_selector("#now-genre")
        assert page.inner_text("#now-genre") == result["timeline"][0]["genre"] == "low"
        assert page.locator("#timeline rect").count() == len(result["timeline"])
        assert page.locator("#sections li").count() == len(result["sections"])

        box = page.locator("#timeline").bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + box["height"] / 2)
        wait_until(page, "Math.abs(document.getElementById('player').currentTime - 15) < 0.3")
        assert page.inner_text("#now-genre") == result["timeline"][15]["genre"] == "high"
        x = float(page.get_attribute("#cursor", "x1") or "nan")
        assert abs(x - 750) < 15

        page.mouse.move(box["x"] + 0.2 * box["width"], box["y"] + 20)
        tip = page.inner_text("#tip")
        assert re.search(r"0:04–0:05", tip) and "low 1.00" in tip

        page.mouse.click(box["x"] + 0.1 * box["width"], box["y"] + box["height"] / 2)  # 2 s in
        page.evaluate("document.getElementById('player').play()")
        wait_until(page, "document.getElementById('player').currentTime > 2.6")
        page.evaluate("document.getElementById('player').pause()")
        t = page.evaluate("document.getElementById('player').currentTime")
        x = float(page.get_attribute("#cursor", "x1") or "nan")
        assert abs(x - t / result["duration"] * 1000) < 15, "the cursor follows playback"
        assert page.inner_text("#now-genre") == "low"
        assert errors == []
        browser.close()
