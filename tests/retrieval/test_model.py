"""The retrieval-conditioned UNet: tokens reach the UNet's cross-attention, null tokens stand in for missing or
dropped neighbours, a plain UNet's weights warm-start it exactly as documented, and the folder round trip."""

from __future__ import annotations

import pytest
import torch

from tests.retrieval.conftest import TOP_K, build_tiny_retrieval_unet
from tta.errors import InputError, ModelLoadError
from tta.models.retrieval import RetrievalEncoder, RetrievalUNet, adapt_unet_state, pack_neighbours

D, L = 32, 256


def features(b=3, k=TOP_K, seed=0, valid=None):
    g = torch.Generator().manual_seed(seed)
    audio, latent, scores = torch.randn(b, k, D, generator=g), torch.randn(b, k, L, generator=g), torch.rand(b, k)
    valid = torch.ones(b, k, dtype=torch.bool) if valid is None else valid
    return audio, latent, scores, valid


def test_encoder_projects_each_neighbour_and_nulls_the_missing():
    torch.manual_seed(0)
    enc = RetrievalEncoder(embedding_dim=D, latent_dim=L, token_dim=16, top_k=2)
    audio, latent, scores, _ = features()
    valid = torch.tensor([[True, True], [True, False], [False, False]])
    packed = pack_neighbours(audio, latent, scores, valid)
    assert packed.shape == (3, 2 * (D + L + 2)) and enc.feature_dim == D + L + 2
    tokens = enc(packed.view(3, 2, -1))
    manual = enc.norm(enc.audio_proj(audio) + enc.latent_proj(latent) + enc.score_proj(scores[..., None]))
    null = enc.norm(enc.null)
    torch.testing.assert_close(tokens[0], manual[0])
    torch.testing.assert_close(tokens[1, 0], manual[1, 0])
    torch.testing.assert_close(tokens[1, 1], null[1])
    torch.testing.assert_close(tokens[2], null)
    assert not packed[1, enc.feature_dim :].any()  # a missing neighbour's features are zeros
    torch.testing.assert_close(enc.null_tokens(2, 5)[0], null[[0, 1, 0, 1, 0]])  # more than top_k: repeated


def test_condition_rows_route_the_clap_embedding_to_film_and_neighbours_to_cross_attention():
    model = build_tiny_retrieval_unet(L)
    x, t = torch.randn(3, 8, 8, 16), torch.tensor([10, 500, 900])
    cond = torch.randn(3, D)
    rows = torch.cat([cond, pack_neighbours(*features())], 1)
    with torch.no_grad():
        out = model(x, t, class_labels=rows).sample
        tokens = model.encoder(rows[:, D:].view(3, TOP_K, -1))
        direct = model.unet(x, t, encoder_hidden_states=tokens, class_labels=cond).sample
        torch.testing.assert_close(out, direct)
        plain = model(x, t, class_labels=cond).sample  # no neighbours: the null tokens
        nulls = model.unet(x, t, encoder_hidden_states=model.encoder.null_tokens(3), class_labels=cond).sample
        torch.testing.assert_close(plain, nulls)
        assert (plain - out).abs().max() > 1e-4  # the neighbours matter
        other = torch.cat([cond, pack_neighbours(*features(seed=1))], 1)
        assert (model(x, t, class_labels=other).sample - out).abs().max() > 1e-4
    with pytest.raises(InputError, match="columns"):
        model(x, t, class_labels=torch.randn(3, D + 5))
    with pytest.raises(InputError, match="own encoder_hidden_states"):
        model(x, t, encoder_hidden_states=tokens, class_labels=rows)


def test_warm_start_keeps_the_plain_unet_and_starts_deaf_to_the_neighbours():
    from omegaconf import OmegaConf

    from tests.conftest import REPO
    from tta.models.unet import build_unet

    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "model" / "tiny.yaml"))["unet"]
    torch.manual_seed(3)
    plain = build_unet(**cfg)
    model = build_tiny_retrieval_unet(L)
    state = adapt_unet_state(plain.state_dict(), model.unet)
    model.unet.load_state_dict(state)
    for name, tensor in model.unet.state_dict().items():
        if ".attn2.to_v." in name:
            assert not tensor.any()
        elif ".attn2.to_k." not in name:
            torch.testing.assert_close(tensor, plain.state_dict()[name])
    x, t, cond = torch.randn(2, 8, 8, 16), torch.tensor([100, 700]), torch.randn(2, D)
    with torch.no_grad():
        a = model(x, t, class_labels=torch.cat([cond, pack_neighbours(*features(b=2))], 1)).sample
        b = model(x, t, class_labels=cond).sample
    torch.testing.assert_close(a, b)  # zero values: the tokens change nothing until training moves them
    wide = build_unet(**{**cfg, "block_out_channels": [32, 128]})
    with pytest.raises(InputError, match="cannot warm-start"):
        adapt_unet_state(wide.state_dict(), model.unet)


def test_mismatched_token_size_is_an_error():
    model = build_tiny_retrieval_unet(L)
    with pytest.raises(InputError, match="token_dim"):
        RetrievalUNet(model.unet, RetrievalEncoder(embedding_dim=D, latent_dim=L, token_dim=48))


def test_model_folder_round_trip(retrieval_model_dir, tmp_path):
    import json
    import shutil

    from tta.pipelines import TTAPipeline

    pipe = TTAPipeline.from_pretrained(retrieval_model_dir)
    assert pipe.is_retrieval_model and pipe.unet.top_k == TOP_K
    index = json.loads((retrieval_model_dir / "model_index.json").read_text())
    assert index["retrieval"] == ["tta", "RetrievalEncoder"] and index["unet"][1] == "UNet2DConditionModel"
    pipe.save_pretrained(tmp_path / "again")
    back = TTAPipeline.from_pretrained(tmp_path / "again")
    for name, tensor in pipe.unet.state_dict().items():
        torch.testing.assert_close(back.unet.state_dict()[name], tensor)
    # unet/ alone is a plain diffusers UNet folder
    from diffusers import UNet2DConditionModel

    UNet2DConditionModel.from_pretrained(str(tmp_path / "again" / "unet"))
    broken = tmp_path / "broken"
    shutil.copytree(retrieval_model_dir, broken)
    (broken / "retrieval" / "diffusion_pytorch_model.safetensors").write_bytes(b"junk")
    with pytest.raises(ModelLoadError, match="retrieval"):
        TTAPipeline.from_pretrained(broken)
