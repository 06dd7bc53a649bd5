"""Speed and memory of genre-infer, side by side with the straightforward implementation.

    python bench/bench.py                 # everything (makes its inputs once in bench/.cache)
    python bench/bench.py --quick         # skip the 1 h / 3 h memory runs and use 40 songs
    python bench/bench.py --model PATH    # another model
    python bench/bench.py --device cuda   # the network on the GPU (needs onnxruntime-gpu)

Prints a table and writes bench/results.json. Inputs are synthetic (a drum
pattern over chords, stereo 44.1 kHz mp3) so anyone can rerun it; the speed of
decoding and of the network does not depend on what the music is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
SR = 44100


def synth_song(seconds: float, seed: int = 0) -> np.ndarray:
    """Stereo (n, 2) float32: kick/snare/hat at 120 bpm over a chord progression."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    chords = [(220.0, 277.2, 329.6), (196.0, 246.9, 293.7), (174.6, 220.0, 261.6), (196.0, 246.9, 293.7)]
    y = np.zeros(n, dtype=np.float32)
    bar = 2.0
    for i, start in enumerate(np.arange(0, seconds, bar)):
        a, b = int(start * SR), min(int((start + bar) * SR), n)
        for f in chords[i % 4]:
            y[a:b] += 0.08 * np.sin(2 * np.pi * f * t[a:b]).astype(np.float32)
    hit = np.arange(int(0.12 * SR)) / SR
    kick = (0.6 * np.sin(2 * np.pi * 55 * hit) * np.exp(-hit / 0.04)).astype(np.float32)
    snare = (0.3 * rng.standard_normal(len(hit)) * np.exp(-hit / 0.03)).astype(np.float32)
    for k, start in enumerate(np.arange(0, seconds, 0.25)):
        i = int(start * SR)
        src = kick if k % 4 == 0 else snare if k % 4 == 2 else 0.3 * snare[: len(hit) // 4]
        m = min(len(src), n - i)
        y[i : i + m] += src[:m]
    y = np.clip(y, -1, 1)
    return np.stack([y, np.roll(y, 37)], axis=1)


def make_mp3(path: Path, seconds: float, seed: int = 0) -> Path:
    """Write a synthetic stereo mp3 of ``seconds`` in blocks (flat memory)."""
    import soundfile as sf

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    block = synth_song(min(seconds, 240.0), seed)
    tmp = path.with_suffix(".part")
    with sf.SoundFile(tmp, "w", SR, 2, format="MP3") as f:
        left = int(seconds * SR)
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)
    tmp.rename(path)
    return path


def batch_folder(n_songs: int) -> Path:
    """The batch benchmark's folder: ``n_songs`` hard links to one 30-s stereo mp3 (made once, cached)."""
    folder = CACHE / f"batch{n_songs}"
    if not folder.exists():
        folder.mkdir(parents=True)
        src = make_mp3(CACHE / "song-30s.mp3", 30.0, seed=2)
        for i in range(n_songs):
            os.link(src, folder / f"song{i:03d}.mp3")
    return folder


