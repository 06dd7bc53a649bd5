"""The installed distribution carries the default model and the console script."""

import importlib.metadata as md
import json
import shutil
import subprocess

import pytest


def _dist() -> md.Distribution:
    # an installed wheel has a RECORD; a build's genre_infer.egg-info in the source tree does not
    for dist in md.distributions(name="genre-infer"):
        if dist.read_text("RECORD"):
            return dist
    pytest.skip("genre-infer is not installed (run the README's install command)")


def test_wheel_carries_the_shipped_model() -> None:
    dist = _dist()
    if json.loads(dist.read_text("direct_url.json") or "{}").get("dir_info", {}).get("editable"):
        pytest.skip("an editable install holds no copy of the models (run the README's install command)")
    files = {str(f) for f in (dist.files or [])}
    shipped = {"default.onnx", "fast.onnx", "gtzan-musicnn.onnx", "experts/musicnn-msd-genres.onnx"}
    onnx = {f.split("genre_infer/models/", 1)[1] for f in files if f.endswith(".onnx")}
    assert onnx == shipped, "the wheel must carry exactly the shipped models (and the default's expert)"
    assert "genre_infer/py.typed" in files


def test_runtime_dependencies_are_only_the_four() -> None:
    reqs = _dist().requires or []
    core = sorted(r.split(">")[0].split("=")[0].split("<")[0].strip() for r in reqs if "extra ==" not in r)
    assert core == ["click", "librosa", "numpy", "onnxruntime"]


def test_console_script() -> None:
    _dist()
    exe = shutil.which("genre-infer")
    if exe is None:
        pytest.skip("the genre-infer script is not on PATH")
    r = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("genre-infer ")


def test_wheel_carries_the_licence_with_the_weights_notices() -> None:
    files = [f for f in (_dist().files or []) if f.name.startswith("LICENSE")]
    assert files, "no LICENSE in the installed distribution"
    text = files[0].read_text()
    assert text.startswith("MIT License")
    for notice in ("ISC License", "Jordi Pons", "Copyright (c) 2022 Florian Schmid", "CC BY 4.0"):
        assert notice in text, notice
