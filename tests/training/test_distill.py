"""Latent consistency distillation (`tta train distill`): the objective's pieces against diffusers (DDIM step,
LCMScheduler's grid, boundary condition and step), the guided teacher, the stage's exact resume after an
interruption, and the exported student: merged at load, sampled through the core with the LCM sampler."""

from __future__ import annotations

import json

import pytest
import torch

from tests.training.test_ldm_stage import TINY_UNET
from tta.errors import ModelLoadError
from tta.sampling.schedulers import AUDIOLDM_SCHEDULER
from tta.training.distill import DistillTrainer
from tta.training.distill_loss import ConsistencyObjective

SCHEDULE = {**AUDIOLDM_SCHEDULER, "prediction_type": "v_prediction"}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, components):
    """A tiny random teacher folder (v-prediction, guidance 3) over the training tests' frozen parts."""
    from tta.loading import save_components
    from tta.models.clap import backend_name
    from tta.models.unet import build_unet
    from tta.training.ldm_parts import load_frozen_parts

    torch.manual_seed(0)
    parts = load_frozen_parts(components, 64)
    folder = tmp_path_factory.mktemp("teacher") / "model"
    unet = build_unet(**TINY_UNET)
    clap = backend_name(parts.clap)
    save_components(folder, unet, parts.vae, parts.vocoder, parts.clap, SCHEDULE, clap, {"guidance_scale": 3.0})
    return folder


def distill_trainer(run_dir, corpus, teacher, **kw) -> DistillTrainer:
    base = dict(
        model={"r": 4, "lora_alpha": 4},
        components=teacher,
        run_dir=run_dir,
        corpus=corpus,
        batch_size=2,
        clip_seconds=0.32,
        max_steps=4,
        checkpoint_every=2,
        eval_items=2,
        eval_seconds=1.0,
        eval_prompts=["typing", "birds chirping in a tree"],
        eval_seconds_generated=0.5,
        latent_cache_slots=2,
        text_cond_prob=0.5,
        progress=False,
        num_threads=1,
        ema_decay=0.9,
        lr=1e-2,
    )
    base.update(kw)
    return DistillTrainer(**base)


def test_boundary_condition_returns_the_input_at_t0():
    lcm = ConsistencyObjective(SCHEDULE)
    x, out = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    torch.testing.assert_close(lcm.consistency(x, out, torch.zeros(3, dtype=torch.long)), x)
    # away from 0 the output is (almost all) the predicted x0
    t = torch.full((3,), 999)
    x0, _ = lcm.x0_and_eps(x, out, t)
    torch.testing.assert_close(lcm.consistency(x, out, t), x0, atol=1e-5, rtol=1e-4)


def test_grid_is_lcmschedulers_and_the_ddim_step_matches_diffusers():
    from diffusers import DDIMScheduler, LCMScheduler

    lcm = ConsistencyObjective(SCHEDULE, num_ddim_timesteps=50)
    sched = LCMScheduler.from_config(SCHEDULE, original_inference_steps=50)
    sched.set_timesteps(50)
    assert lcm.skip == 20 and torch.equal(lcm.grid.flip(0), sched.timesteps.long())
    ddim = DDIMScheduler.from_config(SCHEDULE)
    ddim.set_timesteps(50)
    start, prev = lcm.sample_timesteps(64, torch.Generator().manual_seed(0))
    assert set(start.tolist()) <= set(lcm.grid.tolist()) and torch.equal(prev, (start - 20).clamp(min=0))
    x, out = torch.randn(64, 4, 8, 8, dtype=torch.float64), torch.randn(64, 4, 8, 8, dtype=torch.float64)
    ours = lcm.ddim_step(x.float(), out.float(), start, prev)
    for i in range(0, 64, 7):
        want = ddim.step(out[i : i + 1].float(), int(start[i]), x[i : i + 1].float()).prev_sample
        torch.testing.assert_close(ours[i : i + 1], want, atol=1e-5, rtol=1e-4)


def test_one_student_step_is_lcmschedulers_and_the_trained_consistency_output():
    """The sampler the student ships with (``sampler="lcm"``) at 1 step returns exactly what the loss trains:
    ``f(z_T, T)``, and equals diffusers' LCMScheduler's denoised output."""
    from diffusers import LCMScheduler

    from tta.sampling.schedulers import make_scheduler

    lcm = ConsistencyObjective(SCHEDULE)
    ours = make_scheduler("lcm", SCHEDULE)
    ref = LCMScheduler.from_config(SCHEDULE, original_inference_steps=50)
    for s in (ours, ref):
        s.set_timesteps(1)
    t = int(ours.timesteps[0])
    assert t == 999 and int(ref.timesteps[0]) == t
    x, out = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    got = ours.step(out, t, x).prev_sample
    torch.testing.assert_close(got, ref.step(out, t, x).prev_sample)
    torch.testing.assert_close(got, lcm.consistency(x, out, torch.full((2,), t)), atol=1e-6, rtol=1e-5)