def timed(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    """Median wall time of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def stages(model: str | None, song: Path, device: str = "cpu") -> dict[str, float]:
    """Per-stage warm times on one thread (the network on ``device``), and the whole pipeline."""
    import soundfile as sf

    from genre_infer import audio, features, load_model

    clf = load_model(model, device=device, threads=1)  # type: ignore[arg-type]
    spec = clf.model.features
    y, sr = sf.read(song, dtype="float32", always_2d=True)
    mono = audio.to_mono(y.T)
    z = audio.resample(mono, sr, spec.sr)
    x = features.compute(z, spec)
    from genre_infer.inference import window_logits

    def network() -> tuple[np.ndarray, np.ndarray]:
        return window_logits(clf.model, x)  # whatever the layout, as classify() runs it

    clf.classify(song)  # warm-up
    out = {
        "duration_s": len(mono) / sr,
        "decode_s": timed(lambda: sf.read(song, dtype="float32", always_2d=True)),
        "resample_s": timed(lambda: audio.resample(mono, sr, spec.sr)),
        "features_s": timed(lambda: features.compute(z, spec)),
        "network_s": timed(network),
        "windows": float(len(network()[1])),
        "total_s": timed(lambda: clf.classify(song)),
    }
    out["realtime_x"] = out["duration_s"] / out["total_s"]
    return out


def naive(model: str | None, song: Path) -> dict[str, float]:
    """The notebook way: librosa.load at the model rate, a melgram per window, one call per window."""
    import librosa
    import onnxruntime as ort

    from genre_infer.model import GenreModel

    m = GenreModel(model, device="cpu", threads=1)
    spec = m.features
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(m.path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]  # a sequence model also takes window starts
    stream = names == ["features", "keep", "past", "starts"]  # ... a stream model keep rows and past rows too
    dim = sess.get_inputs()[2].shape[1] if stream else 0

    def run() -> None:
        y, _ = librosa.load(song, sr=spec.sr)
        seg = spec.segment_samples
        hop = int(spec.window_hop_s * spec.sr)
        for start in range(0, max(len(y) - seg, 0) + 1, hop):
            mel = librosa.feature.melspectrogram(y=y[start : start + seg], sr=spec.sr, n_fft=spec.n_fft,
                                                 hop_length=spec.hop_length, n_mels=spec.n_mels)
            x = np.log10(1 + spec.log_scale * mel).T[None, : spec.segment_frames].astype(np.float32)
            feeds = {names[0]: (x - spec.mean) / spec.std}
            if stream:
                feeds.update(keep=np.array([0, x.shape[1]]), past=np.zeros((0, dim), dtype=np.float32),
                             starts=np.zeros(1, dtype=np.int64))
            elif len(names) > 1:
                feeds[names[1]] = np.zeros(1, dtype=np.int64)
            sess.run(None, feeds)

    run()  # warm-up (numba compiles librosa's resampler path on first use)
    return {"total_s": timed(run, repeat=1)}


def cold_start(model: str | None, song: Path, device: str = "cpu") -> float:
    """Median wall time of `genre-infer song.mp3 --device DEVICE` as a fresh process."""
    cmd = [sys.executable, "-m", "genre_infer", str(song), "-q", "--device", device] + (
        ["--model", model] if model else [])
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)  # page cache warm
    return timed(lambda: subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT), repeat=3)


def peak_rss_mb(model: str | None, song: Path, device: str = "cpu") -> float:
    """Peak resident memory of a fresh process classifying ``song``."""
    # VmHWM is the child's own peak; ru_maxrss would include the fork of this (larger) process
    code = (
        "import resource; from genre_infer import load_model; "
        f"load_model({model!r}, device={device!r}).classify({str(song)!r}); "
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]; "
        "print(hwm[0].split()[1] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    return int(out.stdout.strip()) / 1024.0


def batch(model: str | None, folder: Path, jobs: int | str, threads: int | None = None, device: str = "cpu") -> float:
    """Wall time of `genre-infer FOLDER --jobs N [--threads T] --device DEVICE` writing JSONL."""
    cmd = [sys.executable, "-m", "genre_infer", str(folder), "-q", "-f", "jsonl", "-j", str(jobs), "--device", device,
           "-o", str(CACHE / f"batch-{jobs}.jsonl")] + (["--model", model] if model else []) + (
           ["--threads", str(threads)] if threads else [])
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - t


def model_size(model: str | None) -> dict[str, float]:
    from genre_infer.model import resolve_model_path

    path = resolve_model_path(model)
    out = {"size_mb": path.stat().st_size / 1e6}
    try:
        import onnx
        from onnx import numpy_helper

        m = onnx.load(str(path))
        out["parameters"] = float(sum(numpy_helper.to_array(t).size for t in m.graph.initializer))
    except ImportError:
        pass
    return out


def machine(device: str) -> str:
    """The machine in words: architecture, cores, python, and the GPU when the network runs on one."""
    text = f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    if device == "cuda":
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, text=True, check=True)
            text += f", {out.stdout.strip().splitlines()[0]}"
        except (OSError, subprocess.CalledProcessError, IndexError):
            text += ", CUDA"
    import onnxruntime as ort

    return text + f", onnxruntime {ort.__version__}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model name or .onnx path (default: the shipped one)")
    ap.add_argument("--quick", action="store_true", help="skip 1 h/3 h files; 40 songs for the batch run")
    ap.add_argument("--json", default=str(HERE / "results.json"), help="where to write the figures")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="where the network runs (decoding and features stay on the CPU; the naive "
                         "implementation always runs on the CPU)")
    ap.add_argument("--jobs", default="1,2", help="worker counts for the batch run, comma-separated (or auto)")
    ap.add_argument("--songs", type=int, help="songs in the batch run (default 200, 40 with --quick)")
    args = ap.parse_args()
    dev = args.device
    jobs = [j.strip() for j in args.jobs.split(",")]
    if not all(j == "auto" or (j.isdigit() and int(j) > 0) for j in jobs):
        ap.error(f"--jobs: comma-separated positive numbers or auto, not {args.jobs!r}")

    song = make_mp3(CACHE / "song-4min.mp3", 240.0)
    res: dict[str, object] = {"machine": machine(dev), "device": dev}
    res["model"] = model_size(args.model)
    res["stages"] = stages(args.model, song, dev)
    res["naive"] = naive(args.model, song)
    res["cold_start_s"] = cold_start(args.model, song, dev)

    lengths = [180.0] if args.quick else [180.0, 3600.0, 3 * 3600.0]
    res["peak_rss_mb"] = {
        f"{int(s // 60)} min": peak_rss_mb(args.model, make_mp3(CACHE / f"long-{int(s)}s.mp3", s, seed=1), dev)
        for s in lengths
    }
    n_songs = args.songs or (40 if args.quick else 200)
    folder = batch_folder(n_songs)
    res["batch"] = {"songs": n_songs, **{f"jobs{j}_s": batch(args.model, folder, j, device=dev) for j in jobs}}
    if dev == "cpu" and "1" in jobs:
        res["batch"]["jobs1_threads1_s"] = batch(args.model, folder, 1, threads=1)  # type: ignore[index]

    st = res["stages"]
    assert isinstance(st, dict)
    rows = [
        ("model size", f"{res['model']['size_mb']:.2f} MB, {res['model'].get('parameters', float('nan')):,.0f} parameters"),  # type: ignore[index]
        (f"4-min stereo mp3, warm, 1 thread{', network on ' + dev if dev != 'cpu' else ''}", f"{st['total_s']:.3f} s ({st['realtime_x']:.0f}x real time)"),
        ("  decode / resample / features / network",
         f"{st['decode_s']:.3f} / {st['resample_s']:.3f} / {st['features_s']:.3f} / {st['network_s']:.3f} s "
         f"({st['windows']:.0f} windows)"),
        (f"  naive implementation, same input{' (CPU)' if dev != 'cpu' else ''}", f"{res['naive']['total_s']:.3f} s "  # type: ignore[index]
         f"({res['naive']['total_s'] / st['total_s']:.1f}x slower)"),  # type: ignore[index]
        ("cold start `genre-infer song.mp3`", f"{res['cold_start_s']:.2f} s"),
        *((f"peak RSS, {k}", f"{v:.0f} MB") for k, v in res["peak_rss_mb"].items()),  # type: ignore[union-attr]
    ]
    b = res["batch"]
    assert isinstance(b, dict)
    base = b.get(f"jobs{jobs[0]}_s")
    for j in jobs:
        t = b[f"jobs{j}_s"]
        rows.append((f"batch of {n_songs} 30-s songs, --jobs {j}",
                     f"{t:.1f} s ({n_songs / t:.1f} songs/s" + (f", {base / t:.2f}x --jobs {jobs[0]})" if j != jobs[0] else ")")))
    if "jobs1_threads1_s" in b and "2" in jobs:
        rows.append((f"batch of {n_songs}, --jobs 1 --threads 1 / --jobs 2",
                     f"{b['jobs1_threads1_s']:.1f} / {b['jobs2_s']:.1f} s ({b['jobs1_threads1_s'] / b['jobs2_s']:.2f}x; "
                     "--jobs 1 alone already runs the network on every core)"))
    width = max(len(r[0]) for r in rows)
    print(f"genre-infer benchmark ({res['machine']})")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
