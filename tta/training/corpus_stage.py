"""What every stage that trains on the corpus shares: where the corpus is, and exporting the final model."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from tta.errors import InputError
from tta.training.ema import ema_weights
from tta.training.trainer import Trainer


class CorpusTrainer(Trainer):
    """A :class:`Trainer` whose data is the corpus built by ``tta data build`` and whose result is a model folder.

    Args:
        corpus: corpus root (``manifest.jsonl``); default ``tta.paths.cache_dir() / "corpus"``.
        export_dir: where ``on_train_end`` also writes the final model; it always writes ``<run_dir>/export``.
        **trainer_kwargs: :class:`Trainer` arguments.

    A stage implements ``export_model(model, folder)`` (write ``model``, which holds the EMA weights when they
    are kept, to ``folder``).
    """

    def __init__(
        self, corpus: str | os.PathLike | None = None, export_dir: str | os.PathLike | None = None, **trainer_kwargs
    ):
        super().__init__(**trainer_kwargs)
        self.corpus = Path(corpus) if corpus else None
        self.export_dir = Path(export_dir) if export_dir else None

    def corpus_root(self) -> Path:
        from tta.paths import cache_dir

        root = self.corpus or cache_dir() / "corpus"
        if not (root / "manifest.jsonl").is_file():
            raise InputError(f"no corpus at {root} (manifest.jsonl missing); build it with `tta data build`")
        return root

    def export_model(self, model: nn.Module, folder: Path) -> None:
        raise NotImplementedError

    def export(self, folder: str | os.PathLike) -> Path:
        """Write the trained model (EMA weights if kept) to ``folder``."""
        folder = Path(folder)
        model = self.unwrapped_model.eval()
        with ema_weights(self.ema, self.ema_module()):
            self.export_model(model, folder)
        return folder

    def on_train_end(self) -> None:
        if not self.accelerator.is_main_process:
            return
        self.export(self.run_dir / "export")
        if self.export_dir is not None:
            self.export(self.export_dir)
            print(f"exported the trained {self.name} to {self.export_dir}")
