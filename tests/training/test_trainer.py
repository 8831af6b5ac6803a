"""The shared Trainer: checkpoints, exact resume, stop/interrupt handling, corrupt files, logs."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from tests.training.toy import ToyTrainer
from tta.errors import ModelLoadError
from tta.training.checkpoint import latest_checkpoint
from tta.training.ema import build_ema, ema_weights

KW = dict(max_steps=8, batch_size=8, checkpoint_every=3, log_every=2, lr=1e-2, warmup_steps=2, ema_decay=0.9)


def params(trainer):
    return {k: v.detach().clone() for k, v in trainer.unwrapped_model.state_dict().items()}


def test_fit_writes_checkpoints_logs_and_latest(tmp_path):
    t = ToyTrainer(run_dir=tmp_path, eval_every=4, keep_checkpoints=2, **KW)
    metrics = t.fit()
    assert "mse" in metrics
    assert t.step == 8
    steps = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*"))
    assert steps == ["step_0000006", "step_0000008"]  # keep 2; the final step is saved at exit
    assert latest_checkpoint(tmp_path / "checkpoints").name == "step_0000008"
    assert list((tmp_path / "toy").glob("events.out.tfevents.*")), "TensorBoard event file missing"
    assert (tmp_path / "eval.jsonl").read_text().count("\n") == 2


def test_interrupted_run_resumes_exactly(tmp_path):
    straight = ToyTrainer(run_dir=tmp_path / "a", **KW)
    straight.fit()

    run = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        ToyTrainer(run_dir=run, interrupt_at=5, **KW).fit()  # Ctrl-C during step 6
    assert latest_checkpoint(run / "checkpoints").name == "step_0000005"  # saved at exit
    resumed = ToyTrainer(run_dir=run, **KW)
    resumed.fit()
    assert resumed.step == 8
    a, b = params(straight), params(resumed)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert straight.ema.optimization_step == resumed.ema.optimization_step == 8
    for p, q in zip(straight.ema.shadow_params, resumed.ema.shadow_params):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_request_stop_checkpoints_and_next_run_continues(tmp_path):
    ToyTrainer(run_dir=tmp_path, stop_at=4, **KW).fit()  # what SIGTERM does
    assert latest_checkpoint(tmp_path / "checkpoints").name == "step_0000004"
    t = ToyTrainer(run_dir=tmp_path, **KW)
    t.fit()
    assert t.step == 8


def test_no_resume_starts_over(tmp_path):
    ToyTrainer(run_dir=tmp_path, stop_at=4, **KW).fit()
    t = ToyTrainer(run_dir=tmp_path, resume=False, **{**KW, "max_steps": 2})
    t.fit()
    assert t.step == 2


@pytest.mark.parametrize(
    "victim",
    ["model.safetensors", "optimizer.bin", "random_states_0.pkl", "custom_checkpoint_1.pkl", "trainer_state.json"],
)
def test_truncated_checkpoint_is_a_clear_error(tmp_path, victim):
    ToyTrainer(run_dir=tmp_path, stop_at=3, **KW).fit()
    f = tmp_path / "checkpoints" / "step_0000003" / victim
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    with pytest.raises(ModelLoadError, match=victim):
        ToyTrainer(run_dir=tmp_path, **KW).fit()


def test_latest_pointing_nowhere_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest").write_text("step_0000099\n")
    with pytest.raises(ModelLoadError, match="step_0000099"):
        latest_checkpoint(tmp_path / "checkpoints")


def test_ema_tracks_and_swaps():
    """diffusers' EMAModel as the trainer builds it: the first update copies the weights, the next ones move by
    1 - min(decay, n / (n + 9)); ema_weights swaps the average in and the live weights back."""
    model = torch.nn.Linear(2, 1)
    ema = build_ema(model, decay=0.5)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.step(model.parameters())  # update 1: decay 0
    torch.testing.assert_close(ema.shadow_params[0], model.weight)
    first = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.step(model.parameters())  # update 2: decay min(0.5, 2 / 11)
    live = model.weight.detach().clone()
    torch.testing.assert_close(ema.shadow_params[0], first + (1 - 2 / 11) * (live - first))
    with ema_weights(ema, model):
        torch.testing.assert_close(model.weight, ema.shadow_params[0])
    torch.testing.assert_close(model.weight, live)


def test_schedule_is_the_warmup_and_floored_cosine_of_before(tmp_path):
    """transformers' cosine_warmup_with_min_lr: warm-up (step + 1) / warmup exactly as tta's own schedule had it,
    then the cosine to min_lr_ratio (one step earlier than the old one: within 2e-4 of lr)."""
    import math

    t = ToyTrainer(run_dir=tmp_path, max_steps=50, warmup_steps=5, lr=1.0, min_lr_ratio=0.1)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    lam = t.build_scheduler(opt).lr_lambdas[0]

    def before(s):  # tta's hand-written schedule
        if s < 5:
            return (s + 1) / 5
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (s - 5) / 45)))

    assert [lam(s) for s in range(5)] == [before(s) for s in range(5)]
    assert max(abs(lam(s) - before(s)) for s in range(50)) < 0.04  # 1 / 45 of the way, at most
    assert lam(49) == pytest.approx(0.1) and before(49) > lam(49)
    const = ToyTrainer(run_dir=tmp_path, max_steps=50, warmup_steps=5, lr_schedule="constant")
    lam = const.build_scheduler(opt).lr_lambdas[0]
    assert [lam(s) for s in (0, 4, 5, 30, 49)] == [0.2, 1.0, 1.0, 1.0, 1.0]
    with pytest.raises(Exception, match="lr_schedule"):
        ToyTrainer(run_dir=tmp_path, lr_schedule="linear")


SIGNALLED = """
import os, signal, sys
from tests.training.test_trainer import KW
from tests.training.toy import ToyTrainer

