"""Round trips of real audio through the model's decoding path, scored against the original.

The paths, each from a clip's true AudioLDM log-mel [T, 64] (T = N // 160 frames, 100 frames/s):

* ``vocoder``: log-mel -> vocoder (ISTFT or HiFi-GAN) -> waveform: the vocoder's ceiling;
* ``vae+vocoder``: log-mel -> VAE encoder (posterior mode) -> VAE decoder -> vocoder: the whole model's ceiling
  (a generation cannot sound better than its decoder);
* ``griffin_lim``: the baseline without a model: mel basis inverted by NNLS, phase by Griffin-Lim.

Metrics of a reference and an estimate waveform [N] (16 kHz; lower is better, 0 for identical signals):

* :func:`log_mel_l1`: mean |log-mel(ref) - log-mel(est)| on AudioLDM's front-end (natural log);
* :func:`log_spectral_distance`: LSD in dB (n_fft 1024, hop 160);
* :func:`mrstft_distance`: multi-resolution STFT distance at resolutions other than the model's own (n_fft 256,
  512, 2048), so that it does not only reward matching the mel's frame grid.

:func:`reconstruct` is the one round trip, shared by ``tta reconstruct`` and :func:`evaluate_round_trip`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

import numpy as np
import torch

from tta.audio.mel import MelSpectrogram
from tta.errors import InputError

PATHS = ("griffin_lim", "vocoder", "vae+vocoder")
MRSTFT_RESOLUTIONS = ((256, 64, 256), (512, 128, 512), (2048, 512, 2048))  # (n_fft, hop, win)
MRSTFT_FLOOR = 1e-5  # magnitude floor of the log term
LSD_FLOOR = 1e-10  # power floor
NORMALIZE_PEAK = 0.5  # AudioLDM's input pre-processing: peak 0.5 (what the VAE and vocoder were trained on)

# ---------------------------------------------------------------------------------------------- metrics


def _waves(ref, est) -> tuple[torch.Tensor, torch.Tensor]:
    """Two float64 waveforms of one shape ([N] or [B, N]), on the CPU."""
    ref = torch.as_tensor(ref).detach().to("cpu", torch.float64)
    est = torch.as_tensor(est).detach().to("cpu", torch.float64)
    if ref.shape != est.shape:
        raise InputError(f"reference and estimate differ in shape: {tuple(ref.shape)} vs {tuple(est.shape)}")
    if ref.numel() == 0:
        raise InputError("metrics of an empty waveform")
    return ref, est


def _magnitude(wav: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """|STFT| [..., n_fft // 2 + 1, frames] (periodic Hann, centred frames, reflect padding). Signals too short
    for the reflect padding are zero-padded to ``n_fft`` first."""
    if wav.shape[-1] <= n_fft // 2:
        wav = torch.nn.functional.pad(wav, (0, n_fft - wav.shape[-1]))
    window = torch.hann_window(win, periodic=True, dtype=wav.dtype)
    spec = torch.stft(wav, n_fft, hop_length=hop, win_length=win, window=window, center=True, return_complex=True)
    return spec.abs()


def log_mel_l1(ref_wav, est_wav, mel: MelSpectrogram) -> float:
    """Mean |log-mel(ref) - log-mel(est)| of two waveforms [N] (or [B, N]), with ``mel`` AudioLDM's front-end
    (natural log of the mel magnitude, floored at 1e-5)."""
    ref, est = _waves(ref_wav, est_wav)
    device = mel.mel_basis.device
    with torch.no_grad():
        return float((mel(ref.to(device)) - mel(est.to(device))).abs().mean())


def log_spectral_distance(ref, est, n_fft: int = 1024, hop: int = 160) -> float:
    """Log-spectral distance in dB of two waveforms [N] (or [B, N]):
    ``mean_frames sqrt(mean_bins (10 log10(P_ref / P_est))^2)``, with P the power STFT (periodic Hann of
    ``n_fft``, centred frames) floored at 1e-10. A gain ``a`` gives ``|20 log10 a|`` dB.

    Not the log10-unit LSD of :mod:`tta.evaluation.paired` (n_fft 2048, 1e-8 added): that one is 10x smaller.
    """
    ref, est = _waves(ref, est)
    p_ref = _magnitude(ref, n_fft, hop, n_fft).square().clamp_min(LSD_FLOOR)
    p_est = _magnitude(est, n_fft, hop, n_fft).square().clamp_min(LSD_FLOOR)
    diff_db = 10.0 * torch.log10(p_ref / p_est)  # [..., F, T]
    return float(diff_db.square().mean(dim=-2).sqrt().mean())


def spectral_flatness_bias(ref, est, n_fft: int = 2048, hop: int = 512, floor_db: float = 60.0) -> tuple[float, float]:
    """How much more tonal (or noisier) an estimate [N] is than its reference [N], per frame.

    Spectral flatness (Wiener entropy: geometric over arithmetic mean of a frame's power spectrum, in dB; 0 dB for
    white noise, very negative for a few pure tones) at a finer resolution than the mel's. Returns the mean
    and the mean absolute of ``flatness(est) - flatness(ref)`` over the reference's frames within ``floor_db``
    of its loudest. A negative mean is an estimate with spurious tonal structure (heard as "metallic" or
    "robotic"); a positive one has lost the reference's tonal peaks to noise (heard as "buzzy" or "phasey").
    """
    ref, est = _waves(ref, est)

    def flatness(wav):
        power = _magnitude(wav, n_fft, hop, n_fft).square()  # [..., F, T]
        power = power.clamp_min(power.amax().clamp_min(LSD_FLOOR) * 1e-12)  # -120 dB: a gain changes nothing
        return 10.0 * (power.log().mean(dim=-2).exp() / power.mean(dim=-2)).log10(), power.sum(dim=-2)

    f_ref, energy = flatness(ref)
    f_est, _ = flatness(est)
    level = 10.0 * energy.log10()
    keep = level >= level.max() - floor_db
    diff = (f_est - f_ref)[keep]
    return float(diff.mean()), float(diff.abs().mean())


def _resolution_key(n_fft: int, hop: int, win: int) -> str:
    return f"{n_fft}/{hop}/{win}"


def mrstft_distance(
    ref, est, resolutions: Iterable[tuple[int, int, int]] = MRSTFT_RESOLUTIONS
) -> tuple[float, dict[str, float]]:
    """Multi-resolution STFT distance of two waveforms [N] (or [B, N]); not symmetric.

    Per resolution ``(n_fft, hop, win)``: spectral convergence ``||S_ref - S_est||_F / ||S_ref||_F`` plus
    ``mean |ln S_ref - ln S_est|`` (magnitudes floored at 1e-5). Returns the mean over resolutions and the value
    of each, keyed ``"n_fft/hop/win"``.
    """
    ref, est = _waves(ref, est)
    per: dict[str, float] = {}
    for n_fft, hop, win in resolutions:
        s_ref, s_est = _magnitude(ref, n_fft, hop, win), _magnitude(est, n_fft, hop, win)
        convergence = torch.linalg.vector_norm(s_ref - s_est) / torch.linalg.vector_norm(s_ref).clamp_min(1e-12)
        log_l1 = (s_ref.clamp_min(MRSTFT_FLOOR).log() - s_est.clamp_min(MRSTFT_FLOOR).log()).abs().mean()
        per[_resolution_key(n_fft, hop, win)] = float(convergence + log_l1)
    if not per:
        raise InputError("mrstft_distance needs at least one resolution")
    return sum(per.values()) / len(per), per


def round_trip_metrics(
    ref, est, mel: MelSpectrogram, resolutions: Iterable[tuple[int, int, int]] = MRSTFT_RESOLUTIONS
) -> dict[str, float]:
    """Every metric of one estimate [N] against its reference [N]: ``log_mel_l1``, ``lsd`` (dB), ``mrstft``,
    ``mrstft_<n_fft/hop/win>`` per resolution, and ``flatness_bias_db`` / ``flatness_error_db``
    (:func:`spectral_flatness_bias` at n_fft 2048)."""
    total, per = mrstft_distance(ref, est, resolutions)
    bias, error = spectral_flatness_bias(ref, est)
    return {
        "flatness_bias_db": bias,
        "flatness_error_db": error,
        "log_mel_l1": log_mel_l1(ref, est, mel),
        "lsd": log_spectral_distance(ref, est, n_fft=mel.n_fft, hop=mel.hop_length),
        "mrstft": total,
        **{f"mrstft_{key}": value for key, value in per.items()},
    }


# ---------------------------------------------------------------------------------------------- inversions


def griffin_lim_from_mel(logmel, mel_module: MelSpectrogram, n_iter: int = 60, seed: int = 0) -> np.ndarray:
    """Invert an AudioLDM log-mel [T, n_mels] without a model: ``exp``, then the magnitude STFT by non-negative
    least squares against the front-end's own (slaney) mel basis, then Griffin-Lim phase (``n_iter`` iterations,
    random initial phase from ``seed``) with the front-end's n_fft, hop and window, centred frames.

    Returns:
        np.ndarray: float32 waveform [T * hop].
    """
    import librosa

    logmel = torch.as_tensor(logmel).detach().to("cpu", torch.float64)
    if logmel.dim() != 2 or logmel.shape[1] != mel_module.n_mels:
        raise InputError(f"expected a log-mel [T, {mel_module.n_mels}], got {tuple(logmel.shape)}")
    mel = logmel.exp().T.numpy()  # [n_mels, T]
    basis = mel_module.mel_basis.detach().cpu().double().numpy()  # [n_mels, F]
    magnitude = librosa.util.nnls(basis, mel)  # [F, T]
    # T * hop samples hold T + 1 centred frames; the front-end drops the last one: repeat frame T - 1 for it
    magnitude = np.concatenate([magnitude, magnitude[:, -1:]], axis=1)
    wav = librosa.griffinlim(
        magnitude,
        n_iter=n_iter,
        hop_length=mel_module.hop_length,
        win_length=mel_module.win_length,
        n_fft=mel_module.n_fft,
        window="hann",
        center=True,
        pad_mode="reflect",
        length=logmel.shape[0] * mel_module.hop_length,
        random_state=seed,
    )
    return wav.astype(np.float32)


def vae_round_trip(mel: torch.Tensor, vae, log_floor: float = 1e-5) -> torch.Tensor:
    """Log-mel [B, 1, T, n_mels] -> VAE encoder -> posterior mode -> VAE decoder -> log-mel [B, 1, T, n_mels].

    T is padded to a multiple of the VAE's down-sampling with the log floor (silence) and cut back after. The
    latent scaling factor cancels out of a round trip and is not applied.
    """
    from tta.models.vae import vae_downsample_factor

    frames = mel.shape[2]
    pad = -frames % vae_downsample_factor(vae)
    x = torch.nn.functional.pad(mel, (0, 0, 0, pad), value=math.log(log_floor))
    x = x.to(device=vae.device, dtype=vae.dtype)
    z = vae.encode(x).latent_dist.mode()
    return vae.decode(z).sample[:, :, :frames].float()


def vocode(mel: torch.Tensor, vocoder, hop_length: int) -> torch.Tensor:
    """Log-mel [B, T, n_mels] -> waveform [B, T * hop_length] (float32; the vocoder's overhang cut off)."""
    rates = getattr(vocoder.config, "upsample_rates", None)
    if rates is not None and math.prod(rates) != hop_length:
        raise InputError(f"the vocoder upsamples by {math.prod(rates)}, the log-mel hop is {hop_length}")
    n_mels = getattr(vocoder.config, "model_in_dim", mel.shape[-1])
    if mel.shape[-1] != n_mels:
        raise InputError(f"the vocoder takes {n_mels} mel bins, the log-mel has {mel.shape[-1]}")
    x = mel.to(device=vocoder.device, dtype=vocoder.dtype).contiguous()
    return vocoder(x).float()[:, : mel.shape[1] * hop_length]


def reconstruct(wav, vae, vocoder, mel_module: MelSpectrogram, normalize: bool = True) -> np.ndarray:
    """The round trip of one waveform: waveform -> log-mel -> (VAE, unless ``vae`` is None) -> vocoder -> waveform.

    Args:
        wav: mono waveform [N] at ``mel_module.sample_rate`` (needs more than n_fft / 2 samples).
        vae: a diffusers ``AutoencoderKL``, or None for the vocoder alone.
        vocoder: a vocoder (``ISTFTVocoder`` or ``SpeechT5HifiGan``, see :func:`tta.loading.load_vocoder`)
            matching the front-end (n_mels, hop).
        mel_module: AudioLDM's front-end (:class:`tta.audio.mel.MelSpectrogram`).
        normalize: feed the models the input with its mean removed and its peak at 0.5 (AudioLDM's
            pre-processing), and scale the result back to the input's level.

    Returns:
        np.ndarray: float32 waveform [N]. The input is zero-padded to whole frames (ceil(N / hop)) and the output
        cut back to N; with N a multiple of the hop, nothing is padded.
    """
    x = torch.as_tensor(wav).detach().to("cpu", torch.float32).reshape(-1)
    n, hop = x.numel(), mel_module.hop_length
    gain = 1.0
    if normalize:
        x = x - x.mean()
        peak = float(x.abs().max()) if n else 0.0
        gain = NORMALIZE_PEAK / peak if peak > 1e-8 else 1.0
        x = x * gain
    x = torch.nn.functional.pad(x, (0, -n % hop))
    with torch.inference_mode():
        mel = mel_module(x.to(mel_module.mel_basis.device))  # [T, n_mels]
        if vae is not None:
            mel = vae_round_trip(mel[None, None], vae, mel_module.log_floor)[0, 0]
        out = vocode(mel[None], vocoder, hop)[0, :n] / gain
    return out.cpu().numpy().astype(np.float32)


# ---------------------------------------------------------------------------------------------- evaluation


def _read_item(item, sample_rate: int) -> np.ndarray:
    if isinstance(item, (str, os.PathLike)):
        from tta.audio.io import load_audio

        return load_audio(item, sample_rate)
    return torch.as_tensor(item).detach().to("cpu", torch.float32).reshape(-1).numpy()


def evaluate_round_trip(
    items: Iterable,
    vae,
    vocoder,
    mel_module: MelSpectrogram,
    n_iter: int = 60,
    resolutions: Iterable[tuple[int, int, int]] = MRSTFT_RESOLUTIONS,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """Score the round trips of clips (e.g. a corpus' test split) against the originals, per path.

    Each clip [N] is cut to its first T * hop samples (T = N // hop frames); every path starts from that clip's
    true log-mel [T, n_mels] and is compared with the cut clip: ``griffin_lim`` (:func:`griffin_lim_from_mel`,
    ``n_iter`` iterations), ``vocoder`` and ``vae+vocoder`` (:func:`reconstruct`; skipped when ``vae`` is None).

    Args:
        items: waveforms [N] at ``mel_module.sample_rate`` and/or audio file paths (read with
            :func:`tta.audio.io.load_audio`).

    Returns:
        ``{path: {metric: mean over clips}}`` with the metrics of :func:`round_trip_metrics` and ``clips``.
    """
    from tqdm.auto import tqdm

    resolutions = tuple(resolutions)
    paths = [p for p in PATHS if p != "vae+vocoder" or vae is not None]
    sums: dict[str, dict[str, float]] = {p: {} for p in paths}
    count = 0
    for item in tqdm(items, desc="round trip", unit="clip", disable=not progress):
        wav = _read_item(item, mel_module.sample_rate)
        frames = wav.size // mel_module.hop_length
        if frames == 0 or wav.size <= mel_module.n_fft // 2:
            raise InputError(f"clip {count} is too short for a round trip: {wav.size} samples")
        ref = wav[: frames * mel_module.hop_length]
        with torch.inference_mode():
            true_mel = mel_module(torch.from_numpy(ref).to(mel_module.mel_basis.device)).cpu()
        estimates = {"griffin_lim": griffin_lim_from_mel(true_mel, mel_module, n_iter=n_iter)}
        estimates["vocoder"] = reconstruct(ref, None, vocoder, mel_module)
        if vae is not None:
            estimates["vae+vocoder"] = reconstruct(ref, vae, vocoder, mel_module)
        for path, est in estimates.items():
            for key, value in round_trip_metrics(ref, est, mel_module, resolutions).items():
                sums[path][key] = sums[path].get(key, 0.0) + value
        count += 1
    if count == 0:
        raise InputError("no clips to evaluate")
    return {p: {**{k: v / count for k, v in metrics.items()}, "clips": count} for p, metrics in sums.items()}
