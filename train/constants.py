"""Defaults and fixed names of the training wing, in one place."""

from __future__ import annotations

from pathlib import Path

#: Repository root (the folder that holds ``train/`` and ``genre_infer/``).
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Whole-track feature cache (gitignored).
CACHE_DIR = REPO_ROOT / ".cache" / "features"

#: Run folders and the cross-run results table (gitignored).
RUNS_DIR = REPO_ROOT / "runs"
RESULTS_CSV = "results.csv"

#: Environment variable that overrides torch's CPU thread count (default: every core).
#: One thread is faster when other processes already load the CPU.
THREADS_ENV = "TRAIN_THREADS"

#: Fixed seed for splits, initialisation, sampling and augmentation.
SEED = 0

#: Split names; ``extra`` clips are for training only.
SPLITS = ("train", "valid", "test", "extra")
TRAIN_SPLITS = ("train", "extra")

#: Fractions used when no split lists are given (stratified by genre, by track).
VALID_FRACTION = 0.2
TEST_FRACTION = 0.2

#: Front-end defaults (musicnn's: 16 kHz, 512/256, 96 mel bands, log10(1 + 10000 S)).
SAMPLE_RATE = 16000
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
LOG_SCALE = 10000.0
N_MFCC = 20

#: Segment length in seconds -> frames (``1 + seconds * sr // hop``); hop between windows.
SEGMENT_FRAMES = {1.0: 63, 3.0: 187}
DEFAULT_SEGMENT_S = 3.0
WINDOW_HOP_S = 1.0

#: Training-loop defaults.
EPOCHS = 40
PATIENCE = 8
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
CROPS_PER_TRACK = 8
MIXUP_ALPHA = 0.2
GAIN_DB = 6.0
FREQ_MASK = 12
TIME_MASK = 20

#: Export: parity tolerance (onnxruntime vs torch logits) and ONNX opset.
PARITY_TOL = 1e-4
OPSET = 17

#: Per-clip provenance table read when present in the data root.
SOURCES_FILE = "sources.tsv"
