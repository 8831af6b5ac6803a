"""``evaluate`` end to end on small folders: every metric against a direct computation, the cache, pairing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.evaluation.conftest import PROMPTS, write_folder
from tta.audio.io import load_audio
from tta.errors import InputError
from tta.evaluation import evaluate, frechet_distance, inception_score, kl_divergence
from tta.evaluation.backends import ClipFeatures, EmbeddingBackend
from tta.evaluation.paired import paired_metrics
from tta.evaluation.scores import clap_cosines, clap_scores


def _run(gen, ref, backend, **kw):
    return evaluate(gen, ref, backend=backend, cache=False, progress=False, **kw)


def test_metrics_equal_direct_computation(folders, tiny_clap_backend):
    gen, ref = folders
    report = _run(gen, ref, tiny_clap_backend)
    m = report["metrics"]
    feats = {
        side: [tiny_clap_backend.features(load_audio(p)) for p in sorted(folder.glob("*.wav"))]
        for side, folder in (("gen", gen), ("ref", ref))
    }
    g_emb = np.concatenate([f.frames for f in feats["gen"]])
    r_emb = np.concatenate([f.frames for f in feats["ref"]])
    assert m["fad"] == pytest.approx(frechet_distance(g_emb, r_emb), rel=1e-9)
    g_log, r_log = np.stack([f.logits for f in feats["gen"]]), np.stack([f.logits for f in feats["ref"]])
    assert m["kl_softmax"] == pytest.approx(kl_divergence(g_log, r_log, "softmax"), rel=1e-9)
    assert m["kl_sigmoid"] == pytest.approx(kl_divergence(g_log, r_log, "sigmoid"), rel=1e-9)
    assert m["inception_score_splits"] == 1  # 6 clips: one split (at least 10 clips per split)
    assert m["inception_score"] == pytest.approx(inception_score(g_log, splits=1)[0], rel=1e-9)
    cos = clap_cosines(tiny_clap_backend.encode_text(PROMPTS), g_emb)
    assert m["clap_score"] == pytest.approx(clap_scores(cos)["clap_score"], rel=1e-6)
    assert m["clap_score_w2.5"] == pytest.approx(clap_scores(cos)["clap_score_w2.5"], rel=1e-6)
    pairs = [paired_metrics(load_audio(gen / f"clip_{i}.wav"), load_audio(ref / f"clip_{i}.wav")) for i in range(6)]
    assert m["lsd"] == pytest.approx(np.mean([p["lsd"] for p in pairs]), rel=1e-9)
    assert np.isfinite(m["fad_inf"])
    assert report["counts"] == {
        "generated": 6,
        "reference": 6,
        "generated_frames": 6,
        "reference_frames": 6,
        "paired": 6,
        "with_prompt": 6,
    }
    assert report["per_class_clap_score"][PROMPTS[0]] == pytest.approx(cos[0], rel=1e-6)
    assert report["settings"]["prompts"] == "sidecars"


def test_same_folder_scores_as_identical(folders, tiny_clap_backend):
    gen, _ = folders
    m = _run(gen, gen, tiny_clap_backend)["metrics"]
    assert abs(m["fad"]) < 1e-6 and abs(m["kl_softmax"]) < 1e-4
    assert m["mel_distance"] == 0.0 and m["lsd"] == 0.0 and m["psnr"] == float("inf")


def test_prompts_file_formats_and_labels(folders, tiny_clap_backend, tmp_path):
    gen, ref = folders
    rows = [
        {"file": f"clip_{i}.wav", "prompt": f"sound number {i}", "label": "odd" if i % 2 else "even"} for i in range(6)
    ]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    csv = tmp_path / "p.csv"
    csv.write_text("file,prompt,label\n" + "".join(f"{r['file']},{r['prompt']},{r['label']}\n" for r in rows))
    a, b = _run(gen, ref, tiny_clap_backend, prompts=jsonl), _run(gen, ref, tiny_clap_backend, prompts=csv)
    assert a["metrics"]["clap_score"] == pytest.approx(b["metrics"]["clap_score"], rel=1e-9)
    assert sorted(a["per_class_clap_score"]) == ["even", "odd"]
    assert a["metrics"]["clap_score"] != pytest.approx(_run(gen, ref, tiny_clap_backend)["metrics"]["clap_score"])
    jsonl.write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(InputError, match="no prompt for 5 clip"):
        _run(gen, ref, tiny_clap_backend, prompts=jsonl)


def test_cache_is_keyed_by_content(folders, tiny_clap_backend):
    gen, ref = folders
    first = evaluate(gen, ref, backend=tiny_clap_backend, progress=False)
    assert first["settings"]["cache"]["misses"] == 12 and first["settings"]["cache"]["hits"] == 0
    second = evaluate(gen, ref, backend=tiny_clap_backend, progress=False)
    assert second["settings"]["cache"] == {"enabled": True, "hits": 12, "misses": 0}
    assert second["metrics"] == first["metrics"]
    write_folder(gen, seed=9, n=1)  # clip_0 changes
    third = evaluate(gen, ref, backend=tiny_clap_backend, progress=False)
    assert third["settings"]["cache"]["misses"] == 1
    assert third["metrics"]["fad"] != first["metrics"]["fad"]


def test_pairing(folders, tiny_clap_backend, tmp_path):
    gen, _ = folders
    other = write_folder(tmp_path / "other", seed=3, n=4)
    for p in other.glob("*.wav"):
        p.rename(p.with_name("x" + p.name))
    report = _run(gen, other, tiny_clap_backend)
    assert report["counts"]["paired"] == 0 and "kl_softmax" not in report["metrics"]
    assert "lsd" not in report["metrics"] and "fad" in report["metrics"]
    with pytest.raises(InputError, match="--paired: 6 generated clip"):
        _run(gen, other, tiny_clap_backend, paired=True)


class MelStats(EmbeddingBackend):
    """A small non-CLAP backend without a classifier: per 0.5 s, the mean log-mel [64]."""

    name = "mel-stats"
    weights_hash = "none"

    def __init__(self):
        from tta.audio.mel import MelSpectrogram

        self.mel = MelSpectrogram()

    def features(self, wav):
        with torch.no_grad():
            mel = self.mel(torch.from_numpy(wav)).numpy()  # [T, 64]
        return ClipFeatures(mel[: len(mel) // 50 * 50].reshape(-1, 50, 64).mean(axis=1), None)


def test_non_clap_backend_uses_a_separate_clap_for_the_clap_score(folders, tiny_clap_backend):
    gen, ref = folders
    report = _run(gen, ref, MelStats(), clap=tiny_clap_backend)
    m = report["metrics"]
    assert report["counts"]["generated_frames"] == 12 and report["settings"]["backend"] == "mel-stats"
    assert "fad" in m and "inception_score" not in m and "kl_softmax" not in m
    assert any("no classifier" in note for note in report["notes"])
    clap_only = _run(gen, ref, tiny_clap_backend)["metrics"]
    assert m["clap_score"] == pytest.approx(clap_only["clap_score"], rel=1e-6)


def test_kad_per_clip_and_loudness_equal_direct_computation(folders, tiny_clap_backend):
    from tta.audio.loudness import measure_loudness, true_peak
    from tta.evaluation.kad import kernel_audio_distance, median_pairwise_distance, per_clip_kernel_distance

    gen, ref = folders
    report = _run(gen, ref, tiny_clap_backend, per_clip=True)
    paths = {side: sorted(folder.glob("*.wav")) for side, folder in (("gen", gen), ("ref", ref))}
    g = [tiny_clap_backend.features(load_audio(p)).frames for p in paths["gen"]]
    r_emb = np.concatenate([tiny_clap_backend.features(load_audio(p)).frames for p in paths["ref"]])
    g_emb = np.concatenate(g)
    assert report["metrics"]["kad"] == pytest.approx(kernel_audio_distance(g_emb, r_emb), rel=1e-9)
    h = median_pairwise_distance(g_emb)
    assert report["settings"]["kad_bandwidth"] == pytest.approx(h, rel=1e-12)
    expected = per_clip_kernel_distance(g, r_emb, h)
    wavs = np.stack([load_audio(p) for p in paths["gen"]])
    lufs, peaks = measure_loudness(wavs, 16000), true_peak(wavs)
    for row, score, lu, tp in zip(report["clips"], expected, lufs, peaks):
        assert row["kad_distance"] == pytest.approx(score, rel=1e-9)
        assert row["lufs"] == pytest.approx(lu, abs=1e-9) and row["true_peak"] == pytest.approx(tp, rel=1e-9)
        assert "clap_cosine" in row
    spread = report["loudness"]
    assert (spread["clips"], spread["silent"]) == (6, 0)
    assert spread["lufs_min"] == pytest.approx(lufs.min()) and spread["lufs_max"] == pytest.approx(lufs.max())
    with_ref = _run(gen, ref, tiny_clap_backend, kad_bandwidth="reference", loudness=False)
    assert with_ref["settings"]["kad_bandwidth"] == pytest.approx(median_pairwise_distance(r_emb), rel=1e-12)
    assert with_ref["loudness"] == {} and "lufs" not in with_ref["clips"][0]
    assert "kad_distance" not in with_ref["clips"][0]


def test_kad_over_frames_or_clip_means(folders, tiny_clap_backend):
    from tta.evaluation.kad import kernel_audio_distance, per_clip_kernel_distance

    gen, ref = folders
    backend = MelStats()  # 2 frames per 1 s clip
    feats = {
        side: [backend.features(load_audio(p)).frames for p in sorted(folder.glob("*.wav"))]
        for side, folder in (("gen", gen), ("ref", ref))
    }
    pooled = _run(gen, ref, backend, clap=tiny_clap_backend, loudness=False)
    means = _run(gen, ref, backend, clap=tiny_clap_backend, loudness=False, kad_pool="clips", per_clip=True)
    g_all, r_all = np.concatenate(feats["gen"]), np.concatenate(feats["ref"])
    g_mean, r_mean = (np.stack([f.mean(axis=0) for f in feats[s]]) for s in ("gen", "ref"))
    assert pooled["counts"]["generated_frames"] == 12 and pooled["settings"]["kad_pool"] == "frames"
    assert pooled["metrics"]["kad"] == pytest.approx(kernel_audio_distance(g_all, r_all), rel=1e-9)
    assert means["metrics"]["kad"] == pytest.approx(kernel_audio_distance(g_mean, r_mean), rel=1e-9)
    assert means["metrics"]["fad"] == pooled["metrics"]["fad"]  # FAD still pools the frames
    expected = per_clip_kernel_distance([m[None] for m in g_mean], r_mean, means["settings"]["kad_bandwidth"])
    assert [c["kad_distance"] for c in means["clips"]] == pytest.approx(expected, rel=1e-9)
    with pytest.raises(InputError, match="KAD pooling"):
        _run(gen, ref, backend, kad_pool="median")
