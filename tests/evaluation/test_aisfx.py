"""The aisfx backend: its embedding against the package's own inference code (the published checkpoint, the
paper's Essentia front end), its network on random weights, the safe checkpoint reading and conversion, and the
linear probe."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.evaluation.reference_tools import aisfx_essentia, aisfx_modules
from tta.errors import InputError, ModelLoadError
from tta.evaluation.backends.aisfx import (
    AisfxBackend,
    AisfxNet,
    aisfx_blocks,
    aisfx_logmel,
    aisfx_mel_matrix,
    converted_weights,
    package_checkpoint,
    read_checkpoint,
)
from tta.evaluation.probe import LinearProbe, topk_accuracy, train_probe


def _clip(seconds: float = 5.3, sr: int = 44100, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    wav = 0.25 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.normal(size=t.size)
    return wav.astype(np.float32)


def _published():
    path = package_checkpoint()
    if path is None:
        pytest.skip("aisfx wheel not installed (pip install --no-deps aisfx==0.1.2)")
    return path


def test_embedding_matches_package_inference(tmp_path, monkeypatch):
    """The published weights and the paper's front end, ours against aisfx.inference, on a fixed clip."""
    monkeypatch.setenv("TTA_CACHE", str(tmp_path / "cache"))
    ess, ref = aisfx_essentia(), aisfx_modules()
    path = tmp_path / "clip.wav"
    sf.write(path, _clip(), 44100, subtype="PCM_16")
    wav, _ = sf.read(path, dtype="float32")
    inf = ref.inference
    spec = ess.compute_spectrogram(
        filename=str(path),
        sr=inf.SAMPLE_RATE,
        block_size=inf.SPEC_BLOCK_LENGTH,
        hop_size=inf.SPEC_HOP_LENGTH,
        n_mels=inf.MEL_BINS,
        f_min=inf.F_MIN,
        f_max=inf.F_MAX,
    )
    spec = ref.preprocessing.spectrogram_normalize(spec)
    state, datasets = read_checkpoint(_published())
    model = inf.load_bestModel(state, datasets, "cpu")
    theirs = inf.model_get_embedding(spec, 0.5, True, model, "cpu").numpy()
    ours = AisfxBackend(probe=False).features(wav)
    assert ours.frames.shape == theirs.shape == (3, 512) and ours.logits is None
    np.testing.assert_allclose(aisfx_logmel(wav).numpy(), spec, atol=1e-5)
    np.testing.assert_allclose(ours.frames, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n", [500, 1024, 2048, 44032, 44033])
def test_frames_match_essentia_at_the_edges(tmp_path, n):
    """Frame count and values where the length is under, at and just past multiples of the hop."""
    ess = aisfx_essentia()
    wav = (0.1 * np.random.default_rng(n).normal(size=n)).astype(np.float32)
    sf.write(tmp_path / "edge.wav", wav, 44100, subtype="PCM_16")
    wav, _ = sf.read(tmp_path / "edge.wav", dtype="float32")
    spec = ess.compute_spectrogram(
        filename=str(tmp_path / "edge.wav"),
        sr=44100.0,
        block_size=2048,
        hop_size=1024,
        n_mels=96,
        f_min=0.0,
        f_max=22050.0,
    )
    ours = aisfx_logmel(wav).numpy() * 9.457798957824707  # before the paper's normalisation
    assert ours.shape == spec.shape
    np.testing.assert_allclose(ours, spec, atol=1e-5)


def test_mel_matrix_matches_essentia():
    aisfx_essentia()
    import essentia.standard as es

    bands = es.MelBands(
        inputSize=1025, numberBands=96, sampleRate=44100, lowFrequencyBound=0, highFrequencyBound=22050
    )
    eye = np.eye(1025, dtype=np.float32)
    theirs = np.stack([bands(eye[j]) for j in range(1025)])  # [1025, 96]: unit power in one bin
    np.testing.assert_allclose(aisfx_mel_matrix(), theirs, atol=2e-6)


def test_network_matches_package_on_random_weights():
    ref = aisfx_modules()
    torch.manual_seed(0)
    theirs = ref.cnn2d.EmbeddingNet("max", 3, 1, 64)
    for m in theirs.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial running statistics
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    ours = AisfxNet()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    blocks = torch.rand(2, 100, 96)
    with torch.no_grad():
        np.testing.assert_allclose(ours.eval()(blocks).numpy(), theirs.eval()(blocks).numpy(), rtol=1e-5, atol=1e-6)
    assert sum(p.numel() for p in ours.parameters()) == 4_686_144  # 4.7 M parameters (Ma & Lerch 2022)


def test_front_end_frames_and_blocks():
    spec = aisfx_logmel(np.zeros(22050, np.float32))  # 0.5 s: ceil(22050 / 1024) + 1 frames
    assert spec.shape == (23, 96) and float(spec.abs().max()) == 0.0
    assert aisfx_blocks(spec).shape == (1, 100, 96)  # padded to one block
    assert aisfx_blocks(aisfx_logmel(_clip(5.0))).shape == (3, 100, 96)  # 217 frames: blocks at 0, 50, 100
    assert np.allclose(aisfx_mel_matrix().sum(axis=0), 1.0)


def _write_checkpoint(path, net: torch.nn.Module) -> None:
    state = collections.OrderedDict((f"embedding_net.{k}", v) for k, v in net.state_dict().items())
    state["fc.0.0.weight"] = torch.zeros(2, 512)
    torch.save((state, {"lib": (np.int64(0), 2)}), path)  # numpy scalars, as the published file


class Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_checkpoint_read_safely_and_converted_once(tmp_path):
    torch.manual_seed(1)
    net = AisfxNet()
    _write_checkpoint(tmp_path / "checkpoint.pth", net)
    state, datasets = read_checkpoint(tmp_path / "checkpoint.pth")
    assert datasets == {"lib": [0, 2]} and "fc.0.0.weight" in state
    out = converted_weights(tmp_path / "checkpoint.pth", cache=tmp_path / "cache")
    mtime = out.stat().st_mtime_ns
    assert converted_weights(tmp_path / "checkpoint.pth", cache=tmp_path / "cache") == out
    assert out.stat().st_mtime_ns == mtime  # not rewritten
    from safetensors.torch import load_file

    assert set(load_file(str(out))) == set(net.state_dict())
    torch.save({"w": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ModelLoadError, match="cannot read aisfx checkpoint"):
        read_checkpoint(tmp_path / "evil.pth")


def test_backend_from_checkpoint_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("TTA_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(2)
    net = AisfxNet().eval()
    _write_checkpoint(tmp_path / "checkpoint.pth", net)
    backend = AisfxBackend(tmp_path / "checkpoint.pth")
    wav = _clip(3.0)
    with torch.no_grad():
        expected = net(aisfx_blocks(aisfx_logmel(wav)).float()).numpy()
    np.testing.assert_allclose(backend.features(wav).frames, expected, rtol=1e-6)
    assert backend.version().startswith("aisfx-v1-")
    with pytest.raises(ModelLoadError, match="no such file"):
        AisfxBackend(tmp_path / "missing.pth")
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ModelLoadError):
        AisfxBackend(tmp_path / "other.pth")


def _clusters(n_per: int, seed: int, dim: int = 32, classes: int = 4):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(scale=3.0, size=(classes, dim))
    x = np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres])
    return x, [f"c{i}" for i in range(classes) for _ in range(n_per)]


