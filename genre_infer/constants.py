"""Constants shared by the run-time package and the training wing.

Feature parameters do *not* live here: they travel in each model's ONNX
metadata (see :mod:`genre_infer.model`). What lives here is the contract
around that metadata and the few settings that belong to the tool itself.
"""

from __future__ import annotations

#: Key of the ONNX ``metadata_props`` entry that holds our JSON metadata.
METADATA_KEY = "genre_infer"

#: Version of the metadata layout written by ``train/`` and read here.
#: A model whose ``format_version`` is newer than this is refused.
#: 1: windowed networks; 2: adds fully convolutional "sequence" networks; 3: adds "stream"
#: networks (sequence networks that hand their frame embeddings on to the next call);
#: 4: adds loudness normalisation (``features.level_db``); 5: adds smoothing of the timeline
#: (``timeline``); 6: adds EfficientAT's front end (``features.mel_scale``, ``win_length``,
#: ``symmetric_window``, ``pad_mode``, ``preemphasis``, ``cutoff_hz``; the ``ln`` compression) and
#: ``network.chunk_frames``, and ``experts`` (networks whose logits are added to the model's).
METADATA_FORMAT_VERSION = 6

#: Version of the JSON/JSONL/CSV output schema (``schema_version`` field).
OUTPUT_SCHEMA_VERSION = 1

#: File name stem of the model that ships in the wheel.
DEFAULT_MODEL_NAME = "default"

#: Extensions picked up when a folder is given on the command line.
AUDIO_EXTENSIONS = frozenset(
    {
        ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3",
        ".aif", ".aiff", ".au", ".m4a", ".aac", ".mp4", ".webm", ".wma", ".mka",
    }
)

#: Extensions decoded by libsndfile (through soundfile) without ffmpeg.
SNDFILE_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au"}
)

#: Shortest input we classify, in seconds. Shorter input is refused.
MIN_DURATION_S = 1.0

#: Peak absolute amplitude at or below which a signal counts as silent (-80 dBFS).
SILENCE_PEAK = 1e-4

#: Peak absolute amplitude above which float samples are refused as not audio (+60 dBFS):
#: float files may exceed 1.0 a little, never by a factor of a thousand.
MAX_PEAK = 1000.0

#: Timeline resolution in seconds (one row per second).
TIMELINE_STEP_S = 1.0

#: Sections shorter than this are merged into a neighbour.
MIN_SECTION_S = 4.0

#: Half-width (in timeline steps) of the mode filter that smooths the winning genre.
SMOOTHING_RADIUS = 2

#: Seconds of audio decoded per block: long files never sit in memory whole.
DECODE_BLOCK_S = 30.0

#: Most samples (frames x channels) decoded in one block, whatever the rate and channel count
#: a header claims (16 MB of float32).
MAX_DECODE_BLOCK_SAMPLES = 1 << 22

#: Input sample rates accepted (Hz), for files and arrays: outside them a header or a caller
#: is not describing audio (a WAV claiming 1 Hz would take 16000x as many samples once
#: resampled; ``sr=10**18`` would never finish resampling).
MIN_INPUT_SR = 1000
MAX_INPUT_SR = 768000

#: Most onnxruntime threads one network may be given (``threads=``, ``--threads``): more is no
#: thread count but a typo, and onnxruntime would try to start them all (10**5 ran for minutes;
#: 10**9 failed as "std::bad_alloc").
MAX_THREADS = 256

#: Segments per onnxruntime call. Small on purpose: the default network's activations take
#: about 70 MB per 3-s window, so 64 windows a call peaked at 1.8 GB; 4 costs no speed.
BATCH_SIZE = 4

#: Frames per call of a sequence or stream network: window starts spanned by a sequence call
#: (plus one window and the context on each side), new frames embedded by a stream call (plus
#: the context): about 8 s at 16 kHz / 256-sample hop. Memory stays flat however long the file.
#: Default model, 3-min mp3, one thread (time / peak RSS): stream layout 3.07 s / 215 MB with
#: 384, 2.77 s / 224 MB with 512, 2.59 s / 265 MB with 768, 2.48 s / 300 MB with 1024; the
#: sequence layout needed 3.10 s / 291 MB with 512 (it re-embeds a window and the context per call).
SEQUENCE_CHUNK_FRAMES = 512

#: Loudness normalisation (models whose features set ``level_db``): the signal's gated RMS
#: level is measured over blocks of LEVEL_BLOCK_S seconds (each block's DC removed), ignoring
#: blocks below LEVEL_ABS_GATE_DB (silence) and blocks more than LEVEL_REL_GATE_DB below the
#: mean of the rest (R128-style; R128 itself gates at -10 LU over overlapping K-weighted
#: blocks), and the signal is scaled to the model's level, by at most LEVEL_MAX_BOOST_DB up
#: and LEVEL_MAX_CUT_DB down.
LEVEL_BLOCK_S = 0.4
LEVEL_ABS_GATE_DB = -70.0
LEVEL_REL_GATE_DB = -20.0
LEVEL_MAX_BOOST_DB = 30.0
LEVEL_MAX_CUT_DB = 20.0

#: Files up to this long are decoded once and kept in memory while their level is measured
#: (about 38 MB at 16 kHz); longer ones are decoded twice, so memory stays flat.
LEVEL_KEEP_S = 600.0
