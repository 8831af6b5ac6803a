"""The LDM stage as a script for ``accelerate launch`` (tests/training/test_distributed.py): a tiny UNet over
the test components, with the latent cache; each process writes its final weights to ``<run_dir>/rank<i>.pt``.

``python tests/training/launched_ldm.py '{"components": ..., "corpus": ..., "run_dir": ..., ...}'``: the keys are
:class:`~tta.training.ldm.LdmTrainer` arguments over the tiny settings below.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from tests.training.test_ldm_stage import TINY_UNET
from tta.training.ldm import LdmTrainer

TINY = dict(
    model=TINY_UNET, batch_size=2, clip_seconds=0.32, checkpoint_every=2, eval_every=0, eval_prompts=[],
    eval_items=1, progress=False, ema_decay=0.9, lr=1e-3, latent_cache_slots=2, text_cond_prob=0.5,
)  # fmt: skip


def main(args: dict) -> None:
    torch.set_num_threads(1)
    trainer = LdmTrainer(**{**TINY, **args})
    trainer.fit()
    state = {k: v.detach().cpu() for k, v in trainer.unwrapped_model.state_dict().items()}
    torch.save(state, Path(args["run_dir"]) / f"rank{trainer.accelerator.process_index}.pt")


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