def test_multistep_noise_is_a_function_of_each_latents_start():
    from tta.sampling.schedulers import make_scheduler

    def run(x):
        s = make_scheduler("lcm", SCHEDULE)
        s.set_timesteps(4)
        for t in s.timesteps:
            x = s.step(torch.zeros_like(x) + 0.1 * x, t, x).prev_sample
        return x

    a, b = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    both = run(torch.cat([a, b]))
    torch.testing.assert_close(both[1:], run(b))  # a latent regenerates alone
    torch.testing.assert_close(run(a), run(a.clone()))  # and repeats
    assert not torch.allclose(run(a), run(a + 1e-3))


def test_teacher_guidance_is_folded_as_the_pipeline_guides():
    from tta.models.unet import build_unet
    from tta.sampling.guidance import guided_denoiser

    torch.manual_seed(0)
    unet = build_unet(**TINY_UNET).eval()
    lcm = ConsistencyObjective(SCHEDULE, guidance_scale=3.0)
    x, cond, uncond = torch.randn(2, 4, 8, 8), torch.randn(2, 32), torch.randn(2, 32)
    t = torch.tensor([999, 999])
    with torch.no_grad():
        got = lcm.guided(unet, x, t, cond, uncond)
        want = guided_denoiser(unet, cond, uncond, 3.0)(x, t[0])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


class KilledAtStep3(DistillTrainer):
    """Asks to stop during its third step, as its SIGTERM handler does (the signal plumbing itself is tested in
    tests/training/test_trainer.py; a real signal here took down a pytest-xdist worker in the full suite)."""

    def run_step(self, batch):
        if self.step == 2:
            self.request_stop()
        return super().run_step(batch)


