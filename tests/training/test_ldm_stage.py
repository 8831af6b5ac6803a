"""The latent diffusion stage on a tiny corpus and tiny frozen parts: the objective against its formulas, the
conditioning mix, the latent cache, exact resume, an export that the pipeline loads, and configuration errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import CLAP_DIM
from tta.errors import InputError
from tta.training.ema import ema_weights
from tta.training.latent_cache import LatentCache
from tta.training.ldm import LdmTrainer
from tta.training.ldm_eval import prompt_class

TINY_UNET = dict(
    in_channels=4,
    out_channels=4,
    block_out_channels=[16, 32],
    layers_per_block=1,
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"],
    cross_attention_dim=[16, 32],
    attention_head_dim=[2, 4],
    norm_num_groups=8,
    projection_class_embeddings_input_dim=CLAP_DIM,
)


def ldm_trainer(run_dir, corpus, components, **kw) -> LdmTrainer:
    base = dict(
        model=TINY_UNET,
        components=components,
        run_dir=run_dir,
        corpus=corpus,
        batch_size=2,
        clip_seconds=0.32,
        max_steps=4,
        checkpoint_every=2,
        eval_every=0,
        eval_items=2,
        eval_seconds=1.0,
        eval_prompts=["typing", "birds chirping in a tree", "typing while birds chirping"],
        eval_steps=2,
        eval_seconds_generated=0.5,
        progress=False,
        num_threads=1,
        ema_decay=0.9,
        lr=1e-3,
    )
    base.update(kw)
    return LdmTrainer(**base)


def test_objective_matches_its_formulas(tmp_path, corpus, components):
    """v = sqrt(a) eps - sqrt(1 - a) z0 with AudioLDM's betas; min-SNR weights min(snr, g) / (snr + 1) for v and
    min(snr, g) / snr for eps (Hang et al. 2023), computed here from the betas, not from diffusers."""
    betas = torch.linspace(0.0015**0.5, 0.0195**0.5, 1000, dtype=torch.float64) ** 2
    abar = torch.cumprod(1 - betas, 0)
    t = torch.tensor([0, 10, 300, 999])
    z0, eps = torch.randn(4, 4, 8, 8), torch.randn(4, 4, 8, 8)
    a = abar[t].float()[:, None, None, None]
    snr = abar[t] / (1 - abar[t])
    for kind, want_target, denom in (
        ("v_prediction", a.sqrt() * eps - (1 - a).sqrt() * z0, snr + 1),
        ("epsilon", eps, snr),
    ):
        objective = ldm_trainer(tmp_path / kind, corpus, components, prediction_type=kind, min_snr_gamma=5.0).objective
        torch.testing.assert_close(objective.target(z0, eps, t), want_target, rtol=1e-5, atol=1e-5)
        want_w = torch.clamp(snr, max=5.0) / denom
        torch.testing.assert_close(objective.weights(t).double(), want_w, rtol=1e-5, atol=1e-6)
    plain = ldm_trainer(tmp_path / "plain", corpus, components, min_snr_gamma=None).objective
    assert torch.equal(plain.weights(t), torch.ones(4))


def test_conditions_mix_audio_text_and_the_empty_text(tmp_path, corpus, components):
    captions = ["a typing sound", "birds chirping"]
    audio_emb = torch.nn.functional.normalize(torch.randn(2, CLAP_DIM), dim=-1)
    expect = {}
    for drop, text in ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)):
        trainer = ldm_trainer(tmp_path / f"{drop}{text}", corpus, components, cond_drop_prob=drop, text_cond_prob=text)
        trainer.build_frozen()
        expect[(drop, text)] = trainer.conditioner(audio_emb, captions)
        clap = trainer.clap
    torch.testing.assert_close(expect[(0.0, 0.0)], audio_emb)
    torch.testing.assert_close(expect[(1.0, 0.0)], clap.encode_text([""]).expand(2, -1))
    torch.testing.assert_close(expect[(0.0, 1.0)], clap.encode_text(captions))
    with pytest.raises(InputError, match="cond_drop_prob"):
        ldm_trainer(tmp_path / "bad", corpus, components, cond_drop_prob=1.5)
    with pytest.raises(InputError, match="prediction_type"):
        ldm_trainer(tmp_path / "bad", corpus, components, prediction_type="sample")


def test_trains_evaluates_and_exports_a_pipeline_folder(tmp_path, corpus, components):
    from tta.pipelines import TTAPipeline

    trainer = ldm_trainer(
        tmp_path / "run",
        corpus,
        components,
        export_dir=tmp_path / "model",
        latent_cache_slots=1,
        sampling_defaults={"guidance_scale": 4.0},
    )
    metrics = trainer.fit()
    assert np.isfinite(metrics["val_mse"])
    assert {f"cond_gain_t{t}" for t in trainer.eval_timesteps} <= set(metrics)
    pipe = TTAPipeline.from_pretrained(tmp_path / "model")
    assert pipe.scheduler_config["prediction_type"] == "v_prediction"
    assert pipe.sampling_defaults == {"guidance_scale": 4.0} and pipe.default_guidance == 4.0
    for sub in ("unet", "vae", "vocoder"):  # no path of the machine it was trained on
        assert "_name_or_path" not in (tmp_path / "model" / sub / "config.json").read_text()
    with ema_weights(trainer.ema, trainer.ema_module()) as ema:  # export holds the EMA weights
        for name, p in pipe.unet.state_dict().items():
            torch.testing.assert_close(p, ema.state_dict()[name])
    out = pipe("typing", audio_length_in_s=0.5, num_inference_steps=2, seed=0, progress=False)
    assert out.audios.shape == (1, 8000) and np.isfinite(out.audios).all()

    # gen_top1 worked out again: the exported model (the EMA weights the evaluation ran on) generates the eval
    # prompts; the CLAP ranks "the sound of {class}" for the two corpus classes; the third prompt names both
    from tta.data.captions import class_prompt
    from tta.evaluation.clap_zero_shot import embed_clips

    again = pipe(
        trainer.eval_prompts, audio_length_in_s=0.5, num_inference_steps=2, guidance_scale=3.0, seed=0, progress=False
    ).audios
    classes = ["birds chirping", "typing"]
    text = torch.nn.functional.normalize(pipe.clap.encode_text([class_prompt(c) for c in classes]), dim=-1)
    best = (embed_clips(pipe.clap, [torch.as_tensor(a) for a in again[:2]]) @ text.T).argmax(dim=1).tolist()
    wanted = ["typing", "birds chirping"]
    assert metrics["gen_top1"] == sum(classes[b] == w for b, w in zip(best, wanted)) / 2


def test_prompt_class_hits_score_generations_by_the_clap_ranking():
    """A stand-in CLAP that hears loud audio as typing and quiet audio as birds: the hits are known."""
    from tta.training.ldm_eval import prompt_class_hits

    class TwoClassClap:
        sample_rate = 16000

        def encode_text(self, texts):
            return torch.tensor([[1.0, 0.0] if "typing" in t else [0.0, 1.0] for t in texts])

        def encode_audio(self, wav):
            return torch.stack(
                [torch.tensor([1.0, 0.1]) if w.abs().max() > 0.5 else torch.tensor([0.1, 1.0]) for w in wav]
            )

    prompts = ["typing", "birds chirping in a tree", "typing while birds chirping", "a cow"]
    classes = ["birds chirping", "typing"]
    loud, quiet = torch.ones(8000) * 0.9, torch.ones(8000) * 0.1
    clap = TwoClassClap()
    assert prompt_class_hits(clap, torch.stack([loud, quiet, loud, loud]), prompts, classes) == [True, True]
    assert prompt_class_hits(clap, torch.stack([quiet, quiet, loud, quiet]), prompts, classes) == [False, True]
    assert prompt_class_hits(clap, torch.stack([quiet, loud]), prompts[:2], classes) == [False, False]
    assert prompt_class_hits(clap, torch.stack([loud]), ["a cow"], classes) == []


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, corpus, components):
    straight = ldm_trainer(tmp_path / "a", corpus, components, latent_cache_slots=2, text_cond_prob=0.5)
    straight.fit()
    first = ldm_trainer(tmp_path / "b", corpus, components, latent_cache_slots=2, text_cond_prob=0.5, max_steps=2)
    first.fit()
    second = ldm_trainer(tmp_path / "b", corpus, components, latent_cache_slots=2, text_cond_prob=0.5)
    second.fit()
    assert second.step == 4
    for (name, p), q in zip(
        straight.unwrapped_model.state_dict().items(), second.unwrapped_model.state_dict().values()
    ):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)


def test_condition_scale_speeds_up_the_clap_projection_and_resumes_a_one_group_run(tmp_path, corpus, components):
    base = ldm_trainer(tmp_path / "fresh1", corpus, components)
    base.setup()
    scaled = ldm_trainer(tmp_path / "fresh4", corpus, components, condition_scale=4.0)
    scaled.setup()  # same seed: the same initial weights, the projection 4x
    w1, w4 = (t.unwrapped_model.class_embedding.weight for t in (base, scaled))
    torch.testing.assert_close(w4, 4 * w1)
    lrs = [g["initial_lr"] for g in scaled.optimizer.param_groups]
    assert lrs == [pytest.approx(1e-3), pytest.approx(4e-3)] and len(scaled.optimizer.param_groups[1]["params"]) == 1

    # a run trained with one group resumes with the projection in its own group: Adam's moments follow the names
    first = ldm_trainer(tmp_path / "run", corpus, components, max_steps=2)
    first.fit()
    moments = {n: first.optimizer.state[p]["exp_avg"].clone() for n, p in first.unwrapped_model.named_parameters()}
    lr_before = first.optimizer.param_groups[0]["lr"]
    resumed = ldm_trainer(tmp_path / "run", corpus, components, condition_scale=4.0)
    resumed.setup()
    assert resumed.step == 2
    groups = resumed.optimizer.param_groups
    assert groups[0]["lr"] == pytest.approx(lr_before) and groups[1]["lr"] == pytest.approx(4 * lr_before)
    assert resumed.scheduler.scheduler.base_lrs == [pytest.approx(1e-3), pytest.approx(4e-3)]
    for n, p in resumed.unwrapped_model.named_parameters():
        torch.testing.assert_close(resumed.optimizer.state[p]["exp_avg"], moments[n], msg=n)
    again = ldm_trainer(tmp_path / "run", corpus, components, condition_scale=4.0)
    again.fit()  # and trains on, saving and reloading the two-group layout
    assert again.step == 4 and len(again.optimizer.param_groups) == 2
    last = ldm_trainer(tmp_path / "run", corpus, components, condition_scale=4.0, max_steps=5)
    last.fit()
    assert last.step == 5
    with pytest.raises(InputError, match="condition_scale"):
        ldm_trainer(tmp_path / "bad", corpus, components, condition_scale=0)


def test_latent_cache_is_reused_rebuilt_when_stale_and_cycles(tmp_path, corpus, components, capsys):
    trainer = ldm_trainer(tmp_path / "run", corpus, components, latent_cache_slots=2)
    data = trainer.build_train_data()
    assert isinstance(data, LatentCache)
    data.set_epoch(0)
    first = data[3]
    assert first["latents"].shape == (4, 16, 32) and first["audio_emb"].shape == (CLAP_DIM,)
    # item 3 of slot 0 is what encoding the corpus item 3 of epoch 0 gives (the same gains: one generator per slot)
    source = data.source
    source.set_epoch(0)
    g = torch.Generator().manual_seed(1_000_003)
    fresh = trainer.encode_items([source[i] for i in range(2)], g)
    fresh = trainer.encode_items([source[i] for i in range(2, 4)], g)
    torch.testing.assert_close(first["latents"], fresh["latents"][1].half().float())

    def refuse(*_):
        raise AssertionError("the cache should have been read, not rebuilt")

    again = LatentCache(source, refuse, data.folder, 2, data.fingerprint, batch_size=2, progress=False)
    again.set_epoch(2)  # epoch 2 reads slot 0
    torch.testing.assert_close(again[3]["latents"], first["latents"])
    assert again[3]["caption"] == first["caption"]

    calls = []

    def encode(items, g):
        calls.append(len(items))
        return trainer.encode_items(items, g)

    stale = LatentCache(source, encode, data.folder, 2, data.fingerprint + "x", batch_size=2, progress=False)
    stale.set_epoch(0)
    assert calls and "other settings or weights" in capsys.readouterr().out
    data.path(1).write_bytes(b"not a safetensors file")
    calls.clear()
    broken = LatentCache(source, encode, data.folder, 2, stale.fingerprint, batch_size=2, progress=False)
    broken.set_epoch(1)
    assert calls and "unreadable" in capsys.readouterr().out


def test_mismatched_parts_are_clear_errors(tmp_path, corpus, components):
    with pytest.raises(InputError, match="latent channels"):
        ldm_trainer(tmp_path / "a", corpus, components, model={**TINY_UNET, "in_channels": 8}).build_model()
    with pytest.raises(InputError, match="512-d|32-d"):
        ldm_trainer(
            tmp_path / "b", corpus, components, model={**TINY_UNET, "projection_class_embeddings_input_dim": 512}
        ).build_model()
    with pytest.raises(InputError, match="mel frames"):
        ldm_trainer(tmp_path / "c", corpus, components, clip_seconds=0.02).build_frozen()


def test_prompt_class_needs_exactly_one_whole_word_class():
    classes = ["rain", "train", "dog barking", "footsteps"]
    assert prompt_class("rain falling on a roof", classes) == "rain"
    assert prompt_class("a train passing", classes) == "train"
    assert prompt_class("a dog barking in the rain", classes) is None  # two sources
    assert prompt_class("a cat", classes) is None


def test_condition_gain_is_zero_exactly_when_the_unet_ignores_its_condition(tmp_path, corpus, components):
    trainer = ldm_trainer(tmp_path / "run", corpus, components, eval_prompts=[], eval_timesteps=[100, 900])
    trainer.setup()
    gains = [v for k, v in trainer.evaluate().items() if k.startswith("cond_gain_t")]
    assert len(gains) == 2 and any(abs(g) > 1e-6 for g in gains)
    with torch.no_grad():  # the class embedding is the only path of the condition into the UNet
        for p in trainer.unwrapped_model.class_embedding.parameters():
            p.zero_()
    assert all(v == 0.0 for k, v in trainer.evaluate().items() if k.startswith("cond_gain_t"))


@pytest.fixture
def corpus_index(tmp_path, corpus, components):
    """A retrieval index of the tiny corpus, embedded with the components' CLAP and VAE."""
    from tta.loading import clap_fingerprint, load_vae, load_vocoder
    from tta.models.clap import load_clap
    from tta.models.unet import build_unet
    from tta.pipelines import TTAPipeline
    from tta.retrieval.build import build_index
    from tta.retrieval.sources import manifest_entries
    from tta.sampling.schedulers import AUDIOLDM_SCHEDULER

    clap = load_clap(components / "clap")
    pipe = TTAPipeline(
        build_unet(**TINY_UNET), load_vae(components), load_vocoder(components), clap, AUDIOLDM_SCHEDULER
    )
    index, _ = build_index(manifest_entries(corpus, None), pipe, clap_fingerprint(components / "clap"), progress=False)
    return index.save(tmp_path / "index")


