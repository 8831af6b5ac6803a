"""The shared Trainer: checkpoints, exact resume, stop/interrupt handling, corrupt files, logs."""

from __future__ import annotations

import pytest
import torch

from tests.training.toy import ToyTrainer
from tta.errors import ModelLoadError
from tta.training.checkpoint import latest_checkpoint, load_checkpoint
from tta.training.ema import EMA

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
    ema_a = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_0000008")["ema"]
    ema_b = load_checkpoint(run / "checkpoints" / "step_0000008")["ema"]
    for k in ema_a:
        torch.testing.assert_close(ema_a[k], ema_b[k], rtol=0, atol=0)


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


@pytest.mark.parametrize("victim", ["model.safetensors", "training_state.pt", "trainer_state.json"])
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
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, decay=0.5)
    before = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    live = model.weight.detach().clone()
    with ema.swapped_into(model):
        assert not torch.equal(model.weight, live)
        assert torch.all(model.weight > before) and torch.all(model.weight < live)
    torch.testing.assert_close(model.weight, live)
    restored = EMA(model, decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert restored.num_updates == 1
