"""The musicnn port, its checkpoint mapping, and exporting a musicnn-based genre network."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from train.backbones.musicnn import DEAD_WEIGHT, MUSICNN_SPEC, PATCH_FRAMES, LiveFrames, Musicnn  # noqa: E402
from train.backbones.tf_checkpoint import musicnn_state_dict  # noqa: E402
from train.export import write_checked  # noqa: E402
from train.heads import Head, HeadConfig  # noqa: E402
from train.layouts import GenreMusicnn  # noqa: E402


def _fake_tf_vars(net: Musicnn) -> dict[str, np.ndarray]:
    """The TensorFlow variables that would hold ``net``'s weights (inverse of the mapping)."""
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    out: dict[str, np.ndarray] = {}
    bns = ["input_bn"] + [f"{n}.bn" for n in ["timbral74", "timbral77", "temporal128", "temporal64", "temporal32",
                                               "mid1", "mid2", "mid3"]] + ["pool_bn", "penultimate_bn"]
    for i, name in enumerate(bns):
        scope = "batch_normalization" + (f"_{i}" if i else "")
        out[f"{scope}/gamma"] = sd[f"{name}.weight"]
        out[f"{scope}/beta"] = sd[f"{name}.bias"]
        out[f"{scope}/moving_mean"] = sd[f"{name}.running_mean"]
        out[f"{scope}/moving_variance"] = sd[f"{name}.running_var"]
        out[f"{scope}/gamma/Adam"] = np.zeros(1)  # optimizer slots are ignored
    for i, name in enumerate(["timbral74", "timbral77", "temporal128", "temporal64", "temporal32", "mid1", "mid2", "mid3"]):
        scope = "conv2d" + (f"_{i}" if i else "")
        out[f"{scope}/kernel"] = sd[f"{name}.conv.weight"].transpose(2, 3, 1, 0)
        out[f"{scope}/bias"] = sd[f"{name}.conv.bias"]
    for i, name in enumerate(["penultimate", "tags"]):
        scope = "dense" + (f"_{i}" if i else "")
        out[f"{scope}/kernel"] = sd[f"{name}.weight"].T
        out[f"{scope}/bias"] = sd[f"{name}.bias"]
    return out


def _randomised() -> Musicnn:
    torch.manual_seed(0)
    net = Musicnn()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return net.eval()


def test_any_number_of_frames() -> None:
    net = _randomised()
    with torch.no_grad():
        for frames in (PATCH_FRAMES, 63, 300):
            x = torch.randn(2, frames, 96)
            assert net(x).shape == (2, 50)
            assert net.frame_features(x).shape == (2, 753, frames)


def _with_dead_filters(seed: int = 0) -> Musicnn:
    """A randomised network whose filters are mostly dead, as MSD_musicnn's: tiny weights
    (a constant output), live ones picked at random; some biases negative (ReLU gives 0)."""
    net = _randomised()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in ("timbral74", "timbral77", "temporal128", "temporal64", "temporal32", "mid1"):
            conv = getattr(net, name).conv
            dead = torch.rand(conv.out_channels, generator=g) < 0.8
            conv.weight[dead] *= DEAD_WEIGHT / 100 / conv.weight[dead].abs().max()
            conv.bias.copy_(torch.randn(conv.out_channels, generator=g))
    return net


@pytest.mark.parametrize("frames", [1, 2, 7, PATCH_FRAMES, 600])
def test_live_frames_equal_frame_features(frames: int) -> None:
    """Dropping dead filters changes no number: every frame, edges (zero padding) included."""
    net = _with_dead_filters()
    live = LiveFrames(net).eval()
    assert 0 < live.live["front"] < 561 and 0 < live.live["mid1"] < 64
    x = torch.from_numpy(np.random.default_rng(frames).normal(0.5, 1.5, (2, frames, 96)).astype(np.float32))
    with torch.no_grad():
        torch.testing.assert_close(live(x), net.frame_features(x), atol=1e-4, rtol=1e-5)


def test_live_frames_keep_every_filter_of_a_dense_network() -> None:
    net = _randomised()
    live = LiveFrames(net).eval()
    assert live.live == {"front": 561, "mid1": 64}
    x = torch.randn(1, 50, 96)
    with torch.no_grad():
        torch.testing.assert_close(live(x), net.frame_features(x), atol=1e-4, rtol=1e-5)


