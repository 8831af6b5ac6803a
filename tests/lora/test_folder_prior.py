"""The fine-tune folder as a retrieval index beside the adapter: the model's prior searches the new clips."""

import numpy as np
import soundfile as sf
import torch

from tta.lora.prior import index_path_for, write_folder_index


def test_folder_index_extends_the_prior(tmp_path, tta_model_dir):
    from tta.models.prior import RetrievalPrior
    from tta.pipelines import TTAPipeline
    from tta.pipelines.conditioning import resolve_conditioning
    from tta.retrieval import RetrievalIndex
    from tta.retrieval.build import caption_embeddings
    from tta.retrieval.sources import folder_entries

    folder = tmp_path / "creature"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, caption in enumerate(["a creature growls", "a creature hisses", "a creature purrs"]):
        sf.write(folder / f"c{i}.wav", (0.3 * rng.standard_normal(16000)).astype(np.float32), 16000)
        (folder / f"c{i}.txt").write_text(caption + "\n")
    pipe = TTAPipeline.from_pretrained(tta_model_dir)
    g = torch.Generator().manual_seed(0)
    pipe.prior = own = RetrievalPrior(torch.randn(4, 32, generator=g), top_k=1, max_sources=1)

    out = index_path_for(tmp_path / "creature.safetensors")
    assert out == tmp_path / "creature.index"
    write_folder_index(pipe, folder_entries(folder), out, progress=False)
    index = RetrievalIndex.load(out)
    assert sorted(e["id"] for e in index.entries) == ["c0.wav", "c1.wav", "c2.wav"]
    assert index.entries[0]["captions"] == ["a creature growls"]

    cond = resolve_conditioning(pipe, out)
    assert cond.prior.embeddings.shape[0] == 4 + 3 and pipe.prior is own  # the model's own prior untouched
    # a prompt with a new clip's caption now maps onto that clip's audio embedding (top_k 1)
    text = caption_embeddings(pipe.clap, [["a creature hisses"]])  # how the index embeds its captions
    row = [e["id"] for e in index.entries].index("c1.wav")
    mapped = cond.prior(torch.nn.functional.normalize(text.float(), dim=-1))[0]
    torch.testing.assert_close(
        mapped, torch.nn.functional.normalize(index.audio[row].float(), dim=-1), atol=1e-3, rtol=0
    )
