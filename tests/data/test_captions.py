"""Class texts, mixture captions, and paraphrases that no training template produces."""

import numpy as np

from tta.data.captions import (
    CLASS_TEXT,
    CLASSES,
    all_captions,
    captions_for,
    class_prompt,
    clip_detail,
    mixture_caption,
)
from tta.data.prompts import PARAPHRASE_PROMPTS
from tta.data.sources import load_sources
from tta.data.splits import HELD_OUT_PAIRS


def test_every_shipped_label_and_held_out_class_is_known():
    labels = {row.label for row in load_sources()}
    assert labels <= set(CLASSES)
    assert {"speech", "music"} <= set(CLASSES)
    assert {c for pair in HELD_OUT_PAIRS for c in pair} <= set(CLASSES)
    assert set(PARAPHRASE_PROMPTS) == set(CLASSES)


def test_prompts_and_captions():
    assert class_prompt("rain") == "the sound of rain"
    rng = np.random.default_rng(0)
    caps = {captions_for("dog barking", rng) for _ in range(50)}
    assert len(caps) >= 5 and all("dog" in c for c in caps)
    mixes = {mixture_caption("dog barking", "rain", rng) for _ in range(50)}
    assert "a dog barks while rain falls" in mixes or any("while" in m for m in mixes)
    assert all("dog" in m and "rain" in m for m in mixes)


def test_details_from_file_names():
    d = clip_detail("footsteps", "public.zip:audio/actor/singlesteps/fs_gravel3.ogg")
    assert d.noun == "footsteps on gravel"
    assert clip_detail("musical instrument", "usr/share/lmms/samples/drums/snare05.ogg").noun == "a snare drum"
    assert (
        clip_detail("speech", "usr/share/tuxpaint/stamps/birds/pigeon_desc_fr.ogg").noun == "a person speaking French"
    )
    assert clip_detail("speech", "usr/share/tuxpaint/stamps/math/7_en_GB.ogg").clause == "someone speaks English"
    assert clip_detail("speech", "x/Sounds/voices/Default_pl/Ow2.ogg").noun == "a person speaking Polish"
    assert clip_detail("speech", "x/Sounds/voices/Pirate/Ow2.ogg") is None
    assert (
        clip_detail("large animal roaring", "public.zip:audio/fauna/elephant_attack1.ogg").clause
        == "an elephant trumpets"
    )
    assert clip_detail("chicken", "x/rooster.ogg").noun == "a rooster crowing"
    assert clip_detail("door", "x/doors_glass_door_close.ogg").noun == "a door closing"
    rng = np.random.default_rng(1)
    mixes = {mixture_caption("footsteps", "wind", rng, detail_a=d) for _ in range(200)}
    assert "footsteps on gravel with wind in the background" in mixes


def test_paraphrases_are_never_training_captions():
    rng = np.random.default_rng(0)
    for label in CLASSES:
        produced = {captions_for(label, rng) for _ in range(300)} | set(all_captions(label))
        for text in CLASS_TEXT[label].nouns + CLASS_TEXT[label].clauses + CLASS_TEXT[label].sentences:
            produced.add(text)
        for para in PARAPHRASE_PROMPTS[label]:
            assert para not in produced
            assert not any(para in p for p in produced)


def test_faint_backgrounds_and_sequences():
    rng = np.random.default_rng(0)
    faint = {mixture_caption("dog barking", "rain", rng, snr_db=12.0) for _ in range(100)}
    assert any("faint rain" in c or "a faint rain" in c for c in faint)
    assert not any("faint" in mixture_caption("dog barking", "rain", rng, snr_db=0.0) for _ in range(100))
    seq = {mixture_caption("door", "footsteps", rng, sequential=True) for _ in range(50)}
    assert all("then" in c or "followed by" in c for c in seq)
