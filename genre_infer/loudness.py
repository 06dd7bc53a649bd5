"""Loudness normalisation: a song's gated RMS level, and the gain that brings it to the model's.

GTZAN's clips, and so the network's training, span about 13 dB of level (10th to 90th
percentile), and musicnn's compression ``log10(1 + 10000 * S)`` is not level-invariant:
the validation model lost half its accuracy on clips 24 dB quieter. Models whose
features set ``level_db`` hear every signal at that level. The level is measured as
EBU R128 gates it (without its K-weighting, which a genre model does not need).
"""

from __future__ import annotations

import numpy as np

from .constants import LEVEL_ABS_GATE_DB, LEVEL_BLOCK_S, LEVEL_MAX_BOOST_DB, LEVEL_MAX_CUT_DB, LEVEL_REL_GATE_DB

__all__ = ["LevelMeter", "gated_level_db", "gain_to"]


class LevelMeter:
    """Gated RMS level of a signal pushed block by block (any block lengths).

    Parameters
    ----------
    sr : int
        Sample rate of the blocks.
    """

    def __init__(self, sr: int) -> None:
        self.n = max(1, int(round(LEVEL_BLOCK_S * sr)))
        self._rest = np.zeros(0, dtype=np.float64)
        self._powers: list[np.ndarray] = []

    def push(self, y: np.ndarray) -> None:
        """Add the next samples."""
        x = np.concatenate([self._rest, np.asarray(y, dtype=np.float64)])
        k = len(x) // self.n
        if k:
            self._powers.append(np.mean(np.square(x[: k * self.n].reshape(k, self.n)), axis=1))
        self._rest = x[k * self.n :]

    def level_db(self) -> float | None:
        """The gated level in dBFS (``None`` when nothing is above the silence gate)."""
        p = np.concatenate(self._powers) if self._powers else np.zeros(0)
        if not len(p) and len(self._rest):  # shorter than one block: the whole signal is the block
            p = np.array([np.mean(np.square(self._rest))])
        p = p[p > 10.0 ** (LEVEL_ABS_GATE_DB / 10.0)]
        if not len(p):
            return None
        p = p[p > p.mean() * 10.0 ** (LEVEL_REL_GATE_DB / 10.0)]
        return float(10.0 * np.log10(p.mean()))


def gated_level_db(y: np.ndarray, sr: int) -> float | None:
    """Gated RMS level of a whole signal in dBFS (see :class:`LevelMeter`)."""
    meter = LevelMeter(sr)
    meter.push(y)
    return meter.level_db()


def gain_to(level_db: float | None, target_db: float) -> float:
    """Linear gain that brings a signal at ``level_db`` to ``target_db`` (1 for silence),
    limited to :data:`~genre_infer.constants.LEVEL_MAX_BOOST_DB` up and
    :data:`~genre_infer.constants.LEVEL_MAX_CUT_DB` down."""
    if level_db is None:
        return 1.0
    db = min(max(target_db - level_db, -LEVEL_MAX_CUT_DB), LEVEL_MAX_BOOST_DB)
    return float(10.0 ** (db / 20.0))
