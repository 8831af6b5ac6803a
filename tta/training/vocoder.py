"""The vocoder stage: a HiFi-GAN generator (transformers' ``SpeechT5HifiGan``, ``architecture: hifigan``) or the
ISTFT vocoder (:mod:`tta.models.istft_vocoder`, ``architecture: istft``, the CPU default), from log-mels of
corpus crops, trained the HiFi-GAN way.

Losses (Kong et al. 2020, "HiFi-GAN", eq. 6): least-squares adversarial loss over the multi-period and
multi-scale discriminators, feature matching (weight 2) and L1 between log-mels (weight 45), plus an optional
multi-resolution STFT loss (Parallel WaveGAN's), which speeds up the first thousands of steps on a CPU
budget. The adversarial terms start at ``adv_start_step``. During training a HiFi-GAN generator carries weight
normalisation on its convolutions (as in the paper); it is folded into the weights on export, so the exported
folder is a plain ``SpeechT5HifiGan``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tta.models.discriminators import (
    HifiGanDiscriminator,
    feature_matching_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
)
from tta.training.audio_stage import AudioStageTrainer
from tta.training.losses import multi_resolution_stft_loss

_CONVS = (nn.Conv1d, nn.ConvTranspose1d)


def add_weight_norm(model: nn.Module) -> nn.Module:
    from torch.nn.utils.parametrizations import weight_norm

    for module in model.modules():
        if isinstance(module, _CONVS) and not torch.nn.utils.parametrize.is_parametrized(module):
            weight_norm(module)
    return model


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict ``model`` would have without weight normalisation (effective weights computed; the
    model itself is left as it is: ``copy.deepcopy`` of parametrised modules is not reliable)."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items() if ".parametrizations." not in k}
    for name, module in model.named_modules():
        if isinstance(module, _CONVS) and torch.nn.utils.parametrize.is_parametrized(module, "weight"):
            state[f"{name}.weight" if name else "weight"] = module.weight.detach().clone()
    return state


class VocoderTrainer(AudioStageTrainer):
    """Vocoder stage hooks (see the module docstring).

    Args:
        model: ``SpeechT5HifiGanConfig`` fields over AudioLDM-S's (``configs/model/vocoder_*.yaml``).
        discriminator: :class:`HifiGanDiscriminator` arguments, or None for no adversarial training.
        mel_loss_weight, fm_loss_weight, adv_loss_weight, stft_loss_weight: loss weights.
        stft_resolutions: ``(n_fft, hop, win)`` of the STFT loss.
        adv_start_step: first step with the discriminators.
        magnitude_loss_weight: weight of an L1 loss between the ISTFT vocoder's predicted STFT log magnitude and
            the true one at the head's n_fft and hop (a direct target for the magnitude, free of the phase);
            ignored for HiFi-GAN.
        **kwargs: :class:`AudioStageTrainer` and :class:`Trainer` arguments.
    """

    name = "vocoder"

    def __init__(
        self,
        model: dict | None = None,
        discriminator: dict | None = None,
        mel_loss_weight: float = 45.0,
        fm_loss_weight: float = 2.0,
        adv_loss_weight: float = 1.0,
        stft_loss_weight: float = 2.5,
        stft_resolutions: list | tuple = ((384, 96, 384), (768, 192, 768), (1536, 384, 1536)),
        adv_start_step: int = 0,
        magnitude_loss_weight: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.model_kwargs = dict(model or {})
        self.disc_kwargs = None if discriminator is None else dict(discriminator)
        self.mel_loss_weight = mel_loss_weight
        self.fm_loss_weight = fm_loss_weight
        self.adv_loss_weight = adv_loss_weight
        self.stft_loss_weight = stft_loss_weight
        self.stft_resolutions = [tuple(r) for r in stft_resolutions]
        self.adv_start_step = adv_start_step
        self.magnitude_loss_weight = magnitude_loss_weight

    # -- hooks --
    def build_model(self):
        from tta.models.vocoder import build_vocoder

        vocoder = build_vocoder(**self.model_kwargs)
        hop = int(torch.tensor(vocoder.config.upsample_rates).prod())
        if hop != self.hop:
            from tta.errors import InputError

            raise InputError(f"the vocoder's hop ({hop} samples) differs from the mel front-end's ({self.hop})")
        if vocoder.config.model_in_dim != self.mel.n_mels or vocoder.config.sampling_rate != self.mel.sample_rate:
            from tta.errors import InputError

            raise InputError(
                f"vocoder config (model_in_dim {vocoder.config.model_in_dim}, {vocoder.config.sampling_rate} Hz) "
                f"does not match the mel front-end ({self.mel.n_mels} bins, {self.mel.sample_rate} Hz)"
            )
        from tta.loading import load_vocoder

        self.warm_start(vocoder, load_vocoder)  # plain weights, before weight normalisation is added
        # HiFi-GAN trains with weight normalisation on its convolutions (Kong et al. 2020); the ISTFT vocoder
        # normalises with LayerNorm instead (as Vocos)
        return add_weight_norm(vocoder) if self.model_kwargs.get("architecture", "hifigan") == "hifigan" else vocoder

    def build_discriminator(self):
        return None if self.disc_kwargs is None else HifiGanDiscriminator(**self.disc_kwargs)

    def generate(self, model, mel: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Log-mel [B, T, n_mels] -> waveform [B, num_samples] (the generator's overhang cut off)."""
        wav = model(mel)
        if wav.shape[-1] < num_samples:
            wav = F.pad(wav, (0, num_samples - wav.shape[-1]))
        return wav[..., :num_samples]

    def run_step(self, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        wav = self.random_gain(wav)
        mel = self.log_mel(wav)
        out = {}
        if self.magnitude_loss_weight and hasattr(self.unwrapped_model, "locked_phase"):  # the ISTFT vocoder
            fake, log_magnitude = self.model(mel, return_log_magnitude=True)
            fake = fake[..., : wav.shape[-1]]
            magnitude_loss = F.l1_loss(log_magnitude, self.true_log_magnitude(wav, log_magnitude.shape[-1]))
            out["mag_l1"] = magnitude_loss.detach()
        else:
            fake = self.generate(self.model, mel, wav.shape[-1])
            magnitude_loss = 0.0
        mel_loss = F.l1_loss(self.log_mel(fake), mel)
        loss = self.mel_loss_weight * mel_loss + self.magnitude_loss_weight * magnitude_loss
        out["mel_l1"] = mel_loss.detach()
        if self.stft_loss_weight:
            stft = multi_resolution_stft_loss(fake, wav, self.stft_resolutions)
            loss = loss + self.stft_loss_weight * stft
            out["stft"] = stft.detach()
        if self.discriminator is not None and self.step >= self.adv_start_step:
            disc = self.discriminator
            real_logits, real_feats = disc(wav)
            fake_logits, _ = disc(fake.detach())
            d_loss = lsgan_discriminator_loss(real_logits, fake_logits)
            self.discriminator_step(d_loss)
            disc.requires_grad_(False)
            try:
                # the real feature maps come from before this step's discriminator update (detached): one
                # discriminator pass saved per step, at the cost of a one-step lag in the feature targets
                fake_logits, fake_feats = disc(fake)
                adv = lsgan_generator_loss(fake_logits)
                fm = feature_matching_loss(real_feats, fake_feats)
            finally:
                disc.requires_grad_(True)
            loss = loss + self.adv_loss_weight * adv + self.fm_loss_weight * fm
            out.update(d_loss=d_loss.detach(), adv=adv.detach(), fm=fm.detach())
        out["loss"] = loss
        return out

    def true_log_magnitude(self, wav: torch.Tensor, frames: int) -> torch.Tensor:
        """ln |STFT| [B, n_fft / 2 + 1, frames] of ``wav`` at the ISTFT head's n_fft and hop (centred frames, as
        the head synthesises them), floored at the mel's log floor."""
        cfg = self.unwrapped_model.config
        window = torch.hann_window(cfg.n_fft, device=wav.device)
        spec = torch.stft(wav, cfg.n_fft, cfg.hop_length, cfg.n_fft, window=window, center=True, return_complex=True)
        return spec[..., :frames].abs().clamp_min(self.mel.log_floor).log()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Vocode the true log-mels of held-out clips and score them with the test metrics
        (:mod:`tta.evaluation.reconstruction`: log-mel L1, MR-STFT at n_fft 256, 512, 2048); logs two clips."""
        from tta.evaluation.reconstruction import log_mel_l1, mrstft_distance

        clips = self.evaluation_audio()
        if not clips:
            return {}
        model = self.unwrapped_model
        mel_l1, stft = [], []
        for i, wav in enumerate(clips):
            wav = wav.to(self.accelerator.device)[None]
            mel = self.log_mel(wav)
            fake = self.generate(model, mel, wav.shape[-1])
            mel_l1.append(log_mel_l1(wav[0].cpu(), fake[0].cpu(), self.mel.cpu()))
            stft.append(mrstft_distance(wav[0].cpu(), fake[0].cpu())[0])
            if i < 2:
                self.log_media(
                    audio={f"vocoder/clip{i}": fake[0], f"vocoder/clip{i}_true": wav[0]},
                    images={f"vocoder/clip{i}_mel": self.log_mel(fake)[0].T},
                )
        return {"mel_l1": sum(mel_l1) / len(mel_l1), "mrstft": sum(stft) / len(stft)}

    def export_model(self, model, folder: Path) -> None:
        from tta.models.vocoder import build_vocoder

        plain = build_vocoder(**self.model_kwargs).eval()
        plain.load_state_dict(plain_state_dict(model))
        plain.save_pretrained(str(folder), safe_serialization=True)
