"""The VAE and vocoder stages on a tiny corpus: adversarial training on the shared loop, exact resume with the
discriminator, resume after SIGKILL, exports that load as plain diffusers/transformers models, and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import sigkill_after_checkpoint
from tests.training.audio_corpus import sound
from tta.builders import build_trainer
from tta.errors import InputError, ModelLoadError
from tta.models.discriminators import (
    HifiGanDiscriminator,
    PatchDiscriminator,
    feature_matching_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
)
from tta.paths import REPO_ROOT
from tta.training.checkpoint import latest_checkpoint
from tta.training.ema import ema_weights
from tta.training.losses import multi_resolution_stft_loss
from tta.training.vae import VaeTrainer
from tta.training.vocoder import VocoderTrainer, add_weight_norm, plain_state_dict

SR = 16000
TINY_VOCODER = dict(
    upsample_initial_channel=32,
    upsample_kernel_sizes=[10, 8, 4, 4, 4],
    resblock_kernel_sizes=[3],
    resblock_dilation_sizes=[[1, 3]],
)
TINY_VOCODER_DISC = dict(periods=[2, 3], num_scales=2, width=0.03)
TINY_VAE = dict(block_out_channels=[8, 16], layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=32)
TINY_VAE_DISC = dict(channels=4, num_layers=2)


def _common(run_dir, corpus, **kw):
    base = dict(
        run_dir=run_dir,
        corpus=corpus,
        batch_size=2,
        clip_seconds=0.32,
        checkpoint_every=2,
        eval_every=0,
        eval_items=2,
        eval_seconds=1.0,
        progress=False,
        num_threads=1,
        ema_decay=0.9,
        mix_prob=0.5,
    )
    base.update(kw)
    return base


def vocoder_trainer(run_dir, corpus, **kw):
    kw.setdefault("max_steps", 4)
    return VocoderTrainer(
        model=TINY_VOCODER, discriminator=TINY_VOCODER_DISC, adv_start_step=1, **_common(run_dir, corpus, **kw)
    )


def vae_trainer(run_dir, corpus, **kw):
    kw.setdefault("max_steps", 4)
    kw.setdefault("clip_seconds", 0.64)
    return VaeTrainer(
        model=TINY_VAE, discriminator=TINY_VAE_DISC, disc_start_step=1, scale_clips=4, **_common(run_dir, corpus, **kw)
    )


# ------------------------------------------------------------------------------------ building blocks
def test_discriminators_shapes_and_losses():
    torch.manual_seed(0)
    disc = HifiGanDiscriminator(periods=[2, 3, 5], num_scales=2, width=0.05)
    wav = torch.randn(2, 1601)  # not a multiple of any period
    logits, feats = disc(wav)
    assert len(logits) == len(feats) == 5
    assert all(lo.shape[0] == 2 and lo.dim() == 2 for lo in logits)
    ones = [torch.ones(2, 3)]
    zeros = [torch.zeros(2, 3)]
    assert lsgan_discriminator_loss(ones, zeros) == 0 and lsgan_generator_loss(ones) == 0
    assert lsgan_discriminator_loss(zeros, ones) == 2
    assert feature_matching_loss(feats, feats) == 0
    patch = PatchDiscriminator(channels=4, num_layers=2)
    assert patch(torch.randn(2, 1, 64, 64)).shape[:2] == (2, 1)


def test_multi_resolution_stft_loss_is_zero_only_for_the_same_signal():
    torch.manual_seed(0)
    x = torch.randn(2, 4000)
    res = [(256, 64, 256), (512, 128, 512)]
    assert float(multi_resolution_stft_loss(x, x, res)) == pytest.approx(0.0, abs=1e-6)
    small = multi_resolution_stft_loss(x + 0.01 * torch.randn_like(x), x, res)
    large = multi_resolution_stft_loss(x + 0.5 * torch.randn_like(x), x, res)
    assert 0 < small < large


def test_weight_norm_folds_into_the_same_function():
    from tta.models.vocoder import build_vocoder

    torch.manual_seed(0)
    voc = add_weight_norm(build_vocoder(**TINY_VOCODER)).eval()
    mel = torch.randn(1, 20, 64)
    plain = build_vocoder(**TINY_VOCODER).eval()
    state = plain_state_dict(voc)
    assert not any("parametrizations" in k for k in state)
    plain.load_state_dict(state)  # strict: every plain key, nothing else
    with torch.no_grad():
        torch.testing.assert_close(plain(mel), voc(mel), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------ the stages
def test_vocoder_stage_trains_adversarially_and_exports_a_plain_hifigan(tmp_path, corpus):
    from transformers import SpeechT5HifiGan

    t = vocoder_trainer(tmp_path / "run", corpus, max_steps=3, export_dir=tmp_path / "vocoder", eval_every=3)
    metrics = t.fit()
    assert set(metrics) == {"mel_l1", "mrstft"} and all(np.isfinite(v) for v in metrics.values())
    folder = latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert (folder / "discriminator.safetensors").is_file() and (folder / "optimizer_1.bin").is_file()
    voc = SpeechT5HifiGan.from_pretrained(tmp_path / "vocoder", local_files_only=True).eval()
    assert voc.config.upsample_initial_channel == 32
    mel = torch.randn(1, 30, 64)
    with torch.no_grad(), ema_weights(t.ema, t.ema_module()):  # the export holds the EMA weights
        expected = t.unwrapped_model(mel)
    torch.testing.assert_close(voc(mel), expected, rtol=1e-4, atol=1e-5)
    assert (tmp_path / "run" / "vocoder").is_dir()  # TensorBoard logs


def test_vae_stage_trains_and_exports_its_scaling_factor(tmp_path, corpus):
    from diffusers import AutoencoderKL

    t = vae_trainer(tmp_path / "run", corpus, max_steps=3, export_dir=tmp_path / "vae", eval_every=3)
    metrics = t.fit()
    assert np.isfinite(metrics["mel_l1"])
    vae = AutoencoderKL.from_pretrained(tmp_path / "vae", local_files_only=True)
    scale = vae.config.scaling_factor
    assert scale != 1.0 and np.isfinite(scale)
    assert scale == pytest.approx(t.latent_scaling_factor(vae), rel=1e-5)  # deterministic
    # what was stored is 1 / std of the latents the pipeline's encoder gives
    x = t.mel_image(torch.as_tensor(sound("tone", 1.28, 5))[None])
    with torch.no_grad():
        z = vae.encode(x).latent_dist.sample() * scale
    assert 0.2 < float(z.std()) < 5.0


@pytest.mark.parametrize("make", [vocoder_trainer, vae_trainer], ids=["vocoder", "vae"])
def test_interrupted_adversarial_run_resumes_exactly(tmp_path, corpus, make):
    straight = make(tmp_path / "a", corpus, max_steps=4)
    straight.fit()
    first = make(tmp_path / "b", corpus, max_steps=4)
    first.max_steps = 2  # stop half-way, as a SIGTERM would
    first.fit()
    resumed = make(tmp_path / "b", corpus, max_steps=4)
    resumed.fit()
    assert resumed.step == 4
    for name in ("model", "disc"):
        a = straight.unwrapped_model if name == "model" else straight.discriminator
        b = resumed.unwrapped_model if name == "model" else resumed.discriminator
        for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
            torch.testing.assert_close(va, vb, rtol=0, atol=0, msg=f"{name} {k}")


def test_truncated_discriminator_checkpoint_is_a_clear_error(tmp_path, corpus):
    vocoder_trainer(tmp_path, corpus, max_steps=2).fit()
    f = tmp_path / "checkpoints" / "step_0000002" / "discriminator.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match="discriminator.safetensors"):
        vocoder_trainer(tmp_path, corpus, max_steps=3).fit()


def test_bad_settings_are_clear_errors(tmp_path, corpus):
    with pytest.raises(InputError, match="gain_db"):
        vocoder_trainer(tmp_path, corpus, gain_db=[3, -3])
    with pytest.raises(InputError, match="mel frames"):
        vocoder_trainer(tmp_path, corpus, clip_seconds=0.02)
    with pytest.raises(InputError, match="no corpus"):
        vocoder_trainer(tmp_path, tmp_path / "nowhere").fit()
    with pytest.raises(InputError, match="does not match"):
        VocoderTrainer(model={**TINY_VOCODER, "model_in_dim": 80}, **_common(tmp_path, corpus)).fit()


def test_default_configs_build_both_stages(tmp_path, corpus):
    for stage, model_cfg in (("vocoder", "vocoder_small"), ("vae", "vae_small")):
        t = build_trainer(
            stage,
            REPO_ROOT / f"configs/train/{stage}.yaml",
            REPO_ROOT / f"configs/model/{model_cfg}.yaml",
            run_dir=tmp_path / stage,
            corpus=corpus,
        )
        assert t.discriminator is None and t.ema_decay  # built lazily in fit()
        model = t.build_model()
        params = sum(p.numel() for p in model.parameters())
        assert 0.5e6 < params < 4e6, (stage, params)  # the CPU defaults stay small


def test_sigkill_mid_run_resumes_from_the_last_checkpoint(tmp_path, corpus):
    """`tta train vocoder` killed with SIGKILL restarts from `latest` and loses only the steps after it."""
    cfg = yaml.safe_load((REPO_ROOT / "configs/train/vocoder.yaml").read_text())
    cfg.update(
        max_steps=400, batch_size=2, clip_seconds=0.32, checkpoint_every=3, eval_every=0, eval_items=1,
        adv_start_step=1, discriminator=TINY_VOCODER_DISC, model=TINY_VOCODER, log_every=1,
    )  # fmt: skip
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "model.yaml").write_text("{}\n")
    cmd = [sys.executable, "-m", "tta", "train", "vocoder", "--config", str(tmp_path / "train.yaml")]
    cmd += [
        "--model-config",
        str(tmp_path / "model.yaml"),
        "--corpus",
        str(corpus),
        "--run-dir",
        str(tmp_path / "run"),
    ]
    cmd += ["--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    ckpts = tmp_path / "run" / "checkpoints"
    saved = sigkill_after_checkpoint(proc, ckpts, 6, timeout=120)
    assert saved >= 6
    cfg["max_steps"] = saved + 2
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(cfg))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"(step {saved})" in out.stdout  # picked up where the last checkpoint left it
    assert f"step {saved + 1}/{saved + 2}" in out.stdout and f"step {saved}/" not in out.stdout
    assert latest_checkpoint(ckpts).name == f"step_{saved + 2:07d}"


def test_eval_only_reports_round_trips_against_griffin_lim(tmp_path, corpus):
    """`tta train vae|vocoder --eval-only` scores a split's round trips: Griffin-Lim, vocoder (and VAE)."""
    from tta.cli import main

    vocoder_trainer(tmp_path / "voc", corpus, max_steps=2, export_dir=tmp_path / "model" / "vocoder").fit()
    vae_trainer(tmp_path / "vae", corpus, max_steps=2, export_dir=tmp_path / "model" / "vae").fit()
    common = ["--model", str(tmp_path / "model"), "--corpus", str(corpus), "--split", "valid"]
    assert main(["train", "vae", "--eval-only", *common, "--json", str(tmp_path / "vae.json")]) == 0
    report = json.loads((tmp_path / "vae.json").read_text())
    assert set(report) >= {"griffin_lim", "vocoder", "vae+vocoder"}
    assert report["vocoder"]["clips"] == 2 and all(np.isfinite(report["vae+vocoder"][k]) for k in ("lsd", "mrstft"))
    assert main(["train", "vocoder", "--eval-only", *common, "--json", str(tmp_path / "voc.json")]) == 0
    assert "vae+vocoder" not in json.loads((tmp_path / "voc.json").read_text())
    assert main(["train", "vocoder", "--eval-only", "--model", str(tmp_path / "nowhere")]) == 2
    no_corpus = ["--model", str(tmp_path / "model"), "--corpus", str(tmp_path / "nowhere")]
    assert main(["train", "vocoder", "--eval-only", *no_corpus]) == 2


