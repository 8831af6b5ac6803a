import copy
import json

import numpy as np
import pytest
import torch

from tta.engine import winograd
from tta.engine.winograd import WinogradConv2d, disable_winograd, enable_winograd, nnpack_available, winograd_layers
from tta.errors import InputError

pytestmark = pytest.mark.skipif(not nnpack_available(), reason="torch has no NNPACK on this CPU")


def rel(a, b) -> float:
    return float((torch.as_tensor(a) - torch.as_tensor(b)).norm() / torch.as_tensor(b).norm())


def test_winograd_conv_matches_the_direct_one_and_keeps_the_module():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(128, 128, 3, padding=1),
        torch.nn.Conv2d(128, 128, 3, padding=1, bias=False),
        torch.nn.Conv2d(128, 64, 3, padding=1),  # too narrow
        torch.nn.Conv2d(64, 128, 3, stride=2, padding=1),  # strided
    ).eval()
    x = torch.randn(2, 128, 40, 32)
    keys = list(net.state_dict())
    with torch.no_grad():
        ref = net(x)
        assert enable_winograd(net) == 2 and winograd_layers(net) == 2
        assert [type(m) for m in net] == [WinogradConv2d, WinogradConv2d, torch.nn.Conv2d, torch.nn.Conv2d]
        out = net(x)
        assert rel(net[0](x), winograd.direct_conv(x, net[0])) < 1e-5
    assert list(net.state_dict()) == keys
    assert not torch.equal(out, ref) and rel(out, ref) < 1e-5  # NNPACK ran, and agrees up to rounding
    assert torch.equal(net[0](x[:1]).detach(), winograd.direct_conv(x[:1], net[0]).detach())  # grads: oneDNN's
    with torch.no_grad():  # a small feature map stays direct
        small = x[:, :, :8, :8]
        assert torch.equal(net[0](small), winograd.direct_conv(small, net[0]))
        half = copy.deepcopy(net[0]).to(torch.bfloat16)
        assert torch.equal(half(x.bfloat16()), winograd.direct_conv(x.bfloat16(), half))  # bfloat16: no NNPACK
    disable_winograd(net)
    assert winograd_layers(net) == 0
    with torch.no_grad():
        assert torch.equal(net(x), ref)


def test_training_through_a_switched_layer_is_the_ordinary_convolution():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(128, 128, 3, padding=1)
    plain = torch.nn.Conv2d(128, 128, 3, padding=1)
    plain.load_state_dict(conv.state_dict())
    enable_winograd(conv)
    x = torch.randn(1, 128, 40, 32)
    conv(x).square().sum().backward()
    plain(x).square().sum().backward()
    assert torch.equal(conv.weight.grad, plain.weight.grad)


@pytest.fixture
def wide_enough(monkeypatch):
    """The tiny test model's decoder is narrow: switch every 3x3 convolution."""
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)
    monkeypatch.setattr(winograd, "MIN_PIXELS", 1)


def test_pipeline_winograd_decode_is_close_recorded_and_undone(tta_model_dir, tmp_path, wide_enough):
    from tta.cli import main
    from tta.pipelines import TTAPipeline

    pipe = TTAPipeline.from_pretrained(tta_model_dir)
    run = dict(num_inference_steps=2, seed=1, progress=False, peak_limit=None)
    ref = pipe("rain", 1.0, **run)
    pipe.enable_winograd_decode()
    assert pipe.winograd_decode and all(p.is_contiguous() for p in pipe.vae.parameters())
    out = pipe("rain", 1.0, **run)
    assert not np.array_equal(out.audios, ref.audios) and rel(out.audios, ref.audios) < 1e-4
    assert out.settings["winograd_decode"] is True and "winograd_decode" not in ref.settings
    pipe.enable_fast_inference()  # channels-last would undo NNPACK's layout: the decoder stays contiguous
    assert rel(pipe("rain", 1.0, **run).audios, ref.audios) < 1e-4
    pipe.enable_winograd_decode(False)
    assert not pipe.winograd_decode and np.array_equal(pipe("rain", 1.0, **run).audios, ref.audios)
    # the CLI flag: recorded in the sidecar, restored by --from-sidecar
    gen = ["generate", "rain", "--model", str(tta_model_dir), "--steps", "2", "--duration", "1", "--seed", "1"]
    assert main([*gen, "--no-progress", "--winograd-decode", "-o", str(tmp_path / "a.wav")]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["winograd_decode"] is True
    assert main(["generate", "--from-sidecar", str(tmp_path / "a.json"), "-o", str(tmp_path / "b.wav")]) == 0
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()


def test_a_decoder_too_narrow_to_gain_says_so(tta_model_dir):
    from tta.pipelines import TTAPipeline

    pipe = TTAPipeline.from_pretrained(tta_model_dir)  # the tiny decoder: under MIN_CHANNELS everywhere
    with pytest.warns(UserWarning, match="no layer .* wide enough"):
        pipe.enable_winograd_decode()
    assert not pipe.winograd_decode


def test_without_nnpack_it_is_one_clear_error(tiny_pipe, monkeypatch):
    monkeypatch.setattr(torch.backends.nnpack, "is_available", lambda: False)
    with pytest.raises(InputError, match="NNPACK"):
        tiny_pipe.enable_winograd_decode()
    assert not tiny_pipe.winograd_decode


def test_an_engine_leaves_the_winograd_decoder_in_torch(tta_model_dir, tmp_path, monkeypatch, wide_enough):
    from tta.engine import available_runtimes
    from tta.pipelines import TTAPipeline

    if not available_runtimes():
        pytest.skip("no engine runtime installed")
    monkeypatch.setenv("TTA_CACHE", str(tmp_path / "cache"))
    engine = available_runtimes()[0]
    pipe = TTAPipeline.from_pretrained(tta_model_dir)
    pipe.enable_engine(engine)
    assert hasattr(pipe.vae, "session")  # the engine runs the decoder
    pipe.enable_winograd_decode()  # ... until Winograd is asked for
    assert not hasattr(pipe.vae, "session") and pipe.winograd_decode
    assert pipe.engine_settings["components"]["vae_decoder"] == "torch (winograd decode)"
    pipe.enable_engine(engine)  # installing again keeps it there
    assert not hasattr(pipe.vae, "session") and pipe.engine_settings["engine"] == engine
    assert pipe.engine_settings["components"]["vae_decoder"] == "torch (winograd decode)"
    assert hasattr(pipe.unet, "session")