def test_live_frames_of_layers_with_no_live_filter() -> None:
    """A layer (or mid1) with every filter dead is all constant rows."""
    net = _with_dead_filters(3)
    with torch.no_grad():
        net.timbral77.conv.weight.mul_(DEAD_WEIGHT / 1e3 / net.timbral77.conv.weight.abs().max())
        net.mid1.conv.weight.mul_(DEAD_WEIGHT / 1e3 / net.mid1.conv.weight.abs().max())
        live = LiveFrames(net)
        assert live.live["mid1"] == 0 and len(live.front) == 4
        x = torch.randn(1, 40, 96)
        torch.testing.assert_close(live(x), net.frame_features(x), atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(LiveFrames(net.double())(x.double()), net.frame_features(x.double()),
                                   atol=1e-4, rtol=1e-5)
    with pytest.raises(RuntimeError, match="inference"):
        live.train()(x)


def test_live_frames_of_the_pretrained_checkpoint() -> None:
    """MSD_musicnn itself (when converted here): the counts the model card states, same numbers."""
    from train.backbones.musicnn import PRETRAINED, load_backbone

    if not PRETRAINED.is_file():
        pytest.skip("the converted musicnn checkpoint is absent (python -m train pretrained)")
    net = load_backbone()
    live = LiveFrames(net)
    assert live.live == {"front": 64, "mid1": 20}
    x = torch.from_numpy(np.random.default_rng(0).normal(0.0, 1.0, (1, 300, 96)).astype(np.float32))
    with torch.no_grad():
        ref = net.frame_features(x)
        torch.testing.assert_close(live(x), ref, atol=1e-4 * float(ref.abs().max()), rtol=1e-5)


def test_a_filter_just_above_the_threshold_is_live() -> None:
    """A filter that is live by a hair (just above DEAD_WEIGHT) is computed, not dropped."""
    net = _with_dead_filters(1)
    conv = net.timbral74.conv
    before = LiveFrames(net).live["front"]
    with torch.no_grad():
        row = int(torch.nonzero(conv.weight.flatten(1).abs().amax(1) < DEAD_WEIGHT)[0])
        conv.weight[row, 0, 0, 0] = 2 * DEAD_WEIGHT
    assert LiveFrames(net).live["front"] == before + 1


def test_checkpoint_mapping_round_trip() -> None:
    net = _randomised()
    state = {k: torch.from_numpy(v) for k, v in musicnn_state_dict(_fake_tf_vars(net)).items()}
    other = Musicnn()
    missing, unexpected = other.load_state_dict(state, strict=False)
    assert unexpected == [] and all(k.endswith("num_batches_tracked") for k in missing)
    x = torch.randn(3, PATCH_FRAMES, 96)
    with torch.no_grad():
        torch.testing.assert_close(other.eval()(x), net(x))


def test_missing_variable_fails_loudly() -> None:
    tf_vars = _fake_tf_vars(_randomised())
    del tf_vars["conv2d_3/kernel"]
    with pytest.raises(KeyError, match="conv2d_3/kernel"):
        musicnn_state_dict(tf_vars)


def test_genre_network_exports_and_runs(tmp_path: Path) -> None:
    from genre_infer import load_model
    from genre_infer.model import ModelInfo
    from signals import rhythm

    backbone = _randomised()
    head = Head(backbone, 3, HeadConfig(kind="mlp", hidden=16)).eval()
    net = GenreMusicnn(backbone, head).eval()
    info = ModelInfo("musicnn-test", "0", ("a", "b", "c"), MUSICNN_SPEC, extra={"metrics": {}})
    windows = np.random.default_rng(0).normal(1.0, 0.5, (4, PATCH_FRAMES, 96)).astype(np.float32)
    out = tmp_path / "m.onnx"
    diff = write_checked(net, info, windows, out)
    assert diff < 1e-4
    result = load_model(out).classify(rhythm(22050, 5.0), sr=22050)
    assert result.genre in ("a", "b", "c") and len(result.timeline) == 5


def test_sequence_network_equals_its_stretches_and_exports(tmp_path: Path) -> None:
    """musicnn over a whole signal, pooled per window: equal to stretches cut with CONTEXT_FRAMES
    on each side (so the runtime may chunk long files), and exported with parity."""
    from genre_infer import features as F
    from genre_infer import load_model
    from genre_infer.inference import SequenceRunner
    from genre_infer.model import ModelInfo, NetworkSpec
    from signals import rhythm
    from train.backbones.musicnn import CONTEXT_FRAMES
    from train.layouts import GenreMusicnnSequence

    backbone = _randomised()
    head = Head(backbone, 3, HeadConfig(kind="mlp", hidden=16)).eval()
    net = GenreMusicnnSequence(backbone, head).eval()
    x = torch.from_numpy(np.random.default_rng(1).normal(1.0, 0.5, (1, 900, 96)).astype(np.float32))
    starts = torch.tensor([0, 62, 300, 500, 713])
    with torch.no_grad():
        whole = net(x, starts)
        lo, hi = 300 - CONTEXT_FRAMES, 500 + PATCH_FRAMES + CONTEXT_FRAMES
        part = net(x[:, lo:hi], starts[2:4] - lo)
        short = net(x[:, lo + 40 : hi - 40], starts[2:4] - lo - 40)
        windowed = GenreMusicnn(backbone, head)(torch.stack([x[0, s : s + PATCH_FRAMES] for s in starts]))
    torch.testing.assert_close(part, whole[2:4], atol=1e-4, rtol=1e-4)
    assert (short - whole[2:4]).abs().max() > 1e-3  # less context than declared changes the result
    assert not torch.allclose(whole, windowed, atol=1e-3)  # real context, not zero padding, at window edges

    info = ModelInfo("musicnn-seq", "0", ("a", "b", "c"), MUSICNN_SPEC, network=NetworkSpec("sequence", CONTEXT_FRAMES))
    out = tmp_path / "seq.onnx"
    assert write_checked(net, info, (x.numpy(), starts.numpy()), out) < 1e-4
    clf = load_model(out)
    y = rhythm(16000, 75.0)
    a = clf.analyse([y])  # long enough for several stretches
    xs = F.compute(y, MUSICNN_SPEC)
    ref_starts = F.window_starts(len(xs), MUSICNN_SPEC)
    with torch.no_grad():
        ref = net(torch.from_numpy(xs)[None], torch.from_numpy(ref_starts)).numpy()
    assert isinstance(SequenceRunner(clf.model), SequenceRunner)
    np.testing.assert_allclose(a.logits, ref, atol=1e-3)
    assert clf.classify(y, sr=16000).genre in ("a", "b", "c")


def test_max_first_front_end_equals_conv_relu_bn_then_max() -> None:
    """The eval-mode shortcut (max over frequency before ReLU and batch norm) is exact,
    negative batch-norm scales included; training mode keeps the plain order."""
    net = _randomised()
    with torch.no_grad():
        for block in (net.timbral74, net.temporal32):
            block.bn.weight.data.uniform_(-1.5, 1.5)  # about half the channels flip sign
            assert (block.bn.weight < 0).any() and (block.bn.weight > 0).any()
            x = torch.randn(2, 1, 40, 96)
            plain = block(x).amax(dim=3)
            assert torch.allclose(block.freq_max(x), plain, atol=1e-5)
    block = net.timbral77.train()
    x = torch.randn(3, 1, 20, 96)
    assert torch.allclose(block.freq_max(x), block(x).amax(dim=3))


def test_stream_network_exports_and_equals_the_sequence_one(tmp_path: Path) -> None:
    """`transfer --layout stream` exports the same network as the sequence layout, cut in
    stretches that hand frame embeddings on; the runtime's result equals one sequence call."""
    from genre_infer import features as F
    from genre_infer import load_model
    from genre_infer.inference import StreamRunner
    from genre_infer.model import ModelInfo, NetworkSpec
    from signals import rhythm
    from train.backbones.musicnn import CONTEXT_FRAMES
    from train.layouts import NETWORKS, export_example

    backbone = _with_dead_filters(2)
    head = Head(backbone, 3, HeadConfig(kind="mlp", hidden=16)).eval()
    stream, sequence = NETWORKS["stream"](backbone, head).eval(), NETWORKS["sequence"](backbone, head).eval()
    x = np.random.default_rng(3).normal(1.0, 0.5, (700, 96)).astype(np.float32)
    example = export_example("stream", x, F.window_starts(len(x), MUSICNN_SPEC))
    assert isinstance(example, tuple) and len(example) == 4 and len(example[3]) > 0
    info = ModelInfo("musicnn-stream", "0", ("a", "b", "c"), MUSICNN_SPEC, network=NetworkSpec("stream", CONTEXT_FRAMES))
    out = tmp_path / "stream.onnx"
    assert write_checked(stream, info, example, out) < 1e-4
    clf = load_model(out)
    assert isinstance(StreamRunner(clf.model), StreamRunner)
    y = rhythm(16000, 40.0)
    xs = F.compute(y, MUSICNN_SPEC)
    starts = F.window_starts(len(xs), MUSICNN_SPEC)
    with torch.no_grad():
        ref = sequence(torch.from_numpy(xs)[None], torch.from_numpy(starts)).numpy()
    np.testing.assert_allclose(clf.analyse([y]).logits, ref, atol=1e-3)


def test_level_normalised_embeddings_have_their_own_cache(tmp_path: Path) -> None:
    from train.data import Track
    from train.embeddings import cache_path as _cache_path

    clip = tmp_path / "blues.00001.wav"
    clip.write_bytes(b"x" * 10)
    t = Track(path=clip, genre="blues", rel="audio/blues/blues.00001.wav")
    plain, levelled = _cache_path(t, 1, 0, "sequence"), _cache_path(t, 1, 0, "sequence", -16.93)
    assert plain != levelled != _cache_path(t, 1, 0, "sequence", -20.0)
    assert plain == _cache_path(t, 1, 0, "sequence", None)


def test_a_lowpass_recipe_has_its_own_cache_for_augmented_copies_only(tmp_path: Path) -> None:
    from train.audio_augment import LOWPASS_P, Chain
    from train.data import Track
    from train.embeddings import cache_path as _cache_path

    clip = tmp_path / "blues.00001.wav"
    clip.write_bytes(b"x" * 10)
    t = Track(path=clip, genre="blues", rel="audio/blues/blues.00001.wav")
    assert _cache_path(t, 1, 0, "sequence") == _cache_path(t, 1, 0, "sequence", None, Chain(LOWPASS_P))
    assert _cache_path(t, 1, 0, "sequence", None, Chain(0.5)) != _cache_path(t, 1, 0, "sequence")
    assert _cache_path(t, 0, 0, "sequence", None, Chain(0.5)) == _cache_path(t, 0, 0, "sequence")  # the clean clip
    # the key of a recipe written before Chain existed, so its cached embeddings stay valid
    assert Chain(0.5).key() == "|lowpass0.5" and Chain().key() == ""
    driven = _cache_path(t, 1, 0, "sequence", None, Chain(0.5, drive_p=0.3))
    assert driven not in (_cache_path(t, 1, 0, "sequence", None, Chain(0.5)), _cache_path(t, 1, 0, "sequence"))


def test_a_cold_cache_embeds_what_a_warm_one_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Freshly computed embeddings are the cached (float16) numbers, so a build on a cold cache trains
    the same head as a rerun (unrounded ones moved 1.6.0's rebuilt logits by 1.5e-4)."""
    from test_train_e2e import make_tree

    from train import embeddings

    monkeypatch.setattr(embeddings, "EMBED_DIR", tmp_path / "cache" / "embeddings")
    monkeypatch.setattr(embeddings, "load_backbone", _randomised)
    root = make_tree(tmp_path / "data", per_genre=4)
    cold, labels, _ = embeddings.embed_tracks(root, n_aug=1, layout="sequence", log=lambda m: None)
    assert any((tmp_path / "cache" / "embeddings-sequence").iterdir())
    warm, _, _ = embeddings.embed_tracks(root, n_aug=1, layout="sequence", log=lambda m: None)
    assert len(cold) == len(warm) == 3 * 4 + 3 * 1 and len(labels) == 3  # 1 train clip per genre gets a copy
    for a, b in zip(cold, warm):
        assert (a.track.rel, a.version) == (b.track.rel, b.version)
        assert a.pooled.dtype == b.pooled.dtype == np.float32
        np.testing.assert_array_equal(a.pooled, b.pooled)


def test_random_chain_lowpass_probability() -> None:
    """lowpass_p 1 band-limits every copy (checked on white noise above 7.4 kHz); with 0 only
    the chain's other steps (a low-quality mp3, a speed change) may still cut the top."""
    from train.audio_augment import Chain, random_chain

    sr = 16000
    y = np.random.default_rng(0).standard_normal(sr * 2).astype(np.float32) * 0.1

    def top_octave_share(z: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(z)) ** 2
        f = np.fft.rfftfreq(len(z), 1 / sr)
        return float(spec[f > 7400].sum() / spec.sum())

    always = [top_octave_share(random_chain(y, sr, np.random.default_rng(s), chain=Chain(lowpass_p=1.0))) for s in range(6)]
    never = [top_octave_share(random_chain(y, sr, np.random.default_rng(s), chain=Chain(lowpass_p=0.0))) for s in range(6)]
    assert max(always) < 1e-4
    assert sum(x > 1e-3 for x in never) >= 3


def test_drive_clips_hard_or_soft() -> None:
    from train.audio_augment import drive

    y = (0.5 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32)
    hard, soft = drive(y, 12.0), drive(y, 12.0, soft=True)
    assert np.abs(hard).max() == 1.0 and np.mean(np.abs(hard) == 1.0) > 0.5  # most of each cycle flattened
    assert np.abs(soft).max() < 1.0 and np.all(np.diff(np.sign(soft)) == np.diff(np.sign(y)))  # same zero crossings
    assert np.allclose(drive(y * 0.01, 3.0), y * 0.01 * 10 ** (3 / 20), atol=1e-6)  # below full scale: a gain


def test_random_chain_drive_probability(monkeypatch: pytest.MonkeyPatch) -> None:
    """The drive is the chain's last step and the only one its draws feed: with the clipper
    made a no-op, drive_p 1 gives exactly the copy of a recipe without it (so older recipes'
    copies and caches are unchanged); with the clipper, every copy's crest factor falls."""
    from train import audio_augment
    from train.audio_augment import Chain, random_chain

    sr = 16000
    y = (0.5 * np.sin(2 * np.pi * 220 * np.arange(sr) / sr)).astype(np.float32)

    def crest(z: np.ndarray) -> float:
        return float(np.abs(z).max() / np.sqrt(np.mean(z ** 2)))

    plain = [random_chain(y, sr, np.random.default_rng(s), chain=Chain(0.5)) for s in range(8)]
    driven = [random_chain(y, sr, np.random.default_rng(s), chain=Chain(0.5, drive_p=1.0)) for s in range(8)]
    assert np.mean([crest(d) for d in driven]) < np.mean([crest(p) for p in plain]) - 0.05
    monkeypatch.setattr(audio_augment, "drive", lambda z, db, soft=False: z)
    for s, p in enumerate(plain):
        assert np.array_equal(random_chain(y, sr, np.random.default_rng(s), chain=Chain(0.5, drive_p=1.0)), p)


def _vgg_tf_vars(rng: np.random.Generator, filters: int = 128) -> dict[str, np.ndarray]:
    """Random variables named and shaped as musicnn's VGG checkpoint holds them (HWIO kernels)."""
    out: dict[str, np.ndarray] = {}
    for i in range(6):
        scope = "batch_normalization" + (f"_{i}" if i else "")
        n = 1 if i == 0 else filters
        out[f"{scope}/gamma"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
        out[f"{scope}/beta"] = rng.normal(0, 0.1, n).astype(np.float32)
        out[f"{scope}/moving_mean"] = rng.normal(0, 0.1, n).astype(np.float32)
        out[f"{scope}/moving_variance"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
    for j in range(1, 6):
        out[f"{j}CNN/kernel"] = rng.normal(0, 0.3, (3, 3, 1 if j == 1 else filters, filters)).astype(np.float32)
        out[f"{j}CNN/bias"] = rng.normal(0, 0.1, filters).astype(np.float32)
    out["dense/kernel"] = rng.normal(0, 0.3, (2 * filters, 50)).astype(np.float32)
    out["dense/bias"] = rng.normal(0, 0.1, 50).astype(np.float32)
    return out


def _vgg_numpy(x: np.ndarray, v: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """musicnn's VGG as TensorFlow computes it, in NumPy: NHWC tensors, HWIO kernels, conv "same"
    + ReLU, then batch norm, "valid" max pooling, NHWC flatten, dense."""

    def bn(h: np.ndarray, i: int) -> np.ndarray:
        scope = "batch_normalization" + (f"_{i}" if i else "")
        g, b, m, var = (v[f"{scope}/{k}"] for k in ("gamma", "beta", "moving_mean", "moving_variance"))
        return (h - m) / np.sqrt(var + 1e-3) * g + b

    def pool(h: np.ndarray, size: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
        n_t = (h.shape[1] - size[0]) // stride[0] + 1
        n_f = (h.shape[2] - size[1]) // stride[1] + 1
        return np.stack([np.stack([h[:, t * stride[0] : t * stride[0] + size[0], f * stride[1] : f * stride[1] + size[1]]
                                   .max(axis=(1, 2)) for f in range(n_f)], axis=1) for t in range(n_t)], axis=1)

    h = bn(x[..., None], 0)
    for j, (size, stride) in enumerate([((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)),
                                        ((4, 4), (4, 4))]):
        k = v[f"{j + 1}CNN/kernel"]
        hp = np.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
        t, f = h.shape[1:3]
        conv = sum(hp[:, dt : dt + t, df : df + f] @ k[dt, df] for dt in range(3) for df in range(3))
        h = pool(bn(np.maximum(conv + v[f"{j + 1}CNN/bias"], 0), j + 1), size, stride)
    flat = h.reshape(len(h), -1)
    return flat, flat @ v["dense/kernel"] + v["dense/bias"]


def test_vgg_port_computes_what_tensorflow_does() -> None:
    """The port against a NumPy forward pass with TensorFlow's layouts and layer order (catches a
    transposed kernel, pools over the wrong axes, batch norm before the ReLU, or a channel-first
    flatten, none of which a round trip of the weights would); a small width keeps it fast."""
    from train.experiments.vgg import Vgg, load_vgg, vgg_state_dict

    rng = np.random.default_rng(0)
    tf_vars = _vgg_tf_vars(rng, filters=4)
    net = Vgg(filters=4)
    net.load_state_dict(vgg_state_dict(tf_vars), strict=False)
    net.eval()
    x = rng.standard_normal((2, PATCH_FRAMES, 96)).astype(np.float32)
    flat_ref, tags_ref = _vgg_numpy(x, tf_vars)
    with torch.no_grad():
        flat, tags = net(torch.from_numpy(x))
    assert flat.shape == (2, 8)  # 2 x 1 x 4 after the last pooling
    np.testing.assert_allclose(flat.numpy(), flat_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tags.numpy(), tags_ref, rtol=1e-4, atol=1e-4)
    full = load_vgg(_vgg_tf_vars(rng))  # the checkpoint's width loads strictly
    assert full(torch.from_numpy(x))[0].shape == (2, 256)


def test_vgg_missing_variable_fails_loudly() -> None:
    from train.experiments.vgg import vgg_state_dict

    tf_vars = _vgg_tf_vars(np.random.default_rng(1))
    del tf_vars["4CNN/bias"]
    with pytest.raises(KeyError, match="4CNN/bias"):
        vgg_state_dict(tf_vars)


def test_backbone_probe_scores_clips_from_their_windows() -> None:
    """The screen's probe on features that name the genre (plus noise) gets every valid clip
    right, and on pure noise stays near chance: the clip verdict averages window logits."""
    pytest.importorskip("sklearn")
    from train.experiments.backbones import probe

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 8)) * 3

    def clips(signal: float) -> dict[str, dict]:
        out = {}
        for i in range(48):
            split = ("train", "valid", "extra")[i % 3]
            label = i % 4
            feats = centres[label] * signal + rng.standard_normal((10, 8))
            out[f"c{i}"] = {"split": split, "label": label, "features": {"a": feats.astype(np.float32)}}
        return out

    good = probe(clips(1.0), ("a",), 0.1)
    assert good["track_accuracy"] == 1.0 and good["segment_accuracy"] > 0.9 and good["dims"] == 8
    assert probe(clips(0.0), ("a",), 0.1)["track_accuracy"] < 0.75
