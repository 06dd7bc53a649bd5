"""Loudness normalisation: a song's gated RMS level, and the gain that brings it to the model's.

GTZAN's clips, and so the network's training, span about 13 dB of level (10th to 90th
percentile), and musicnn's compression ``log10(1 + 10000 * S)`` is not level-invariant:
the validation model lost half its accuracy on clips 24 dB quieter. Models whose
features set ``level_db`` hear every signal at that level (within the gain limits).

The level is an R128-style gated RMS: the power of each 0.4-s block (its mean removed:
a DC offset is not loudness; blocks do not overlap), blocks below -70 dBFS dropped as
silence, then blocks more than 20 dB below the mean of the rest dropped too (R128 itself
uses -10 LU, 75% overlap and K-weighting; a genre model needs none of that precision).
A signal with no block above -70 dBFS is measured ungated. Non-finite samples are ignored.
"""

from __future__ import annotations

import numpy as np

from .constants import LEVEL_ABS_GATE_DB, LEVEL_BLOCK_S, LEVEL_MAX_BOOST_DB, LEVEL_MAX_CUT_DB, LEVEL_REL_GATE_DB

__all__ = ["LevelMeter", "gated_level_db", "gain_to", "to_level", "LEVEL_METER"]

#: Names this definition of the level (caches of level-normalised features key on it).
LEVEL_METER = "gated-rms-v2"


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
        """Add the next samples (in slices, so a long array costs little extra memory)."""
        y = np.asarray(y)
        step = 256 * self.n
        for lo in range(0, len(y), step):
            x = np.concatenate([self._rest, y[lo : lo + step].astype(np.float64)])
            k = len(x) // self.n
            if k:
                with np.errstate(invalid="ignore", over="ignore"):  # non-finite blocks are dropped later
                    self._powers.append(x[: k * self.n].reshape(k, self.n).var(axis=1))
            self._rest = x[k * self.n :]

    def level_db(self) -> float | None:
        """The gated level in dBFS (``None`` when nothing is above the silence gate)."""
        p = np.concatenate(self._powers) if self._powers else np.zeros(0)
        if not len(p) and len(self._rest):  # shorter than one block: the whole signal is the block
            with np.errstate(invalid="ignore", over="ignore"):
                p = np.array([np.var(self._rest)])
        p = p[np.isfinite(p)]
        loud = p[p > 10.0 ** (LEVEL_ABS_GATE_DB / 10.0)]
        if not len(loud):  # nothing above the silence gate: measured ungated (the gain limit applies)
            return float(10.0 * np.log10(p.mean())) if len(p) and p.mean() > 0 else None
        loud = loud[loud > loud.mean() * 10.0 ** (LEVEL_REL_GATE_DB / 10.0)]
        return float(10.0 * np.log10(loud.mean()))


def gated_level_db(y: np.ndarray, sr: int) -> float | None:
    """Gated RMS level of a whole signal in dBFS (see :class:`LevelMeter`)."""
    meter = LevelMeter(sr)
    meter.push(y)
    return meter.level_db()


def gain_to(level_db: float | None, target_db: float) -> float:
    """Linear gain that brings a signal at ``level_db`` to ``target_db`` (1 for silence),
    limited to :data:`~genre_infer.constants.LEVEL_MAX_BOOST_DB` up and
    :data:`~genre_infer.constants.LEVEL_MAX_CUT_DB` down."""
    if level_db is None or not np.isfinite(level_db):
        return 1.0
    db = min(max(target_db - level_db, -LEVEL_MAX_CUT_DB), LEVEL_MAX_BOOST_DB)
    return float(10.0 ** (db / 20.0))


def to_level(y: np.ndarray, sr: int, level_db: float | None) -> np.ndarray:
    """A whole signal scaled to ``level_db`` (unchanged for ``None``): what the runtime does
    block by block, for code that holds whole clips (training, calibration)."""
    if level_db is None:
        return y
    return (y * np.float32(gain_to(gated_level_db(y, sr), level_db))).astype(np.float32, copy=False)
