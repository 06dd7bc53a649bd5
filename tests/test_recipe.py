"""`python -m train build RECIPE`: recipe files, the builder registry, the shared tail, the rebuild
of the shipped model, and a `--help` that imports nothing heavy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
MUSICNN_RECIPE = REPO / "train" / "recipes" / "gtzan-musicnn.toml"
GTZAN = REPO.parent / "shared" / "data" / "gtzan"
SHIPPED = REPO / "exported" / "gtzan-musicnn.onnx"
HEAVY = ("torch", "sklearn", "numpy", "onnx", "onnxruntime", "librosa", "scipy", "genre_infer")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _modules_after(argv: list[str]) -> tuple[str, list[str]]:
    """Run ``python -m train *argv`` in a fresh interpreter; its output and the heavy modules it imported."""
    code = (
        "import io, json, runpy, sys, contextlib\n"
        f"sys.argv = ['python -m train', *{argv!r}]\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        "        runpy.run_module('train', run_name='__main__', alter_sys=True)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(json.dumps({'out': out.getvalue(), 'heavy': heavy}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc["out"], doc["heavy"]


@pytest.mark.parametrize("argv", [["--help"], ["build", "--help"], ["fit", "--help"], ["search", "--help"]])
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    out, heavy = _modules_after(argv)
    assert "usage: python -m train" in out
    assert heavy == [], f"`python -m train {' '.join(argv)}` imported {heavy}"


def test_help_lists_build_and_the_experiments() -> None:
    out, _ = _modules_after(["--help"])
    for command in ("build", "transfer", "level", "smoothing", "quantize", "distill", "ensemble", "finetune",
                    "backbones", "rebuild", "fold-experts", "audioset-round2"):
        assert command in out


def test_experiments_run_as_modules() -> None:
    """Each experiment is runnable as ``python -m train.experiments.<name>`` (its own --help; one
    interpreter for all eight, as torch is slow to import)."""
    names = ["quantize", "rebuild", "finetune", "ensemble", "distill", "backbones", "fold_experts", "audioset_round2"]
    code = (
        "import contextlib, io, runpy, sys\n"
        f"for name in {names!r}:\n"
        "    sys.argv = [name, '--help']\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        try:\n"
        "            runpy.run_module(f'train.experiments.{name}', run_name='__main__', alter_sys=True)\n"
        "        except SystemExit as e:\n"
        "            assert e.code in (0, None), (name, e.code)\n"
        "    assert 'usage:' in out.getvalue(), name\n"
        "    print(name, 'ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == [w for n in names for w in (n, "ok")]


# --- the recipe file and the registry ---------------------------------------------------------

def test_default_recipe_reads() -> None:
    from train.recipe import load_recipe

    r = load_recipe(MUSICNN_RECIPE)
    assert (r.kind, r.name, r.version) == ("musicnn-transfer", "gtzan-musicnn", "1.6.0")
    assert r.data == REPO / "../shared/data/gtzan" and r.read_test and r.level and r.smoothing
    assert r.uncertain_below == 0.35 and r.max_ece == 0.05 and r.smoothing_grid[2] == 0.1
    assert r.sections["head"]["kind"] == "probe" and r.sections["augment"]["lowpass_p"] == 0.5


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.toml"
    p.write_text(text)
    return p


BASE = '[model]\nkind = "musicnn-transfer"\nname = "m"\n[data]\nroot = "d"\n'


@pytest.mark.parametrize("text, message", [
    ('[model]\nkind = "musicnn-transfer"\n[data]\nroot = "d"\n', "needs name"),
    ('[model]\nkind = "no-such-kind"\nname = "m"\n[data]\nroot = "d"\n', "unknown model kind 'no-such-kind'"),
    (BASE + "[level]\nenabeld = true\n", "unknown key(s) in [level]: enabeld"),
    (BASE + "[calibration]\nuncertain_below = \"high\"\n", "should be a float"),
    (BASE + "[level]\nenabled = 1\n", "should be a bool"),
    (BASE + "[smoothing]\ngrid = [0.1, 2.0]\n", "grid must be a list"),
    (BASE + "[smoothing]\nmax_ece = \"low\"\n", "max_ece must be a positive number"),
    ("[model\n", "not valid TOML"),
])
def test_bad_recipes_are_refused(tmp_path: Path, text: str, message: str) -> None:
    from train.recipe import RecipeError, load_recipe

    with pytest.raises(RecipeError, match=re.escape(message)):
        load_recipe(_write(tmp_path, text))


def test_a_kinds_own_section_is_checked(tmp_path: Path) -> None:
    from train.recipe import RecipeError, load_recipe, section
    from train.transfer import HEAD

    r = load_recipe(_write(tmp_path, BASE + "[head]\nkind = \"mlp\"\nlr = 1\nlayers = 3\n"))
    with pytest.raises(RecipeError, match="unknown key"):
        section(r, "head", HEAD)
    r = load_recipe(_write(tmp_path, BASE + "[head]\nkind = \"mlp\"\nlr = 1\n"))
    h = section(r, "head", HEAD)
    assert h["kind"] == "mlp" and h["lr"] == 1.0 and isinstance(h["lr"], float) and h["dropout"] == HEAD["dropout"]


def test_register_builder_dispatches_by_kind(tmp_path: Path) -> None:
    from train import recipe

    seen = []

    def fake(ctx: recipe.BuildContext) -> recipe.Built:
        seen.append(ctx)
        return recipe.Built(ctx.work / "m.onnx", ctx.work / "v.onnx")

    recipe.register_builder("test-kind", fake)
    try:
        r = recipe.load_recipe(_write(tmp_path, '[model]\nkind = "test-kind"\nname = "m"\n[data]\nroot = "d"\n'))
        assert recipe.builder(r.kind) is fake
        recipe.register_builder("lazy-kind", "train.transfer:build")
        from train.transfer import build
        assert recipe.builder("lazy-kind") is build
    finally:
        recipe._BUILDERS.pop("test-kind", None)
        recipe._BUILDERS.pop("lazy-kind", None)
    with pytest.raises(recipe.RecipeError, match="unknown model kind"):
        recipe.builder("test-kind")


def test_split_warnings_name_the_small_genres(tmp_path: Path) -> None:
    from test_train_e2e import make_tree

    from train.recipe import split_warnings

    root = make_tree(tmp_path / "data", per_genre=6)  # 2 valid and 1 test clip per genre
    lines = split_warnings(root, read_test=True)
    assert len(lines) == 2
    assert lines[0].startswith("the valid split has fewer than 5 tracks of 3 of 3 genres (")
    assert "chords 2" in lines[0] and "clicks 1" in lines[1] and "test split" in lines[1]
    assert split_warnings(root, read_test=False, min_tracks=2) == []


def test_build_refuses_a_missing_data_folder(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "train", "build", str(MUSICNN_RECIPE), "--out",
                           str(tmp_path / "m.onnx"), "--data", str(tmp_path / "nowhere")], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: ") and "no such data folder" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "m.onnx").exists()


# --- the default recipe on a user's own tree ----------------------------------------------------

@pytest.mark.slow
def test_build_on_a_users_tree_gets_the_extras(tmp_path: Path) -> None:
    """The same command on a small folder-per-genre tree: a model of its genres with level,
    calibration and measured figures, and a warning that the splits are small."""
    pytest.importorskip("torch")
    from test_train_e2e import GENRES, make_tree

    data = make_tree(tmp_path / "mine", per_genre=6)
    out = tmp_path / "mine.onnx"
    proc = subprocess.run([sys.executable, "-m", "train", "build", str(MUSICNN_RECIPE), "--data", str(data),
                           "--out", str(out), "--work", str(tmp_path / "work")], cwd=REPO,
                          env={**_env(), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0 and "pip" in proc.stderr and "musicnn" in proc.stderr:
        pytest.skip("the musicnn wheel could not be fetched from PyPI")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning: the valid split has fewer than 5 tracks of 3 of 3 genres" in proc.stderr
    import genre_infer

    clf = genre_infer.load_model(out, device="cpu")
    info = clf.model.info
    assert tuple(clf.labels) == tuple(sorted(GENRES))
    assert (clf.name, clf.version) == ("mine-musicnn-transfer", "0.1.0")
    assert info.features.level_db is not None and info.network.layout == "stream"
    assert 0.05 <= info.temperature <= 20 and info.uncertain_below == 0.35  # fitted, within its clip
    metrics = info.extra["metrics"]
    assert metrics["valid"]["tracks"] == 6 and metrics["test"]["tracks"] == 3
    assert "built by python -m train build" in metrics["history"][-1]["note"]
    report = json.loads((tmp_path / "work" / "build.json").read_text())
    assert report["warnings"] and report["level_db"] == info.features.level_db
    assert (tmp_path / "work" / "smoothing.md").is_file()
    r = clf.classify(str(data / "audio" / "chords" / "chords.00.wav"))
    assert r.genre in GENRES


def _assert_close(ours: object, theirs: object, where: str) -> None:
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and set(ours) == set(theirs), where
        for k in theirs:
            _assert_close(ours[k], theirs[k], f"{where}.{k}")
    else:
        assert ours == pytest.approx(theirs, rel=1e-9), where


# --- the shipped model, rebuilt -------------------------------------------------------------------

@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not GTZAN.is_dir():
        pytest.skip("../shared/data/gtzan is absent")
    pytest.importorskip("torch")
    work = tmp_path_factory.mktemp("rebuild")
    out = work / "default.onnx"
    proc = subprocess.run([sys.executable, "-m", "train", "build", str(MUSICNN_RECIPE), "--out", str(out),
                           "--work", str(work / "work")], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=3600)
    if proc.returncode != 0 and "pip" in proc.stderr and "musicnn" in proc.stderr:
        pytest.skip("the musicnn wheel could not be fetched from PyPI")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, work / "work"


@pytest.mark.slow
def test_rebuild_gives_the_shipped_logits(rebuilt: tuple[Path, Path]) -> None:
    """`python -m train build train/recipes/gtzan-musicnn.toml` reproduces exported/gtzan-musicnn.onnx: the same
    logits within 1e-5 on every validation clip, run as genre-infer runs them."""
    import genre_infer
    from genre_infer import audio

    from train.data import assign_splits, discover

    ours, theirs = genre_infer.load_model(rebuilt[0], device="cpu"), genre_infer.load_model(SHIPPED, device="cpu")
    tracks, _ = discover(GTZAN)
    assign_splits(tracks, GTZAN)
    valid = [t for t in tracks if t.split == "valid"]
    assert len(valid) == 59
    worst = 0.0
    for t in valid:
        y = audio.load(t.path, ours.model.features.sr)
        a, b = ours.analyse([y]), theirs.analyse([y])
        assert a.logits.shape == b.logits.shape
        worst = max(worst, float(np.abs(a.logits - b.logits).max()))
    assert worst < 1e-5, f"max abs logit difference {worst:.2e} on the validation clips"


@pytest.mark.slow
def test_rebuild_gives_the_shipped_parameters_and_figures(rebuilt: tuple[Path, Path]) -> None:
    """Every stage's output as the shipped file holds it: temperature, level, smoothing, the head's
    configuration and epochs, and the measured figures in the metadata."""
    from genre_infer.model import GenreModel

    ours, theirs = GenreModel(rebuilt[0], device="cpu").info, GenreModel(SHIPPED, device="cpu").info
    assert (ours.name, ours.version, ours.labels) == (theirs.name, theirs.version, theirs.labels)
    assert ours.features == theirs.features and ours.network == theirs.network  # level_db -16.93 included
    assert ours.temperature == pytest.approx(theirs.temperature, abs=1e-6)
    assert ours.uncertain_below == theirs.uncertain_below and ours.timeline == theirs.timeline
    t_ours, t_theirs = ours.extra["training"], theirs.extra["training"]
    for key in ("data", "split", "recipe", "pretrained", "config", "augmented", "epochs", "seed"):
        assert t_ours[key] == t_theirs[key], key
    assert t_ours["timeline"]["valid"] == t_theirs["timeline"]["valid"]
    m_ours, m_theirs = ours.extra["metrics"], theirs.extra["metrics"]
    for key in ("valid", "test", "cv"):
        _assert_close(m_ours[key], m_theirs[key], key)
    for key, value in m_theirs["calibration"].items():  # the shipped file rounds some to 3 or 4 digits
        assert m_ours["calibration"][key] == (pytest.approx(value, abs=6e-4) if isinstance(value, float) else value), key
    assert ours.extra["parameters"] == theirs.extra["parameters"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fast", "default"])
def test_audioset_recipes_rebuild_the_shipped_models(tmp_path: Path, name: str) -> None:
    """`python -m train build train/recipes/{fast,default}.toml` reproduces exported/{fast,default}.onnx
    (and the default's expert): logits within 1e-5 on every validation clip, the same temperature,
    level and smoothing."""
    weights = REPO.parent / "shared" / "weights" / "efficientat" / "mn04_as.npz"
    if not GTZAN.is_dir() or not weights.is_file():
        pytest.skip("../shared/data/gtzan or the EfficientAT weights are absent")
    pytest.importorskip("torch")
    import genre_infer
    from genre_infer import audio

    out = tmp_path / f"{name}.onnx"
    proc = subprocess.run([sys.executable, "-m", "train", "build", str(REPO / "train" / "recipes" / f"{name}.toml"),
                           "--out", str(out), "--work", str(tmp_path / "work")], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0 and "pip" in proc.stderr and "musicnn" in proc.stderr:
        pytest.skip("the musicnn wheel could not be fetched from PyPI")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours = genre_infer.load_model(out, device="cpu")
    theirs = genre_infer.load_model(REPO / "exported" / f"{name}.onnx", device="cpu")
    a, b = ours.model.info, theirs.model.info
    assert (a.name, a.version, a.labels, a.features, a.network) == (b.name, b.version, b.labels, b.features, b.network)
    assert a.temperature == pytest.approx(b.temperature, abs=1e-6) and a.timeline == b.timeline
    assert len(a.experts) == len(b.experts) == (name == "default")
    assert all(np.allclose(x.weights, y.weights, atol=1e-6) for x, y in zip(a.experts, b.experts))
    worst = 0.0
    for rel in (GTZAN / "valid.txt").read_text().split():
        y = audio.load(GTZAN / rel, a.features.sr)
        worst = max(worst, float(np.abs(ours.analyse([y]).logits - theirs.analyse([y]).logits).max()))
    assert worst < 1e-5, f"max abs logit difference {worst:.2e} on the validation clips"