def test_vae_checkpoint_holds_plain_autoencoder_keys_and_a_mismatched_ema_is_an_error(tmp_path, corpus):
    from safetensors.torch import load_file

    from tta.models.vae import build_vae
    from tta.training.ema import build_ema, check_ema_fits

    vae_trainer(tmp_path, corpus, max_steps=2).fit()
    folder = latest_checkpoint(tmp_path / "checkpoints")
    plain = build_vae(**TINY_VAE)
    plain.load_state_dict(load_file(folder / "model.safetensors"))  # no wrapper prefix: a bare AutoencoderKL
    ema = build_ema(plain, 0.9)
    ema.load_state_dict(torch.load(folder / "custom_checkpoint_1.pkl", weights_only=False))  # the EMA
    check_ema_fits(ema, plain, str(folder))  # averages of the bare AutoencoderKL's parameters
    with pytest.raises(ModelLoadError, match="different model"):
        check_ema_fits(ema, torch.nn.Linear(2, 2), str(folder))  # a state saved for another model


def test_istft_vocoder_trains_without_weight_norm_and_exports(tmp_path, corpus):
    from tta.loading import load_vocoder
    from tta.models.istft_vocoder import ISTFTVocoder

    model = dict(architecture="istft", channels=16, hidden_channels=32, num_blocks=2)
    t = VocoderTrainer(
        model=model, discriminator=TINY_VOCODER_DISC, adv_start_step=1, export_dir=tmp_path / "export",
        **_common(tmp_path / "run", corpus, max_steps=3),
    )  # fmt: skip
    t.fit()
    assert not any("parametrizations" in k for k in t.unwrapped_model.state_dict())
    voc = load_vocoder(tmp_path / "export")
    assert isinstance(voc, ISTFTVocoder)
    mel = torch.randn(1, 25, 64)
    with torch.no_grad(), ema_weights(t.ema, t.ema_module()):
        torch.testing.assert_close(voc(mel), t.unwrapped_model(mel), rtol=1e-4, atol=1e-6)
    with pytest.raises(InputError, match="hop"):
        VocoderTrainer(model={**model, "hop_length": 128}, **_common(tmp_path / "bad", corpus)).fit()


