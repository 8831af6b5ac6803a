"""Sampler names, latent shapes and the guidance wrapper."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, UniPCMultistepScheduler

from tests.conftest import AUDIOLDM_SCHEDULER
from tta.errors import InputError
from tta.sampling import MAX_DURATION_S, guided_denoiser, latent_layout, make_scheduler, sampler_name

CONFIG = {"_class_name": "DDIMScheduler", "_diffusers_version": "0.0", **AUDIOLDM_SCHEDULER}


@pytest.mark.parametrize(
    "name, cls",
    [
        (None, DPMSolverMultistepScheduler),
        ("dpmpp-2m", DPMSolverMultistepScheduler),
        ("DPM++2M", DPMSolverMultistepScheduler),
        ("ddim", DDIMScheduler),
        ("euler", EulerDiscreteScheduler),
        ("unipc", UniPCMultistepScheduler),
    ],
)
def test_samplers_by_name_keep_the_noise_schedule(name, cls):
    scheduler = make_scheduler(name, CONFIG)
    assert type(scheduler) is cls
    assert scheduler.config.beta_start == 0.0015 and scheduler.config.beta_schedule == "scaled_linear"
    if cls is DPMSolverMultistepScheduler:
        assert scheduler.config.algorithm_type == "dpmsolver++" and scheduler.config.solver_order == 2


def test_unknown_sampler():
    with pytest.raises(InputError, match="unknown sampler 'plms'"):
        sampler_name("plms")


@pytest.mark.parametrize("duration", [0.01, 1.0, 2.5, 4.99, 5.12, 10.0, 13.7])
def test_latent_layout_pads_for_vae_and_unet(duration):
    layout = latent_layout(duration, 16000, 160, 8, 64, vae_factor=4, unet_factor=8)
    assert layout.num_samples == round(duration * 16000)
    assert layout.mel_frames % 32 == 0 and layout.mel_frames * 160 >= layout.num_samples
    assert layout.mel_frames - 32 < layout.num_samples / 160
    assert layout.latent_shape == (8, layout.mel_frames // 4, 16)


@pytest.mark.parametrize("duration", [0, -1, float("nan"), float("inf"), MAX_DURATION_S + 0.1, "abc"])
def test_latent_layout_rejects_bad_durations(duration):
    with pytest.raises(InputError):
        latent_layout(duration, 16000, 160, 8, 64, 4, 8)


class FakeUNet(torch.nn.Module):
    """eps = x * (1 + label mean): records the batch sizes it is called with."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(()))
        self.calls = []

    def forward(self, x, t, encoder_hidden_states=None, class_labels=None):
        self.calls.append(x.shape[0])
        out = x * (1 + class_labels.mean(dim=1)[:, None, None, None])
        return type("Out", (), {"sample": out})()


def test_guidance_is_one_batched_call_with_the_cfg_formula():
    unet = FakeUNet()
    x = torch.randn(3, 2, 4, 4)
    cond, uncond = torch.full((3, 5), 1.0), torch.full((3, 5), -0.5)
    eps = guided_denoiser(unet, cond, uncond, 3.0)(x, torch.tensor(10))
    assert unet.calls == [6]
    e_cond, e_uncond = x * 2.0, x * 0.5
    torch.testing.assert_close(eps, e_uncond + 3.0 * (e_cond - e_uncond))


def test_no_guidance_at_scale_one():
    unet = FakeUNet()
    x = torch.randn(2, 2, 4, 4)
    eps = guided_denoiser(unet, torch.ones(2, 5), torch.zeros(2, 5), 1.0)(x, torch.tensor(10))
    assert unet.calls == [2]
    torch.testing.assert_close(eps, x * 2.0)


@pytest.mark.parametrize("sampler", ["dpmpp-2m", "ddim", "euler", "unipc"])
@pytest.mark.parametrize("steps", [1, 2, 500])
def test_every_sampler_runs_the_whole_step_range(sampler, steps):
    from tta.pipelines import MAX_STEPS
    from tta.sampling import denoise

    assert MAX_STEPS == 500
    scheduler = make_scheduler(sampler, CONFIG)
    scheduler.set_timesteps(steps)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    out = denoise(lambda x, t: 0.1 * x, scheduler, x * scheduler.init_noise_sigma)
    assert torch.isfinite(out).all()
