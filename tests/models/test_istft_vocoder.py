"""The ISTFT vocoder: framing, lengths, dtypes, saving/loading by model_type, and use inside the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tta.loading import load_components, load_vocoder
from tta.models.istft_vocoder import ISTFTVocoder, ISTFTVocoderConfig
from tta.models.vocoder import build_vocoder, vocoder_class

TINY = dict(channels=16, hidden_channels=32, num_blocks=2)


def tiny_vocoder(seed: int = 0) -> ISTFTVocoder:
    torch.manual_seed(seed)
    return build_vocoder("istft", **TINY).eval()


def test_output_is_exactly_hop_samples_per_frame_and_float32():
    voc = tiny_vocoder()
    mel = torch.randn(2, 37, 64)
    with torch.no_grad():
        out = voc(mel)
        assert out.shape == (2, 37 * 160) and out.dtype == torch.float32
        assert voc(mel[0]).shape == (37 * 160,)
        torch.testing.assert_close(voc(mel[0]), out[0], rtol=1e-4, atol=1e-6)
        half = tiny_vocoder().to(torch.bfloat16)  # as `--dtype bfloat16` casts it
        assert half(mel.to(torch.bfloat16)).dtype == torch.float32
    assert voc.config.upsample_rates == [160]  # the pipeline's hop: prod(upsample_rates)


def test_synthesis_frames_line_up_with_the_mel_frames():
    """The true STFT of a signal (frame t centred on sample t * hop), given to the head, gives the signal back."""
    voc = tiny_vocoder()
    n_fft, hop, frames = 640, 160, 50
    t = torch.arange(frames * hop) / 16000
    x = (0.3 * torch.sin(2 * np.pi * 440 * t) + 0.1 * torch.sin(2 * np.pi * 3000 * t))[None]
    spec = torch.stft(x, n_fft, hop, n_fft, window=torch.hann_window(n_fft), center=True, return_complex=True)
    spec = spec[..., :frames]  # the mel front-end keeps N // hop frames
    y = voc.synthesize(spec.abs().clamp_min(1e-9).log(), spec.angle())
    inner = slice(n_fft, frames * hop - n_fft)
    torch.testing.assert_close(y[:, inner], x[:, inner], rtol=0, atol=1e-4)


def test_saved_folder_loads_back_by_model_type(tmp_path):
    voc = tiny_vocoder()
    voc.save_pretrained(tmp_path / "vocoder", safe_serialization=True)
    config = ISTFTVocoderConfig.from_pretrained(tmp_path / "vocoder").to_dict()
    assert config["model_type"] == "tta_istft_vocoder" and vocoder_class(config) is ISTFTVocoder
    loaded = load_vocoder(tmp_path)
    assert isinstance(loaded, ISTFTVocoder) and not loaded.training
    mel = torch.randn(1, 20, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), voc(mel))


def test_unknown_architecture_is_an_error():
    with pytest.raises(ValueError, match="unknown vocoder architecture"):
        build_vocoder("wavenet")


def test_pipeline_generates_with_an_istft_vocoder(tmp_path, clap_dir):
    from tests.conftest import AUDIOLDM_SCHEDULER, build_tiny_unet_vae_vocoder
    from tta.models.clap import load_clap
    from tta.pipelines import TTAPipeline

    unet, vae, _ = build_tiny_unet_vae_vocoder()
    scheduler = {"_class_name": "DDIMScheduler", **AUDIOLDM_SCHEDULER}
    pipe = TTAPipeline(unet, vae, tiny_vocoder(), load_clap(clap_dir), scheduler)
    pipe.save_pretrained(tmp_path / "model")
    assert isinstance(load_components(tmp_path / "model").vocoder, ISTFTVocoder)
    loaded = TTAPipeline.from_pretrained(tmp_path / "model")
    out = loaded(
        "rain on a roof", audio_length_in_s=1.3, num_inference_steps=2, generator=torch.Generator().manual_seed(0)
    )
    assert out.audios.shape == (1, int(1.3 * 16000)) and np.isfinite(out.audios).all()


def test_integrated_phase_keeps_a_bin_centred_partial_coherent():
    """With zero deviation, the phase of bin k advances by 2 pi k hop / n_fft per frame: a sinusoid at a bin's
    centre frequency, with constant frames (what a shift-equivariant network gives), comes out clean."""
    voc = tiny_vocoder()
    n_fft, hop, frames, k = 640, 160, 60, 11
    bins = n_fft // 2 + 1
    log_mag = torch.full((1, bins, frames), -20.0)
    log_mag[0, k] = np.log(n_fft / 4)  # a unit sinusoid's Hann-windowed peak is n_fft / 4
    y = voc.synthesize(log_mag, voc.integrate_phase(torch.zeros(1, bins, frames)))
    inner = slice(n_fft, frames * hop - n_fft)
    t = (torch.arange(frames * hop, dtype=torch.float64) / 16000)[inner]
    omega = 2 * np.pi * k * 16000 / n_fft
    basis = torch.stack([torch.cos(omega * t), torch.sin(omega * t)], 1)  # fit a * cos + b * sin

    def fit(wav):
        coef = torch.linalg.lstsq(basis, wav[0, inner].double()[:, None]).solution
        return float(coef.norm()), float((basis @ coef)[:, 0].sub(wav[0, inner].double()).abs().max())

    amplitude, residual = fit(y)
    assert amplitude > 0.5 and residual < 1e-3 * amplitude  # one clean sinusoid
    amplitude, residual = fit(voc.synthesize(log_mag, torch.zeros(1, bins, frames)))  # constant absolute phase
    assert residual > 0.3 * amplitude  # frames out of phase with each other: not a sinusoid
    with pytest.raises(ValueError, match="phase_mode"):
        ISTFTVocoderConfig(phase_mode="random")


@pytest.mark.parametrize("n_fft", [1024, 640])
def test_mel_pinv_prior_gives_an_untrained_model_the_spectral_envelope(n_fft):
    """With ``magnitude_prior="mel_pinv"`` an untrained vocoder already reproduces the mel it is given (the
    head starts at zero: magnitude = pseudo-inverse of the mel, phase = centre-frequency advance); without
    the prior it does not. The prior survives save/load."""
    from tta.audio.mel import MelSpectrogram

    torch.manual_seed(0)
    t = torch.arange(16000) / 16000
    noise = torch.randn(16000) * torch.linspace(0.0, 0.05, 16000)  # rising noise + a gliding tone
    x = (0.2 * torch.sin(2 * np.pi * (300 + 400 * t) * t) + noise)[None]
    mel = MelSpectrogram()(x)
    prior = build_vocoder("istft", n_fft=n_fft, magnitude_prior="mel_pinv", initial_phase="scrambled", **TINY).eval()
    plain = build_vocoder("istft", n_fft=n_fft, **TINY).eval()
    with torch.no_grad():
        err_prior = (MelSpectrogram()(prior(mel)) - mel)[:, 10:-10].abs().mean().item()
        err_plain = (MelSpectrogram()(plain(mel)) - mel)[:, 10:-10].abs().mean().item()
    assert err_prior < 0.45 and err_plain > 2 * err_prior, (err_prior, err_plain)
    with pytest.raises(ValueError, match="magnitude_prior"):
        ISTFTVocoderConfig(magnitude_prior="nnls")
    with pytest.raises(ValueError, match="initial_phase"):
        ISTFTVocoderConfig(initial_phase="random")


def test_mel_pinv_prior_survives_save_and_load(tmp_path):
    voc = build_vocoder("istft", magnitude_prior="mel_pinv", initial_phase="scrambled", **TINY).eval()
    torch.nn.init.normal_(voc.head.weight, std=0.01)  # as after training
    voc.save_pretrained(tmp_path / "vocoder", safe_serialization=True)
    loaded = load_vocoder(tmp_path)
    assert loaded.config.magnitude_prior == "mel_pinv" and loaded.config.initial_phase == "scrambled"
    mel = torch.randn(1, 20, 64) - 4
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), voc(mel))


def test_locked_phase_turns_a_partial_between_bins_into_one_sinusoid():
    """Given the true magnitudes of a sinusoid that falls between two bins, identity phase locking synthesises
    one clean sinusoid (energy at its frequency, as fine as a 4096-point FFT sees), where integrating each bin
    at its own centre frequency spreads it over the main lobe's bins."""
    n_fft, hop, frames = 640, 160, 100
    freq = 1006.0  # bin 40.24 of a 640-point FFT at 16 kHz
    t = torch.arange(frames * hop, dtype=torch.float64) / 16000
    x = (0.5 * torch.sin(2 * np.pi * freq * t)).float()[None]
    spec = torch.stft(x, n_fft, hop, n_fft, window=torch.hann_window(n_fft), center=True, return_complex=True)
    log_mag = spec[..., :frames].abs().clamp_min(1e-5).log()
    zero = torch.zeros_like(log_mag)

    def concentration(phase_mode):
        voc = build_vocoder("istft", phase_mode=phase_mode, initial_phase="scrambled", **TINY)
        phase = voc.locked_phase(log_mag, zero) if phase_mode == "locked" else voc.integrate_phase(zero)
        y = voc.synthesize(log_mag, phase)[0, n_fft:-n_fft].double()
        power = torch.fft.rfft(y * torch.hann_window(y.numel(), dtype=torch.float64), 16384).abs() ** 2
        k = round(freq / 16000 * 16384)
        return float(power[k - 8 : k + 9].sum() / power.sum())

    locked, integrated = concentration("locked"), concentration("integrated")
    assert locked > 0.999 and integrated < 0.8, (locked, integrated)  # leakage 1e-4 vs ~0.4