def test_magnitude_loss_trains_the_istft_head_towards_the_true_spectrum(tmp_path, corpus):
    """The magnitude loss compares the head's log magnitude with ln|STFT| at the head's n_fft/hop (checked here
    against torch.stft directly), is logged, and minimising it alone brings the head's magnitude closer."""
    model = dict(
        architecture="istft", channels=16, hidden_channels=32, num_blocks=2, phase_mode="locked",
        magnitude_prior="mel_pinv", initial_phase="scrambled",
    )  # fmt: skip
    kw = _common(tmp_path / "run", corpus, ema_decay=0.0)
    t = VocoderTrainer(model=model, magnitude_loss_weight=1.0, mel_loss_weight=0.0, stft_loss_weight=0.0, **kw)
    t.setup()
    wav = torch.as_tensor(sound("tone", 0.5, 3))[None]
    spec = torch.stft(wav, 640, 160, 640, window=torch.hann_window(640), center=True, return_complex=True)
    torch.testing.assert_close(t.true_log_magnitude(wav, 50), spec[..., :50].abs().clamp_min(1e-5).log())
    mel = t.log_mel(wav)

    def error():
        with torch.no_grad():
            _, log_mag = t.unwrapped_model(mel, return_log_magnitude=True)
        return float((log_mag - t.true_log_magnitude(wav, log_mag.shape[-1])).abs().mean())

    before = error()
    out = t.run_step(t.collate([t.train_data[i] for i in range(2)]))
    assert "mag_l1" in out and float(out["loss"]) == pytest.approx(float(out["mag_l1"]))
    opt = torch.optim.Adam(t.unwrapped_model.parameters(), lr=3e-3)
    batch = t.collate([{"audio": torch.as_tensor(sound("tone", 0.5, 3))}])
    for _ in range(30):  # the loss alone, on this clip: the head's magnitude error must fall
        opt.zero_grad()
        t.run_step(batch)["loss"].backward()
        opt.step()
    assert error() < 0.7 * before, (error(), before)


