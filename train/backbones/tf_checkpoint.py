"""Read TensorFlow checkpoints without TensorFlow, and convert musicnn's weights.

The pretrained weights come from the ``musicnn`` wheel on PyPI (ISC licence;
``pip download --no-deps musicnn==0.1.0``), which ships TensorFlow v1
checkpoints. A checkpoint is a "tensor bundle": an ``.index`` file (a LevelDB
SSTable mapping variable names to BundleEntryProto records) and a ``.data``
file with the raw tensor bytes. Both formats are small enough to read with
the standard library and numpy, so conversion needs no TensorFlow.

    python -m train pretrained --wheel musicnn-0.1.0-py3-none-any.whl --model MSD_musicnn \\
        --out .cache/pretrained/msd_musicnn.pt

Conversion fails loudly when any variable is missing or has the wrong shape:
musicnn's own extractor silently keeps random weights when a checkpoint fails
to load, and a port must not repeat that.
"""

from __future__ import annotations

import argparse
import struct
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .musicnn import Musicnn

__all__ = ["read_checkpoint", "musicnn_state_dict", "load_musicnn", "convert"]

# TensorFlow DataType enum values we can meet in these checkpoints.
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 19: np.float16}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """Decode a protobuf message into (field number, wire type, value) triples."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((field, wire, value))
        elif wire == 2:
            n, pos = _varint(buf, pos)
            out.append((field, wire, buf[pos : pos + n]))
            pos += n
        elif wire == 5:
            out.append((field, wire, struct.unpack("<I", buf[pos : pos + 4])[0]))
            pos += 4
        elif wire == 1:
            out.append((field, wire, struct.unpack("<Q", buf[pos : pos + 8])[0]))
            pos += 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def _block_entries(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """Entries of one SSTable block (prefix-compressed keys, restart array at the end)."""
    block = data[offset : offset + size]
    if data[offset + size] != 0:
        raise ValueError("compressed SSTable blocks are not supported")
    n_restarts = struct.unpack("<I", block[-4:])[0]
    end = len(block) - 4 - 4 * n_restarts
    entries: list[tuple[bytes, bytes]] = []
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def _index_entries(index: bytes) -> list[tuple[bytes, bytes]]:
    footer = index[-48:]
    if struct.unpack("<Q", footer[-8:])[0] != 0xDB4775248B80FB57:
        raise ValueError("not an SSTable (bad magic number)")
    pos = 0
    _meta_off, pos = _varint(footer, pos)
    _meta_size, pos = _varint(footer, pos)
    idx_off, pos = _varint(footer, pos)
    idx_size, pos = _varint(footer, pos)
    entries: list[tuple[bytes, bytes]] = []
    for _last_key, handle in _block_entries(index, idx_off, idx_size):
        off, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        entries.extend(_block_entries(index, off, size))
    return entries


def read_checkpoint(index: bytes, data: bytes) -> dict[str, np.ndarray]:
    """All tensors of a single-shard TensorFlow tensor bundle.

    Parameters
    ----------
    index : bytes
        Contents of the ``.index`` file.
    data : bytes
        Contents of the ``.data-00000-of-00001`` file.

    Returns
    -------
    dict of str to np.ndarray
        Variable name → array, in TensorFlow's layout.
    """
    tensors: dict[str, np.ndarray] = {}
    for key, value in _index_entries(index):
        if key == b"":  # BundleHeaderProto
            continue
        dtype, shape, offset, size = 1, [], 0, 0
        for field, _wire, v in _proto_fields(value):
            if field == 1:
                dtype = int(v)  # type: ignore[arg-type]
            elif field == 2:
                shape = [int(d) for f, _, dim in _proto_fields(v) if f == 2  # type: ignore[arg-type]
                         for ff, _, d in _proto_fields(dim) if ff == 1]  # type: ignore[arg-type]
            elif field == 3 and v != 0:
                raise ValueError("multi-shard checkpoints are not supported")
            elif field == 4:
                offset = int(v)  # type: ignore[arg-type]
            elif field == 5:
                size = int(v)  # type: ignore[arg-type]
        if dtype not in _DTYPES:
            continue  # strings and other bookkeeping
        arr = np.frombuffer(data[offset : offset + size], dtype=_DTYPES[dtype])
        tensors[key.decode()] = arr.reshape(shape).copy()
    return tensors


def _from_wheel(wheel: Path, model: str) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(wheel) as z:
        index = z.read(f"musicnn/{model}/.index")
        data = z.read(f"musicnn/{model}/.data-00000-of-00001")
    return read_checkpoint(index, data)


def _from_folder(folder: Path) -> dict[str, np.ndarray]:
    return read_checkpoint((folder / ".index").read_bytes(), (folder / ".data-00000-of-00001").read_bytes())


def musicnn_state_dict(tf_vars: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map musicnn's TensorFlow variables onto :class:`train.backbones.musicnn.Musicnn`'s parameter names.

    tf.compat.v1.layers names layers by creation order (``conv2d``, ``conv2d_1``,
    ...; ``batch_normalization``, ``batch_normalization_1``, ...). musicnn creates
    them as: input BN; timbral 7x38 and 7x67 convs; temporal 128/64/32 convs (each
    conv followed by its BN); three mid-end convs (+BN); the back end's BN, dense
    200 (+BN) and dense 50. Adam slots (``.../Adam``, ``.../Adam_1``) are skipped.
    """
    names = {k.split("/", 1)[1] if k.startswith("model/") else k: k for k in tf_vars
             if "Adam" not in k and "beta1_power" not in k and "beta2_power" not in k}

    def var(name: str) -> np.ndarray:
        if name not in names:
            raise KeyError(f"checkpoint has no variable {name!r}")
        return tf_vars[names[name]]

    def suffix(base: str, i: int) -> str:
        return base if i == 0 else f"{base}_{i}"

    out: dict[str, np.ndarray] = {}

    def bn(torch_name: str, i: int) -> None:
        scope = suffix("batch_normalization", i)
        out[f"{torch_name}.weight"] = var(f"{scope}/gamma")
        out[f"{torch_name}.bias"] = var(f"{scope}/beta")
        out[f"{torch_name}.running_mean"] = var(f"{scope}/moving_mean")
        out[f"{torch_name}.running_var"] = var(f"{scope}/moving_variance")

    def conv(torch_name: str, i: int) -> None:
        scope = suffix("conv2d", i)
        out[f"{torch_name}.weight"] = var(f"{scope}/kernel").transpose(3, 2, 0, 1)  # HWIO -> OIHW
        out[f"{torch_name}.bias"] = var(f"{scope}/bias")

    def dense(torch_name: str, i: int) -> None:
        scope = suffix("dense", i)
        out[f"{torch_name}.weight"] = var(f"{scope}/kernel").T
        out[f"{torch_name}.bias"] = var(f"{scope}/bias")

    bn("input_bn", 0)
    front = ["timbral74", "timbral77", "temporal128", "temporal64", "temporal32"]
    for i, name in enumerate(front):
        conv(f"{name}.conv", i)
        bn(f"{name}.bn", i + 1)
    for j in range(3):
        conv(f"mid{j + 1}.conv", 5 + j)
        bn(f"mid{j + 1}.bn", 6 + j)
    bn("pool_bn", 9)
    dense("penultimate", 0)
    bn("penultimate_bn", 10)
    dense("tags", 1)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def load_musicnn(tf_vars: dict[str, np.ndarray]) -> Musicnn:
    """:class:`train.backbones.musicnn.Musicnn` with every weight from musicnn's TensorFlow variables, in eval mode.

    Fails when any weight is missing or has the wrong shape, so that nothing is left at its
    random initialisation (musicnn's own extractor silently keeps random weights).
    """
    import torch

    from .musicnn import Musicnn

    state = {k: torch.from_numpy(v) for k, v in musicnn_state_dict(tf_vars).items()}
    net = Musicnn()
    expected = net.state_dict()
    problems = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    problems += [f"{k}: {tuple(v.shape)} != {tuple(expected[k].shape)}" for k, v in state.items()
                 if k in expected and v.shape != expected[k].shape]
    if problems:
        raise ValueError("checkpoint does not fit the port: " + "; ".join(problems))
    net.load_state_dict(state, strict=False)
    missing = [k for k in net.state_dict() if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"weights not loaded: {missing}")
    return net.eval()