def test_retrieval_neighbours_skip_the_crops_own_recordings_and_follow_the_drops(
    tmp_path, corpus, components, corpus_index
):
    from tta.retrieval import RetrievalIndex

    index = RetrievalIndex.load(corpus_index)
    drops = dict(retrieval_drop_prob=0.0, retrieval_only_prob=0.0)
    trainer = ldm_trainer(tmp_path / "run", corpus, components, retrieval=corpus_index, retrieval_top_k=2, **drops)
    trainer.build_frozen()
    conditioner = trainer.conditioner
    d = CLAP_DIM
    feat = trainer.index.latent.shape[1] + d + 2
    cond = torch.randn(3, d)
    rows = conditioner.neighbours(
        cond, ["a tone sound"] * 3, ["tone1", "tone3+tone5", "clicks0"], torch.zeros(3, dtype=bool)
    )
    assert rows.shape == (3, d + 2 * feat)
    torch.testing.assert_close(rows[:, :d], cond)
    ids = [e["id"] for e in index.entries]

    def neighbour_ids(row):
        out = []
        for j in range(2):
            audio = row[d + j * feat : d + j * feat + d]
            out.append(ids[int((index.audio @ audio).argmax())])
        return out

    tones = {i for i in ids if i.startswith("tone")}
    first, second, third = (neighbour_ids(r) for r in rows)
    assert "tone1" not in first and set(first) <= tones  # found by caption, never the crop's own recording
    assert not {"tone3", "tone5"} & set(second) and set(second) <= tones
    assert set(third) <= tones  # the caption decides, not the crop's class
    dropped = conditioner.neighbours(cond, ["a tone sound"] * 3, ["tone1"] * 3, torch.tensor([True, False, False]))
    assert not dropped[0, d:].any() and dropped[1, d:].any()  # dropped for guidance: no neighbours either
    conditioner.retrieval_only_prob = 1.0
    only = conditioner.neighbours(cond, ["a tone sound"] * 3, ["tone1"] * 3, torch.zeros(3, dtype=bool))
    torch.testing.assert_close(only[:, :d], conditioner.null_embedding("cpu").expand(3, -1))  # neighbours alone
    assert only[:, d:].any(dim=1).all()


