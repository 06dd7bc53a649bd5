"""Copies the shipped model from exported/ into the package at build time.

exported/ is the one home of the trained models (with their model card); the
wheel must carry the default one so `genre-infer song.wav` works right after
`pip install`. Everything else is declared in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = ["default.onnx", "fast.onnx", "gtzan-musicnn.onnx", "experts/musicnn-msd-genres.onnx"]


class BuildPyWithModel(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "genre_infer" / "models"
        target.mkdir(parents=True, exist_ok=True)
        for name in SHIPPED:
            src = HERE / "exported" / name
            if not src.is_file():
                raise SystemExit(f"missing {src}: the wheel must carry the shipped models")
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / name)


setup(cmdclass={"build_py": BuildPyWithModel})