def test_forward_returns_the_log_magnitude_it_synthesised():
    voc = build_vocoder("istft", phase_mode="locked", magnitude_prior="mel_pinv", **TINY).eval()
    mel = torch.randn(2, 30, 64) - 5
    with torch.no_grad():
        wav, log_mag = voc(mel, return_log_magnitude=True)
        torch.testing.assert_close(wav, voc(mel))
    assert log_mag.shape == (2, 321, 30) and float(log_mag.max()) <= voc.config.max_log_magnitude
    with pytest.raises(ValueError, match="phase_mode"):
        ISTFTVocoderConfig(phase_mode="vocoded")


def test_refinement_runs_outside_training_only_and_moves_the_output_to_its_mel(tmp_path):
    """``refine_*`` iterations: in eval mode the output's mel is closer to the input mel; in training mode (the
    losses) the plain synthesis is returned; the settings survive save/load and are checked."""
    from tta.audio.mel import MelSpectrogram

    torch.manual_seed(0)
    t = torch.arange(16000) / 16000
    x = (0.2 * torch.sin(2 * np.pi * (300 + 400 * t) * t) + 0.02 * torch.randn(16000))[None]
    mel = MelSpectrogram()(x)
    kw = dict(magnitude_prior="mel_pinv", phase_mode="locked", **TINY)
    plain = build_vocoder("istft", **kw).eval()
    refined = build_vocoder("istft", refine_fit_iterations=30, refine_griffin_lim_iterations=8, **kw).eval()
    refined.load_state_dict(plain.state_dict())
    with torch.no_grad():
        a, b = plain(mel), refined(mel)
        err_plain = (MelSpectrogram()(a) - mel)[:, 5:-5].abs().mean().item()
        err_refined = (MelSpectrogram()(b) - mel)[:, 5:-5].abs().mean().item()
        assert b.shape == a.shape and err_refined < 0.6 * err_plain, (err_plain, err_refined)
        refined.train()
        torch.testing.assert_close(refined(mel), a)
    refined.eval().save_pretrained(tmp_path / "vocoder", safe_serialization=True)
    loaded = load_vocoder(tmp_path)
    assert (loaded.config.refine_fit_iterations, loaded.config.refine_griffin_lim_iterations) == (30, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), b)
    with pytest.raises(ValueError, match="refine_fit_iterations"):
        ISTFTVocoderConfig(refine_fit_iterations=-1)


def test_set_vocoder_refine_switches_the_refinement_off():
    from tta.models.vocoder import set_vocoder_refine

    torch.manual_seed(0)
    mel = torch.randn(1, 40, 64) - 4
    kw = dict(magnitude_prior="mel_pinv", phase_mode="locked", **TINY)
    plain = build_vocoder("istft", **kw).eval()
    refined = build_vocoder("istft", refine_fit_iterations=30, refine_griffin_lim_iterations=8, **kw).eval()
    refined.load_state_dict(plain.state_dict())
    assert set_vocoder_refine(refined, True)  # left as the config has it
    assert not set_vocoder_refine(refined, False)
    with torch.no_grad():
        torch.testing.assert_close(refined(mel), plain(mel), rtol=0, atol=0)
    assert not set_vocoder_refine(plain, True)
    assert not set_vocoder_refine(torch.nn.Identity(), True)  # a vocoder without the refinement (HiFi-GAN)