def test_init_from_an_exported_model_warm_starts(tmp_path, corpus):
    from tta.loading import load_vae, load_vocoder

    vocoder_trainer(tmp_path / "a", corpus, max_steps=2, export_dir=tmp_path / "model" / "vocoder").fit()
    vae_trainer(tmp_path / "b", corpus, max_steps=2, export_dir=tmp_path / "model" / "vae").fit()
    mel = torch.randn(1, 20, 64)
    warm = vocoder_trainer(tmp_path / "c", corpus, init_from=tmp_path / "model").build_model()
    cold = vocoder_trainer(tmp_path / "d", corpus).build_model()
    with torch.no_grad():
        expected = load_vocoder(tmp_path / "model")(mel)
        torch.testing.assert_close(warm(mel), expected, rtol=1e-4, atol=1e-6)  # weight norm added after loading
        assert not torch.allclose(cold(mel), expected)
    warm_vae = vae_trainer(tmp_path / "e", corpus, init_from=tmp_path / "model" / "vae").build_model().vae
    for k, v in load_vae(tmp_path / "model").state_dict().items():
        torch.testing.assert_close(warm_vae.state_dict()[k], v, rtol=0, atol=0)
    with pytest.raises(ModelLoadError, match="nowhere"):
        vae_trainer(tmp_path / "f", corpus, init_from=tmp_path / "nowhere").build_model()
    with pytest.raises(InputError, match="does not fit"):
        other = {**TINY_VOCODER, "upsample_initial_channel": 64}
        VocoderTrainer(model=other, init_from=tmp_path / "model", **_common(tmp_path / "g", corpus)).build_model()
