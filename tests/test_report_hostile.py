"""Reports for files someone else named and models someone else made, in the real Chromium.

Every href/src is a relative, percent-encoded URL of a file; file names and labels reach the
page as text only; the page's own script runs whatever the names hold, under a strict CSP.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
from signals import noise, tone

from conftest import build_toy_model
from genre_infer.features import FeatureSpec
from genre_infer.model import ModelInfo
from genre_infer.report import file_href, html_index, html_report, script_json

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required"]
MARKUP = '<img src=x onerror="window.__pwned=1">'
CLOSER = "</script><script>window.__pwned=1</script>"
COMMENT = "<!--<script>"


def cli(*args: str | bytes | os.PathLike[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "genre_infer", *map(os.fsencode, args)], capture_output=True,
                          cwd=REPO, timeout=120)


@pytest.fixture(scope="module")
def markup_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy model with labels that are markup (a valid model: labels are any short text)."""
    spec = FeatureSpec(segment_frames=63, n_mels=96)
    meta = ModelInfo("<b>toy</b>", "1.0&<", (MARKUP, CLOSER), spec).to_metadata()
    return build_toy_model(tmp_path_factory.mktemp("models") / "markup.onnx", metadata=meta)


def _wav(path: Path | bytes, low: bool = True) -> None:
    y = tone(16000, 4.0, 110.0) if low else noise(16000, 4.0)
    with open(path, "wb") as f:
        sf.write(f, y, 16000, format="WAV")


# ---------------------------------------------------------------------------------------------
# Without a browser: what the page's text holds
# ---------------------------------------------------------------------------------------------


def test_script_json_cannot_close_or_comment_the_script() -> None:
    text = script_json({"a": CLOSER + COMMENT + "&\u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": CLOSER + COMMENT + "&\u2028"}


@pytest.mark.parametrize("name", ["javascript:alert(1);x.wav", "a#b?c%41.wav", "data:text,x.wav", "\"'<>.wav"])
def test_file_href_is_a_relative_encoded_path(tmp_path: Path, name: str) -> None:
    (tmp_path / "sub").mkdir()
    href = file_href(tmp_path / name, tmp_path / "sub")
    assert href.startswith("../") and re.fullmatch(r"[A-Za-z0-9._~%/-]+", href), href
    from urllib.parse import unquote

    assert unquote(href[3:]) == name


def test_report_pages_hold_names_and_labels_as_text(markup_model: Path, tmp_path: Path) -> None:
    from genre_infer import load_model

    f = tmp_path / f"{COMMENT}{MARKUP}.wav"
    _wav(f)
    result = load_model(markup_model).classify(f)
    page = html_report(result)
    body = page.split("<body>", 1)[1]
    assert "<script>window" not in body and "<img" not in body and "<!--" not in body
    assert body.count("<script") == 3  # the two data blocks and the page's own script
    index = html_index([(f"{COMMENT}{MARKUP}.html", f.name, result)])
    assert "<script" not in index and "<img" not in index


# ---------------------------------------------------------------------------------------------
# In Chromium
# ---------------------------------------------------------------------------------------------

browser_only = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt install chromium)")


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Page:
    """A page with every script error, CSP violation and dialog recorded."""

    def __init__(self, browser, url: str) -> None:  # type: ignore[no-untyped-def]
        self.page = browser.new_page()
        self.problems: list[str] = []
        self.page.on("pageerror", lambda e: self.problems.append(f"error: {e}"))
        self.page.on("console", lambda m: self.problems.append(f"console: {m.text}")
                     if m.type == "error" or "Content Security Policy" in m.text else None)
        self.page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))
        self.page.goto(url)

    def wait(self, expression: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.page.evaluate(expression):
            assert time.monotonic() < deadline, f"timed out waiting for {expression}: {self.problems}"
            time.sleep(0.05)

    def assert_clean(self) -> None:
        assert self.page.evaluate("window.__pwned") is None, "a name or label ran script"
        assert self.problems == []


@browser_only
def test_markup_labels_are_text_and_the_page_works(browser, markup_model: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / f"{COMMENT}{MARKUP}.wav"
    _wav(f)
    out = tmp_path / "r.html"
    r = cli(f, "--model", markup_model, "--html", out, "-q")
    assert r.returncode == 0, r.stderr
    p = Page(browser, out.as_uri())
    p.wait("document.querySelectorAll('#timeline rect').length === 4")
    assert p.page.inner_text("#now-genre") == MARKUP  # the label, shown as written
    assert MARKUP in p.page.inner_text("#legend") and CLOSER in p.page.inner_text("#legend")
    assert p.page.inner_text("h1") == f.name
    hover = p.page.locator("#timeline").bounding_box()
    p.page.mouse.move(hover["x"] + 10, hover["y"] + 10)
    assert MARKUP in p.page.inner_text("#tip")
    assert p.page.locator("img").count() == 0
    p.assert_clean()


@browser_only
def test_index_links_are_files_whatever_the_names(browser, toy_model: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    songs = tmp_path / "songs"
    songs.mkdir()
    names = [b"javascript:window.__pwned=1;x.wav", b"a#b%41?.wav", b"caf\xe9\xff.wav", COMMENT.encode() + b".wav"]
    for n in names:
        _wav(os.fsencode(songs) + b"/" + n)
    out = tmp_path / "reports"
    r = cli(songs, "--model", toy_model, "--html", out, "--html-audio", "link", "-q", "-j", "1")
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
    assert not list(out.glob(".*.part"))
    p = Page(browser, (out / "index.html").as_uri())
    hrefs = p.page.eval_on_selector_all("a", "as => as.map(a => a.href)")
    assert len(hrefs) == len(names) and all(h.startswith(out.as_uri() + "/") for h in hrefs), hrefs
    p.assert_clean()
    for i in range(len(names)):  # every link opens its report, whose audio plays
        q = Page(browser, (out / "index.html").as_uri())
        q.page.locator("a").nth(i).click()
        q.page.wait_for_load_state()
        assert q.page.url == hrefs[i]
        q.wait("document.querySelectorAll('#timeline rect').length === 4")
        q.wait("document.getElementById('player').readyState >= 1")
        assert abs(q.page.evaluate("document.getElementById('player').duration") - 4.0) < 0.1
        assert q.page.evaluate("document.getElementById('player').error") is None
        q.assert_clean()
        q.page.close()


def test_audio_too_large_to_embed_is_that_files_error(toy_model: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from genre_infer import report
    from genre_infer.cli import main

    big, small = tmp_path / "big.wav", tmp_path / "small.wav"
    _wav(big)
    sf.write(small, tone(16000, 2.0, 110.0), 16000, subtype="PCM_U8")
    monkeypatch.setattr(report, "MAX_EMBED_BYTES", (big.stat().st_size + small.stat().st_size) // 2)
    with pytest.raises(report.ReportError, match="use --html-audio link"):
        report.audio_for_html(big, "embed", tmp_path / "r.html")
    out = tmp_path / "reports"
    r = CliRunner().invoke(main, [str(big), str(small), "--model", str(toy_model), "--html", str(out), "-q"])
    assert r.exit_code == 1 and "big.wav: cannot make plot/report: too large to embed" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "small.html"]
    r = CliRunner().invoke(main, [str(big), "--model", str(toy_model), "--html", str(out / "b.html"),
                                  "--html-audio", "link"])
    assert r.exit_code == 0 and (out / "b.html").exists()