def test_probe_learns_separable_classes_and_round_trips(tmp_path):
    classes = ["c0", "c1", "c2", "c3"]
    x, y = _clusters(30, seed=0)
    probe = train_probe(x, y, classes)
    xt, yt = _clusters(10, seed=1)
    ranks = probe.rank(xt)
    assert topk_accuracy(ranks, [classes.index(c) for c in yt], 1) == 1.0
    loaded = LinearProbe.load(probe.save(tmp_path / "probe.safetensors"))
    np.testing.assert_array_equal(loaded.logits(xt), probe.logits(xt))
    assert loaded.digest() == probe.digest() and loaded.classes == classes
    sub = probe.rank(xt, ["c3", "c0"])  # indices into the given order
    assert sub[0].tolist() == [1, 0] and sub[-1].tolist() == [0, 1]
    with pytest.raises(InputError, match="no class"):
        probe.rank(xt, ["nope"])
    with pytest.raises(InputError, match="not among the classes"):
        train_probe(x, ["zz"] * len(y), classes)


def test_backend_probe_gives_logits_and_ranks():
    torch.manual_seed(3)
    net = AisfxNet(width=4).eval()  # 32-dimensional embeddings
    backend = AisfxBackend(model=net, probe=False)
    clips = [_clip(1.0, 16000, seed=i) * (0.2 + 0.4 * (i % 2)) for i in range(6)]
    emb = np.stack([backend.clip_embedding(c, 16000) for c in clips])
    labels = ["quiet" if i % 2 == 0 else "loud" for i in range(6)]
    probe = train_probe(emb, labels, ["quiet", "loud"])
    judged = AisfxBackend(model=net, probe=probe)
    assert judged.class_names == ["quiet", "loud"] and judged.version() != backend.version()
    wav44 = _clip(1.0)
    feats = judged.features(wav44)
    np.testing.assert_allclose(feats.logits, probe.logits(feats.frames.mean(axis=0, keepdims=True))[0], rtol=1e-6)
    ranks = judged.rank_classes(clips, ["loud", "quiet"])
    assert ranks.shape == (6, 2) and [r[0] for r in ranks] == [1, 0, 1, 0, 1, 0]
    from tta.evaluation.generation import class_ranks, real_clip_topk

    np.testing.assert_array_equal(class_ranks(judged, clips, ["loud", "quiet"]), ranks)  # the --judge aisfx path
    items = [{"audio": torch.from_numpy(c), "labels": [lab]} for c, lab in zip(clips, labels)]
    assert real_clip_topk(judged, items, ["loud", "quiet"]) == (1.0, 1.0)
    with pytest.raises(InputError, match="linear probe"):
        backend.rank_classes(clips, ["loud"])


def test_tta_eval_with_the_aisfx_backend(folders, clap_dir, tmp_path):
    import json

    from tta.cli import main

    torch.manual_seed(4)
    _write_checkpoint(tmp_path / "checkpoint.pth", AisfxNet())
    gen, ref = folders
    out = tmp_path / "report"
    args = ["eval", "--generated", str(gen), "--reference", str(ref), "-o", str(out), "--no-progress"]
    args += ["--backend", "aisfx", "--backend-weights", str(tmp_path / "checkpoint.pth"), "--clap", str(clap_dir)]
    assert main([*args, "--per-clip"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["backend"] == "aisfx" and report["counts"]["generated_frames"] == 6  # 1 s: 1 block
    assert {"fad", "kad", "clap_score"} <= set(report["metrics"]) and "inception_score" not in report["metrics"]
    assert all("kad_distance" in c for c in report["clips"])
    assert any("no classifier" in n for n in report["notes"])