signum = int(sys.argv[2])


class Signalled(ToyTrainer):
    def run_step(self, batch):
        if self.step == 2:  # during step 3
            os.kill(os.getpid(), signum)
        return super().run_step(batch)


before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
t = Signalled(run_dir=sys.argv[1], **KW)
try:
    t.fit()
    outcome = "stopped"
except KeyboardInterrupt:  # after the checkpoint: `tta train` exits as interrupted
    outcome = "interrupted"
restored = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
print(outcome, t.step, restored)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_a_first_ctrl_c_finish_the_step_and_checkpoint(tmp_path, signum):
    # in a fresh process: a pytest-xdist worker in which earlier tests ran ONNX Runtime / OpenVINO sessions was
    # seen to die of the signal although the trainer's handler was installed
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", SIGNALLED, str(tmp_path), str(int(signum))],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    want = "interrupted" if signum == signal.SIGINT else "stopped"
    assert done.stdout.split()[-3:] == [want, "3", "True"]  # step 3 finished; handlers put back
    assert latest_checkpoint(tmp_path / "checkpoints").name == "step_0000003"
    resumed = ToyTrainer(run_dir=tmp_path, **KW)
    resumed.fit()
    assert resumed.step == 8


def test_a_checkpoint_of_the_earlier_trainer_is_a_clear_error(tmp_path):
    old = tmp_path / "checkpoints" / "step_0000004"  # the layout tta's own trainer wrote before accelerate's
    old.mkdir(parents=True)
    for name in ("model.safetensors", "ema.safetensors", "training_state.pt", "trainer_state.json"):
        (old / name).write_bytes(b"")
    (tmp_path / "checkpoints" / "latest").write_text("step_0000004\n")
    with pytest.raises(ModelLoadError, match="earlier trainer.*--no-resume"):
        ToyTrainer(run_dir=tmp_path, **KW).fit()
    t = ToyTrainer(run_dir=tmp_path, resume=False, **KW)
    t.fit()  # starting afresh overwrites nothing it needs
    assert t.step == 8 and latest_checkpoint(tmp_path / "checkpoints").name == "step_0000008"
