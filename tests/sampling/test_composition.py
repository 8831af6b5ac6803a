"""Composed prompts: the splitter, the prior's choice of sounds, the guidance formula, the pipeline and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tta.cli import main
from tta.demo.handlers import run_generate
from tta.errors import InputError
from tta.models.prior import RetrievalPrior
from tta.pipelines import TTAPipeline
from tta.sampling import guided_denoiser
from tta.sampling.composition import split_prompt
from tta.sampling.mixing import expand_sources, mix_sources, part_index


@pytest.mark.parametrize(
    "prompt, parts",
    [
        ("a dog barking in the rain", ["a dog barking", "the rain"]),
        ("footsteps crunching along while the wind blows", ["footsteps crunching along", "the wind blows"]),
        ("a horse neighing next to a crackling campfire", ["a horse neighing", "a crackling campfire"]),
        ("Thunder, rain  AND wind", ["Thunder", "rain", "wind"]),
        ("rain and and wind,", ["rain", "wind"]),
        ("the sound of rain", ["the sound of rain"]),  # no connective
        ("footsteps on gravel", ["footsteps on gravel"]),  # a surface, not a second sound
        ("waves crashing on the shore with seagulls", ["waves crashing on the shore", "seagulls"]),
        ("a cat meowing", ["a cat meowing"]),
        ("inside the wind tunnel", ["inside the wind tunnel"]),  # "in" only as a whole word
        ("and", ["and"]),  # nothing but a connective: the prompt itself
    ],
)
def test_split_prompt(prompt, parts):
    assert split_prompt(prompt) == parts


def _clusters(d=16, per=5, seed=0):
    """A bank of three tight clusters (three 'sounds') and their centres."""
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(3, d, generator=g), dim=-1)
    centres = F.normalize(torch.linalg.qr(centres.T).Q.T, dim=-1)  # orthogonal: cosine 0 between sounds
    bank = torch.cat([F.normalize(c + 0.05 * torch.randn(per, d, generator=g), dim=-1) for c in centres])
    return bank, centres


def test_sound_parts_takes_distinct_known_sounds():
    bank, c = _clusters()
    prior = RetrievalPrior(bank, top_k=5, temperature=0.0, max_sources=2)
    assert prior.sound_parts(torch.stack([c[0], c[2]])) == [0, 1]
    near_same = F.normalize(c[0] + 0.2 * c[1], dim=0)  # another wording of sound 0
    assert prior.sound_parts(torch.stack([c[0], near_same])) == []  # one sound, said twice
    unknown = F.normalize(torch.ones(16) - (torch.ones(16) @ c.T) @ c, dim=0)  # orthogonal to every sound
    assert prior.sound_parts(torch.stack([c[1], unknown])) == []  # "gravel" matches no recording
    assert prior.sound_parts(torch.stack([unknown, c[1], c[2]])) == [1, 2]  # prompt order kept


def test_sound_parts_limits_and_off_switch():
    bank, c = _clusters()
    three = torch.stack([c[0], c[1], c[2]])
    assert RetrievalPrior(bank, max_sources=3).sound_parts(three) == [0, 1, 2]
    two = RetrievalPrior(bank, max_sources=2)
    picked = two.sound_parts(three)
    assert len(picked) == 2 and picked == sorted(picked)
    assert RetrievalPrior(bank).sound_parts(three) == []  # max_sources 1 (the class default): off
    assert RetrievalPrior(bank, max_sources=2, min_match=0.999).sound_parts(three) == []  # no entry matches so well
    assert two.sound_parts(c[:1]) == []  # one part is one sound


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(max_sources=0), "max_sources"),
        (dict(max_sources=True), "max_sources"),
        (dict(min_match=2.0), "min_match"),
        (dict(max_cosine=float("nan")), "max_cosine"),
    ],
)
def test_bad_composition_settings(kwargs, match):
    with pytest.raises(InputError, match=match):
        RetrievalPrior(_clusters()[0], **kwargs)


def test_composition_settings_round_trip(tmp_path):
    prior = RetrievalPrior(_clusters()[0], max_sources=3, min_match=0.4, max_cosine=0.7)
    prior.save_pretrained(tmp_path / "p")
    back = RetrievalPrior.from_pretrained(tmp_path / "p")
    assert back.config == prior.config and back.max_sources == 3 and back.min_match == 0.4
    config = json.loads((tmp_path / "p" / "config.json").read_text())
    for key in ("max_sources", "min_match", "max_cosine"):
        config.pop(key)
    (tmp_path / "p" / "config.json").write_text(json.dumps(config))  # a prior written before composition
    assert RetrievalPrior.from_pretrained(tmp_path / "p").max_sources == 1


class _LinearUNet(torch.nn.Module):
    """eps = x * (1 + label . w): a stand-in whose output depends on each row's condition."""

    def __init__(self, d):
        super().__init__()
        self.w = torch.nn.Parameter(torch.linspace(-1, 1, d))

    def forward(self, x, t, encoder_hidden_states=None, class_labels=None):
        out = x * (1 + class_labels @ self.w).view(-1, 1, 1, 1)
        return type("Out", (), {"sample": out})()


