"""AudioLDM 2 (diffusers ``AudioLDM2Pipeline`` folders): CLAP + FLAN-T5 -> projection -> GPT-2 "language of
audio" tokens, and a UNet with two cross-attention streams (the GPT-2 tokens; the T5 states with their mask).

Folder (``AudioLDM2Pipeline.save_pretrained``): ``model_index.json`` (``_class_name: AudioLDM2Pipeline``),
``text_encoder/`` (transformers ``ClapModel``), ``tokenizer/`` (RoBERTa), ``feature_extractor/`` (CLAP's, for
re-ranking), ``text_encoder_2/`` (``T5EncoderModel``), ``tokenizer_2/``, ``projection_model/``
(``AudioLDM2ProjectionModel``), ``language_model/`` (``GPT2Model``), ``unet/`` (``AudioLDM2UNet2DConditionModel``),
``vae/``, ``vocoder/`` (``SpeechT5HifiGan``), ``scheduler/``.

Each text's condition row packs its generated GPT-2 tokens [N, D_gpt], its T5 states padded to the T5 tokenizer's
length [L, D_t5] and their mask [L] (:class:`~tta.families.common.RowPacker`). Texts are encoded one at a time:
diffusers pads a batch's T5 tokens (and the negative prompts' to the prompts' length) before GPT-2, whose
positions then depend on the padding; tta's condition of a text is the same in any batch.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tta.families.common import (
    DIFFUSERS_WEIGHTS,
    OPTS,
    TRANSFORMERS_WEIGHTS,
    PackedTextEncoder,
    RowPacker,
    UNetAdapter,
    check_files,
    expect,
    load,
    load_tokenizer,
    pad_to,
    read_json,
    trim_masked,
)

CLASS_NAME = "AudioLDM2Pipeline"
MAX_T5_TOKENS = 512  # the cap when tokenizer_2 names no model_max_length
COMPONENTS = {
    "text_encoder": TRANSFORMERS_WEIGHTS,
    "text_encoder_2": TRANSFORMERS_WEIGHTS,
    "language_model": TRANSFORMERS_WEIGHTS,
    "projection_model": DIFFUSERS_WEIGHTS,
    "unet": DIFFUSERS_WEIGHTS,
    "vae": DIFFUSERS_WEIGHTS,
    "vocoder": TRANSFORMERS_WEIGHTS,
}


def generate_tokens(language_model, embeds: torch.Tensor, mask: torch.Tensor, count: int) -> torch.Tensor:
    """GPT-2 run ``count`` steps on its own last hidden state (AudioLDM 2's "language of audio"), with a key/value
    cache: [1, S, D] and mask [1, S] -> the ``count`` new hidden states [1, count, D]."""
    import inspect

    name = "cache" if "cache" in inspect.signature(language_model.forward).parameters else "past_key_values"
    out = language_model(inputs_embeds=embeds, attention_mask=mask, use_cache=True)
    new = [out.last_hidden_state[:, -1:]]
    for _ in range(count - 1):
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        past = {name: out.past_key_values}
        out = language_model(inputs_embeds=new[-1], attention_mask=mask, use_cache=True, **past)
        new.append(out.last_hidden_state[:, -1:])
    return torch.cat(new, dim=1)


class AudioLDM2TextEncoder(PackedTextEncoder):
    """Prompt -> packed row [1, N * D_gpt + L * D_t5 + L] (see the module docstring)."""

    def __init__(self, clap, tokenizer, t5, tokenizer_2, projection, language_model, max_new_tokens: int = 8):
        super().__init__()
        self.clap_model, self.tokenizer = clap, tokenizer
        self.t5, self.tokenizer_2 = t5, tokenizer_2
        self.projection, self.language_model = projection, language_model
        self.max_new_tokens = int(max_new_tokens)
        limit = getattr(tokenizer_2, "model_max_length", MAX_T5_TOKENS) or MAX_T5_TOKENS
        self.t5_length = int(min(limit, MAX_T5_TOKENS))
        self.packer = RowPacker(
            tokens=(self.max_new_tokens, int(language_model.config.n_embd)),
            t5=(self.t5_length, int(t5.config.d_model)),
            mask=(self.t5_length,),
        )

    def _clap(self, text: str) -> torch.Tensor:
        # unpadded: diffusers pads to 512 tokens, masked positions change nothing and cost ~50x more
        tok = self.tokenizer([text], max_length=self.tokenizer.model_max_length, truncation=True, return_tensors="pt")
        out = self.clap_model.get_text_features(
            tok.input_ids.to(self.device), attention_mask=tok.attention_mask.to(self.device)
        )
        return getattr(out, "pooler_output", out)[:, None, :]  # [1, 1, D_clap]

    def encode_one(self, text: str) -> torch.Tensor:
        clap = self._clap(text)
        tok = self.tokenizer_2([text], max_length=self.t5_length, truncation=True, return_tensors="pt")
        ids, mask = tok.input_ids.to(self.device), tok.attention_mask.to(self.device)
        t5 = self.t5(ids, attention_mask=mask)[0]  # [1, L, D_t5]
        projected = self.projection(
            hidden_states=clap,
            hidden_states_1=t5,
            attention_mask=mask.new_ones((1, 1)),
            attention_mask_1=mask,
        )
        tokens = generate_tokens(
            self.language_model, projected.hidden_states, projected.attention_mask, self.max_new_tokens
        )
        return self.packer.pack(
            tokens=tokens, t5=pad_to(t5, self.t5_length), mask=pad_to(mask.float(), self.t5_length)
        )


class AudioLDM2UNet(UNetAdapter):
    """``AudioLDM2UNet2DConditionModel`` driven by packed rows: GPT-2 tokens on the first stream, T5 states and
    mask on the second."""

    def __init__(self, unet: torch.nn.Module, packer: RowPacker):
        super().__init__(unet)
        self.packer = packer

    def call(self, sample: torch.Tensor, timestep, rows: torch.Tensor) -> torch.Tensor:
        parts = self.packer.unpack(rows)
        t5, mask = trim_masked(parts["t5"], parts["mask"])
        return self.unet(
            sample,
            timestep,
            encoder_hidden_states=parts["tokens"],
            encoder_hidden_states_1=t5,
            encoder_attention_mask_1=mask,
            return_dict=False,
        )[0]


def check_folder(folder: Path) -> None:
    """Every file an AudioLDM 2 folder needs, before anything loads."""
    check_files(folder, COMPONENTS, tokenizers=("tokenizer", "tokenizer_2"))
    read_json(folder / "scheduler" / "scheduler_config.json")
    model_type = read_json(folder / "text_encoder_2" / "config.json").get("model_type")
    expect(
        model_type == "t5", folder / "text_encoder_2" / "config.json",
        f"model_type {model_type!r}: tta reads the text checkpoints (T5); AudioLDM 2's speech checkpoints (VITS, "
        "with a transcription) are not supported",
    )  # fmt: skip


def _check_shapes(folder: Path, clap, t5, lm, projection, unet) -> None:
    cfg = projection.config
    where = folder / "projection_model" / "config.json"
    expect(cfg.text_encoder_dim == clap.config.projection_dim, where, "text_encoder_dim does not match the CLAP")
    expect(cfg.text_encoder_1_dim == t5.config.d_model, where, "text_encoder_1_dim does not match text_encoder_2")
    expect(cfg.langauge_model_dim == lm.config.n_embd, where, "langauge_model_dim does not match language_model")
    dims = {d for block in unet.config.cross_attention_dim for d in (block if isinstance(block, list) else [block])}
    expect(
        {lm.config.n_embd, t5.config.d_model} <= dims, folder / "unet" / "config.json",
        f"cross_attention_dim {unet.config.cross_attention_dim} does not take GPT-2 ({lm.config.n_embd}) and T5 "
        f"({t5.config.d_model}) states",
    )  # fmt: skip


def load_folder(folder: Path):
    """The :class:`~tta.loading.Components` of an AudioLDM 2 folder (CPU, eval mode, no network)."""
    from diffusers import AutoencoderKL
    from diffusers.pipelines.audioldm2.modeling_audioldm2 import (
        AudioLDM2ProjectionModel,
        AudioLDM2UNet2DConditionModel,
    )
    from transformers import ClapFeatureExtractor, ClapModel, GPT2Model, SpeechT5HifiGan, T5EncoderModel

    from tta.loading import Components
    from tta.models.clap.hf import HFClap

    check_folder(folder)
    clap = load(folder / "text_encoder", ClapModel.from_pretrained, str(folder / "text_encoder"), **OPTS)
    t5 = load(folder / "text_encoder_2", T5EncoderModel.from_pretrained, str(folder / "text_encoder_2"), **OPTS)
    lm = load(folder / "language_model", GPT2Model.from_pretrained, str(folder / "language_model"), **OPTS)
    proj = load(
        folder / "projection_model", AudioLDM2ProjectionModel.from_pretrained, str(folder / "projection_model"), **OPTS
    )
    unet = load(folder / "unet", AudioLDM2UNet2DConditionModel.from_pretrained, str(folder / "unet"), **OPTS)
    _check_shapes(folder, clap, t5, lm, proj, unet)
    vae = load(folder / "vae", AutoencoderKL.from_pretrained, str(folder / "vae"), **OPTS)
    vocoder = load(folder / "vocoder", SpeechT5HifiGan.from_pretrained, str(folder / "vocoder"), **OPTS)
    tokenizer, tokenizer_2 = load_tokenizer(folder / "tokenizer"), load_tokenizer(folder / "tokenizer_2")
    encoder = AudioLDM2TextEncoder(
        clap, tokenizer, t5, tokenizer_2, proj, lm, getattr(lm.config, "max_new_tokens", None) or 8
    )
    reranker = None
    if (folder / "feature_extractor" / "preprocessor_config.json").is_file():
        fe = load(
            folder / "feature_extractor", ClapFeatureExtractor.from_pretrained, str(folder / "feature_extractor"),
            local_files_only=True,
        )  # fmt: skip
        reranker = HFClap(clap, tokenizer, fe).eval()
    scheduler = read_json(folder / "scheduler" / "scheduler_config.json")
    adapter = AudioLDM2UNet(unet, encoder.packer)
    for module in (adapter, vae, vocoder, encoder):
        module.eval()
    return Components(adapter, vae, vocoder, encoder, scheduler, CLASS_NAME, {}, None, reranker=reranker)
