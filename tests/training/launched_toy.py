"""The toy stage as a script for ``accelerate launch`` (tests/training/test_distributed.py); each process records
what it trained on.

``python tests/training/launched_toy.py '{"run_dir": ..., "record": FOLDER, "hang_at": STEP, ...}'``: the other
keys are :class:`ToyTrainer` arguments. Every step appends ``{"step", "ids", "loss", "weights"}`` to
``FOLDER/rank<process index>.jsonl`` (the weights as they were when the step began); the weights at the end are
the last line, ``{"step": "end", ...}``. With ``hang_at``, each process writes ``FOLDER/hung<rank>`` (its pid) and
stops in step ``hang_at`` (until it is killed).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

from tests.training.toy import ToyTrainer


def flat_weights(model: torch.nn.Module) -> list[float]:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()


class RecordingToy(ToyTrainer):
    def __init__(self, record: str, hang_at: int | None = None, **kw):
        super().__init__(**kw)
        self.record, self.hang_at = Path(record), hang_at

    def write(self, entry: dict) -> None:
        self.record.mkdir(parents=True, exist_ok=True)
        with open(self.record / f"rank{self.accelerator.process_index}.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")

    def run_step(self, batch):
        if self.step + 1 == self.hang_at:
            mark = self.record / f"hung{self.accelerator.process_index}"
            mark.with_suffix(".tmp").write_text(str(os.getpid()))
            os.replace(mark.with_suffix(".tmp"), mark)
            while True:
                time.sleep(1)
        weights = flat_weights(self.unwrapped_model)
        out = super().run_step(batch)
        self.write(
            {
                "step": self.step + 1,
                "ids": batch["id"].tolist(),
                "loss": float(out["loss"].detach()),
                "weights": weights,
            }
        )
        return out


def main(args: dict) -> None:
    torch.set_num_threads(1)
    trainer = RecordingToy(**args)
    trainer.fit()
    trainer.write({"step": "end", "weights": flat_weights(trainer.unwrapped_model)})


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