def test_composed_guidance_is_the_mean_of_the_directions():
    d, g = 8, 4.0
    unet = _LinearUNet(d)
    x = torch.randn(2, 2, 3, 3)
    uncond = torch.randn(2, d)
    sources = [torch.randn(3, d), torch.randn(1, d)]
    eps = guided_denoiser(unet, sources, uncond, g)(x, torch.tensor(10))

    def one(i, label):
        return unet(x[i : i + 1], None, class_labels=label[None]).sample[0]

    for i, conds in enumerate(sources):
        eu = one(i, uncond[i])
        expected = eu + g * torch.stack([one(i, c) - eu for c in conds]).mean(0)
        torch.testing.assert_close(eps[i], expected)
    # no guidance row (scale 1, or a student's folded guidance): the mean of the sounds' rows, the formula at g = 1
    for unguided in (guided_denoiser(unet, sources, uncond, 1.0), guided_denoiser(unet, sources, None, g)):
        eps = unguided(x, torch.tensor(10))
        for i, conds in enumerate(sources):
            torch.testing.assert_close(eps[i], torch.stack([one(i, c) for c in conds]).mean(0))
    with pytest.raises(ValueError, match="one \\[J, D\\] tensor per latent"):
        guided_denoiser(unet, sources[:1], uncond, g)
    with pytest.raises(ValueError, match="non-empty"):
        guided_denoiser(unet, [sources[0], torch.zeros(0, d)], None, g)


def test_one_source_per_latent_is_bit_identical_to_plain_guidance(tiny_pipe):
    unet = tiny_pipe.unet
    d = unet.config.projection_class_embeddings_input_dim
    cond, uncond = torch.randn(3, d), torch.randn(3, d)
    x = torch.randn(3, unet.config.in_channels, 16, 16)
    t = torch.tensor(500)
    plain = guided_denoiser(unet, cond, uncond, 3.0)(x, t)
    composed = guided_denoiser(unet, list(cond[:, None]), uncond, 3.0)(x, t)
    assert torch.equal(plain, composed)


@pytest.fixture(scope="module")
def composing_pipe(tta_model_dir):
    """The tiny model with a prior whose bank holds its CLAP's own embeddings of two sounds (so each part maps
    onto itself) and that composes up to two."""
    pipe = TTAPipeline.from_pretrained(tta_model_dir)
    bank = pipe.clap.encode_text(["a dog barking", "the rain"])
    pipe.prior = RetrievalPrior(bank, top_k=1, max_sources=2, min_match=0.99, max_cosine=0.999)
    return pipe


KW = dict(audio_length_in_s=0.4, num_inference_steps=3, guidance_scale=3.0, progress=False)


def test_pipeline_composes_a_two_sound_prompt_beside_a_one_sound_one(composing_pipe):
    pipe = composing_pipe
    out = pipe(["a dog barking in the rain", "a dog barking"], seed=[1, 2], **KW)
    assert out.sources == [["a dog barking", "the rain"], ["a dog barking"]]
    whole = pipe(["a dog barking in the rain", "a dog barking"], seed=[1, 2], compose=False, **KW)
    assert whole.sources == [["a dog barking in the rain"], ["a dog barking"]]
    assert not np.allclose(out.audios[0], whole.audios[0], atol=1e-4)  # the composed prompt changed
    np.testing.assert_allclose(out.audios[1], whole.audios[1], atol=1e-5)  # its neighbour did not
    alone = pipe("a dog barking in the rain", seed=1, num_waveforms_per_prompt=2, **KW)
    assert alone.sources == [["a dog barking", "the rain"]] * 2


def test_compose_switches(composing_pipe, tiny_pipe):
    pipe = composing_pipe
    no_guidance = pipe("a dog barking in the rain", seed=1, **{**KW, "guidance_scale": 1.0})
    assert no_guidance.sources == [["a dog barking", "the rain"]]  # mixing needs no guidance
    guided = pipe("a dog barking in the rain", seed=1, compose_mode="guidance", **{**KW, "guidance_scale": 1.0})
    assert guided.sources == [["a dog barking in the rain"]]  # auto: composed guidance needs guidance
    with pytest.raises(InputError, match="needs guidance"):
        pipe("a dog barking in the rain", compose=True, compose_mode="guidance", **{**KW, "guidance_scale": 1.0})
    with pytest.raises(InputError, match="compose_mode must be one of mix, guidance"):
        pipe("rain", compose_mode="sum", **KW)
    for bad in (float("nan"), 30.0, "-6", True):
        with pytest.raises(InputError, match="mix_gain_db"):
            pipe("rain", mix_gain_db=bad, **KW)
    with pytest.raises(InputError, match="no retrieval prior"):
        tiny_pipe("a dog barking in the rain", compose=True, **KW)
    with pytest.raises(InputError, match="True, False or None"):
        pipe("rain", compose="yes", **KW)
    assert tiny_pipe("a dog barking in the rain", seed=0, **KW).sources == [["a dog barking in the rain"]]


