"""The CLAP stage: trains :class:`~tta.models.clap.minilm_mel.MiniLMMelClap` with a symmetric contrastive loss.

Batches come from ``tta.data.dataset.CorpusDataset`` (5 s crops, on-the-fly two-source mixtures whose
class pairs exclude ``tta.data.splits.HELD_OUT_PAIRS``). The loss is CLIP's symmetric cross-entropy over
the caption x audio similarity matrix, with soft targets: in a class-labelled corpus many items of a batch
share a class, so caption i's target over the audios is proportional to the label overlap (Jaccard) of
their label sets instead of the identity matrix. SpecAugment-style time/frequency masks are applied to
the log-mels during training.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from tta.training.corpus_stage import CorpusTrainer


def label_targets(labels: list[list[str]], mode: str = "jaccard") -> torch.Tensor:
    """[B, B] row-stochastic targets: ``identity`` (CLIP), ``exact`` (same label set) or ``jaccard`` overlap."""
    n = len(labels)
    if mode == "identity":
        return torch.eye(n)
    sets = [frozenset(lab) for lab in labels]
    t = torch.zeros(n, n)
    for i in range(n):
        for j in range(n):
            if mode == "exact":
                t[i, j] = float(sets[i] == sets[j])
            else:
                union = len(sets[i] | sets[j])
                t[i, j] = len(sets[i] & sets[j]) / union if union else float(i == j)
    t.fill_diagonal_(1.0)
    return t / t.sum(1, keepdim=True)


def contrastive_loss(
    text_emb: torch.Tensor, audio_emb: torch.Tensor, logit_scale: torch.Tensor, targets: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric cross-entropy over cosine similarities.

    Args:
        text_emb, audio_emb: [B, D] (normalised here).
        logit_scale: scalar, log of the inverse temperature (clamped to at most log 100).
        targets: [B, B] row-stochastic text->audio targets (symmetric); identity when None.
    """
    t, a = F.normalize(text_emb, dim=-1), F.normalize(audio_emb, dim=-1)
    logits = logit_scale.clamp(max=4.6052).exp() * t @ a.T  # [B text, B audio]
    if targets is None:
        targets = torch.eye(len(t), device=t.device)
    targets = targets.to(logits.device)
    tgt_t = targets.T / targets.T.sum(1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, tgt_t))


def spec_augment(
    mel: torch.Tensor, time_masks: int = 2, time_width: int = 40, freq_masks: int = 2, freq_width: int = 8
) -> torch.Tensor:
    """Log-mel [B, T, F] -> same with random time and frequency bands set to the clip's minimum."""
    b, t, f = mel.shape
    fill = mel.amin(dim=(1, 2), keepdim=True)
    out = mel.clone()
    for n, width, size, axis in ((time_masks, time_width, t, 1), (freq_masks, freq_width, f, 2)):
        for _ in range(n):
            w = torch.randint(0, width + 1, (b,))
            start = (torch.rand(b) * (size - w).clamp(min=1)).long()
            pos = torch.arange(size)
            mask = (pos[None] >= start[:, None]) & (pos[None] < (start + w)[:, None])  # [B, size]
            mask = mask[:, :, None] if axis == 1 else mask[:, None, :]
            out = torch.where(mask.to(out.device), fill, out)
    return out


