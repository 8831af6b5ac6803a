"""The one training loop every tta stage shares (CLAP, VAE, vocoder, LDM), on accelerate.

A stage subclasses :class:`Trainer` and fills in hooks, as audiocraft's ``StandardSolver`` does:

* ``build_model()`` -> ``nn.Module``                      (required)
* ``build_train_data()`` -> a torch ``Dataset``            (required; map-style or iterable)
* ``run_step(batch)`` -> ``{"loss": Tensor, ...}``          (required; other entries are logged)
* ``evaluate()`` -> ``{"metric": float, ...}``              (optional; run every ``eval_every`` steps)
* ``collate(items)``, ``build_optimizer(model)``, ``build_scheduler(optimizer)``,
  ``model_state_dict(model)`` / ``load_model_state_dict(model, state)`` (what a checkpoint holds),
  ``on_train_end()`` (e.g. export the model), ``ema_module()`` (what the EMA averages)  (optional)
* ``build_discriminator()`` -> ``nn.Module`` or None        (optional; adversarial stages, see below)

An adversarial stage (the vocoder's HiFi-GAN discriminators, the VAE's PatchGAN) returns a discriminator from
``build_discriminator()``. The base class gives it its own AdamW optimizer (``disc_lr``, default ``lr``) and the
same LR schedule (counted in its own updates), checkpoints both (``discriminator.safetensors`` beside
``model.safetensors``) and resumes them; the stage's ``run_step`` updates it by calling
:meth:`Trainer.discriminator_step` with the discriminator loss (computed on detached generator outputs) before
returning the generator's loss. :meth:`Trainer.log_media` writes audio and images to TensorBoard.

The base class owns everything else: devices and mixed precision (accelerate), seeding, the epoch loop with
a deterministic per-epoch shuffle, gradient clipping, EMA, TensorBoard logging, a tqdm progress bar,
checkpoints every ``checkpoint_every`` steps and at exit (normal end, Ctrl-C or SIGTERM) under
``<run_dir>/checkpoints/step_XXXXXXX/`` with an atomic ``latest`` pointer, and resuming from ``latest``
exactly where the run stopped (same model, optimizer, scheduler, RNG state and position in the epoch).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from tta.errors import InputError
from tta.training.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    optimizer_param_names,
    regroup_optimizer_state,
    save_checkpoint,
)
from tta.training.ema import EMA


class Trainer:
    """Base training loop; subclasses implement the stage hooks (see the module docstring).

    Args:
        run_dir: where checkpoints (``checkpoints/``), TensorBoard logs (``tb/``) and ``eval.jsonl`` go.
        max_steps: optimizer steps to train for (a resumed run continues up to this count).
        batch_size: items per step.
        lr, weight_decay, betas: AdamW settings (over parameters with ``requires_grad``).
        warmup_steps: linear warm-up from 0; then ``lr_schedule`` ("cosine" down to ``min_lr_ratio * lr``,
            or "constant").
        grad_clip: max gradient norm (0 or None: no clipping).
        checkpoint_every: save every this many steps (and always at exit).
        keep_checkpoints: how many step folders to keep (older ones are deleted).
        eval_every: call ``evaluate()`` every this many steps (0: only at the end).
        log_every: log the step outputs every this many steps.
        ema_decay: keep an EMA of the weights (saved in checkpoints, used for evaluation) when set.
        seed: seeds python, numpy and torch, and the per-epoch shuffle.
        num_threads: torch intra-op threads (None: leave torch's default).
        num_workers: DataLoader worker processes.
        mixed_precision: accelerate's "no", "fp16" or "bf16".
        resume: continue from ``<run_dir>/checkpoints/latest`` when it exists.
        progress: show a tqdm bar.
        run_config: the resolved configuration (saved beside each checkpoint and in ``run_dir``).
        disc_lr: learning rate of the discriminator of an adversarial stage (None: ``lr``).
    """

    name = "train"  # stage name: TensorBoard project and log prefix

    def __init__(
        self,
        run_dir: str | os.PathLike,
        max_steps: int = 1000,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_steps: int = 100,
        lr_schedule: str = "cosine",
        min_lr_ratio: float = 0.05,
        grad_clip: float | None = 1.0,
        checkpoint_every: int = 200,
        keep_checkpoints: int = 3,
        eval_every: int = 0,
        log_every: int = 10,
        ema_decay: float | None = None,
        seed: int = 0,
        num_threads: int | None = None,
        num_workers: int = 0,
        mixed_precision: str = "no",
        resume: bool = True,
        progress: bool = True,
        run_config: dict | None = None,
        disc_lr: float | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.disc_lr = disc_lr
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.betas = tuple(betas)
        self.warmup_steps = warmup_steps
        self.lr_schedule = lr_schedule
        self.min_lr_ratio = min_lr_ratio
        self.grad_clip = grad_clip
        self.checkpoint_every = checkpoint_every
        self.keep_checkpoints = keep_checkpoints
        self.eval_every = eval_every
        self.log_every = log_every
        self.ema_decay = ema_decay
        self.seed = seed
        self.num_threads = num_threads
        self.num_workers = num_workers
        self.mixed_precision = mixed_precision
        self.resume = resume
        self.progress = progress
        self.run_config = run_config or {}
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.ema: EMA | None = None
        self.discriminator: nn.Module | None = None
        self._disc_stepped = False
        self._stop = False

    # ------------------------------------------------------------------ hooks a stage implements
    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def build_train_data(self) -> Dataset:
        raise NotImplementedError

    def run_step(self, batch) -> dict[str, torch.Tensor]:
        """One training step's forward pass: return at least ``{"loss": scalar tensor}``."""
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        """Metrics on held-out data; ``self.model`` is in eval mode (EMA weights when enabled)."""
        return {}

    def collate(self, items: list):
        return torch.utils.data.default_collate(items)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay)

    def build_scheduler(self, optimizer: torch.optim.Optimizer):
        def factor(step: int) -> float:
            if step < self.warmup_steps:
                return (step + 1) / max(1, self.warmup_steps)
            if self.lr_schedule == "constant":
                return 1.0
            progress = min(1.0, (step - self.warmup_steps) / max(1, self.max_steps - self.warmup_steps))
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def model_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return model.state_dict()

    def load_model_state_dict(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        model.load_state_dict(state)

    def on_train_end(self) -> None:
        """Called once after the loop ends normally (not when interrupted)."""

    def ema_module(self) -> nn.Module:
        """The module whose weights the EMA averages (default: the whole unwrapped model)."""
        return self.unwrapped_model

    def build_discriminator(self) -> nn.Module | None:
        """An adversarial stage's discriminator (trained through :meth:`discriminator_step`); None: no GAN."""
        return None

    # ------------------------------------------------------------------ helpers for stages
    def discriminator_step(self, loss: torch.Tensor) -> None:
        """One optimizer step of the discriminator on ``loss`` (call it from ``run_step``)."""
        if self.discriminator is None:
            raise RuntimeError("discriminator_step() needs build_discriminator() to return a module")
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite discriminator loss {loss.item()} at step {self.step + 1}")
        self.disc_optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        if self.grad_clip:
            self.accelerator.clip_grad_norm_(self.discriminator.parameters(), self.grad_clip)
        self.disc_optimizer.step()
        self.disc_optimizer.zero_grad(set_to_none=True)
        self._disc_stepped = True

    def log_media(self, audio: dict | None = None, images: dict | None = None, sample_rate: int = 16000) -> None:
        """Write audio clips (``{tag: [N] waveform}``) and images (``{tag: [H, W] array}``, drawn with a
        colour map, low rows at the bottom) to TensorBoard at the current step (main process only)."""
        if not self.accelerator.is_main_process:
            return
        try:
            writer = self.accelerator.get_tracker("tensorboard", unwrap=True)
        except Exception:  # no tracker (e.g. evaluate() called outside fit)
            return
        if not hasattr(writer, "add_audio"):
            return
        for tag, wav in (audio or {}).items():
            wav = torch.as_tensor(wav, dtype=torch.float32).detach().cpu().flatten().clamp(-1, 1)
            writer.add_audio(tag, wav, self.step, sample_rate=sample_rate)
        for tag, img in (images or {}).items():
            writer.add_image(tag, _colour_map(img), self.step, dataformats="HWC")

    # ------------------------------------------------------------------ the loop
    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def unwrapped_model(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def request_stop(self) -> None:
        """Ask the loop to checkpoint and stop after the current step (SIGTERM does this)."""
        self._stop = True

    def setup(self) -> None:
        """Seed, build the model, optimizer, scheduler, EMA and data; resume if a checkpoint exists."""
        from accelerate import Accelerator

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        self._seed_everything(self.seed)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.accelerator = Accelerator(
            mixed_precision=self.mixed_precision, log_with="tensorboard", project_dir=str(self.run_dir)
        )
        self.train_data = self.build_train_data()  # first: a missing corpus fails before a model is built
        model = self.build_model()
        optimizer = self.build_optimizer(model)
        scheduler = self.build_scheduler(optimizer)
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(model, optimizer, scheduler)
        disc = self.build_discriminator()
        if disc is not None:
            params = [p for p in disc.parameters() if p.requires_grad]
            disc_opt = torch.optim.AdamW(
                params, lr=self.disc_lr or self.lr, betas=self.betas, weight_decay=self.weight_decay
            )
            prepared = self.accelerator.prepare(disc, disc_opt, self.build_scheduler(disc_opt))
            self.discriminator, self.disc_optimizer, self.disc_scheduler = prepared
        self.ema = EMA(self.ema_module(), self.ema_decay) if self.ema_decay else None
        if self.resume:
            self.load_latest()
        if self.accelerator.is_main_process and self.run_config:
            from tta.audio.io import write_atomic

            write_atomic(self.run_dir / "config.json", json.dumps(self.run_config, indent=2, default=str) + "\n")

    def fit(self) -> dict[str, float]:
        """Train up to ``max_steps``; returns the last evaluation's metrics (empty if none ran)."""
        from tqdm.auto import tqdm

        self.setup()
        acc = self.accelerator
        acc.init_trackers(self.name)
        last_metrics: dict[str, float] = {}
        saved_step = start_step = self.step
        previous_handler = self._install_sigterm()
        bar = tqdm(total=self.max_steps, initial=self.step, disable=not (self.progress and acc.is_main_process))
        interrupted = False
        t0 = time.time()
        try:
            while self.step < self.max_steps and not self._stop:
                start_of_epoch = self.step
                for batch in self._epoch_batches():
                    out = self._train_step(batch)
                    self.step += 1
                    self.batch_in_epoch += 1
                    bar.update(1)
                    if self.step % self.log_every == 0 or self.step == 1:
                        logs = {f"train/{k}": float(v) for k, v in out.items()}
                        logs["train/lr"] = self.scheduler.get_last_lr()[0]
                        logs["train/steps_per_s"] = (self.step - start_step) / max(1e-9, time.time() - t0)
                        acc.log(logs, step=self.step)
                        bar.set_postfix(loss=f"{logs['train/loss']:.4f}")
                        if not self.progress and acc.is_main_process:  # a plain log line instead of the bar
                            print(
                                f"step {self.step}/{self.max_steps} "
                                + " ".join(f"{k[6:]}={v:.4g}" for k, v in logs.items()),
                                flush=True,
                            )
                    if self.eval_every and self.step % self.eval_every == 0:
                        last_metrics = self.run_evaluation(bar.write)
                    if self.step % self.checkpoint_every == 0:
                        self.save()
                        saved_step = self.step
                    if self.step >= self.max_steps or self._stop:
                        break
                else:  # the epoch ran out
                    if self.step == start_of_epoch and self.batch_in_epoch == 0:
                        raise InputError(f"the training data gives no batch of {self.batch_size} items")
                    self.epoch += 1
                    self.batch_in_epoch = 0
        except KeyboardInterrupt:
            interrupted = True
            bar.write(f"interrupted at step {self.step}; saving a checkpoint")
        finally:
            bar.close()
            self._restore_sigterm(previous_handler)
        if self.step != saved_step or not latest_checkpoint(self.checkpoint_dir):
            self.save()
        if not interrupted and not self._stop:
            if not self.eval_every or self.step % self.eval_every:
                last_metrics = self.run_evaluation(print)
            self.on_train_end()
        acc.end_training()
        if interrupted:
            raise KeyboardInterrupt
        return last_metrics

    def run_evaluation(self, write=print) -> dict[str, float]:
        """Run ``evaluate()`` in eval mode (with the EMA weights if kept), log and append to eval.jsonl."""
        model = self.unwrapped_model
        was_training = model.training
        model.eval()
        with torch.no_grad():
            if self.ema is not None:
                with self.ema.swapped_into(self.ema_module()):
                    metrics = self.evaluate()
            else:
                metrics = self.evaluate()
        model.train(was_training)
        if metrics and self.accelerator.is_main_process:
            self.accelerator.log({f"eval/{k}": v for k, v in metrics.items()}, step=self.step)
            with open(self.run_dir / "eval.jsonl", "a") as f:
                f.write(json.dumps({"step": self.step, **metrics}) + "\n")
            write(f"[step {self.step}] " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        return metrics

    def _train_step(self, batch) -> dict[str, torch.Tensor]:
        self.model.train()
        out = self.run_step(batch)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {self.step + 1}")
        self.accelerator.backward(loss)
        if self.grad_clip:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.discriminator is not None and self._disc_stepped:  # its schedule counts its own steps
            self.disc_scheduler.step()
            self._disc_stepped = False
        if self.ema is not None:
            self.ema.update(self.ema_module())
        return {k: v.detach() for k, v in out.items()}

    def _epoch_batches(self):
        """Batches of epoch ``self.epoch`` from position ``self.batch_in_epoch`` on (deterministic shuffle)."""
        data = self.train_data
        if hasattr(data, "set_epoch"):
            data.set_epoch(self.epoch)
        # the loader's own generator seeds its workers, so creating it does not draw from the global RNG
        # (which would make a resumed run diverge from an uninterrupted one)
        loader_rng = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch * 7919 + self.batch_in_epoch)
        common = {
            "collate_fn": self.collate,
            "num_workers": self.num_workers,
            "batch_size": self.batch_size,
            "generator": loader_rng,
        }
        if isinstance(data, IterableDataset):
            loader = DataLoader(data, **common)
            batches = itertools.islice(loader, self.batch_in_epoch, None)
        else:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(len(data), generator=g).tolist()
            order = order[: len(order) - len(order) % self.batch_size]  # drop the last partial batch
            loader = DataLoader(data, sampler=order[self.batch_in_epoch * self.batch_size :], **common)
            batches = loader
        for batch in batches:
            yield self._to_device(batch)

    def _to_device(self, batch):
        device = self.accelerator.device
        if isinstance(batch, torch.Tensor):
            return batch.to(device)
        if isinstance(batch, dict):
            return {k: self._to_device(v) for k, v in batch.items()}
        if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
            return type(batch)(self._to_device(v) for v in batch)
        return batch

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> Path | None:
        """Write a checkpoint of the current step (main process only)."""
        acc = self.accelerator
        acc.wait_for_everyone()
        if not acc.is_main_process:
            return None
        training_state = {
            "optimizer": self.optimizer.state_dict(),
            "optimizer_param_names": optimizer_param_names(self.optimizer, self.unwrapped_model),
            "scheduler": self.scheduler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
        }
        extra = None
        if self.discriminator is not None:
            training_state["disc_optimizer"] = self.disc_optimizer.state_dict()
            training_state["disc_scheduler"] = self.disc_scheduler.state_dict()
            extra = {"discriminator": self.accelerator.unwrap_model(self.discriminator).state_dict()}
        meta = {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "stage": self.name}
        if self.run_config:
            meta["config"] = self.run_config
        return save_checkpoint(
            self.checkpoint_dir,
            self.step,
            self.model_state_dict(self.unwrapped_model),
            training_state,
            meta,
            ema_state=self.ema.state_dict() if self.ema is not None else None,
            keep=self.keep_checkpoints,
            extra_states=extra,
        )

    def load_optimizer_state(self, state: dict) -> None:
        """The optimizer and scheduler states of a checkpoint; when the parameters are grouped differently now
        (a checkpoint without names was saved with one group in ``model.parameters()`` order), the saved state
        is re-keyed by parameter name (:func:`tta.training.checkpoint.regroup_optimizer_state`)."""
        names = optimizer_param_names(self.optimizer, self.unwrapped_model)
        saved = state["optimizer"]
        saved_names = state.get("optimizer_param_names")
        if saved_names is None and len(saved["param_groups"]) == 1:
            saved_names = [[n for n, p in self.unwrapped_model.named_parameters() if p.requires_grad]]
        if saved_names is not None and saved_names != names:
            saved = regroup_optimizer_state(saved, saved_names, self.optimizer.param_groups, names)
        self.optimizer.load_state_dict(saved)
        groups = self.optimizer.param_groups
        scheduler = dict(state["scheduler"])
        if len(scheduler.get("base_lrs", ())) != len(groups):  # the schedule's position, for the new groups
            scheduler.update(
                base_lrs=[g["initial_lr"] for g in groups],
                _last_lr=[g["lr"] for g in groups],
                lr_lambdas=[None] * len(groups),
            )
        self.scheduler.load_state_dict(scheduler)

    def load_latest(self) -> bool:
        """Resume from ``latest`` if there is one; returns whether it did."""
        folder = latest_checkpoint(self.checkpoint_dir)
        if folder is None:
            return False
        ckpt = load_checkpoint(folder)
        self.load_model_state_dict(self.unwrapped_model, ckpt["model"])
        if self.ema is not None and ckpt["ema"] is not None:
            self.ema.load_state_dict(ckpt["ema"])
        state = ckpt["training_state"]
        self.load_optimizer_state(state)
        if self.discriminator is not None:
            disc_state = ckpt["extra"].get("discriminator")
            if disc_state is None or "disc_optimizer" not in state:
                from tta.errors import ModelLoadError

                raise ModelLoadError(f"checkpoint {folder} has no discriminator state (discriminator.safetensors)")
            self.accelerator.unwrap_model(self.discriminator).load_state_dict(disc_state)
            self.disc_optimizer.load_state_dict(state["disc_optimizer"])
            self.disc_scheduler.load_state_dict(state["disc_scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        meta = ckpt["meta"]
        self.step, self.epoch, self.batch_in_epoch = meta["step"], meta["epoch"], meta["batch_in_epoch"]
        print(f"resumed from {folder} (step {self.step})")
        return True

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _install_sigterm(self):
        if threading.current_thread() is not threading.main_thread():
            return None
        return signal.signal(signal.SIGTERM, lambda *_: self.request_stop())

    @staticmethod
    def _restore_sigterm(previous) -> None:
        if previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


def _colour_map(img) -> np.ndarray:
    """[H, W] values -> [H, W, 3] uint8 (viridis-like ramp, min-max scaled), flipped so row 0 is at the bottom."""
    a = np.asarray(torch.as_tensor(img, dtype=torch.float32).detach().cpu(), dtype=np.float32)
    a = (a - a.min()) / max(float(a.max() - a.min()), 1e-8)
    stops = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float32)
    pos = a * (len(stops) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(stops) - 2)
    frac = (pos - lo)[..., None]
    rgb = stops[lo] * (1 - frac) + stops[lo + 1] * frac
    return rgb[::-1].astype(np.uint8)
