"""``tta convert`` on a checkpoint in the original AudioLDM layout reproduces the original modules' outputs."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from tests.models.original_audioldm import (
    FILM_DIM,
    NUM_HEAD_CHANNELS,
    SCALE_FACTOR,
    build_original,
    tiny_roberta_tokenizer,
)
from tests.reference import require_audioldm
from tta.cli import main
from tta.convert import ConvertOptions, audioldm_ckpt, convert_audioldm_checkpoint
from tta.convert.unet import convert_unet
from tta.errors import InputError, ModelLoadError

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:torch.meshgrid:UserWarning"),  # the original HTSAT's meshgrid call
]


def _max_rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max |ours - ref| / max(1, max |ref|)."""
    assert ours.shape == ref.shape
    return ((ours - ref).abs().max() / ref.abs().max().clamp(min=1.0)).item()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(original modules, converted folder) for one tiny random AudioLDM checkpoint, converted by the CLI."""
    require_audioldm()
    root = tmp_path_factory.mktemp("convert")
    ref = build_original()
    ckpt = root / "audioldm-tiny.ckpt"
    torch.save({"state_dict": ref.state_dict, "epoch": 3, "global_step": 1000}, ckpt)
    tokenizer = tiny_roberta_tokenizer(root / "roberta")
    out = root / "tta-model"
    args = ["convert", str(ckpt), "-o", str(out), "--tokenizer", str(tokenizer)]
    assert main([*args, "--num-head-channels", str(NUM_HEAD_CHANNELS)]) == 0
    return ref, out


def test_folder_layout(converted):
    _, out = converted
    index = json.loads((out / "model_index.json").read_text())
    assert index["_class_name"] == "TTAPipeline" and index["_tta_version"] == "0.1.0"
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["vae"] == ["diffusers", "AutoencoderKL"]
    assert index["vocoder"] == ["transformers", "SpeechT5HifiGan"]
    assert index["scheduler"] == ["diffusers", "DDIMScheduler"]
    assert index["clap"] == ["tta", "hf-clap"]
    for weights in ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"):
        assert (out / weights).is_file()
    assert (out / "vocoder/model.safetensors").is_file() and (out / "clap/model.safetensors").is_file()
    assert json.loads((out / "clap/config.json").read_text())["model_type"] == "clap"
    assert (out / "clap/tokenizer/tokenizer_config.json").is_file()
    assert json.loads((out / "clap/preprocessor_config.json").read_text())["sampling_rate"] == 48000
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp folder left
    vae_config = json.loads((out / "vae/config.json").read_text())
    assert vae_config["scaling_factor"] == pytest.approx(SCALE_FACTOR)


def test_unet_parity(converted):
    from diffusers import UNet2DConditionModel

    ref, out = converted
    unet = UNet2DConditionModel.from_pretrained(out / "unet").eval()
    assert unet.config.class_embeddings_concat and unet.config.class_embed_type == "simple_projection"
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(2, 8, 16, 8, generator=g), torch.randn(2, FILM_DIM, generator=g)
    t = torch.tensor([3, 777])
    with torch.no_grad():
        expected = ref.unet(x, t, y=y)
        ours = unet(x, t, encoder_hidden_states=None, class_labels=y).sample
    assert expected.abs().max() > 0.1  # the re-randomised output conv carries signal
    assert _max_rel_err(ours, expected) <= 1e-5


def test_unet_parity_needs_the_right_heads(converted):
    ref, _ = converted
    unet_sd = {k[len("model.diffusion_model.") :]: v for k, v in ref.state_dict.items() if k.startswith("model.")}
    wrong = convert_unet(unet_sd, num_head_channels=2 * NUM_HEAD_CHANNELS)  # half the heads
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(1, 8, 16, 8, generator=g), torch.randn(1, FILM_DIM, generator=g)
    with torch.no_grad():
        err = _max_rel_err(
            wrong(x, torch.tensor([5]), None, class_labels=y).sample, ref.unet(x, torch.tensor([5]), y=y)
        )
    assert err > 1e-3


def test_vae_parity(converted):
    from diffusers import AutoencoderKL

    ref, out = converted
    vae = AutoencoderKL.from_pretrained(out / "vae").eval()
    g = torch.Generator().manual_seed(2)
    mel, z = torch.randn(2, 1, 32, 16, generator=g), torch.randn(2, 8, 8, 4, generator=g)
    with torch.no_grad():
        moments = ref.vae.moments(mel)
        posterior = vae.encode(mel).latent_dist
        decoded, expected = vae.decode(z).sample, ref.vae.decode(z)
    assert _max_rel_err(posterior.mean, moments[:, :8]) <= 1e-5
    assert _max_rel_err(posterior.logvar, moments[:, 8:].clamp(-30.0, 20.0)) <= 1e-5
    assert _max_rel_err(decoded, expected) <= 1e-5


def test_vocoder_parity(converted):
    from transformers import SpeechT5HifiGan

    ref, out = converted
    vocoder = SpeechT5HifiGan.from_pretrained(out / "vocoder").eval()
    assert list(vocoder.config.upsample_rates) == [5, 4, 2, 2, 2]
    mel = torch.randn(2, 64, 12, generator=torch.Generator().manual_seed(3))  # original: [B, n_mels, T]
    with torch.no_grad():
        expected = ref.vocoder(mel).squeeze(1)
        ours = vocoder(mel.transpose(1, 2))  # SpeechT5HifiGan: [B, T, n_mels] -> [B, N]
    assert ours.shape == (2, 12 * 160 + 32)
    assert _max_rel_err(ours, expected) <= 1e-5


def _reference_text_embedding(ref, batch) -> torch.Tensor:
    """The original CLAP's ``get_text_embedding``: normalize(text_projection(RoBERTa pooler output))."""
    with torch.no_grad():
        pooled = ref.text_branch(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output
        return torch.nn.functional.normalize(ref.text_projection(pooled), dim=-1)


def test_clap_text_parity(converted):
    from transformers import AutoTokenizer, ClapModel

    ref, out = converted
    tokenizer = AutoTokenizer.from_pretrained(str(out / "clap/tokenizer"), local_files_only=True)
    clap = ClapModel.from_pretrained(out / "clap").eval()
    batch = tokenizer(["a dog barks", "rain"], padding="max_length", max_length=16, return_tensors="pt")
    with torch.no_grad():
        pooled = clap.text_model(**batch).pooler_output
        ours = torch.nn.functional.normalize(clap.text_projection(pooled), dim=-1)
    assert _max_rel_err(ours, _reference_text_embedding(ref, batch)) <= 1e-5
    assert clap.logit_scale_a.item() == pytest.approx(2.3) and clap.logit_scale_t.item() == pytest.approx(2.5)


def test_clap_audio_parity(converted):
    """The HTSAT tower from the same log-mel (the front-ends differ in code: torchlibrosa vs numpy)."""
    from transformers import ClapModel

    ref, out = converted
    clap = ClapModel.from_pretrained(out / "clap").eval()
    mel = torch.randn(2, 1, 1001, 64, generator=torch.Generator().manual_seed(4))  # [B, 1, T, mel bins]
    with torch.no_grad():
        latent = ref.audio_branch({"waveform": mel}, device="cpu")["embedding"]
        expected = torch.nn.functional.normalize(ref.audio_projection(latent), dim=-1)
        pooled = clap.audio_model(input_features=mel).pooler_output
        ours = torch.nn.functional.normalize(clap.audio_projection(pooled), dim=-1)
    assert _max_rel_err(ours, expected) <= 1e-5


def _htsat_logmel(wav):
    """HTSAT's torchlibrosa front-end written with librosa: power STFT (Hann 1024, hop 480, centred, reflect),
    64 slaney mels 50-14000 Hz at 48 kHz, 10 log10(max(x, 1e-10)), no top_db (htsat.py, HTSAT-tiny.json)."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=wav, sr=48000, n_fft=1024, hop_length=480, win_length=1024, window="hann", center=True, pad_mode="reflect",
        power=2.0, n_mels=64, fmin=50, fmax=14000,
    )  # fmt: skip
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T


def test_clap_feature_extractor_matches_htsat_front_end(converted):
    import numpy as np
    from transformers import ClapFeatureExtractor

    _, out = converted
    extractor = ClapFeatureExtractor.from_pretrained(str(out / "clap"), local_files_only=True)
    rng = np.random.default_rng(0)
    full = (0.1 * rng.standard_normal(480000)).astype(np.float32)  # exactly 10 s at 48 kHz
    short = full[:100000]  # repeated, then zero-padded to 10 s (the original's "repeatpad")
    repeated = np.tile(short, 480000 // len(short))
    repeated = np.pad(repeated, (0, 480000 - len(repeated)))
    for wav, reference in ((full, full), (short, repeated)):
        ours = extractor([wav], sampling_rate=48000, return_tensors="np")["input_features"][0, 0]
        assert ours.shape == (1001, 64)
        assert np.abs(ours - _htsat_logmel(reference)).max() <= 1e-4  # dB, values up to ~40


def test_clap_text_only(converted, tmp_path):
    ref, out = converted
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": ref.state_dict}, ckpt)
    options = ConvertOptions(tokenizer=out / "clap" / "tokenizer", clap_audio=False)
    folder = convert_audioldm_checkpoint(ckpt, tmp_path / "text-only", options)
    assert json.loads((folder / "clap/config.json").read_text())["model_type"] == "clap_text_model"
    assert json.loads((folder / "model_index.json").read_text())["clap"] == ["tta", "hf-clap-text"]
    from transformers import ClapTextModelWithProjection

    text_model = ClapTextModelWithProjection.from_pretrained(folder / "clap").eval()
    batch = {"input_ids": torch.tensor([[0, 7, 8, 2, 1]]), "attention_mask": torch.tensor([[1, 1, 1, 1, 0]])}
    with torch.no_grad():
        ours = torch.nn.functional.normalize(text_model(**batch).text_embeds, dim=-1)
    assert _max_rel_err(ours, _reference_text_embedding(ref, batch)) <= 1e-5


def test_load_clap_reads_the_converted_clap(converted):
    pytest.importorskip("tta.models.clap.hf", reason="HF CLAP backends not available")
    from tta.models.clap import load_clap

    ref, out = converted
    clap = load_clap(out / "clap")
    assert clap.has_audio and clap.embedding_dim == FILM_DIM
    emb = clap.encode_text(["a dog barks"])
    batch = clap.tokenizer(["a dog barks"], return_tensors="pt")
    assert _max_rel_err(emb, _reference_text_embedding(ref, batch)) <= 1e-5
    audio = clap.encode_audio(0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(5)))
    assert audio.shape == (2, FILM_DIM) and torch.allclose(audio.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_scheduler_matches_training_schedule(converted):
    from diffusers import DDIMScheduler

    ref, out = converted
    scheduler = DDIMScheduler.from_pretrained(out / "scheduler")
    assert scheduler.config.num_train_timesteps == 1000 and scheduler.config.prediction_type == "epsilon"
    assert scheduler.config.beta_schedule == "scaled_linear" and scheduler.config.get("trained_betas") is None
    torch.testing.assert_close(scheduler.betas, ref.state_dict["betas"], rtol=1e-5, atol=1e-8)
    scheduler.set_timesteps(10)
    assert scheduler.timesteps.tolist() == list(range(901, 0, -100))  # the original DDIM's range(0, 1000, c) + 1


def test_overwrite_and_errors(converted, tmp_path, capsys):
    ref, out = converted
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": ref.state_dict}, ckpt)
    with pytest.raises(InputError, match="--overwrite"):
        convert_audioldm_checkpoint(ckpt, out, ConvertOptions(with_clap=False))
    target = tmp_path / "out"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    convert_audioldm_checkpoint(ckpt, target, ConvertOptions(overwrite=True, with_clap=False))
    assert not (target / "stale.txt").exists() and not (target / "clap").exists()
    assert "clap" not in json.loads((target / "model_index.json").read_text())

    assert main(["convert", str(tmp_path / "missing.ckpt"), "-o", str(tmp_path / "x")]) == 2
    assert "missing.ckpt" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="corrupt.ckpt"):
        convert_audioldm_checkpoint(corrupt, tmp_path / "y")
    with pytest.raises(ModelLoadError, match="tokenizer folder not found"):
        convert_audioldm_checkpoint(ckpt, tmp_path / "z", ConvertOptions(tokenizer=tmp_path / "no-tokenizer"))
    assert not (tmp_path / "y").exists() and not (tmp_path / "z").exists()


def test_no_tokenizer_is_a_clear_error(converted, tmp_path, monkeypatch, capsys):
    ref, _ = converted
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": ref.state_dict}, ckpt)
    monkeypatch.setattr(audioldm_ckpt, "ROBERTA", "tta-test/not-in-any-cache")  # never in the local HF cache
    assert main(["convert", str(ckpt), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--tokenizer DIR" in err and "--no-clap" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]


def test_refuses_pickled_objects(tmp_path):
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": argparse.Namespace(lr=1.0)}, ckpt)  # not weights-only
    with pytest.raises(ModelLoadError, match="evil.ckpt"):
        convert_audioldm_checkpoint(ckpt, tmp_path / "out")


def test_failure_leaves_nothing(converted, tmp_path):
    ref, _ = converted
    no_vocoder = {k: v for k, v in ref.state_dict.items() if not k.startswith("first_stage_model.vocoder.")}
    ckpt = tmp_path / "partial.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in no_vocoder.items()}, str(ckpt))
    with pytest.raises(ModelLoadError, match="vocoder"):
        convert_audioldm_checkpoint(ckpt, tmp_path / "out", ConvertOptions(with_clap=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["partial.safetensors"]


def test_pipeline_generates_from_the_converted_folder(converted):
    pipeline = pytest.importorskip("tta.pipelines", reason="TTAPipeline not available")
    _, out = converted
    pipe = pipeline.TTAPipeline.from_pretrained(out)
    result = pipe(
        "a dog barks", audio_length_in_s=0.5, num_inference_steps=2, num_candidates=2, seed=0, progress=False
    )
    assert result.audios.shape == (1, 8000) and result.sample_rate == 16000