def test_retrieval_training_warm_starts_a_plain_model_and_exports_a_retrieval_one(
    tmp_path, corpus, components, corpus_index
):
    from tta.pipelines import TTAPipeline

    plain = ldm_trainer(tmp_path / "plain", corpus, components, export_dir=tmp_path / "plain_model", max_steps=2)
    plain.fit()
    trainer = ldm_trainer(
        tmp_path / "run",
        corpus,
        components,
        retrieval=corpus_index,
        retrieval_top_k=2,
        retrieval_token_dim=24,
        init_from=tmp_path / "plain_model",
        export_dir=tmp_path / "model",
        latent_cache_slots=1,
    )
    metrics = trainer.fit()
    assert np.isfinite(metrics["val_mse"])
    pipe = TTAPipeline.from_pretrained(tmp_path / "model")
    assert pipe.is_retrieval_model and pipe.unet.config.cross_attention_dim == 24 and pipe.unet.top_k == 2
    plain_unet = TTAPipeline.from_pretrained(tmp_path / "plain_model").unet
    moved = pipe.unet.unet.state_dict()
    same = [n for n, p in plain_unet.state_dict().items() if ".attn2." not in n and torch.equal(moved[n], p)]
    assert len(same) < len(moved) // 2  # it trained from the plain weights (lr 1e-3 moves nearly all)
    out = pipe(
        "a tone sound", audio_length_in_s=0.5, num_inference_steps=2, seed=0, progress=False, retrieval=corpus_index
    )
    assert out.audios.shape == (1, 8000) and out.retrieved[0][0]["clips"]
    with pytest.raises(InputError, match="retrieval_top_k"):
        ldm_trainer(tmp_path / "bad", corpus, components, retrieval=corpus_index, retrieval_top_k=0)
    with pytest.raises(InputError, match="retrieval_drop_prob"):
        ldm_trainer(tmp_path / "bad", corpus, components, retrieval=corpus_index, retrieval_drop_prob=2.0)
