"""musicnn 0.1.0's VGG-style tagger (``MSD_vgg``, ``MTT_vgg``) in PyTorch, for the backbone screen.

Five blocks of 3x3 convolution (128 filters, "same" padding), ReLU, batch norm and max
pooling over a 3-s log-mel patch ``(187 frames, 96 bands)``; the last pooling leaves
``2 x 1 x 128`` values that a dense layer maps to 50 tags. It only takes 3-s patches and
costs about 0.9 GMAC per patch (musicnn without its dead filters: 0.76 MMAC per frame), so it
is screened as a second source of pretrained features (:mod:`train.experiments.backbones`), not shipped.

The weights come from the same wheel as musicnn's (ISC licence), read without TensorFlow by
:func:`train.backbones.tf_checkpoint.read_checkpoint`; the port matches the wheel's own TensorFlow taggram.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["Vgg", "vgg_state_dict", "load_vgg"]

#: (pool size, stride) after each block, over (time, frequency), as musicnn builds them ("valid" pooling).
POOLS = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))
FILTERS = 128
N_TAGS = 50


class Vgg(nn.Module):
    """``(batch, 187, 96)`` log-mel patches → ``(pool5 features (batch, 256), tag logits (batch, 50))``."""

    def __init__(self, filters: int = FILTERS, n_tags: int = N_TAGS) -> None:
        super().__init__()
        self.input_bn = nn.BatchNorm2d(1, eps=1e-3)
        self.convs = nn.ModuleList(nn.Conv2d(1 if i == 0 else filters, filters, 3, padding=1) for i in range(5))
        self.bns = nn.ModuleList(nn.BatchNorm2d(filters, eps=1e-3) for _ in range(5))
        self.tags = nn.Linear(2 * 1 * filters, n_tags)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.input_bn(x[:, None])
        for conv, bn, (size, stride) in zip(self.convs, self.bns, POOLS):
            h = nn.functional.max_pool2d(bn(torch.relu(conv(h))), size, stride)
        flat = h.permute(0, 2, 3, 1).flatten(1)  # TensorFlow's NHWC flatten order
        return flat, self.tags(flat)


def vgg_state_dict(tf_vars: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map the VGG checkpoint's variables (``1CNN``…``5CNN``, ``batch_normalization[_i]``,
    ``dense``) onto :class:`Vgg`'s names; fails on any missing variable."""

    def var(name: str) -> np.ndarray:
        if name not in tf_vars:
            raise KeyError(f"checkpoint has no variable {name!r}")
        return tf_vars[name]

    out: dict[str, np.ndarray] = {}
    for i, torch_name in enumerate(["input_bn"] + [f"bns.{j}" for j in range(5)]):
        scope = "batch_normalization" if i == 0 else f"batch_normalization_{i}"
        for tf_key, key in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                            ("moving_variance", "running_var")):
            out[f"{torch_name}.{key}"] = var(f"{scope}/{tf_key}")
    for j in range(5):
        out[f"convs.{j}.weight"] = var(f"{j + 1}CNN/kernel").transpose(3, 2, 0, 1)  # HWIO -> OIHW
        out[f"convs.{j}.bias"] = var(f"{j + 1}CNN/bias")
    out["tags.weight"] = var("dense/kernel").T
    out["tags.bias"] = var("dense/bias")
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in out.items()}


def load_vgg(tf_vars: dict[str, np.ndarray]) -> Vgg:
    """A :class:`Vgg` with every weight from the checkpoint (strict), in eval mode."""
    net = Vgg()
    missing, unexpected = net.load_state_dict(vgg_state_dict(tf_vars), strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"checkpoint does not fit the port: missing {missing}, unexpected {unexpected}")
    return net.eval()
