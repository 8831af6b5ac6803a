"""The latent consistency distillation objective (LCD): the pieces of one training step, each testable alone.

What is taken from where:

* Latent consistency distillation (Luo et al. 2023, "Latent Consistency Models", Algorithm 1): a student
  ``f(z_t, t) = c_skip(t) z_t + c_out(t) x0_theta(z_t, t)`` is trained so that its output at ``t_{n+k}`` equals
  the output of a target copy (EMA of the student, no gradient) at ``t_n``, where ``z_{t_n}`` is one step of the
  teacher's probability-flow ODE solver from ``z_{t_{n+k}}``. The grid is LCMScheduler's
  ``original_inference_steps`` grid (``t = k c - 1``, ``c = 1000 / N``, the "skipping step" of the paper), so the
  timesteps the student is trained on are those ``LCMScheduler`` samples at.
* Guidance folded in (LCM's guided distillation; AudioLCM, Liu et al. 2024; ConsistencyTTA, Bai et al. 2023): the
  teacher's step uses its classifier-free guided prediction at the model's own guidance scale, so the student
  needs no unconditional row at sampling. tta's convention: ``v_u + w (v_c - v_u)`` (w = 6 for the shipped model).
* The solver is one DDIM step (the ODE solver the LCM paper uses), batched over per-item timesteps; a test holds
  it to ``diffusers.DDIMScheduler.step``.
* ``c_skip`` / ``c_out`` are diffusers' ``LCMScheduler.get_scalings_for_boundary_condition_discrete`` (sigma_data
  0.5, timestep scaling 10), so ``f(z, 0) = z`` and the student's sampler is LCMScheduler as it is.
* The distance is the pseudo-Huber loss ``sqrt(d^2 + c^2) - c`` (Song & Dhariwal 2023, "Improved Techniques for
  Training Consistency Models"; the LCM-LoRA training scripts use c = 0.001).
"""

from __future__ import annotations

import torch

from tta.errors import InputError


def _gather(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values[t]`` shaped [B, 1, 1, 1] to broadcast over latents ``like``."""
    out = values.to(like.device)[t.long()].to(like.dtype)
    return out.view(-1, *([1] * (like.ndim - 1)))


class ConsistencyObjective:
    """One teacher/student/target step of latent consistency distillation on a diffusers noise schedule.

    Args:
        noise_schedule: the teacher's scheduler config (betas, ``prediction_type``).
        num_ddim_timesteps: N of the solver grid (``LCMScheduler``'s ``original_inference_steps``); the skipping
            step is ``num_train_timesteps // N``.
        guidance_scale: the teacher's classifier-free guidance (``v_u + w (v_c - v_u)``; 1: no guidance).
        huber_c: the pseudo-Huber constant.
    """

    def __init__(
        self, noise_schedule: dict, num_ddim_timesteps: int = 50, guidance_scale: float = 6.0, huber_c: float = 1e-3
    ):
        from diffusers import LCMScheduler

        config = {k: v for k, v in noise_schedule.items() if not k.startswith("_")}
        self.scheduler = LCMScheduler.from_config(config, original_inference_steps=num_ddim_timesteps)
        self.prediction_type = self.scheduler.config.prediction_type
        if self.prediction_type not in ("v_prediction", "epsilon"):
            raise InputError(f"prediction_type must be 'v_prediction' or 'epsilon', got {self.prediction_type!r}")
        self.num_train_timesteps = int(self.scheduler.config.num_train_timesteps)
        if not 1 <= num_ddim_timesteps <= self.num_train_timesteps:
            raise InputError(
                f"num_ddim_timesteps must be in [1, {self.num_train_timesteps}], got {num_ddim_timesteps}"
            )
        if guidance_scale < 1:
            raise InputError(f"guidance_scale must be >= 1, got {guidance_scale}")
        self.skip = self.num_train_timesteps // num_ddim_timesteps
        # LCMScheduler's lcm_origin_timesteps: k * c - 1 for k = 1..N
        self.grid = torch.arange(1, num_ddim_timesteps + 1) * self.skip - 1
        self.alphas_cumprod = self.scheduler.alphas_cumprod.float()
        self.guidance_scale = float(guidance_scale)
        self.huber_c = float(huber_c)

    def sample_timesteps(self, batch: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (t_{n+k} [B], t_n [B]): a random grid point and the one a skipping step below it (0 at the end)."""
        index = torch.randint(0, len(self.grid), (batch,), generator=generator)
        start = self.grid[index]
        return start, (start - self.skip).clamp(min=0)

    def x0_and_eps(self, x: torch.Tensor, out: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model output ``out`` (v or epsilon) at ``x``, ``t`` -> (predicted x0, predicted noise)."""
        a = _gather(self.alphas_cumprod, t, x)
        sa, s1 = a.sqrt(), (1 - a).sqrt()
        if self.prediction_type == "v_prediction":
            return sa * x - s1 * out, sa * out + s1 * x
        return (x - s1 * out) / sa, out

    def ddim_step(self, x: torch.Tensor, out: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor) -> torch.Tensor:
        """One deterministic DDIM step (eta 0) from ``t`` to ``t_prev`` (per item) with model output ``out``."""
        x0, eps = self.x0_and_eps(x, out, t)
        a_prev = _gather(self.alphas_cumprod, t_prev, x)
        return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps

    def consistency(self, x: torch.Tensor, out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``f(x, t) = c_skip(t) x + c_out(t) x0(out)`` with LCMScheduler's boundary-condition scalings."""
        c_skip, c_out = self.scheduler.get_scalings_for_boundary_condition_discrete(t.to(x.device).float())
        shape = (-1, *([1] * (x.ndim - 1)))
        x0, _ = self.x0_and_eps(x, out, t)
        return c_skip.view(shape).to(x.dtype) * x + c_out.view(shape).to(x.dtype) * x0

    def guided(self, unet, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor):
        """The teacher's guided output at ``x``, ``t``: one batched call over [uncond; cond]."""
        if self.guidance_scale == 1.0:
            return unet(x, t, encoder_hidden_states=None, class_labels=cond).sample.float()
        out = unet(
            torch.cat([x, x]), torch.cat([t, t]), encoder_hidden_states=None, class_labels=torch.cat([uncond, cond])
        )
        out_u, out_c = out.sample.float().chunk(2)
        return out_u + self.guidance_scale * (out_c - out_u)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Mean pseudo-Huber distance."""
        c = self.huber_c
        return (torch.sqrt((a.float() - b.float()) ** 2 + c * c) - c).mean()
