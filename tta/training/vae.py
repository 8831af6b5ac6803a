"""The VAE stage: diffusers' ``AutoencoderKL`` on log-mels of corpus crops (AudioLDM's recipe).

Loss (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion Models", appendix G, as
AudioLDM uses it): L1 reconstruction of the log-mel + ``kl_weight`` x KL of the posterior to N(0, I), both
in the latent-diffusion autoencoder's convention (sums over elements, here divided by the number of mel
elements so the L1 term reads as a mean), plus, from ``disc_start_step`` on, a hinge PatchGAN term whose
weight adapts to the ratio of the reconstruction and adversarial gradient norms at the decoder's last layer.
No perceptual term: LPIPS' weights cannot be fetched offline and have no log-mel counterpart.

On export the latent scaling factor (1 / std of posterior samples over ``scale_clips`` training crops) is
computed and stored in the VAE's config (``scaling_factor``), as diffusers' pipelines read it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tta.models.discriminators import PatchDiscriminator, hinge_discriminator_loss, hinge_generator_loss
from tta.training.audio_stage import AudioStageTrainer


class VaeRoundTrip(nn.Module):
    """An ``AutoencoderKL`` behind one ``forward`` (log-mel -> reconstruction, posterior): a wrapped model
    (DistributedDataParallel under ``accelerate launch``) only synchronises gradients through ``forward``."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, sample: bool = True):
        posterior = self.vae.encode(x).latent_dist
        z = posterior.sample() if sample else posterior.mode()
        return self.vae.decode(z).sample, posterior