def test_folded_guidance_composes_without_a_guidance_row(composing_pipe):
    """A student (its rows guided already) composes with ``compose_mode="guidance"`` at scale 1: each step
    averages the sounds' rows, which is composed guidance at the folded scale."""
    import copy

    from tta.distill.pipeline import StudentPipeline

    assert StudentPipeline.folded_guidance and not TTAPipeline.folded_guidance
    pipe = copy.copy(composing_pipe)
    pipe.folded_guidance = True
    kw = {**KW, "guidance_scale": 1.0, "compose_mode": "guidance"}
    out = pipe("a dog barking in the rain", seed=1, **kw)
    assert out.sources == [["a dog barking", "the rain"]]
    whole = pipe("a dog barking in the rain", seed=1, compose=False, **kw)
    assert not np.allclose(out.audios[0], whole.audios[0], atol=1e-4)
    explicit = pipe("a dog barking in the rain", seed=1, compose=True, **kw)
    np.testing.assert_array_equal(explicit.audios, out.audios)


def test_edit_composes_too(composing_pipe):
    wav = np.sin(np.linspace(0, 300, 6400)).astype(np.float32)
    kw = {k: v for k, v in KW.items() if k != "audio_length_in_s"}
    out = composing_pipe.edit(wav, "a dog barking in the rain", sample_rate=16000, strength=0.5, seed=3, **kw)
    assert out.sources == [["a dog barking", "the rain"]]


