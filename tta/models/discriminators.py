"""Discriminators for the adversarial stages, and their losses.

* :class:`HifiGanDiscriminator`: HiFi-GAN's multi-period (MPD) and multi-scale (MSD) discriminators
  (Kong et al. 2020, "HiFi-GAN", sec. 2.2-2.3: periods 2, 3, 5, 7, 11; three scales, the last two after
  average pooling). ``width`` scales every channel count, so a CPU default can be a fraction of the paper's.
* :class:`PatchDiscriminator`: a PatchGAN on log-mel images for the VAE (as in the latent-diffusion
  autoencoders AudioLDM reuses): strided 4x4 convolutions with norm and LeakyReLU, one logit per patch.

Loss helpers follow the papers: least-squares GAN losses and feature matching for HiFi-GAN, hinge losses for
the PatchGAN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm


def _ch(width: float, n: int) -> int:
    return max(4, int(round(n * width)))


def _conv_stack(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Convolutions with LeakyReLU(0.1), then ``post``: (flattened logits, every layer's output)."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), 0.1)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats


class PeriodDiscriminator(nn.Module):
    """Waveform [B, 1, N] folded to [B, 1, N / p, p]; 2-D convolutions along time only."""

    def __init__(self, period: int, width: float = 1.0, kernel_size: int = 5, stride: int = 3):
        super().__init__()
        self.period = period
        chans = [1] + [_ch(width, c) for c in (32, 128, 512, 1024)]
        pad = (kernel_size - 1) // 2
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(cin, cout, (kernel_size, 1), (stride, 1), (pad, 0)))
            for cin, cout in zip(chans[:-1], chans[1:])
        )
        last = _ch(width, 1024)
        self.convs.append(weight_norm(nn.Conv2d(chans[-1], last, (kernel_size, 1), 1, (pad, 0))))
        self.post = weight_norm(nn.Conv2d(last, 1, (3, 1), 1, (1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, n = x.shape
        if n % self.period:
            x = F.pad(x, (0, self.period - n % self.period), mode="reflect")
        return _conv_stack(self.convs, self.post, x.view(b, c, -1, self.period))


class ScaleDiscriminator(nn.Module):
    """1-D grouped convolutions over a waveform [B, 1, N] (HiFi-GAN's MSD, after MelGAN)."""

    def __init__(self, width: float = 1.0, spectral: bool = False):
        super().__init__()
        norm = spectral_norm if spectral else weight_norm
        spec = [  # (out, kernel, stride, groups) per layer, after MelGAN/HiFi-GAN
            (128, 15, 1, 1),
            (128, 41, 2, 4),
            (256, 41, 2, 16),
            (512, 41, 4, 16),
            (1024, 41, 4, 16),
            (1024, 41, 1, 16),
            (1024, 5, 1, 1),
        ]
        layers, cin = [], 1
        for out, k, s, g in spec:
            cout = _ch(width, out)
            groups = g if cin % g == 0 and cout % g == 0 else 1
            layers.append(norm(nn.Conv1d(cin, cout, k, s, padding=(k - 1) // 2, groups=groups)))
            cin = cout
        self.convs = nn.ModuleList(layers)
        self.post = norm(nn.Conv1d(cin, 1, 3, 1, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _conv_stack(self.convs, self.post, x)


class HifiGanDiscriminator(nn.Module):
    """MPD + MSD. ``forward(wav [B, N])`` -> (list of logits [B, *], list of feature-map lists), one per
    sub-discriminator (periods first, then scales).

    Args:
        periods: the MPD's periods (HiFi-GAN: 2, 3, 5, 7, 11).
        num_scales: MSD sub-discriminators (HiFi-GAN: 3; the first uses spectral norm, the rest see the
            waveform average-pooled by 2 and 4).
        width: multiplier on every channel count (1.0 = the paper's sizes).
    """

    def __init__(
        self, periods: tuple[int, ...] | list[int] = (2, 3, 5, 7, 11), num_scales: int = 3, width: float = 1.0
    ):
        super().__init__()
        self.periods = nn.ModuleList(PeriodDiscriminator(p, width) for p in periods)
        self.scales = nn.ModuleList(ScaleDiscriminator(width, spectral=(i == 0)) for i in range(num_scales))
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, wav: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        x = wav.unsqueeze(1) if wav.dim() == 2 else wav
        logits, feats = [], []
        for d in self.periods:
            lo, fe = d(x)
            logits.append(lo)
            feats.append(fe)
        for i, d in enumerate(self.scales):
            if i:
                x = self.pool(x)
            lo, fe = d(x)
            logits.append(lo)
            feats.append(fe)
        return logits, feats


class PatchDiscriminator(nn.Module):
    """PatchGAN over a log-mel image [B, 1, T, F] -> logits [B, 1, T', F'].

    Args:
        channels: width of the first layer (doubled per layer, capped at 8x).
        num_layers: strided layers (each halves both axes).
    """

    def __init__(self, channels: int = 32, num_layers: int = 3, in_channels: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        cin = channels
        for i in range(1, num_layers + 1):
            cout = channels * min(2**i, 8)
            stride = 2 if i < num_layers else 1
            groups = min(32, cout // 4)
            layers += [nn.Conv2d(cin, cout, 4, stride, 1, bias=False), nn.GroupNorm(groups, cout), nn.LeakyReLU(0.2)]
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# ---------------------------------------------------------------------------------------------- losses
def lsgan_discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Sum over sub-discriminators of mean((1 - D(x))^2) + mean(D(G(s))^2)."""
    return sum(torch.mean((1 - r) ** 2) + torch.mean(f**2) for r, f in zip(real, fake))


def lsgan_generator_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """Sum over sub-discriminators of mean((1 - D(G(s)))^2)."""
    return sum(torch.mean((1 - f) ** 2) for f in fake)


def feature_matching_loss(real_feats: list[list[torch.Tensor]], fake_feats: list[list[torch.Tensor]]) -> torch.Tensor:
    """Sum over sub-discriminators and layers of mean |D_l(x) - D_l(G(s))| (real features detached)."""
    return sum(torch.mean(torch.abs(r.detach() - f)) for rs, fs in zip(real_feats, fake_feats) for r, f in zip(rs, fs))


def hinge_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())


def hinge_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()
