"""The trainer under ``accelerate launch`` with 2 CPU processes (gloo): each process trains on its own shard, the
processes stay in step, two processes with batch B train as one with batch 2B, and a run killed with SIGKILL
resumes under 2 processes to the weights of an uninterrupted one.

The toy stage (tests/training/launched_toy.py) has no dropout, so a step's gradient is a function of its batch
alone and the runs can be compared exactly. accelerate 1.x launches CPU processes with torchrun when asked for
``--multi_gpu`` with ``ACCELERATE_USE_CPU`` set (its ``--cpu`` launcher needs MPI for more than one process).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.training.launched_toy import RecordingToy, flat_weights
from tta.paths import REPO_ROOT

ARGS = dict(max_steps=8, batch_size=4, checkpoint_every=3, dropout=0.0, ema_decay=0.9, lr=1e-2, warmup_steps=2)
ITEMS = 40  # ToyRegression: 5 steps of 2 x 4 items per epoch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(run: Path, script: str = "launched_toy.py", **extra) -> subprocess.Popen:
    """``accelerate launch`` of a stage script (default the toy) with 2 processes on this machine's CPU, in a
    process group of its own."""
    args = {**ARGS, "record": str(run / "record")} if script == "launched_toy.py" else {}
    args.update(run_dir=str(run), **extra)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--monitor_interval", "0.2"]
    cmd += ["--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port())]
    cmd += [str(REPO_ROOT / "tests/training" / script), json.dumps(args)]
    env = {
        **os.environ,
        "ACCELERATE_USE_CPU": "true",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO_ROOT),
        "HF_HOME": str(run / "hf"),  # no accelerate config of this machine's user
        "GLOO_SOCKET_IFNAME": "lo",
    }
    run.mkdir(parents=True, exist_ok=True)
    out = open(run / "launch.log", "a")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def finish(proc: subprocess.Popen, run: Path) -> str:
    try:
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log = (run / "launch.log").read_text()
    assert proc.returncode == 0, log
    return log


def records(run: Path, rank: int) -> dict:
    """step -> what that process recorded in it (a step run again after a resume: the later record)."""
    lines = (run / "record" / f"rank{rank}.jsonl").read_text().splitlines()
    return {entry["step"]: entry for entry in map(json.loads, lines)}


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    run = tmp_path_factory.mktemp("ddp")
    finish(launch(run), run)
    return run


def test_two_processes_train_on_disjoint_shards_in_step(two_processes):
    ranks = [records(two_processes, r) for r in (0, 1)]
    for step in range(1, ARGS["max_steps"] + 1):
        a, b = (ranks[r][step] for r in (0, 1))
        assert len(a["ids"]) == len(b["ids"]) == ARGS["batch_size"]
        assert not set(a["ids"]) & set(b["ids"]), (
            f"step {step}: both processes trained on {set(a['ids']) & set(b['ids'])}"
        )
        assert a["weights"] == b["weights"], f"the processes' weights differ when step {step} begins"
    assert ranks[0]["end"]["weights"] == ranks[1]["end"]["weights"]
    first_epoch = [i for step in range(1, 6) for r in (0, 1) for i in ranks[r][step]["ids"]]
    assert sorted(first_epoch) == list(range(ITEMS))  # the two shards make up the epoch, each item once


def test_two_processes_with_batch_b_train_as_one_with_batch_2b(two_processes, tmp_path):
    single = RecordingToy(
        **{**ARGS, "batch_size": 2 * ARGS["batch_size"]}, run_dir=tmp_path, record=tmp_path / "record"
    )
    single.fit()
    single.write({"step": "end", "weights": flat_weights(single.unwrapped_model)})
    one = records(tmp_path, 0)
    ranks = [records(two_processes, r) for r in (0, 1)]
    for step in [*range(1, ARGS["max_steps"] + 1), "end"]:
        if step != "end":  # the same items: the one shuffle, cut into per-process batches
            assert sorted(one[step]["ids"]) == sorted(ranks[0][step]["ids"] + ranks[1][step]["ids"])
            mean_loss = (ranks[0][step]["loss"] + ranks[1][step]["loss"]) / 2  # DDP averages the gradients
            assert mean_loss == pytest.approx(one[step]["loss"], rel=1e-5)
        torch.testing.assert_close(
            torch.tensor(ranks[0][step]["weights"]), torch.tensor(one[step]["weights"]), rtol=1e-5, atol=1e-6
        )
    moved = torch.tensor(one["end"]["weights"]) - torch.tensor(one[1]["weights"])
    assert moved.abs().max() > 1e-2  # it trained


def test_sigkill_under_two_processes_resumes_to_the_uninterrupted_weights(two_processes, tmp_path):
    proc = launch(tmp_path, hang_at=5)  # checkpoints at step 3; both processes stop inside step 5
    try:
        deadline = time.time() + 240
        while not all((tmp_path / "record" / f"hung{r}").exists() for r in (0, 1)):
            assert proc.poll() is None, (tmp_path / "launch.log").read_text()
            assert time.time() < deadline, "the launched run never reached step 5"
            time.sleep(0.2)
    finally:
        for r in (0, 1):  # torchrun starts each process in a process group of its own
            hung = tmp_path / "record" / f"hung{r}"
            if hung.exists():
                os.kill(int(hung.read_text()), signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_0000003"
    log = finish(launch(tmp_path), tmp_path)
    assert "resumed from" in log and "(step 3)" in log
    straight = [records(two_processes, r) for r in (0, 1)]
    resumed = [records(tmp_path, r) for r in (0, 1)]
    for r in (0, 1):  # each process picks up its own shard of the epoch where the checkpoint left it
        for step in range(4, ARGS["max_steps"] + 1):
            assert resumed[r][step]["ids"] == straight[r][step]["ids"], (r, step)
        assert resumed[r]["end"]["weights"] == straight[r]["end"]["weights"]
    ema = [
        torch.load(run / "checkpoints" / "step_0000008" / "custom_checkpoint_1.pkl", weights_only=False)
        for run in (two_processes, tmp_path)
    ]
    assert ema[0]["optimization_step"] == ema[1]["optimization_step"] == 8
    for p, q in zip(ema[0]["shadow_params"], ema[1]["shadow_params"]):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.slow
def test_ldm_stage_under_two_processes_resumes_exactly(tmp_path, corpus, components):
    """The LDM stage with its latent cache (one process encodes a slot, the other reads it): the processes end
    with the same weights, and a run stopped at step 2 and resumed ends as an uninterrupted one."""
    common = dict(components=str(components), corpus=str(corpus), max_steps=4)
    finish(launch(tmp_path / "a", "launched_ldm.py", **common), tmp_path / "a")
    finish(launch(tmp_path / "b", "launched_ldm.py", **{**common, "max_steps": 2}), tmp_path / "b")
    log = finish(launch(tmp_path / "b", "launched_ldm.py", **common), tmp_path / "b")
    assert "(step 2)" in log
    states = {(run, r): torch.load(tmp_path / run / f"rank{r}.pt") for run in "ab" for r in (0, 1)}
    for name, weight in states["a", 0].items():
        for other in (("a", 1), ("b", 0), ("b", 1)):
            torch.testing.assert_close(states[other][name], weight, rtol=0, atol=0, msg=f"{other} {name}")
    assert len(list((tmp_path / "a" / "latent_cache").glob("slot_*.safetensors"))) >= 1
