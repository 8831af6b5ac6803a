"""What the VAE and vocoder stages share: corpus crops as waveforms, random gain, the log-mel front-end,
held-out clips for evaluation, and warm starts from an exported model."""

from __future__ import annotations

import os

import torch

from tta.errors import InputError
from tta.training.corpus_stage import CorpusTrainer


class AudioStageTrainer(CorpusTrainer):
    """Base of the stages that learn on waveforms and log-mels of the corpus (no captions).

    Args:
        train_split: corpus split(s) trained on (``"train"``, or ``"train+valid"``).
        clip_seconds: length of a training crop.
        mix_prob: share of crops that mix two sources (the sounds generated later often overlap).
        augment: ``CorpusDataset``'s pitch/EQ/reverb augmentation and random crops.
        speech_music_frac: share of class draws for speech and music.
        gain_db: (low, high) random gain in dB applied to each crop (the corpus crops are peak 0.5); the
            peak is kept below 0.99.
        mel: :class:`tta.audio.mel.MelSpectrogram` arguments (default AudioLDM's 16 kHz, 64 bins, hop 160).
        eval_split, eval_items, eval_seconds: the held-out clips ``evaluate()`` reconstructs.
        init_from: a trained model folder (``vae/`` or ``vocoder/``, or the component folder itself) whose
            weights initialise the model: fine-tuning, or continuing from shipped weights on a fresh machine
            (the discriminator starts anew); ignored when the run resumes from its own checkpoint.
        **trainer_kwargs: :class:`CorpusTrainer` (``corpus``, ``export_dir``) and :class:`Trainer` arguments.
    """

    def __init__(
        self,
        train_split: str = "train",
        clip_seconds: float = 1.0,
        mix_prob: float = 0.3,
        augment: bool = True,
        speech_music_frac: float = 0.3,
        gain_db: tuple[float, float] | list[float] = (-18.0, 4.0),
        mel: dict | None = None,
        eval_split: str = "valid",
        eval_items: int = 12,
        eval_seconds: float = 4.0,
        init_from: str | os.PathLike | None = None,
        **trainer_kwargs,
    ):
        super().__init__(**trainer_kwargs)
        from tta.audio.mel import MelSpectrogram

        if len(gain_db) != 2 or gain_db[0] > gain_db[1]:
            raise InputError(f"gain_db must be (low, high) with low <= high, got {gain_db!r}")
        self.train_split = train_split
        self.clip_seconds = clip_seconds
        self.mix_prob = mix_prob
        self.augment = augment
        self.speech_music_frac = speech_music_frac
        self.gain_db = (float(gain_db[0]), float(gain_db[1]))
        self.mel = MelSpectrogram(**(mel or {}))
        self.hop = self.mel.hop_length
        self.eval_split = eval_split
        self.eval_items = eval_items
        self.eval_seconds = eval_seconds
        self._eval_audio: list[torch.Tensor] | None = None
        self.init_from = init_from
        frames = int(round(clip_seconds * self.mel.sample_rate)) // self.hop
        if frames < 8:
            raise InputError(f"clip_seconds={clip_seconds} gives {frames} mel frames; need at least 8")

    # -- data --
    def build_train_data(self):
        from tta.data.dataset import CorpusDataset

        return CorpusDataset(
            self.corpus_root(),
            self.train_split,
            clip_seconds=self.clip_seconds,
            sample_rate=self.mel.sample_rate,
            mix_prob=self.mix_prob,
            augment=self.augment,
            seed=self.seed,
            speech_music_frac=self.speech_music_frac,
        )

    def collate(self, items: list[dict]) -> torch.Tensor:
        """-> waveforms [B, N] cut to a whole number of mel frames."""
        wav = torch.stack([torch.as_tensor(it["audio"], dtype=torch.float32) for it in items])
        n = wav.shape[-1] // self.hop * self.hop
        return wav[:, :n]

    def random_gain(self, wav: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Each row scaled by a random gain in ``gain_db`` (torch's RNG, checkpointed so resumes are exact, or
        ``generator``)."""
        lo, hi = self.gain_db
        db = lo + (hi - lo) * torch.rand(wav.shape[0], 1, generator=generator).to(wav.device)
        out = wav * 10 ** (db / 20)
        peak = out.abs().amax(dim=1, keepdim=True).clamp(min=1e-8)
        return out * torch.clamp(0.99 / peak, max=1.0)

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, N] -> [B, T, n_mels]."""
        self.mel = self.mel.to(wav.device)
        return self.mel(wav)

    def evaluation_audio(self) -> list[torch.Tensor]:
        """Up to ``eval_items`` clips of ``eval_split`` (a fixed choice), each cut to ``eval_seconds`` and whole
        mel frames (clips shorter than 0.25 s are left out)."""
        if self._eval_audio is None:
            from tta.evaluation.clap_zero_shot import load_split

            items = load_split(self.corpus_root(), self.eval_split, max_seconds=self.eval_seconds)
            items.sort(key=lambda it: it["id"])
            step = max(1, len(items) // max(1, self.eval_items))
            chosen = []
            for it in items[::step][: self.eval_items]:
                wav = it["audio"].float()
                wav = wav[: wav.numel() // self.hop * self.hop]
                if wav.numel() >= self.mel.sample_rate // 4:
                    chosen.append(wav)
            self._eval_audio = chosen
        return self._eval_audio

    def warm_start(self, module: torch.nn.Module, loader) -> None:
        """Copy the weights of ``loader(init_from)`` into ``module`` (same architecture required)."""
        if self.init_from is None:
            return
        trained = loader(self.init_from)
        try:
            module.load_state_dict(trained.state_dict())
        except RuntimeError as err:
            raise InputError(f"init_from {self.init_from} does not fit the configured model: {err}") from err
        print(f"initialised the {self.name} from {self.init_from}")
