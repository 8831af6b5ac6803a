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

The base class owns everything else, on accelerate as it is meant to be used: the model, optimizers, LR
schedules and the data loader go through ``accelerator.prepare`` (devices, mixed precision, DDP; under
``accelerate launch`` each process gets its own shard of every epoch: ``batch_size`` items per process and
step, a deterministic per-epoch shuffle seeded by ``seed``), the schedules are transformers' and the EMA is
diffusers' ``EMAModel``. Checkpoints (``accelerator.save_state``, see :mod:`tta.training.checkpoint`) are written
every ``checkpoint_every`` steps and at exit (normal end, Ctrl-C or SIGTERM) under
``<run_dir>/checkpoints/step_XXXXXXX/`` with an atomic ``latest`` pointer; a run resumes from ``latest``
exactly where it stopped (``load_state``: model, optimizers, schedules, EMA, every process's RNG state, and
the position in the epoch, from which each process skips its own batches: ``skip_first_batches``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from tta.errors import InputError, ModelLoadError
from tta.training import checkpoint
from tta.training.ema import build_ema, check_ema_fits, ema_weights
from tta.training.signals import StopSignals

# lr_schedule -> (transformers schedule, its floor): warm-up (step + 1) / warmup_steps as tta always had; "constant"
# is the cosine with its floor at 1
SCHEDULES = {"cosine": "cosine_warmup_with_min_lr", "constant": "cosine_warmup_with_min_lr"}


@dataclass
class Position:
    """Where a run is (saved with every checkpoint: ``accelerator.register_for_checkpointing``)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of this epoch each process has trained on

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]


class Trainer:
    """Base training loop; subclasses implement the stage hooks (see the module docstring).

    Args:
        run_dir: where checkpoints (``checkpoints/``), TensorBoard logs (``tb/``) and ``eval.jsonl`` go.
        max_steps: optimizer steps to train for (a resumed run continues up to this count).
        batch_size: items per step and process (under ``accelerate launch`` a step takes ``batch_size`` items
            from each process's shard: ``batch_size * num_processes`` in all).
        lr, weight_decay, betas: AdamW settings (over parameters with ``requires_grad``).
        warmup_steps: linear warm-up, ``lr * (step + 1) / warmup_steps``; then ``lr_schedule`` ("cosine" down to
            ``min_lr_ratio * lr`` at ``max_steps``, or "constant"); transformers' ``cosine_warmup_with_min_lr``.
        grad_clip: max gradient norm (0 or None: no clipping).
        checkpoint_every: save every this many steps (and always at exit).
        keep_checkpoints: how many step folders to keep (older ones are deleted).
        eval_every: call ``evaluate()`` every this many steps (0: only at the end).
        log_every: log the step outputs every this many steps.
        ema_decay: keep an EMA of the weights (diffusers' ``EMAModel``, :mod:`tta.training.ema`; saved in
            checkpoints, used for evaluation and export) when set.
        seed: seeds python, numpy and torch (the model is built under it on every process; each further process
            then draws from ``seed + process_index``), and the per-epoch shuffle.
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
        if lr_schedule not in SCHEDULES:
            raise InputError(f"lr_schedule must be one of {sorted(SCHEDULES)}, got {lr_schedule!r}")
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
        self.position = Position()
        self.ema = None  # diffusers EMAModel when ema_decay is set (built in setup)
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
        """transformers' warm-up + cosine with a floor, over ``max_steps`` optimizer steps (stepped once per step)."""
        from transformers import get_scheduler

        floor = self.min_lr_ratio if self.lr_schedule == "cosine" else 1.0
        return get_scheduler(
            SCHEDULES[self.lr_schedule],
            optimizer,
            num_warmup_steps=self.warmup_steps,
            num_training_steps=self.max_steps,
            scheduler_specific_kwargs={"min_lr_rate": floor},
        )

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
        from tta.audio.melplot import colour_image

        for tag, wav in (audio or {}).items():
            wav = torch.as_tensor(wav, dtype=torch.float32).detach().cpu().flatten().clamp(-1, 1)
            writer.add_audio(tag, wav, self.step, sample_rate=sample_rate)
        for tag, img in (images or {}).items():
            writer.add_image(tag, colour_image(img), self.step, dataformats="HWC")

    # ------------------------------------------------------------------ the loop
    step = property(lambda self: self.position.step, lambda self, v: setattr(self.position, "step", v))
    epoch = property(lambda self: self.position.epoch, lambda self, v: setattr(self.position, "epoch", v))
    batch_in_epoch = property(
        lambda self: self.position.batch_in_epoch, lambda self, v: setattr(self.position, "batch_in_epoch", v)
    )

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def unwrapped_model(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def request_stop(self) -> None:
        """Ask every process to checkpoint and stop after the current step (SIGTERM and Ctrl-C do this)."""
        self._stop = True
        if hasattr(self, "accelerator"):
            self.accelerator.set_trigger()

    def setup(self) -> None:
        """Seed, build the model, optimizer, scheduler, EMA and data loader (all prepared); resume if a checkpoint
        exists."""
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration, set_seed

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.accelerator = acc = Accelerator(
            mixed_precision=self.mixed_precision,
            log_with="tensorboard",
            project_dir=str(self.run_dir),
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=self.seed),
            step_scheduler_with_optimizer=False,  # schedules count optimizer steps, whatever the process count
        )
        set_seed(self.seed)  # the same initial weights on every process
        self.train_data = self.build_train_data()  # first: a missing corpus fails before a model is built
        model = self.build_model()
        optimizer = self.build_optimizer(model)
        checkpoint.name_optimizer_state(optimizer, model)
        prepared = acc.prepare(model, optimizer, self.build_scheduler(optimizer), self.build_loader(self.train_data))
        self.model, self.optimizer, self.scheduler, self.train_loader = prepared
        weight_files = [("model.safetensors", self._model_state, self._load_model_state)]
        disc = self.build_discriminator()
        if disc is not None:
            params = [p for p in disc.parameters() if p.requires_grad]
            disc_opt = torch.optim.AdamW(
                params, lr=self.disc_lr or self.lr, betas=self.betas, weight_decay=self.weight_decay
            )
            prepared = acc.prepare(disc, disc_opt, self.build_scheduler(disc_opt))
            self.discriminator, self.disc_optimizer, self.disc_scheduler = prepared
            unwrapped_disc = acc.unwrap_model(self.discriminator)
            weight_files.append(
                ("discriminator.safetensors", unwrapped_disc.state_dict, unwrapped_disc.load_state_dict)
            )
        checkpoint.register_weight_hooks(acc, weight_files)
        acc.register_for_checkpointing(self.position)
        if self.ema_decay:
            self.ema = build_ema(self.ema_module(), self.ema_decay)
            acc.register_for_checkpointing(self.ema)
        if acc.num_processes > 1:
            set_seed(self.seed, device_specific=True)  # each process its own noise, dropout, crops' gains
        if self.resume:
            self.load_latest()
        if acc.is_main_process and self.run_config:
            from tta.audio.io import write_atomic

            write_atomic(self.run_dir / "config.json", json.dumps(self.run_config, indent=2, default=str) + "\n")

    def build_loader(self, data: Dataset) -> DataLoader:
        """The training loader before ``prepare`` (which shards it and seeds its shuffle per epoch); the last
        partial batch is dropped. Its own generator seeds workers, so iterating it draws nothing from the
        global RNG (which would make a resumed run diverge from an uninterrupted one)."""
        return DataLoader(
            data,
            batch_size=self.batch_size,
            shuffle=not isinstance(data, IterableDataset),
            drop_last=True,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def fit(self) -> dict[str, float]:
        """Train up to ``max_steps``; returns the last evaluation's metrics (empty if none ran)."""
        from tqdm.auto import tqdm

        self.setup()
        acc = self.accelerator
        acc.init_trackers(self.name)
        self._bar = tqdm(total=self.max_steps, initial=self.step, disable=not (self.progress and acc.is_main_process))
        self._saved_step, self._last_metrics = self.step, {}
        interrupted = False
        try:
            with StopSignals(self.request_stop, self._bar.write) as signals:
                self._train_epochs()
        except KeyboardInterrupt:
            interrupted = True
            self._bar.write(f"interrupted at step {self.step}; saving a checkpoint")
        finally:
            self._bar.close()
        can_save = not (interrupted and acc.num_processes > 1)  # an abort mid-step may leave a collective half done
        if can_save and (self.step != self._saved_step or not checkpoint.latest_checkpoint(self.checkpoint_dir)):
            self.save()
        if not interrupted and not self._stop:
            if not self.eval_every or self.step % self.eval_every:
                self._last_metrics = self.run_evaluation(print)
            self.on_train_end()
        acc.end_training()
        if interrupted or signals.sigint:
            raise KeyboardInterrupt
        return self._last_metrics

    def _train_epochs(self) -> None:
        t0, start_step = time.time(), self.step
        while self.step < self.max_steps and not self._stop:
            start_of_epoch = self.step
            for batch in self._epoch_batches():
                out = self._train_step(batch)
                self.step += 1
                self.batch_in_epoch += 1
                self._bar.update(1)
                if self.step % self.log_every == 0 or self.step == 1:
                    self._log_step(out, (self.step - start_step) / max(1e-9, time.time() - t0))
                if self.eval_every and self.step % self.eval_every == 0:
                    self._last_metrics = self.run_evaluation(self._bar.write)
                if self.step % self.checkpoint_every == 0:
                    self.save()
                    self._saved_step = self.step
                if self.accelerator.check_trigger():  # any process asked to stop: all stop at this step
                    self._stop = True
                if self.step >= self.max_steps or self._stop:
                    return
            if self.step == start_of_epoch and self.batch_in_epoch == 0:
                raise InputError(f"the training data gives no batch of {self.batch_size} items per process")
            self.epoch += 1
            self.batch_in_epoch = 0

    def _epoch_batches(self):
        """The prepared loader over epoch ``self.epoch``, from this process's batch ``self.batch_in_epoch`` on."""
        data = self.train_data
        if hasattr(data, "set_epoch"):  # the dataset's own per-epoch state (augmentations, latent cache slots)
            with self.accelerator.main_process_first():  # e.g. one process encodes a latent cache slot
                data.set_epoch(self.epoch)
        self.train_loader.set_epoch(self.epoch)  # the shuffle of this epoch, the same on every process
        if self.batch_in_epoch:
            return self.accelerator.skip_first_batches(self.train_loader, self.batch_in_epoch)
        return self.train_loader

    def _log_step(self, out: dict[str, torch.Tensor], steps_per_s: float) -> None:
        """Log the step's outputs (averaged over the processes) and the lr."""
        acc = self.accelerator
        values = torch.stack([v.detach().float().reshape(()) for v in out.values()])
        values = acc.reduce(values, "mean") if acc.num_processes > 1 else values
        logs = {f"train/{k}": float(v) for k, v in zip(out, values)}
        logs["train/lr"] = self.scheduler.get_last_lr()[0]
        logs["train/steps_per_s"] = steps_per_s
        acc.log(logs, step=self.step)
        self._bar.set_postfix(loss=f"{logs['train/loss']:.4f}")
        if not self.progress and acc.is_main_process:  # a plain log line instead of the bar
            line = " ".join(f"{k[6:]}={v:.4g}" for k, v in logs.items())
            print(f"step {self.step}/{self.max_steps} {line}", flush=True)

    def run_evaluation(self, write=print) -> dict[str, float]:
        """Run ``evaluate()`` in eval mode (with the EMA weights if kept), log and append to eval.jsonl."""
        model = self.unwrapped_model
        was_training = model.training
        model.eval()
        with torch.no_grad(), ema_weights(self.ema, self.ema_module()):
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
            self.ema.step([p for p in self.ema_module().parameters() if p.requires_grad])
        return {k: v.detach() for k, v in out.items()}

    # ------------------------------------------------------------------ checkpoints
    def _model_state(self) -> dict[str, torch.Tensor]:
        return self.model_state_dict(self.unwrapped_model)

    def _load_model_state(self, state: dict[str, torch.Tensor]) -> None:
        self.load_model_state_dict(self.unwrapped_model, state)

    def save(self) -> Path:
        """Write a checkpoint of the current step (every process takes part; the main one writes the weights)."""
        meta = {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "stage": self.name}
        if self.run_config:
            meta["config"] = self.run_config
        return checkpoint.save_state(self.accelerator, self.checkpoint_dir, self.step, meta, self.keep_checkpoints)

    def load_latest(self) -> bool:
        """Resume from ``latest`` if there is one (``accelerator.load_state``); returns whether it did."""
        folder = checkpoint.latest_checkpoint(self.checkpoint_dir)
        if folder is None:
            return False
        meta = checkpoint.read_meta(folder)
        try:
            self.accelerator.load_state(str(folder))
        except ModelLoadError:
            raise
        except (RuntimeError, ValueError, KeyError, OSError) as err:
            raise ModelLoadError(f"checkpoint {folder} does not fit this run: {err}") from err
        checkpoint.align_schedule(self.scheduler.scheduler, self.optimizer.optimizer)
        if self.ema is not None:
            check_ema_fits(self.ema, self.ema_module(), str(folder))
        if meta.get("num_processes", 1) != self.accelerator.num_processes:
            print(
                f"warning: {folder} was saved by {meta.get('num_processes', 1)} processes, this run has "
                f"{self.accelerator.num_processes}: it continues from step {self.step}, but not with the data "
                "order and random draws an uninterrupted run would have had"
            )
        print(f"resumed from {folder} (step {self.step})")
        if self.step >= self.max_steps:
            print(
                f"warning: the checkpoint is at step {self.step}, at or past max_steps {self.max_steps}: nothing "
                "left to train (raise max_steps / --steps to continue, or start a fresh run dir)"
            )
        return True
