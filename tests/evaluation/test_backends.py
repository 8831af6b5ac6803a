"""Embedding backends: VGGish and PANNs CNN14 against their reference code on random weights (front-ends
included), the CLAP backends on a tiny random ClapModel, and the errors for absent or wrong weight files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.evaluation.reference_tools import panns_models, torchvggish_modules
from tta.errors import InputError, ModelLoadError
from tta.evaluation.backends import BACKENDS, load_backend


def _test_wave(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    wav = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.normal(size=t.size)
    return wav.astype(np.float32)


def _close(ours, theirs, rtol: float = 1e-4):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * np.abs(theirs).max())


def test_vggish_front_end_matches_torchvggish():
    from tta.evaluation.backends.vggish import vggish_examples

    tv = torchvggish_modules()
    wav = _test_wave(2.5, 16000)
    theirs = tv.front.waveform_to_examples(wav.astype(np.float64), 16000, return_tensor=True).detach()
    ours = vggish_examples(wav)
    assert ours.shape == theirs.shape == (2, 1, 96, 64)
    _close(ours, theirs, rtol=1e-5)


def test_vggish_backend_matches_torchvggish_on_random_weights(tmp_path):
    tv = torchvggish_modules()
    torch.manual_seed(0)
    reference = tv.net.VGG(tv.net.make_layers(), postprocess=False).eval()
    torch.save(reference.state_dict(), tmp_path / "vggish-10086976.pth")  # the published key layout
    # as frechet-audio-distance and fadtk use it: without the last ReLU
    reference.embeddings = nn.Sequential(*list(reference.embeddings.children())[:-1])
    backend = load_backend("vggish", tmp_path / "vggish-10086976.pth")
    wav = _test_wave(3.0, 16000, seed=1)
    with torch.no_grad():
        theirs = reference(tv.front.waveform_to_examples(wav.astype(np.float64), 16000).detach())
    feats = backend.features(wav)
    assert feats.frames.shape == (3, 128) and feats.logits is None
    _close(feats.frames, theirs)
    assert backend.features(wav[:4000]).frames.shape == (1, 128)  # shorter than 0.96 s: padded to one example


@pytest.fixture(scope="module")
def panns_reference(tmp_path_factory):
    pm = panns_models()
    torch.manual_seed(0)
    model = pm.Cnn14(
        sample_rate=32000, window_size=1024, hop_size=320, mel_bins=64, fmin=50, fmax=14000, classes_num=527
    )
    with torch.no_grad():  # non-trivial batch-norm statistics, so that the BN layers are really compared
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    path = tmp_path_factory.mktemp("panns") / "Cnn14_mAP=0.431.pth"
    torch.save({"model": model.state_dict(), "iteration": 0}, path)
    return model.eval(), path


def test_panns_backend_matches_panns_inference_on_random_weights(panns_reference):
    reference, path = panns_reference
    backend = load_backend("panns", path)
    assert backend.sample_rate == 32000 and len(backend.class_names) == 527
    wav = _test_wave(1.5, 32000, seed=2)
    with torch.no_grad():
        theirs = reference(torch.from_numpy(wav)[None])
        front = reference.logmel_extractor(reference.spectrogram_extractor(torch.from_numpy(wav)[None]))
        ours_front = backend.model.logmel(torch.from_numpy(wav)[None])
    _close(ours_front, front, rtol=1e-4)
    feats = backend.features(wav)
    assert feats.frames.shape == (1, 2048) and feats.logits.shape == (527,)
    _close(feats.frames, theirs["embedding"], rtol=1e-3)
    _close(1 / (1 + np.exp(-feats.logits.astype(np.float64))), theirs["clipwise_output"][0], rtol=1e-3)


def test_clap_backends_on_a_tiny_clap(clap_dir):
    from tta.data.captions import class_prompt
    from tta.evaluation.clap_zero_shot import tile_to
    from tta.models.clap import load_clap

    backend = load_backend("laion-clap", clap_dir)
    wav = _test_wave(1.2, 16000)
    np.random.seed(0)  # the tiny feature extractor crops 1 s of each window at random (np.random)
    feats = backend.features(wav)
    clap = load_clap(clap_dir)
    np.random.seed(0)
    with torch.no_grad():  # a 1.2 s clip is tiled (0.25 s gaps) to one 5 s window, then encoded
        window = tile_to(torch.from_numpy(wav), 5 * 16000, gap=4000)
        direct = clap.encode_audio(window[None])[0].numpy()
    assert feats.frames.shape == (1, clap.embedding_dim)
    np.testing.assert_allclose(feats.frames[0], direct, rtol=1e-4, atol=1e-5)
    classes = backend.encode_text([class_prompt(c) for c in backend.class_names])
    np.testing.assert_allclose(feats.logits, 100 * classes @ direct, rtol=1e-4, atol=1e-3)
    assert backend.encode_text(["rain"]).shape == (1, clap.embedding_dim)
    assert backend.version() == load_backend("laion-clap", clap_dir).version()


@pytest.mark.parametrize("name", ["vggish", "panns", "laion-clap"])
def test_weights_are_required_and_checked(name, tmp_path):
    with pytest.raises(InputError, match="--backend-weights"):
        load_backend(name, None)
    with pytest.raises(ModelLoadError, match="--backend-weights"):
        load_backend(name, tmp_path / "absent.pth")


def test_wrong_weight_files(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    for name in ("vggish", "panns"):
        with pytest.raises(ModelLoadError, match="not a"):
            load_backend(name, tmp_path / "other.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="cannot read"):
        load_backend("vggish", tmp_path / "garbage.pth")


def test_unknown_backend():
    with pytest.raises(InputError, match="unknown --backend"):
        load_backend("inception")
    assert list(BACKENDS)[0] == "clap"