class ClapTrainer(CorpusTrainer):
    """CLAP stage hooks on the shared :class:`Trainer`.

    Args:
        model: :class:`MiniLMMelClap` constructor kwargs (``configs/model/clap.yaml``).
        corpus: corpus root (``manifest.jsonl``); default ``tta.paths.cache_dir() / "corpus"``.
        train_split: the corpus split(s) trained on: ``"train"``, or ``"train+valid"`` for a final fit once the
            settings were chosen on valid (the test split stays untouched either way).
        clip_seconds, mix_prob, augment, speech_music_frac, mix_snr_db: ``CorpusDataset`` settings for the
            training data.
        balance_power: ``CorpusDataset`` class draw: a class weighs (train clips of the class) ** power within
            its group (0: every class equally often, 1: every clip equally often).
        targets: "jaccard", "exact" or "identity" (see :func:`label_targets`).
        spec_augment: kwargs of :func:`spec_augment`, or None to switch it off.
        class_loss_weight: weight of the class-prompt loss (0: off). Each step, every training class gets one
            caption drawn from ``tta.data.captions.captions_for``; each audio is scored against all of them and
            a cross-entropy pulls it towards the prompts of its own label(s) (a mixture's two labels share the
            target), so the shared space ranks classes directly, which zero-shot classification and the
            held-out mixture test measure. The captions of a step are shared by the batch.
        init_from: a ``load_clap`` folder of this backend whose trained weights initialise the model (warm
            start for fine-tuning); ignored when the run resumes from its own checkpoint.
        init_parts: what ``init_from`` provides: ``"all"`` its weights, or ``"text"`` only its text projection
            and temperature (the audio tower starts from scratch, seeded by ``seed``): a new ensemble member.
        freeze_text: keep the text projection and temperature fixed (in eval mode, no dropout), so the audio
            tower learns to hit the existing text space. Towers trained this way against the same text
            projection are members of one space and can be averaged (``tta train clap --ensemble``).
        text_noise: std of Gaussian noise added to the (unit-norm) frozen text features before the
            projection, relative to the feature norm; it keeps the projection smooth around the few
            hundred training captions, so unseen phrasings nearby in MiniLM space map nearby.
        eval_split, eval_max_items: what ``evaluate()`` runs on during training.
        export_dir: where ``on_train_end`` also writes the final model (``save_pretrained``); it always
            writes ``<run_dir>/export``.
        **trainer_kwargs: :class:`Trainer` arguments. (``corpus`` and ``export_dir`` are
            :class:`CorpusTrainer`'s.)
    """

    name = "clap"

    def __init__(
        self,
        model: dict | None = None,
        train_split: str = "train",
        clip_seconds: float = 5.0,
        mix_prob: float = 0.3,
        augment: bool = True,
        speech_music_frac: float = 0.15,
        balance_power: float = 0.0,
        mix_snr_db: tuple[float, float] | list[float] = (-5.0, 15.0),
        targets: str = "jaccard",
        spec_augment: dict | None = None,
        text_noise: float = 0.0,
        class_loss_weight: float = 0.0,
        init_from: str | os.PathLike | None = None,
        init_parts: str = "all",
        freeze_text: bool = False,
        eval_split: str = "valid",
        eval_max_items: int | None = 400,
        **trainer_kwargs,
    ):
        super().__init__(**trainer_kwargs)
        self.model_kwargs = dict(model or {})
        self.train_split = train_split
        self.clip_seconds = clip_seconds
        self.mix_prob = mix_prob
        self.augment = augment
        self.speech_music_frac = speech_music_frac
        self.balance_power = balance_power
        self.mix_snr_db = tuple(mix_snr_db)
        self.targets = targets
        self.spec_augment = spec_augment
        self.text_noise = text_noise
        self.class_loss_weight = class_loss_weight
        self.init_from = Path(init_from) if init_from else None
        if init_parts not in ("all", "text"):
            raise ValueError(f"init_parts must be 'all' or 'text', not {init_parts!r}")
        if (init_parts == "text" or freeze_text) and self.init_from is None:
            raise ValueError("init_parts='text' and freeze_text need init_from (the CLAP whose text space to keep)")
        self.init_parts = init_parts
        self.freeze_text = freeze_text
        self.eval_split = eval_split
        self.eval_max_items = eval_max_items
        self._eval_items = None

    # -- hooks --
    def build_model(self):
        from tta.models.clap.minilm_mel import MiniLMMelClap

        model = MiniLMMelClap(**self.model_kwargs)
        if self.init_from is not None:
            init = MiniLMMelClap.from_pretrained(self.init_from)
            state = init.trainable_state_dict()
            if self.init_parts == "text":  # init_from may be an ensemble: its towers are not wanted
                state = {k: v for k, v in state.items() if not k.startswith("audio_encoder.")}
                state.update({k: v for k, v in model.trainable_state_dict().items() if k.startswith("audio_encoder.")})
            model.load_trainable_state_dict(state, source=str(self.init_from))
        if self.freeze_text:
            model.text_projection.requires_grad_(False)
            model.logit_scale.requires_grad_(False)
        return model

    def build_train_data(self):
        self.corpus_root()  # a clear error before importing the data pipeline
        from tta.data.dataset import CorpusDataset
        from tta.data.splits import HELD_OUT_PAIRS

        root = self.corpus_root()
        if self.eval_split in self.train_split.split("+"):
            warnings.warn(
                f"eval_split {self.eval_split!r} is also trained on (train_split={self.train_split!r}): "
                "its metrics will not measure generalisation",
                stacklevel=2,
            )
        data = CorpusDataset(
            root,
            self.train_split,
            clip_seconds=self.clip_seconds,
            sample_rate=16000,
            mix_prob=self.mix_prob,
            augment=self.augment,
            seed=self.seed,
            held_out_pairs=HELD_OUT_PAIRS,
            speech_music_frac=self.speech_music_frac,
            balance_power=self.balance_power,
            mix_snr_db=self.mix_snr_db,
        )
        self.class_names = list(data.labels)
        return data

    def collate(self, items: list[dict]) -> dict:
        return {
            "audio": torch.stack([torch.as_tensor(it["audio"], dtype=torch.float32) for it in items]),
            "caption": [it["caption"] for it in items],
            "labels": [list(it["labels"]) for it in items],
        }

    def run_step(self, batch: dict) -> dict[str, torch.Tensor]:
        model = self.unwrapped_model
        if self.freeze_text:
            model.text_projection.eval()  # fixed targets: no dropout
        mel = model.prepare_audio(batch["audio"])
        if self.spec_augment is not None:
            mel = spec_augment(mel, **self.spec_augment)
        audio = model.audio_embed(mel)
        feats = model.text_features(batch["caption"])  # [B, 384], frozen and cached
        if self.text_noise:
            noise = torch.randn_like(feats) * self.text_noise / feats.shape[-1] ** 0.5
            feats = F.normalize(feats + noise, dim=-1)
        text = model.text_projection(feats)
        targets = label_targets(batch["labels"], self.targets)
        loss = contrastive_loss(text, audio, model.logit_scale, targets)
        with torch.no_grad():
            t, a = F.normalize(text, dim=-1), F.normalize(audio, dim=-1)
            hit = targets[torch.arange(len(t)), (t @ a.T).argmax(1).cpu()] > 0
        out = {"contrastive_loss": loss.detach(), "batch_t2a_acc": hit.float().mean()}
        if self.class_loss_weight:
            cls_loss = self.class_prompt_loss(model, audio, batch["labels"])
            out["class_loss"] = cls_loss.detach()
            loss = loss + self.class_loss_weight * cls_loss
        out.update(loss=loss, logit_scale=model.logit_scale.exp().detach())
        return out

    def class_prompt_loss(self, model, audio: torch.Tensor, labels: list[list[str]]) -> torch.Tensor:
        """Cross-entropy of each audio [B, D] over one fresh caption per class; multi-label targets share mass."""
        import numpy as np

        from tta.data.captions import captions_for

        rng = np.random.default_rng((self.seed, 7, self.step))
        prompts = [captions_for(name, rng) for name in self.class_names]
        feats = model.text_features(prompts)
        if self.text_noise:
            noise = torch.randn_like(feats) * self.text_noise / feats.shape[-1] ** 0.5
            feats = F.normalize(feats + noise, dim=-1)
        classes = F.normalize(model.text_projection(feats), dim=-1)  # [C, D]
        logits = model.logit_scale.clamp(max=4.6052).exp() * F.normalize(audio, dim=-1) @ classes.T  # [B, C]
        index = {name: c for c, name in enumerate(self.class_names)}
        target = torch.zeros_like(logits)
        for i, labs in enumerate(labels):
            for lab in labs:
                target[i, index[lab]] = 1.0
        return F.cross_entropy(logits, target / target.sum(1, keepdim=True))

    def evaluation_items(self) -> list[dict]:
        if self._eval_items is None:
            from tta.evaluation.clap_zero_shot import load_split

            self._eval_items = load_split(self.corpus_root(), self.eval_split, max_items=self.eval_max_items)
        return self._eval_items

    def evaluate(self) -> dict[str, float]:
        from tta.data.captions import CLASSES, class_prompt
        from tta.data.prompts import PARAPHRASE_PROMPTS
        from tta.data.splits import HELD_OUT_PAIRS
        from tta.evaluation.clap_zero_shot import evaluate_clap

        metrics = evaluate_clap(
            self.unwrapped_model,
            self.evaluation_items(),
            list(CLASSES),
            HELD_OUT_PAIRS,
            prompt_fn=class_prompt,
            extra_paraphrases=PARAPHRASE_PROMPTS,
        )
        return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}

    def model_state_dict(self, model) -> dict[str, torch.Tensor]:
        return model.trainable_state_dict()

    def load_model_state_dict(self, model, state) -> None:
        model.load_trainable_state_dict(state, source="training checkpoint")

    def export_model(self, model, folder: Path) -> None:
        """Write the model as a ``load_clap`` folder."""
        model.save_pretrained(folder)