def test_distill_trains_the_adapter_only_and_resumes_exactly_after_a_kill(tmp_path, corpus, teacher):
    straight = distill_trainer(tmp_path / "a", corpus, teacher)
    straight.fit()
    killed = distill_trainer(tmp_path / "b", corpus, teacher)
    killed.__class__ = KilledAtStep3
    killed.fit()  # SIGTERM: it finishes the step, checkpoints step 3 and stops (no export)
    assert killed.step == 3 and not (tmp_path / "b" / "export").exists()
    second = distill_trainer(tmp_path / "b", corpus, teacher)
    second.fit()
    assert second.step == 4
    a, b = (t.model_state_dict(t.unwrapped_model) for t in (straight, second))
    assert a and all("lora_" in k for k in a)
    for name, p in a.items():
        torch.testing.assert_close(p, b[name], rtol=0, atol=0, msg=name)
    assert any(float(p.abs().max()) > 0 for k, p in a.items() if "lora_B" in k)  # it trained
    with straight.teacher() as unet:  # the teacher is untouched
        base = {k.removeprefix("base_model.model."): v for k, v in unet.state_dict().items() if "lora_" not in k}
    from diffusers import UNet2DConditionModel

    original = UNet2DConditionModel.from_pretrained(str(teacher / "unet")).state_dict()
    for k, v in original.items():
        got = base.get(k, base.get(k.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")))
        torch.testing.assert_close(got, v, rtol=0, atol=0, msg=k)
    assert (tmp_path / "a" / "export" / "adapter_model.safetensors").is_file()


def test_exported_student_merges_and_samples_through_the_core(tmp_path, corpus, teacher):
    import shutil

    from safetensors.torch import load_file

    from tta.distill import load_student
    from tta.distill.export import export_checkpoint
    from tta.distill.pipeline import StudentPipeline
    from tta.loading import model_hash

    config = {"components": str(teacher), "model": {"r": 4, "lora_alpha": 4}}  # what `tta train` records
    trainer = distill_trainer(tmp_path / "run", corpus, teacher, max_steps=2, run_config=config)
    trainer.fit()
    # a checkpoint exports the same student (EMA weights) as the end of the run
    again = export_checkpoint(tmp_path / "run" / "checkpoints" / "latest", tmp_path / "from_checkpoint")
    want = load_file(str(tmp_path / "run" / "export" / "adapter_model.safetensors"))
    got = load_file(str(again / "adapter_model.safetensors"))
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert "vocoder_refine" not in json.loads((again / "student.json").read_text())  # as the model says
    plain = export_checkpoint(tmp_path / "run" / "checkpoints" / "latest", tmp_path / "plain", vocoder_refine=False)
    assert json.loads((plain / "student.json").read_text())["vocoder_refine"] is False
    model = tmp_path / "model"
    shutil.copytree(teacher, model)
    before = model_hash(model)
    shutil.copytree(tmp_path / "run" / "export", model / "lcm")
    assert model_hash(model) == before  # the optional student leaves the teacher's hash (and sidecars) alone
    info = json.loads((model / "lcm" / "student.json").read_text())
    assert info["guidance_scale_folded"] == 3.0 and info["sampler"] == "lcm"

    # merged weights give what the adapter (EMA weights) gives
    from tta.training.ema import ema_weights

    x, cond, t = torch.randn(1, 4, 8, 8), torch.randn(1, 32), torch.tensor([500])
    with torch.no_grad(), ema_weights(trainer.ema, trainer.ema_module()):
        want = trainer.unwrapped_model(x, t, encoder_hidden_states=None, class_labels=cond).sample
    pipe = StudentPipeline.from_pretrained(model)
    with torch.no_grad():
        got = pipe.unet(x, t, encoder_hidden_states=None, class_labels=cond).sample
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    assert type(pipe.unet).__name__ == "UNet2DConditionModel"

    out = pipe("typing", audio_length_in_s=0.5, seed=0, progress=False)
    assert out.settings["sampler"] == "lcm" and out.settings["steps"] == 2 and out.settings["guidance"] == 1.0
    assert out.settings["vocoder_refine"] is False  # this teacher's HiFi-GAN has no refinement to run
    assert out.settings["student_hash"] and out.settings["model_hash"] == before
    again = pipe(["birds chirping", "typing"], audio_length_in_s=0.5, seed=[3, 0], progress=False)
    torch.testing.assert_close(torch.as_tensor(again.audios[1]), torch.as_tensor(out.audios[0]), atol=1e-4, rtol=0)
    edited = pipe.edit(out.audios[0], "birds chirping", pipe.sample_rate, strength=0.5, seed=0, progress=False)
    assert edited.settings["sampler"] == "lcm" and edited.audios.shape[-1] == out.audios.shape[-1]

    from tta.cli import main

    cli_out = tmp_path / "cli"
    assert main(["generate", "typing", "--model", str(model), "--student", "-o", str(cli_out), "--seed", "0",
                 "--duration", "0.5", "--no-progress"]) == 0  # fmt: skip
    meta = json.loads(next(cli_out.glob("*.json")).read_text())
    assert meta["sampler"] == "lcm" and meta["steps"] == 2 and meta["guidance"] == 1.0 and meta["student_hash"]

    info_file = model / "lcm" / "student.json"
    info_file.write_text(json.dumps({**info, "vocoder_refine": "yes"}))
    with pytest.raises(ModelLoadError, match="vocoder_refine must be true or false"):
        StudentPipeline.from_pretrained(model)
    info_file.write_text(json.dumps(info))

    other = tmp_path / "other"
    shutil.copytree(teacher, other)
    with torch.no_grad():
        next(iter(pipe.unet.parameters())).add_(1.0)
    pipe.unet.save_pretrained(str(other / "unet"))
    with pytest.raises(ModelLoadError, match="another UNet"):
        load_student(pipe.unet, model / "lcm", other / "unet")


def test_init_from_continues_an_exported_student(tmp_path, corpus, teacher):
    """A run started from an exported student folder begins at its adapter (online and EMA weights), so a
    student trains on past a session that lost its run folder; a student of another UNet is refused."""
    from safetensors.torch import load_file

    from tta.errors import InputError

    first = distill_trainer(tmp_path / "first", corpus, teacher, max_steps=2, vocoder_refine=False)
    first.fit()
    assert json.loads((tmp_path / "first" / "export" / "student.json").read_text())["vocoder_refine"] is False
    exported = load_file(str(tmp_path / "first" / "export" / "adapter_model.safetensors"))
    assert any(float(v.abs().max()) > 0 for k, v in exported.items() if "lora_B" in k)
    warm = distill_trainer(tmp_path / "warm", corpus, teacher, init_from=tmp_path / "first" / "export")
    warm.setup()
    state = warm.model_state_dict(warm.unwrapped_model)
    assert state.keys() == exported.keys()
    for name, value in exported.items():
        torch.testing.assert_close(state[name], value, rtol=0, atol=0, msg=name)
    trained = [p for p in warm.ema_module().parameters() if p.requires_grad]
    for shadow, p in zip(warm.ema.shadow_params, trained):
        torch.testing.assert_close(shadow, p.detach(), rtol=0, atol=0)

    info_file = tmp_path / "first" / "export" / "student.json"
    info = json.loads(info_file.read_text())
    info_file.write_text(json.dumps({**info, "teacher_unet_hash": "0" * 16}))
    with pytest.raises(InputError, match="another UNet"):
        distill_trainer(tmp_path / "bad", corpus, teacher, init_from=tmp_path / "first" / "export").setup()


def test_the_shipped_student_decodes_as_its_student_json_says():
    """checkpoints/lcm's ``vocoder_refine`` reaches the shipped ISTFT vocoder; a call's override wins."""
    from tta.distill import read_student
    from tta.distill.pipeline import StudentPipeline
    from tta.paths import default_model_dir

    info = read_student(default_model_dir() / "lcm")
    pipe = StudentPipeline.from_pretrained()
    assert pipe.vocoder_refine is info.get("vocoder_refine", True)
    off = StudentPipeline.from_pretrained(vocoder_refine=False)
    config = off.vocoder.config
    assert (config.refine_fit_iterations, config.refine_griffin_lim_iterations) == (0, 0)
    out = off("a cow mooing", audio_length_in_s=0.5, seed=0, progress=False)
    assert out.settings["vocoder_refine"] is False and out.settings["student_hash"]
    on = StudentPipeline.from_pretrained(vocoder_refine=True)
    assert on.vocoder_refine and on.vocoder.config.refine_fit_iterations > 0
