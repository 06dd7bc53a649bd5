"""musicnn (Pons & Serra, 2019) in PyTorch, for weights converted by :mod:`train.backbones.tf_checkpoint`.

The architecture, re-implemented from the paper and the layer list of the
``musicnn`` wheel's MSD_musicnn checkpoint:

- input batch norm over the ``(frames, 96)`` log-mel patch;
- front end: two *timbral* convolutions (7 frames x 38 and x 67 mel bands, 204
  filters each) and three *temporal* ones (128, 64 and 32 frames x 1 band, 51
  filters each), each conv → ReLU → batch norm → max over frequency;
- mid end: three 1-D convolutions over time (7 frames, 64 filters) with
  residual connections; the front end's and each mid-end layer's outputs are
  concatenated (561 + 3 x 64 = 753 channels);
- back end: max and mean over time (1506 features) → batch norm → dense 200
  (ReLU, batch norm; the "penultimate" embedding) → dense 50 tag logits.

TensorFlow's layout is mirrored where it matters: conv → ReLU → BN order,
batch-norm epsilon 1e-3, "same" padding of even kernels (one more frame after
than before), and the (max, mean) interleaving of the pooled features. Every
layer is convolutional or pools over time, so any number of frames (≥ 1) works.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genre_infer import features as gi_features
from genre_infer.features import FeatureSpec

from ..constants import REPO_ROOT
from ..metrics import track_windows

__all__ = ["Musicnn", "LiveFrames", "N_MELS", "PATCH_FRAMES", "MSD_TAGS", "DEAD_WEIGHT", "MUSICNN_SPEC", "PRETRAINED",
           "CONTEXT_FRAMES", "load_backbone", "pool_windows", "pool_rows", "pooled_sequence", "pooled_windows"]

N_MELS = 96
PATCH_FRAMES = 187  # 3 s at 16 kHz with a 256-sample hop, as musicnn was trained
BN_EPS = 1e-3
#: A filter whose every weight is below this in magnitude is dead: its output is a
#: constant. MSD_musicnn's dead filters all stay below 2.2e-7, its live ones all
#: reach 9.4e-4 or more; 561 - 64 of the front end's filters are dead, and 44 of mid1's 64.
DEAD_WEIGHT = 1e-5
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
    "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
    "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist",
    "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy", "funk",
    "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)


class _ConvBN(nn.Module):
    """conv → ReLU → batch norm, TensorFlow's order in musicnn."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel)
        self.bn = nn.BatchNorm2d(c_out, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))

    def freq_max(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` then max over frequency → ``(B, C, T)``, in eval mode computed max-first.

        ReLU is monotonic and eval-mode batch norm is ``a * r + b`` per channel, so
        ``max_f BN(ReLU(c)) = a * ReLU(s * max_f(s * c)) + b`` with ``s`` the sign of
        ``a``: the same numbers, with ReLU and batch norm applied to a tensor as many
        times smaller as there are frequency positions (a quarter of the time saved).
        Training mode (batch statistics) takes the plain path.
        """
        if self.training:
            return self.forward(x).amax(dim=3)
        s = torch.where(self.bn.weight < 0, -1.0, 1.0)
        c = F.conv2d(x, self.conv.weight * s[:, None, None, None], self.conv.bias * s)
        r = F.relu(c.amax(dim=3) * s[None, :, None])
        return F.batch_norm(r, self.bn.running_mean, self.bn.running_var, self.bn.weight, self.bn.bias,
                            False, 0.0, self.bn.eps)


class Musicnn(nn.Module):
    """MSD_musicnn: 96-band log-mel patches ``(batch, frames, 96)`` → 50 tag logits.

    Parameters
    ----------
    n_tags : int
        Output tags (50 for the pretrained MSD checkpoint).
    dropout : float
        Dropout before each dense layer (0.5 in the original training).
    """

    def __init__(self, n_tags: int = 50, dropout: float = 0.5) -> None:
        super().__init__()
        self.input_bn = nn.BatchNorm2d(1, eps=BN_EPS)
        self.timbral74 = _ConvBN(1, 204, (7, int(0.4 * N_MELS)))
        self.timbral77 = _ConvBN(1, 204, (7, int(0.7 * N_MELS)))
        self.temporal128 = _ConvBN(1, 51, (128, 1))
        self.temporal64 = _ConvBN(1, 51, (64, 1))
        self.temporal32 = _ConvBN(1, 51, (32, 1))
        self.mid1 = _ConvBN(1, 64, (7, 561))
        self.mid2 = _ConvBN(1, 64, (7, 64))
        self.mid3 = _ConvBN(1, 64, (7, 64))
        self.pool_bn = nn.BatchNorm1d(2 * 753, eps=BN_EPS)
        self.penultimate = nn.Linear(2 * 753, 200)
        self.penultimate_bn = nn.BatchNorm1d(200, eps=BN_EPS)
        self.tags = nn.Linear(200, n_tags)
        self.dropout = nn.Dropout(dropout)

    @staticmethod
    def _same_time(x: torch.Tensor, k: int) -> torch.Tensor:
        # TensorFlow "same": (k - 1) // 2 frames before, the rest after
        return F.pad(x, (0, 0, (k - 1) // 2, k - 1 - (k - 1) // 2))

    def front_end(self, x: torch.Tensor) -> torch.Tensor:
        """Input batch norm and the five front-end convolutions: ``(batch, frames, 96)`` → ``(batch, 561, frames)``."""
        x = self.input_bn(x.unsqueeze(1))                       # (B, 1, T, 96)
        pad7 = F.pad(x, (0, 0, 3, 3))
        front = [
            self.timbral74.freq_max(pad7),                      # (B, 204, T)
            self.timbral77.freq_max(pad7),
            self.temporal128.freq_max(self._same_time(x, 128)),  # (B, 51, T)
            self.temporal64.freq_max(self._same_time(x, 64)),
            self.temporal32.freq_max(self._same_time(x, 32)),
        ]
        return torch.cat(front, dim=1)                          # (B, 561, T)

    def mid_end(self, f: torch.Tensor) -> torch.Tensor:
        """The three residual 1-D convolutions over the front end's output → ``(batch, 753, frames)``
        (front end, then each mid-end layer's output, concatenated)."""

        def mid(layer: _ConvBN, h: torch.Tensor) -> torch.Tensor:
            # h (B, C, T) seen as a one-channel image (T, C), convolved over all of C
            return layer(F.pad(h.transpose(1, 2).unsqueeze(1), (0, 0, 3, 3))).squeeze(3)

        m1 = mid(self.mid1, f)                                  # (B, 64, T)
        m2 = mid(self.mid2, m1) + m1
        m3 = mid(self.mid3, m2) + m2
        return torch.cat([f, m1, m2, m3], dim=1)                # (B, 753, T)

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """Front and mid end: ``(batch, frames, 96)`` → ``(batch, 753, frames)`` per-frame features."""
        return self.mid_end(self.front_end(x))

    @staticmethod
    def pool(frames: torch.Tensor) -> torch.Tensor:
        """Max and mean over time, interleaved per channel as musicnn flattens them → ``(B, 1506)``."""
        return torch.stack([frames.amax(dim=2), frames.mean(dim=2)], dim=2).flatten(1)

    def embed(self, pooled: torch.Tensor) -> torch.Tensor:
        """Pooled features → the 200-d penultimate embedding (after its batch norm)."""
        h = self.dropout(self.pool_bn(pooled))
        return self.penultimate_bn(F.relu(self.penultimate(h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, 96)`` log-mel patches → ``(batch, n_tags)`` logits."""
        return self.tags(self.dropout(self.embed(self.pool(self.frame_features(x)))))


def _live_filters(layer: _ConvBN, tol: float = DEAD_WEIGHT) -> torch.Tensor:
    """Indices of ``layer``'s filters with a weight of magnitude ``tol`` or more."""
    return torch.nonzero(layer.conv.weight.detach().flatten(1).abs().amax(1) >= tol).flatten()


def _dead_output(layer: _ConvBN) -> torch.Tensor:
    """Each filter's eval-mode output with its weights taken as zero: ``BN(ReLU(bias))`` ``(C,)``."""
    bn = layer.bn
    r = F.relu(layer.conv.bias.detach())
    return (r - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight.detach() + bn.bias.detach()


def _subset(layer: _ConvBN, rows: torch.Tensor, weight: torch.Tensor | None = None) -> _ConvBN:
    """A copy of ``layer`` keeping the filters ``rows`` (with ``weight`` as their kernels if given),
    on the layer's device and in its dtype."""
    w = layer.conv.weight.detach()[rows] if weight is None else weight
    new = _ConvBN(w.shape[1], len(rows), tuple(w.shape[2:])).to(w)  # type: ignore[arg-type]
    new.conv.weight.data.copy_(w)
    new.conv.bias.data.copy_(layer.conv.bias.detach()[rows])
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(new.bn, name).data.copy_(getattr(layer.bn, name).detach()[rows])
    return new.eval()


def _placement(n: int, live: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For ``n`` rows of which ``live`` are computed: the order that puts ``[live rows...,
    dead rows...]`` back in place, and the dead rows' mask."""
    dead = torch.ones(n, dtype=torch.bool, device=live.device)
    dead[live] = False
    order = torch.empty(n, dtype=torch.long, device=live.device)
    order[live] = torch.arange(len(live), device=live.device)
    order[dead] = len(live) + torch.arange(int(dead.sum()), device=live.device)
    return order, dead


class LiveFrames(nn.Module):
    """``Musicnn.frame_features`` of a trained network without its dead filters (inference only).

    A filter whose weights are all (near) zero outputs ``BN(ReLU(bias))`` whatever its
    input: a constant row. Only the live filters are computed; the constant rows are
    put back in place, so the output ``(batch, 753, frames)`` is the original's
    (MSD_musicnn: 64 of the front end's 561 filters and 20 of mid1's 64 are live, a
    tenth of the work: 0.76 MMAC per frame against 7.5). The first mid-end layer reads
    only the live front-end rows plus one row of ones, whose kernel is the dead rows'
    summed contribution: ones inside the frames and the zero padding outside reproduce
    the original exactly, edges included. The constants come from the batch-norm running
    statistics, so there is no training mode.

    Parameters
    ----------
    net : Musicnn
        A trained network. The pruned layers are copies (later changes to ``net`` are not
        seen); the input batch norm and the last two mid-end layers are ``net``'s own.
    tol : float
        Weight magnitude below which a filter is dead.
    """

    def __init__(self, net: Musicnn, tol: float = DEAD_WEIGHT) -> None:
        super().__init__()
        front = [net.timbral74, net.timbral77, net.temporal128, net.temporal64, net.temporal32]
        live = [_live_filters(layer, tol) for layer in front]
        self.input_bn = net.input_bn
        # the live part of each front-end layer, with its kernel's length in time ("same" padding)
        kept = [(layer, rows) for layer, rows in zip(front, live) if len(rows)]
        self.front = nn.ModuleList(_subset(layer, rows) for layer, rows in kept)
        self.front_time = [layer.conv.kernel_size[0] for layer, _ in kept]
        const = torch.cat([_dead_output(layer) for layer in front])          # (561,)
        offsets = [0] + torch.tensor([layer.conv.out_channels for layer in front]).cumsum(0).tolist()
        live_rows = torch.cat([rows + off for rows, off in zip(live, offsets)])
        order, dead = _placement(len(const), live_rows)
        self.register_buffer("front_order", order, persistent=False)
        self.register_buffer("front_const", const[dead][None, :, None].clone(), persistent=False)

        # mid1 on the live rows + a row of ones carrying the dead rows' contribution
        w1 = net.mid1.conv.weight.detach()                                    # (64, 1, 7, 561)
        ones_kernel = (w1[..., dead] * const[dead]).sum(-1, keepdim=True)     # (64, 1, 7, 1)
        mid_live = _live_filters(net.mid1, tol)
        self.mid1 = (_subset(net.mid1, mid_live, torch.cat([w1[..., live_rows], ones_kernel], -1)[mid_live])
                     if len(mid_live) else None)
        mid_order, mid_dead = _placement(net.mid1.conv.out_channels, mid_live)
        self.register_buffer("mid_order", mid_order, persistent=False)
        self.register_buffer("mid_const", _dead_output(net.mid1)[mid_dead][None, :, None].clone(), persistent=False)
        self.mid2, self.mid3 = net.mid2, net.mid3
        self.live = {"front": len(live_rows), "mid1": len(mid_live)}
        self.eval()

    @staticmethod
    def _place(live: torch.Tensor, const: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        """Live rows ``(B, L, T)`` and constants ``(1, D, 1)`` → all rows in their original order."""
        b, _, t = live.shape
        return torch.cat([live, const.expand(b, -1, t)], dim=1).index_select(1, order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, 96)`` → ``(batch, 753, frames)``, as :meth:`Musicnn.frame_features`."""
        if self.training:
            raise RuntimeError("LiveFrames is for inference: call .eval() (its constants are running statistics)")
        x = self.input_bn(x.unsqueeze(1))
        b, _, t, _ = x.shape
        live = torch.cat([x.new_zeros(b, 0, t)] + [layer.freq_max(Musicnn._same_time(x, k))
                                                    for layer, k in zip(self.front, self.front_time)], dim=1)
        f = self._place(live, self.front_const, self.front_order)             # (B, 561, T)

        def mid(layer: _ConvBN, h: torch.Tensor) -> torch.Tensor:
            return layer(F.pad(h.transpose(1, 2).unsqueeze(1), (0, 0, 3, 3))).squeeze(3)

        m1_live = (mid(self.mid1, torch.cat([live, torch.ones_like(x[:, 0, :, :1]).transpose(1, 2)], dim=1))
                   if self.mid1 is not None else x.new_zeros(b, 0, t))
        m1 = self._place(m1_live, self.mid_const, self.mid_order)
        m2 = mid(self.mid2, m1) + m1
        m3 = mid(self.mid3, m2) + m2
        return torch.cat([f, m1, m2, m3], dim=1)


# --- what the transfer recipe needs of musicnn: its features, its weights, its pooled embeddings ---

#: musicnn's features (its training used these, with a float16 round trip we skip).
MUSICNN_SPEC = FeatureSpec(kind="melgram", sr=16000, n_fft=512, hop_length=256, n_mels=96,
                           compression="log10_1p", log_scale=10000.0, segment_frames=PATCH_FRAMES,
                           window_hop_s=1.0)
PRETRAINED = REPO_ROOT / ".cache" / "pretrained" / "msd_musicnn.pt"


def load_backbone(path: Path = PRETRAINED) -> Musicnn:
    """musicnn with the converted MSD weights, in eval mode (run ``python -m train pretrained`` first)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python -m train pretrained --wheel musicnn-0.1.0-...whl`")
    net = Musicnn()
    net.load_state_dict(torch.load(path, map_location="cpu"))
    return net.eval()


#: Frames on each side that reach a frame's musicnn features: the 128-frame temporal
#: convolutions reach 64 frames, the three 7-frame mid-end layers 9 more.
CONTEXT_FRAMES = 80


def pool_windows(frames: torch.Tensor, starts: torch.Tensor, segment_frames: int = PATCH_FRAMES) -> torch.Tensor:
    """musicnn's max-and-mean pooling of each window of per-frame features.

    ``frames (753, T)`` and window ``starts (W,)`` → ``(W, 1506)``, interleaved per
    channel exactly as :meth:`Musicnn.pool` (the head's pretrained layers expect that order).
    """
    return pool_rows(frames.T, starts, segment_frames)


def pool_rows(rows: torch.Tensor, starts: torch.Tensor, segment_frames: int = PATCH_FRAMES) -> torch.Tensor:
    """:func:`pool_windows` of frame embeddings stored as rows ``(T, 753)``."""
    # gather whole frames (rows of 753 values), not single values: 10x faster in onnxruntime
    g = rows[starts[:, None] + torch.arange(segment_frames)[None, :]]  # (W, seg, 753)
    return torch.stack([g.amax(dim=1), g.mean(dim=1)], dim=2).flatten(1)


@torch.no_grad()
def pooled_sequence(live: LiveFrames, y: np.ndarray, spec: FeatureSpec = MUSICNN_SPEC) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features of the runtime windows, with musicnn run once over the whole signal."""
    x = gi_features.compute(gi_features.fill_window(y, spec), spec)
    starts = gi_features.window_starts(len(x), spec)
    frames = live(torch.from_numpy(x)[None])[0]
    return pool_windows(frames, torch.from_numpy(starts)).numpy(), starts * spec.hop_length / spec.sr


@torch.no_grad()
def pooled_windows(net: Musicnn, y: np.ndarray, spec: FeatureSpec = MUSICNN_SPEC,
                   batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """musicnn's pooled features for the runtime windows of a signal → ``(pooled, starts_s)``."""
    w, starts_s = track_windows(gi_features.compute(gi_features.fill_window(y, spec), spec), spec)
    out = [net.pool(net.frame_features(torch.from_numpy(w[i : i + batch]))).numpy()
           for i in range(0, len(w), batch)]
    return np.concatenate(out), starts_s