def test_cli_records_the_sounds_and_honours_no_compose(composing_pipe, tmp_path):
    model = tmp_path / "model"
    composing_pipe.save_pretrained(model)
    base = ["generate", "--model", str(model), "--steps", "2", "--duration", "0.3", "--guidance", "3", "--no-progress"]
    assert main([*base, "a dog barking in the rain", "-o", str(tmp_path / "a.wav"), "--seed", "4"]) == 0
    meta = json.loads((tmp_path / "a.json").read_text())
    assert meta["sources"] == ["a dog barking", "the rain"] and meta["compose"] is True  # what ran
    assert (
        main([*base, "a dog barking in the rain", "-o", str(tmp_path / "b.wav"), "--seed", "4", "--no-compose"]) == 0
    )
    meta_b = json.loads((tmp_path / "b.json").read_text())
    assert meta_b["sources"] == ["a dog barking in the rain"] and meta_b["compose"] is False
    assert (tmp_path / "a.wav").read_bytes() != (tmp_path / "b.wav").read_bytes()
    for name in ("a", "b"):
        regen = tmp_path / f"{name}_again.wav"
        assert (
            main(["generate", "--from-sidecar", str(tmp_path / f"{name}.json"), "-o", str(regen), "--no-progress"])
            == 0
        )
        assert regen.read_bytes() == (tmp_path / f"{name}.wav").read_bytes()
    assert meta["compose_mode"] == "mix" and meta["mix_gain_db"] == -9.0
    guided = [*base, "a dog barking in the rain", "-o", str(tmp_path / "g.wav"), "--seed", "4"]
    assert main([*guided, "--compose-mode", "guidance"]) == 0
    assert (tmp_path / "g.wav").read_bytes() != (tmp_path / "a.wav").read_bytes()
    # a sidecar written before mixing existed (no compose_mode) regenerates with composed guidance
    old = json.loads((tmp_path / "g.json").read_text())
    del old["compose_mode"], old["mix_gain_db"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    regen = tmp_path / "old_again.wav"
    assert main(["generate", "--from-sidecar", str(tmp_path / "old.json"), "-o", str(regen), "--no-progress"]) == 0
    assert regen.read_bytes() == (tmp_path / "g.wav").read_bytes()


def test_demo_shows_the_sounds(composing_pipe):
    result = run_generate(composing_pipe, "a dog barking in the rain", duration=0.3, steps=2, guidance=3.0, seed=1)
    assert result.settings["sources"] == ["a dog barking", "the rain"] and result.settings["compose"] is True
    single = run_generate(composing_pipe, "a dog barking", duration=0.3, steps=2, seed=1).settings
    assert single["sources"] == ["a dog barking"]


# ---------------------------------------------------------------- mixing: each sound sampled alone, then summed


def test_mix_sources_levels():
    g = torch.Generator().manual_seed(0)
    audio = torch.randn(5, 800, generator=g) * torch.tensor([[0.5], [2.0], [0.1], [1.0], [3.0]])
    owner = torch.tensor([0, 0, 1, 2, 2])
    out = mix_sources(audio, owner, gain_db=-6.0)
    assert out.shape == (3, 800)
    rms = audio.pow(2).mean(-1).sqrt()
    second = audio[1] * (rms[0] * 10 ** (-6 / 20) / rms[1])
    torch.testing.assert_close(out[0], audio[0] + second)
    assert float(second.pow(2).mean().sqrt()) == pytest.approx(float(rms[0]) * 10 ** (-6 / 20), rel=1e-5)
    assert torch.equal(out[1], audio[2])  # one sound: bit for bit
    torch.testing.assert_close(out[2], audio[3] + audio[4] * (rms[3] * 10 ** (-6 / 20) / rms[4]))
    zero_db = mix_sources(audio[:2], owner[:2], gain_db=0.0)
    torch.testing.assert_close(zero_db[0], audio[0] + audio[1] * rms[0] / rms[1])


def test_mix_sources_silent_parts():
    tone = torch.sin(torch.linspace(0, 100, 400))[None]
    silent = torch.zeros(1, 400)
    owner = torch.tensor([0, 0])
    torch.testing.assert_close(mix_sources(torch.cat([tone, silent]), owner, -6.0)[0], tone[0])  # nothing added
    # a silent first sound: the other sound sets the level, so it is not scaled to nothing
    torch.testing.assert_close(mix_sources(torch.cat([silent, tone]), owner, -6.0)[0], tone[0] * 10 ** (-6 / 20))


def test_expand_sources_and_part_index():
    a, b, c = torch.eye(3).unbind(0)
    cond, uncond, owner = expand_sources([torch.stack([a, b]), c[None], torch.stack([c, a])], torch.zeros(3, 3) - 1)
    assert owner.tolist() == [0, 0, 1, 2, 2]
    assert part_index(owner).tolist() == [0, 1, 0, 0, 1]
    torch.testing.assert_close(cond, torch.stack([a, b, c, c, a]))
    assert uncond.shape == (5, 3)
    assert expand_sources([a[None]], None)[1] is None
    with pytest.raises(ValueError):
        expand_sources([torch.zeros(0, 3)], None)


def test_mixed_prompt_is_the_mix_of_its_sounds_generated_alone(composing_pipe):
    """A mixed two-sound prompt equals its two sounds generated as one-sound prompts (the first from the seed's
    noise, the second from the seed's next draw) and mixed by mix_sources; its neighbour in the batch is
    unchanged."""
    pipe = composing_pipe
    kw = {**KW, "peak_limit": None}
    out = pipe(["a dog barking in the rain", "a dog barking"], seed=[5, 6], mix_gain_db=-3.0, **kw)
    assert out.sources == [["a dog barking", "the rain"], ["a dog barking"]]
    layout = pipe.layout(KW["audio_length_in_s"])
    g = torch.Generator().manual_seed(5)
    first, second = (torch.randn((1, *layout.latent_shape), generator=g) for _ in range(2))
    parts = pipe(["a dog barking", "the rain"], latents=torch.cat([first, second]), compose=False, **kw)
    expected = mix_sources(torch.from_numpy(parts.audios), torch.tensor([0, 0]), gain_db=-3.0)[0]
    np.testing.assert_allclose(out.audios[0], expected.numpy(), atol=1e-5)
    alone = pipe("a dog barking", seed=6, **kw)
    np.testing.assert_allclose(out.audios[1], alone.audios[0], atol=1e-5)
    guided = pipe("a dog barking in the rain", seed=5, compose_mode="guidance", **kw)
    assert guided.sources == [["a dog barking", "the rain"]]
    assert not np.allclose(guided.audios[0], out.audios[0], atol=1e-4)


def test_mixed_prompts_with_generators_and_latents_are_reproducible(composing_pipe):
    pipe = composing_pipe
    prompts = ["a dog barking in the rain", "the rain"]
    a = pipe(prompts, generator=torch.Generator().manual_seed(3), **KW)
    b = pipe(prompts, generator=torch.Generator().manual_seed(3), **KW)
    np.testing.assert_array_equal(a.audios, b.audios)
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    c = pipe(prompts, generator=gens, **KW)
    assert c.audios.shape == a.audios.shape
    noise = torch.randn((2, *pipe.layout(KW["audio_length_in_s"]).latent_shape), generator=torch.Generator())
    d, e = pipe(prompts, latents=noise, **KW), pipe(prompts, latents=noise, **KW)
    np.testing.assert_array_equal(d.audios, e.audios)
    reranked = pipe("a dog barking in the rain", seed=2, num_candidates=2, **KW)
    assert reranked.audios.shape[0] == 1 and reranked.clap_scores.shape == (1,)