def convert(source: Path, out: Path, model: str = "MSD_musicnn") -> dict[str, object]:
    """Convert a musicnn checkpoint (from the wheel or an unpacked folder) to a torch state_dict file
    (checked by :func:`load_musicnn`)."""
    import torch

    tf_vars = _from_wheel(source, model) if source.suffix == ".whl" else _from_folder(source)
    net = load_musicnn(tf_vars)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out)
    state = net.state_dict()
    return {"tensors": sum(not k.endswith("num_batches_tracked") for k in state),
            "parameters": sum(p.numel() for p in net.parameters()), "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m train pretrained [--wheel W] [--model M] [--out PATH]``."""
    ap = argparse.ArgumentParser(prog="python -m train pretrained", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", type=Path,
                    help="musicnn-0.1.0-py3-none-any.whl or an unpacked checkpoint folder "
                         "(default: pip download it from PyPI next to --out)")
    ap.add_argument("--model", default="MSD_musicnn", help="checkpoint inside the wheel")
    ap.add_argument("--out", type=Path, default=Path(".cache/pretrained/msd_musicnn.pt"))
    args = ap.parse_args(argv)
    wheel = args.wheel or fetch_wheel(args.out.parent)
    print(convert(wheel, args.out, args.model))
    return 0


def fetch_wheel(folder: Path) -> Path:
    """Download the musicnn 0.1.0 wheel from PyPI with pip (no install, no dependencies)."""
    import subprocess
    import sys

    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "musicnn==0.1.0",
                    "-d", str(folder)], check=True)
    return folder / "musicnn-0.1.0-py3-none-any.whl"


def ensure_pretrained(out: Path | None = None, log: Any = print) -> Path:
    """The converted MSD_musicnn checkpoint, fetched from PyPI and converted first if it is missing."""
    from .musicnn import PRETRAINED

    out = out or PRETRAINED
    if not out.is_file():
        import subprocess

        log(f"{out} is missing: fetching the musicnn 0.1.0 wheel from PyPI and converting MSD_musicnn")
        try:
            wheel = fetch_wheel(out.parent)
        except subprocess.CalledProcessError:
            raise FileNotFoundError("could not fetch musicnn 0.1.0 from PyPI (pip download failed); with the wheel "
                                    "at hand run `python -m train pretrained --wheel musicnn-0.1.0-py3-none-any.whl`"
                                    ) from None
        convert(wheel, out, "MSD_musicnn")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
