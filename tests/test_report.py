"""Timeline plots and the listen-along HTML report."""

import json
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from genre_infer import load_model
from genre_infer.cli import main
from genre_infer.report import _png, display_melgram, html_report


def run(*args: object) -> "object":
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def page_data(page: str) -> dict:
    m = re.search(r'<script id="genre-data" type="application/json">(.*?)</script>', page, re.S)
    assert m, "the report must embed its data"
    return json.loads(m.group(1))


def test_display_melgram_shape(audio_dir: Path) -> None:
    mel = display_melgram(audio_dir / "change.wav")
    assert mel.shape[0] == 64 and 195 <= mel.shape[1] <= 215  # about 10 columns per second, 20 s
    low, high = mel[:, :90], mel[:, 110:]
    assert low[:16].mean() > low[48:].mean() and high[48:].mean() > low[48:].mean()


def test_png_encoder_writes_a_valid_image() -> None:
    data = _png(np.random.default_rng(0).normal(size=(64, 30)).astype(np.float32))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (30, 64)


@pytest.mark.parametrize("ext", [".png", ".svg", ".pdf"])
def test_plot_files(toy_model: Path, audio_dir: Path, tmp_path: Path, ext: str) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / f"plot{ext}"
    r = run(audio_dir / "change.wav", "--model", toy_model, "--plot", out, "-q")
    assert r.exit_code == 0, r.stderr
    assert out.stat().st_size > 5000
    if ext == ".png":
        import matplotlib.image as mpimg

        img = mpimg.imread(out)
        assert img.shape[1] == 1320 and img.shape[0] == 660  # 12 x 6 in at 110 dpi
        assert img[..., :3].std() > 0.1, "the plot must not be blank"
    if ext == ".svg":
        text = out.read_text()
        assert "change.wav" in text or "<svg" in text


def test_plot_api_returns_a_figure(toy_model: Path, audio_dir: Path) -> None:
    pytest.importorskip("matplotlib")
    from genre_infer.report import plot_timeline

    result = load_model(toy_model).classify(audio_dir / "change.wav")
    fig = plot_timeline(result)
    assert len(fig.axes) == 3 and "low" in fig.axes[0].get_title(loc="left")


def test_plot_without_matplotlib_is_one_clear_line(toy_model: Path, audio_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    r = run(audio_dir / "low.wav", "--model", toy_model, "--plot", tmp_path / "x.png")
    assert r.exit_code == 2 and "pip install 'genre-infer[plot]'" in r.stderr
    assert r.stderr.count("\n") == 1


def test_html_data_matches_json_output(toy_model: Path, audio_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    r = run(audio_dir / "change.wav", "--model", toy_model, "--html", out, "-f", "json", "-k", "2")
    assert r.exit_code == 0, r.stderr
    page = out.read_text()
    data = page_data(page)
    doc = json.loads(r.stdout)["results"][0]
    assert data["timeline"] == doc["timeline"] and data["sections"] == doc["sections"]
    assert data["probabilities"] == doc["probabilities"] and data["genre"] == doc["genre"]
    assert 'src="data:audio/wav;base64,' in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page


def test_html_link_mode_and_index_for_many(toy_model: Path, audio_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    r = run(audio_dir / "low.wav", audio_dir / "high.flac", "--model", toy_model, "--html", out,
            "--html-audio", "link", "-q")
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["high.html", "index.html", "low.html"]
    page = (out / "low.html").read_text()
    m = re.search(r'<audio id="player" controls preload="auto" src="([^"]+)"', page)
    assert m and (out / m.group(1)).resolve() == (audio_dir / "low.wav").resolve()
    index = (out / "index.html").read_text()
    assert 'href="low.html"' in index and 'href="high.html"' in index


def test_html_api_for_an_array(toy_model: Path) -> None:
    from signals import tone

    y = tone(16000, 5.0)
    result = load_model(toy_model).classify(y, sr=16000)
    page = html_report(result, audio=y, sr=16000)
    assert page_data(page)["genre"] == "low" and page.startswith("<!DOCTYPE html>")


def test_result_plot_returns_a_figure_or_saves_it(toy_model: Path, audio_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from signals import tone

    result = load_model(toy_model).classify(audio_dir / "change.wav")
    fig = result.plot()
    assert len(fig.axes) == 3 and "change.wav" in fig.axes[0].get_title(loc="left")
    fig = result.plot(tmp_path / "change.svg")
    assert (tmp_path / "change.svg").read_text().lstrip().startswith("<?xml") and len(fig.axes) == 3
    y = tone(16000, 5.0)
    from_array = load_model(toy_model).classify(y, sr=16000)
    with pytest.raises(ValueError, match="audio"):
        from_array.plot()
    from_array.plot(tmp_path / "array.png", audio=y, sr=16000)
    assert (tmp_path / "array.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_result_save_html(toy_model: Path, audio_dir: Path, tmp_path: Path) -> None:
    from signals import tone

    result = load_model(toy_model).classify(audio_dir / "change.wav")
    page = result.save_html(tmp_path / "embed.html").read_text()
    assert page_data(page)["timeline"] == result.to_dict()["timeline"] and 'src="data:audio/wav;base64,' in page
    (tmp_path / "sub").mkdir()
    page = result.save_html(tmp_path / "sub" / "link.html", audio="link").read_text()
    m = re.search(r'<audio id="player" controls preload="auto" src="([^"]+)"', page)
    assert m and (tmp_path / "sub" / m.group(1)).resolve() == (audio_dir / "change.wav").resolve()
    y = tone(16000, 5.0)
    from_array = load_model(toy_model).classify(y, sr=16000)
    with pytest.raises(ValueError, match="audio='none'"):
        from_array.save_html(tmp_path / "array.html")
    page = from_array.save_html(tmp_path / "array.html", audio="none", audio_source=y, sr=16000).read_text()
    assert page_data(page)["genre"] == "low" and 'src=""' in page