class VaeTrainer(AudioStageTrainer):
    """VAE stage hooks (see the module docstring).

    Args:
        model: ``AutoencoderKL`` arguments over AudioLDM-S's (``configs/model/vae_*.yaml``).
        discriminator: :class:`PatchDiscriminator` arguments, or None for no adversarial term.
        kl_weight: weight of the KL term (latent-diffusion autoencoders: 1e-6).
        disc_weight: scale of the adaptive adversarial weight.
        disc_start_step: first step with the discriminator (once reconstruction has settled).
        scale_clips: training crops used to compute the latent scaling factor at export.
        **kwargs: :class:`AudioStageTrainer` and :class:`Trainer` arguments.
    """

    name = "vae"

    def __init__(
        self,
        model: dict | None = None,
        discriminator: dict | None = None,
        kl_weight: float = 1e-6,
        disc_weight: float = 0.5,
        disc_start_step: int = 0,
        scale_clips: int = 64,
        **kwargs,
    ):
        kwargs.setdefault("clip_seconds", 2.56)
        super().__init__(**kwargs)
        self.model_kwargs = dict(model or {})
        self.disc_kwargs = None if discriminator is None else dict(discriminator)
        self.kl_weight = kl_weight
        self.disc_weight = disc_weight
        self.disc_start_step = disc_start_step
        self.scale_clips = scale_clips

    # -- hooks --
    def build_model(self):
        from tta.errors import InputError
        from tta.models.vae import build_vae, vae_downsample_factor

        vae = build_vae(**self.model_kwargs)
        factor = vae_downsample_factor(vae)
        if self.mel.n_mels % factor:
            raise InputError(f"{self.mel.n_mels} mel bins are not divisible by the VAE's down-sampling {factor}")
        self.factor = factor
        from tta.loading import load_vae

        self.warm_start(vae, load_vae)
        return VaeRoundTrip(vae)

    def ema_module(self):
        return self.unwrapped_model.vae

    def model_state_dict(self, model) -> dict[str, torch.Tensor]:
        return model.vae.state_dict()  # checkpoints (model and EMA) hold the plain AutoencoderKL's keys

    def load_model_state_dict(self, model, state) -> None:
        model.vae.load_state_dict(state)

    def build_discriminator(self):
        return None if self.disc_kwargs is None else PatchDiscriminator(**self.disc_kwargs)

    def mel_image(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, N] -> log-mel [B, 1, T, n_mels] with T cut to a multiple of the VAE's down-sampling."""
        mel = self.log_mel(wav)
        t = mel.shape[1] // self.factor * self.factor
        return mel[:, None, :t]

    def run_step(self, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.mel_image(self.random_gain(wav))
        rec, posterior = self.model(x)
        rec_loss = F.l1_loss(rec, x)
        kl = posterior.kl().sum() / x.numel()
        loss = rec_loss + self.kl_weight * kl
        out = {"rec_l1": rec_loss.detach(), "kl": kl.detach() * x[0].numel()}  # kl per item
        if self.discriminator is not None and self.step >= self.disc_start_step:
            disc = self.discriminator
            d_loss = hinge_discriminator_loss(disc(x), disc(rec.detach()))
            self.discriminator_step(d_loss)
            disc.requires_grad_(False)
            try:
                g_loss = hinge_generator_loss(disc(rec))
            finally:
                disc.requires_grad_(True)
            weight = self.adaptive_weight(rec_loss, g_loss)
            loss = loss + weight * g_loss
            out.update(d_loss=d_loss.detach(), g_loss=g_loss.detach(), disc_weight=weight.detach())
        out["loss"] = loss
        return out

    def adaptive_weight(self, rec_loss: torch.Tensor, g_loss: torch.Tensor) -> torch.Tensor:
        """``disc_weight`` x |grad rec| / |grad adv| at the decoder's output convolution (clamped)."""
        last = self.unwrapped_model.vae.decoder.conv_out.weight
        g_rec = torch.autograd.grad(rec_loss, last, retain_graph=True)[0]
        g_adv = torch.autograd.grad(g_loss, last, retain_graph=True)[0]
        weight = torch.linalg.norm(g_rec) / (torch.linalg.norm(g_adv) + 1e-4)
        return self.disc_weight * weight.clamp(0.0, 1e4).detach()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Reconstruct the log-mels of held-out clips (posterior mode): L1; logs two true/reconstructed mels."""
        clips = self.evaluation_audio()
        if not clips:
            return {}
        model = self.unwrapped_model
        errors = []
        for i, wav in enumerate(clips):
            x = self.mel_image(wav.to(self.accelerator.device)[None])
            if x.shape[2] == 0:
                continue
            rec, _ = model(x, sample=False)
            errors.append(float(F.l1_loss(rec, x)))
            if i < 2:
                self.log_media(images={f"vae/clip{i}_true": x[0, 0].T, f"vae/clip{i}_rec": rec[0, 0].T})
        return {"mel_l1": sum(errors) / max(1, len(errors))}

    @torch.no_grad()
    def latent_scaling_factor(self, vae) -> float:
        """1 / std of posterior samples over ``scale_clips`` training crops (fixed draw, no augmentation)."""
        from tta.data.dataset import CorpusDataset

        data = CorpusDataset(
            self.corpus_root(), self.train_split, clip_seconds=self.clip_seconds, augment=False, seed=self.seed + 1
        )
        g = torch.Generator().manual_seed(self.seed)
        latents = []
        for start in range(0, self.scale_clips, self.batch_size):
            n = min(self.batch_size, self.scale_clips - start)
            wav = self.collate([data[i] for i in range(start, start + n)]).to(self.accelerator.device)
            posterior = vae.encode(self.mel_image(wav)).latent_dist
            noise = torch.randn(posterior.mean.shape, generator=g).to(posterior.mean.device)
            latents.append(posterior.mean + posterior.std * noise)
        return float(1.0 / torch.cat(latents).flatten().std())

    def export_model(self, model, folder: Path) -> None:
        vae = model.vae
        scale = self.latent_scaling_factor(vae)
        vae.register_to_config(scaling_factor=scale)
        vae.save_pretrained(str(folder), safe_serialization=True)
        print(f"latent scaling factor {scale:.4f} written to {folder / 'config.json'}")
