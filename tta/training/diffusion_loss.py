"""The denoising objective of the latent diffusion stage: forward process, regression target and loss weights.

``prediction_type="v_prediction"`` (Salimans & Ho 2022, "Progressive Distillation for Fast Sampling of Diffusion
Models") regresses ``v = sqrt(a) eps - sqrt(1 - a) z0``; ``"epsilon"`` (AudioLDM's choice) the noise.
``min_snr_gamma`` weights each item by min-SNR-gamma (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR
Weighting Strategy"): ``min(SNR, gamma) / (SNR + 1)`` for v, ``min(SNR, gamma) / SNR`` for epsilon.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tta.errors import InputError

DDPM_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "clip_sample")


class DiffusionLoss:
    """MSE of a UNet's prediction on noised latents, over a diffusers ``DDPMScheduler`` forward process.

    Args:
        noise_schedule: diffusers scheduler config (the keys ``DDPMScheduler`` takes are used).
        prediction_type: ``"v_prediction"`` or ``"epsilon"``.
        min_snr_gamma: min-SNR-gamma weighting, or None for the plain MSE.
    """

    def __init__(
        self, noise_schedule: dict, prediction_type: str = "v_prediction", min_snr_gamma: float | None = None
    ):
        from diffusers import DDPMScheduler

        if prediction_type not in ("v_prediction", "epsilon"):
            raise InputError(f"prediction_type must be 'v_prediction' or 'epsilon', got {prediction_type!r}")
        self.prediction_type = prediction_type
        self.min_snr_gamma = min_snr_gamma
        config = {k: v for k, v in noise_schedule.items() if k in DDPM_KEYS}
        self.scheduler = DDPMScheduler.from_config(config, prediction_type=prediction_type)

    @property
    def num_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    def target(self, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the UNet regresses for latents ``z0`` [B, C, H, W] noised with ``noise`` at timesteps ``t`` [B]."""
        return self.scheduler.get_velocity(z0, noise, t) if self.prediction_type == "v_prediction" else noise

    def weights(self, t: torch.Tensor) -> torch.Tensor:
        """Per-item weights [B] of the MSE: min-SNR-gamma, expressed for the prediction type (ones without it)."""
        if self.min_snr_gamma is None:
            return torch.ones(t.shape[0], device=t.device)
        alpha = self.scheduler.alphas_cumprod.to(t.device)[t]
        snr = alpha / (1 - alpha)
        clipped = torch.clamp(snr, max=self.min_snr_gamma)
        return clipped / (snr + 1) if self.prediction_type == "v_prediction" else clipped / snr

    def __call__(self, unet, z0, cond, noise, t, reduce: bool = True) -> torch.Tensor:
        """The weighted mean MSE (``reduce``), or the per-item MSE [B] unweighted; ``cond`` [B, D] is the UNet's
        ``class_labels`` (CLAP rows, with a retrieval UNet's neighbour features after them)."""
        zt = self.scheduler.add_noise(z0, noise, t)
        pred = unet(zt, t, encoder_hidden_states=None, class_labels=cond).sample
        mse = F.mse_loss(pred.float(), self.target(z0, noise, t), reduction="none").mean(dim=(1, 2, 3))
        return (mse * self.weights(t)).mean() if reduce else mse
