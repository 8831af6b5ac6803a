"""Text to audio: ``TTAPipeline.__call__``, a short script of numbered steps over the shared helpers."""

from __future__ import annotations

import math
from typing import Any

import torch

from tta.audio.limiter import DEFAULT_PEAK_LIMIT
from tta.pipelines import checks
from tta.pipelines.conditioning import check_compose, retrieved_rows
from tta.pipelines.noise import prepare_latents
from tta.pipelines.outputs import TTAPipelineOutput
from tta.pipelines.rerank import rerank, reranking_clap
from tta.pipelines.steps import check_request, finish_audio, sample
from tta.sampling.loop import StepCallback
from tta.sampling.mixing import DEFAULT_MIX_GAIN_DB, expand_sources, mix_sources, sound_noise
from tta.sampling.shapes import DEFAULT_DURATION_S


class TextToAudioMixin:
    """``pipe(prompt, ...)``: generation from text (mixed into :class:`~tta.TTAPipeline`).

    ``__call__`` arguments:
        prompt: a text or a list of B texts.
        audio_length_in_s: duration in seconds, > 0 and at most :data:`tta.sampling.MAX_DURATION_S`; any
            value works (latents are padded to what the UNet needs and the audio trimmed back).
        num_inference_steps: sampler steps (DPM-Solver++ is good at 10-25); default the model's
            (:attr:`sampling_defaults`), else :data:`~tta.pipelines.checks.DEFAULT_STEPS`.
        guidance_scale: classifier-free guidance scale in [0, 100], on when > 1; default the model's, else
            :data:`~tta.pipelines.checks.DEFAULT_GUIDANCE`.
        negative_prompt: text(s) to steer away from (one, or one per prompt); default the empty text.
        num_waveforms_per_prompt: waveforms kept per prompt.
        num_candidates: generate this many candidates per kept waveform and keep the one whose CLAP
            audio embedding is closest to the prompt's text embedding.
        sampler: "dpmpp-2m" (default), "ddim", "euler" or "unipc".
        generator: one ``torch.Generator`` for the whole batch, or one per generated latent.
        seed: an int (waveform i gets ``seed + i``, each from its own generator, so any one can be
            regenerated alone) or a list of one seed per generated latent. Default: a random seed.
        latents: starting noise [B * num_waveforms_per_prompt * num_candidates, C, H, W] (see :meth:`layout`);
            with ``compose_mode="mix"`` it starts a mixed prompt's first sound, the others' noise is seeded
            from the latent's index and the sound's place.
        progress: show a progress bar.
        callback: ``callback(i, t, latents)`` after each denoising step (with mixed prompts, one latent per
            sound).
        output_type: "np" (numpy [B, N]) or "pt" (torch tensor [B, N]).
        peak_limit: a waveform whose peak exceeds this (in (0, 1]) is scaled down to it as a whole, so files
            written from it do not clip; None returns the decoder's output as it is.
        compose: render a prompt that names several sounds ("a dog barking in the rain") as each of them
            (:mod:`tta.sampling.composition`); the model's retrieval prior decides which parts are sounds.
            None: on when the prior allows it (``max_sources`` >= 2 in ``prior/config.json``; with
            ``compose_mode="guidance"``, also guidance on, or folded into a student); True: required (an error
            if impossible); False: every prompt is one condition.
        compose_mode: how a prompt split into sounds is rendered. "mix" (default): each sound sampled on its
            own latent and the waveforms summed (:mod:`tta.sampling.mixing`; a two-sound prompt costs two
            generations, batched); "guidance": one latent guided towards every sound at once
            (``eps_u + g * mean_j (eps_j - eps_u)``, :mod:`tta.sampling.guidance`; a student, whose rows hold
            the guidance, averages its sounds' rows).
        mix_gain_db: with ``compose_mode="mix"``, the level of each later sound against the first named
            (RMS, dB; the first is the foreground).
        retrieval: a :class:`~tta.retrieval.RetrievalIndex` (or its folder) to draw on for this call: a
            retrieval-conditioned model attends to each text's ``top_k`` nearest entries (listed in the
            output's ``retrieved``), and with ``extend_prior`` the model's prior also searches its entries.
        top_k: with ``retrieval`` and a retrieval-conditioned model, neighbours per text (default: the
            model's).
        extend_prior: see ``retrieval``.
        use_prior: False conditions on the raw CLAP text embeddings even if the model has a prior.
        loudness: normalise each waveform to this integrated loudness (LUFS, ITU-R BS.1770), its true peak
            kept under ``peak_limit``; None: leave the level as decoded.

    Returns:
        TTAPipelineOutput: ``.audios`` [B * num_waveforms_per_prompt, N], ``.sample_rate``, ``.seeds``,
        ``.peak_gains``, ``.sources``, ``.settings`` (what ran).
    """

    @torch.inference_mode()
    def __call__(
        self,
        prompt: str | list[str],
        audio_length_in_s: float = DEFAULT_DURATION_S,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        negative_prompt: str | list[str] | None = None,
        num_waveforms_per_prompt: int = 1,
        num_candidates: int = 1,
        sampler: str | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        seed: int | list[int] | None = None,
        latents: torch.Tensor | None = None,
        progress: bool = True,
        callback: StepCallback | None = None,
        output_type: str = "np",
        peak_limit: float | None = DEFAULT_PEAK_LIMIT,
        compose: bool | None = None,
        compose_mode: str = "mix",
        mix_gain_db: float = DEFAULT_MIX_GAIN_DB,
        retrieval: Any = None,
        top_k: int | None = None,
        extend_prior: bool = True,
        use_prior: bool = True,
        loudness: float | None = None,
    ) -> TTAPipelineOutput:
        """Generate audio for one or more prompts (arguments: see :class:`TextToAudioMixin`)."""
        # 1. Check inputs; resolve this call's conditioning (prior, retrieval index)
        req = check_request(
            self, prompt, negative_prompt, num_inference_steps, guidance_scale, sampler, output_type,
            peak_limit, loudness, retrieval, top_k, extend_prior, use_prior,
        )  # fmt: skip
        per_prompt = checks.check_count(num_waveforms_per_prompt, "num_waveforms_per_prompt")
        n_cand = checks.check_count(num_candidates, "num_candidates", checks.MAX_CANDIDATES)
        reranker = reranking_clap(self.reranker, self.clap) if n_cand > 1 else None
        req.compose = check_compose(req.conditioning, compose, req.guidance_scale, compose_mode, self.folded_guidance)
        mix_gain_db = checks.check_gain_db(mix_gain_db)

        # 2. Latent shape for the requested duration (padded for the UNet; audio trimmed in step 7)
        layout = self.layout(checks.check_duration(audio_length_in_s))
        total = len(req.prompts) * per_prompt * n_cand
        device = self.device

        # 3. Encode prompts (and negative prompts) with CLAP: [B, D] each (or each prompt's sounds), repeated;
        # with a retrieval index, each row followed by its nearest recordings' features
        found: dict[str, list[dict]] = {}
        cond, uncond, sources = req.encode(self, per_prompt * n_cand, found)

        # 4. Scheduler
        scheduler = req.scheduler
        scheduler.set_timesteps(req.steps, device=device)

        # 5. Starting noise, one generator per latent when seeded (the sampler runs in float32)
        latents, seeds = prepare_latents(layout.latent_shape, total, generator, seed, latents)
        owner = None
        if compose_mode == "mix" and isinstance(cond, list):  # one latent per sound, mixed after decoding
            cond, uncond, owner = expand_sources(cond, uncond)
            latents = sound_noise(latents, owner, generator, seeds)
        latents = latents.to(device=device, dtype=torch.float32) * scheduler.init_noise_sigma

        # 6. Denoising loop with classifier-free guidance (one batched UNet call per step)
        latents = sample(self.unet, scheduler, latents, cond, uncond, req.guidance_scale, None, progress, callback)

        # 7. Decode: latents -> log-mel [B, 1, T, n_mels] -> waveform [B, T * hop], trimmed to the duration
        audio = self.decode(latents, num_frames=math.ceil(layout.num_samples / self.hop_length))
        audio = audio[:, : layout.num_samples]
        if owner is not None:
            audio = mix_sources(audio, owner, mix_gain_db)

        # 8. Keep the best of each group of candidates; post-process
        settings = {
            **req.settings(self),
            "duration": float(audio_length_in_s),
            "candidates": n_cand,
            "waveforms_per_prompt": per_prompt,
            "compose_mode": compose_mode,
            "mix_gain_db": mix_gain_db,
        }
        return self._finish(req, audio, seeds, sources, found, reranker, per_prompt, n_cand, settings)

    def _finish(self, req, audio, seeds, sources, found, reranker, per_prompt: int, n_cand: int, settings):
        """Step 8: re-rank the candidates (if any), post-process, and assemble the output."""
        scores = None
        if reranker is not None:
            audio, keep, scores = rerank(reranker, req.prompts, audio, self.sample_rate, per_prompt, n_cand)
            seeds = [seeds[i] for i in keep] if seeds is not None else None
        return TTAPipelineOutput(
            sample_rate=self.sample_rate,
            seeds=seeds,
            clap_scores=scores,
            sources=[list(parts) for parts in sources for _ in range(per_prompt)],
            retrieved=retrieved_rows(sources, found, per_prompt),
            settings=settings,
            prompts=[p for p in req.prompts for _ in range(per_prompt)],
            **finish_audio(audio, req, self.sample_rate),
        )
