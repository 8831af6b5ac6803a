"""Class names and the natural-language captions made from them.

Every class has noun phrases ("a dog barking"), clauses ("a dog barks") and a few full sentences; training
captions are drawn from those, mixture captions join two of them ("a dog barks while rain falls",
"footsteps on gravel with wind in the background"). ``PARAPHRASE_PROMPTS`` holds wordings that no training
template produces, for a robustness test of the text side. File names and OpenTTD's written descriptions add
details (the surface under footsteps, the instrument of a one-shot) through :func:`clip_detail`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassText:
    """The words for one class.

    Attributes:
        nouns: noun phrases ("a dog barking"), usable after "the sound of" or before "in the background".
        clauses: subject + verb, present tense ("a dog barks"), usable around "while".
        sentences: extra stand-alone captions.
    """

    nouns: tuple[str, ...]
    clauses: tuple[str, ...]
    sentences: tuple[str, ...] = ()


def _t(nouns: list[str], clauses: list[str], sentences: list[str] | None = None) -> ClassText:
    return ClassText(tuple(nouns), tuple(clauses), tuple(sentences or ()))


CLASS_TEXT: dict[str, ClassText] = {
    "dog barking": _t(
        ["a dog barking", "barking dogs", "a barking dog"],
        ["a dog barks", "a dog is barking", "a dog barks loudly"],
        ["dog barking", "a dog barks several times"],
    ),
    "cat meowing": _t(["a cat meowing", "a meowing cat"], ["a cat meows", "a cat is meowing"], ["cat meowing"]),
    "birds chirping": _t(
        ["birds chirping", "birdsong", "chirping birds"],
        ["birds chirp", "birds are singing", "a bird sings"],
        ["birds chirping in the trees", "birdsong outdoors"],
    ),
    "cow mooing": _t(["a cow mooing", "cattle lowing"], ["a cow moos", "a cow is mooing"], ["cow mooing"]),
    "sheep bleating": _t(
        ["a sheep bleating", "bleating sheep", "a goat bleating"], ["a sheep bleats", "sheep are bleating"]
    ),
    "horse": _t(
        ["a horse neighing", "horse hooves", "a galloping horse"],
        ["a horse neighs", "a horse whinnies", "a horse gallops"],
        ["horse neighing"],
    ),
    "chicken": _t(
        ["chickens clucking", "a rooster crowing", "hens clucking"],
        ["chickens cluck", "a rooster crows", "a hen clucks"],
    ),
    "pig grunting": _t(["a pig grunting", "pigs oinking"], ["a pig grunts", "a pig oinks", "pigs are grunting"]),
    "duck quacking": _t(["a duck quacking", "quacking ducks"], ["a duck quacks", "ducks are quacking"]),
    "large animal roaring": _t(
        ["a lion roaring", "an elephant trumpeting", "a large animal roaring"],
        ["a lion roars", "an elephant trumpets", "a large animal roars"],
    ),
    "wolf howling": _t(["a wolf howling", "howling wolves", "a growling wolf"], ["a wolf howls", "a wolf growls"]),
    "frogs croaking": _t(["frogs croaking", "croaking frogs"], ["frogs croak", "a frog croaks"]),
    "insects buzzing": _t(
        ["insects buzzing", "a buzzing insect", "crickets chirping"], ["insects buzz", "a bee buzzes", "a fly buzzes"]
    ),
    "rain": _t(
        ["rain", "rainfall", "rain falling", "a rain shower"],
        ["rain falls", "it is raining", "rain pours down"],
        ["rain falling steadily", "heavy rain outdoors"],
    ),
    "wind": _t(
        ["wind", "the wind", "wind blowing", "a gusty wind"],
        ["wind blows", "the wind howls", "wind is blowing"],
        ["strong wind blowing", "wind gusting outdoors"],
    ),
    "thunder": _t(
        ["thunder", "a thunderclap", "rolling thunder"], ["thunder rumbles", "thunder claps", "thunder rolls"]
    ),
    "flowing water": _t(
        ["a flowing stream", "running water", "a babbling brook", "a waterfall"],
        ["a stream flows", "water runs", "a river flows", "water trickles"],
    ),
    "ocean waves": _t(
        ["ocean waves", "waves crashing", "the surf"], ["waves crash on the shore", "waves break", "the sea washes in"]
    ),
    "water splashing": _t(
        ["water splashing", "bubbles", "a splash", "dripping water"],
        ["water splashes", "something splashes into water", "water bubbles"],
    ),
    "fire crackling": _t(
        ["a fire crackling", "a crackling fire", "burning wood"], ["a fire crackles", "flames crackle", "wood burns"]
    ),
    "footsteps": _t(
        ["footsteps", "someone walking", "steps"],
        ["someone walks", "a person is walking", "footsteps approach"],
        ["footsteps walking"],
    ),
    "door": _t(
        ["a door opening", "a door closing", "a creaking door"],
        ["a door opens", "a door closes", "a door slams", "a door creaks"],
    ),
    "typing": _t(
        ["typing on a keyboard", "keyboard clicks", "keystrokes"], ["someone types on a keyboard", "keys are clicking"]
    ),
    "clock ticking": _t(["a clock ticking", "a ticking clock"], ["a clock ticks", "a clock is ticking"]),
    "bell ringing": _t(
        ["a bell ringing", "a ringing bell", "a gong"], ["a bell rings", "a bell chimes", "a gong is struck"]
    ),
    "telephone ringing": _t(["a telephone ringing", "a ringing phone"], ["a telephone rings", "a phone is ringing"]),
    "glass breaking": _t(["glass breaking", "shattering glass"], ["glass breaks", "glass shatters"]),
    "hammering": _t(
        ["hammering", "metal clanking", "a pickaxe striking stone"],
        ["someone hammers", "a hammer strikes metal", "a pickaxe hits rock"],
    ),
    "wood chopping": _t(
        ["wood being chopped", "sawing", "an axe chopping wood"],
        ["someone chops wood", "a saw cuts wood", "an axe splits wood"],
    ),
    "sword clashing": _t(
        ["swords clashing", "clanging blades", "a sword fight"], ["swords clash", "blades clang together"]
    ),
    "bow and arrow": _t(
        ["an arrow being shot", "a bow twanging", "arrows whooshing"],
        ["an arrow flies", "a bow is fired", "an arrow whooshes past"],
    ),
    "gunshot": _t(["a gunshot", "gunfire", "shots being fired"], ["a gun fires", "shots ring out", "a gun goes off"]),
    "explosion": _t(["an explosion", "a blast", "a loud boom"], ["something explodes", "a bomb explodes"]),
    "car engine": _t(
        ["a car engine", "an idling engine", "traffic", "a truck engine"],
        ["a car engine runs", "an engine revs", "a car drives by", "a truck pulls away"],
    ),
    "car horn": _t(["a car horn", "honking", "a horn beeping"], ["a car horn honks", "a car honks", "a horn beeps"]),
    "train": _t(
        ["a train", "a passing train", "a train whistle", "a locomotive"],
        ["a train passes", "a train rumbles by", "a train whistle blows"],
    ),
    "airplane": _t(
        ["an airplane", "a jet engine", "a plane taking off"],
        ["an airplane flies over", "a jet takes off", "a plane roars overhead"],
    ),
    "helicopter": _t(
        ["a helicopter", "helicopter rotors", "a hovering helicopter"], ["a helicopter flies by", "rotor blades whir"]
    ),
    "siren": _t(["a siren", "an emergency siren", "a wailing siren"], ["a siren wails", "a siren blares"]),
    "applause": _t(
        ["applause", "a crowd cheering", "clapping"],
        ["a crowd applauds", "people clap and cheer", "an audience claps"],
    ),
    "laughter": _t(["laughter", "someone laughing", "a laugh"], ["someone laughs", "a person is laughing"]),
    "screaming": _t(
        ["a scream", "someone screaming", "a cry of pain"],
        ["someone screams", "a person cries out", "someone yells in pain"],
    ),
    "coughing": _t(["coughing", "a cough", "someone coughing"], ["someone coughs", "a person is coughing"]),
    "snoring": _t(["snoring", "someone snoring"], ["someone snores", "a person is snoring"]),
    "heartbeat": _t(["a heartbeat", "a beating heart"], ["a heart beats", "a heart is beating"]),
    "speech": _t(
        ["speech", "a person speaking", "someone talking", "a voice"],
        ["a person speaks", "someone talks", "a voice speaks", "someone says a few words"],
        ["a person is speaking", "a voice saying a few words"],
    ),
    "telephone speech": _t(
        ["speech over a telephone", "a voice on the phone", "a recorded phone message"],
        ["a voice speaks over the telephone", "a recorded voice speaks"],
        ["a telephone voice prompt", "an automated phone message"],
    ),
    "music": _t(
        ["music", "a piece of music", "background music", "a melody"],
        ["music plays", "a song plays", "a melody is playing"],
        ["instrumental music", "a game soundtrack"],
    ),
    "musical instrument": _t(
        ["a musical instrument", "a note played on an instrument", "a drum hit"],
        ["an instrument plays a note", "a drum is hit", "a note sounds"],
    ),
}

CLASSES: list[str] = sorted(CLASS_TEXT)
"""Canonical class names (the ``labels`` of the manifest), speech and music included."""

SPEECH_MUSIC_CLASSES = frozenset({"speech", "telephone speech", "music", "musical instrument"})
"""Classes that are not sound events; the dataset caps how often they are drawn."""

BACKGROUND_CLASSES = frozenset({"rain", "wind", "flowing water", "ocean waves", "fire crackling", "insects buzzing"})
"""Classes that sound like an ambience; mixtures prefer them as the background."""


_SENTENCE_FRAMES = ("{n}", "the sound of {n}", "{n} can be heard", "{c}", "{c} nearby", "{c} in the distance")
_MIX_FRAMES = (
    "{ca} while {cb}",
    "{ca} as {cb}",
    "{na} with {nb} in the background",
    "{na} and {nb}",
    "{ca}, and {cb} in the background",
    "{ca} over the sound of {nb}",
)
_FAINT_FRAMES = ("{na} with {nb} in the background", "{ca} over the sound of {nb}", "{na} and {nb}")
_SEQUENCE_FRAMES = ("{ca}, then {cb}", "{na} followed by {nb}", "first {na}, then {nb}", "{ca}, and then {cb}")


@dataclass(frozen=True)
class Detail:
    """What a file name or written description adds to a class: a noun phrase and/or a clause."""

    noun: str | None = None
    clause: str | None = None


_FOOTSTEP_SURFACES = {
    "gravel": "gravel",
    "grass": "grass",
    "rock": "stone",
    "stone": "stone",
    "sand": "sand",
    "snow": "snow",
    "wood": "a wooden floor",
    "dirt": "dirt",
    "water": "water",
    "ice": "ice",
    "icy": "ice",
    "hard": "a hard floor",
}
_INSTRUMENTS = {
    "kick": "a kick drum",
    "snare": "a snare drum",
    "hihat": "a hi-hat",
    "hat": "a hi-hat",
    "cymbal": "a cymbal",
    "crash": "a crash cymbal",
    "ride": "a ride cymbal",
    "tom": "a tom drum",
    "clap": "a hand clap",
    "cowbell": "a cowbell",
    "tabla": "a tabla",
    "piano": "a piano",
    "guitar": "a guitar",
    "violin": "a violin",
    "harp": "a harp",
    "trumpet": "a trumpet",
    "xylofon": "a xylophone",
    "xylophone": "a xylophone",
    "bass": "a bass",
    "flute": "a flute",
    "saxophone": "a saxophone",
    "organ": "an organ",
    "bell": "a bell",
}
# Per class: (substrings of the file name, noun phrase, clause); the first match wins.
_NAME_DETAILS: dict[str, list[tuple[tuple[str, ...], str, str]]] = {
    "large animal roaring": [
        (("ele",), "an elephant trumpeting", "an elephant trumpets"),
        (("lion",), "a lion roaring", "a lion roars"),
        (("tiger",), "a tiger growling", "a tiger growls"),
        (("camel",), "a camel groaning", "a camel groans"),
        (("hippo",), "a hippo grunting", "a hippo grunts"),
    ],
    "birds chirping": [
        (("gull",), "seagulls crying", "a seagull cries"),
        (("owl",), "an owl hooting", "an owl hoots"),
        (("crow",), "a crow cawing", "a crow caws"),
        (("cuckoo",), "a cuckoo calling", "a cuckoo calls"),
        (("day_temperate", "day_tropical"), "birds singing in a forest", "birds sing in the forest"),
    ],
    "horse": [
        (("mstep", "canter", "gallop"), "a galloping horse", "a horse gallops"),
        (("neigh", "select", "idle"), "a horse neighing", "a horse neighs"),
    ],
    "chicken": [
        (("rooster",), "a rooster crowing", "a rooster crows"),
        (("turkey",), "a turkey gobbling", "a turkey gobbles"),
        (("chicken", "hen"), "chickens clucking", "a hen clucks"),
    ],
    "sheep bleating": [
        (("goat",), "a goat bleating", "a goat bleats"),
        (("lamb",), "a lamb bleating", "a lamb bleats"),
        (("sheep",), "a sheep bleating", "a sheep bleats"),
    ],
    "insects buzzing": [
        (("mosquito",), "a mosquito whining", "a mosquito whines"),
        (("hornet", "bee"), "bees buzzing", "a bee buzzes"),
        (("grasshopper", "cricket"), "crickets chirping", "a cricket chirps"),
    ],
    "hammering": [
        (("mine_stone", "pick", "con_stone"), "a pickaxe striking stone", "a pickaxe hits rock"),
        (("mine_metal", "anvil"), "a hammer striking metal", "a hammer strikes metal"),
    ],
    "wood chopping": [
        (("lumber", "chop"), "an axe chopping a tree", "someone chops a tree"),
        (("saw",), "wood being sawn", "a saw cuts wood"),
    ],
    "water splashing": [
        (("bubble", "buble"), "bubbles", "water bubbles"),
        (("drip", "droplet"), "dripping water", "water drips"),
        (("splash",), "a splash", "something splashes into water"),
    ],
    "flowing water": [
        (("waterfall",), "a waterfall", "a waterfall roars"),
        (("river",), "a river", "a river flows"),
    ],
    "door": [
        (("open",), "a door opening", "a door opens"),
        (("close",), "a door closing", "a door closes"),
        (("creak",), "a creaking door", "a door creaks"),
    ],
    "gunshot": [
        (("musket",), "a musket shot", "a musket fires"),
        (("shotgun",), "a shotgun blast", "a shotgun fires"),
        (("machinegun", "minigun", "mg"), "machine gun fire", "a machine gun fires"),
    ],
    "car engine": [
        (("skid",), "tires skidding", "tires screech"),
        (("trafic", "traffic", "city"), "traffic", "cars drive by"),
        (("rev", "accel"), "an engine revving", "an engine revs"),
    ],
    "bell ringing": [
        (("gong",), "a gong", "a gong is struck"),
        (("chime",), "wind chimes", "wind chimes tinkle"),
    ],
}

_LANGUAGES = {
    "be": "Belarusian", "bg": "Bulgarian", "ca": "Catalan", "cs": "Czech", "da": "Danish", "de": "German",
    "el": "Greek", "en": "English", "es": "Spanish", "fi": "Finnish", "fr": "French", "hu": "Hungarian",
    "it": "Italian", "ja": "Japanese", "ko": "Korean", "lt": "Lithuanian", "nb": "Norwegian", "nl": "Dutch",
    "nn": "Norwegian", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak",
    "sl": "Slovenian", "sv": "Swedish", "tr": "Turkish", "uk": "Ukrainian", "zh": "Chinese",
}  # fmt: skip
_LANGUAGE_RE = re.compile(r"(?:_desc)?_([a-z]{2})(?:_[A-Z]{2})?$|/voices/Default_([a-z]{2})/")


def _language(source_path: str) -> str | None:
    """The language a speech file is in, from tuxpaint's ``*_desc_es.ogg`` or hedgewars' ``Default_pl/``."""
    stem = source_path.rsplit(".", 1)[0]
    match = _LANGUAGE_RE.search(stem) or _LANGUAGE_RE.search(source_path)
    code = match and (match.group(1) or match.group(2))
    return _LANGUAGES.get(code) if code else None


def _words(source_path: str) -> list[str]:
    stem = source_path.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
    return [w for w in re.split(r"[^a-z]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", stem).lower()) if w]


def clip_detail(label: str, source_path: str, description: str | None = None) -> Detail | None:
    """Details that the file name (or OpenTTD's written description) adds to a clip of class ``label``.

    Examples: ``footsteps`` + ``fs_gravel3.ogg`` -> "footsteps on gravel"; ``speech`` + ``pigeon_desc_fr.ogg``
    -> "a person speaking French"; ``musical instrument`` +
    ``snare05.ogg`` -> "a snare drum"; an OpenTTD description "Steam train station departure" -> "a steam
    train station departure".
    """
    words = _words(source_path)
    if label == "speech":
        language = _language(source_path)
        if language:
            return Detail(f"a person speaking {language}", f"someone speaks {language}")
    if label == "footsteps":
        for word in words:
            if word in _FOOTSTEP_SURFACES:
                surface = _FOOTSTEP_SURFACES[word]
                return Detail(f"footsteps on {surface}", f"someone walks on {surface}")
    if label == "musical instrument":
        for word in words:
            for key, name in _INSTRUMENTS.items():
                if word == key or (len(key) > 4 and word.startswith(key)):
                    return Detail(name, f"{name} plays")
    stem = source_path.rsplit("/", 1)[-1].rsplit(":", 1)[-1].lower()
    for keys, noun, clause in _NAME_DETAILS.get(label, ()):
        if any(key in stem for key in keys):
            return Detail(noun, clause)
    if label == "wind":
        for word in words:
            if word.startswith("windleaves") or word == "leaves":
                return Detail("wind rustling leaves", "wind rustles the leaves")
    if description:
        text = description.split('"')[1] if description.count('"') >= 2 else description
        text = re.sub(r"^(toyland|tropical|lumber mill):\s*", "", text.strip(), flags=re.I)
        text = re.sub(r"\s*\(\d+\)$", "", text).strip().lower()
        text = re.sub(r"\btake off\b", "taking off", text)
        if " " in text and not text.startswith("unused"):
            article = "an" if text[0] in "aeiou" else "a"
            return Detail(f"{article} {text}", None)
    return None


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _text(label: str) -> ClassText:
    try:
        return CLASS_TEXT[label]
    except KeyError:
        raise KeyError(f"unknown class {label!r}; known: {', '.join(CLASSES)}") from None


def class_prompt(label: str) -> str:
    """The zero-shot prompt for a class: ``"the sound of <first noun phrase>"`` (e.g. "the sound of rain")."""
    return f"the sound of {_text(label).nouns[0]}"


def captions_for(label: str, rng: np.random.Generator, detail: Detail | None = None) -> str:
    """One random natural caption for a single-class clip (uses ``detail`` half of the time when given)."""
    text = _text(label)
    if detail is not None and rng.random() < 0.5:
        noun = detail.noun or _pick(rng, text.nouns)
        clause = detail.clause or noun
        frame = _pick(rng, _SENTENCE_FRAMES)
        return frame.format(n=noun, c=clause)
    if text.sentences and rng.random() < 0.25:
        return _pick(rng, text.sentences)
    return _pick(rng, _SENTENCE_FRAMES).format(n=_pick(rng, text.nouns), c=_pick(rng, text.clauses))


def all_captions(label: str, detail: Detail | None = None) -> list[str]:
    """The fixed caption list written into the manifest for a clip (detail first, then class phrasings)."""
    text = _text(label)
    out: list[str] = []
    if detail is not None:
        out += [d for d in (detail.noun, detail.clause) if d]
    out += [text.nouns[0], text.clauses[0], class_prompt(label), *text.sentences[:1]]
    return list(dict.fromkeys(out))


def _faint(noun: str) -> str:
    """ "a gusty wind" -> "a faint gusty wind", "rain" -> "faint rain"."""
    for article in ("a ", "an ", "the "):
        if noun.startswith(article):
            return f"{'a' if article != 'the ' else 'the'} faint {noun[len(article) :]}"
    return f"faint {noun}"


def mixture_caption(
    label_a: str,
    label_b: str,
    rng: np.random.Generator,
    detail_a: Detail | None = None,
    detail_b: Detail | None = None,
    snr_db: float | None = None,
    sequential: bool = False,
) -> str:
    """A caption for ``label_a`` (the foreground event) mixed over ``label_b`` (the background).

    e.g. "a dog barks while rain falls", "footsteps on gravel with wind in the background". With
    ``snr_db`` >= 10 the background may be called faint ("a dog barks over the sound of faint rain"); with
    ``sequential`` the two sounds follow each other ("a dog barks, then thunder rumbles").
    """
    ta, tb = _text(label_a), _text(label_b)
    na = detail_a.noun if detail_a and detail_a.noun and rng.random() < 0.5 else _pick(rng, ta.nouns)
    ca = detail_a.clause if detail_a and detail_a.clause and rng.random() < 0.5 else _pick(rng, ta.clauses)
    nb = detail_b.noun if detail_b and detail_b.noun and rng.random() < 0.5 else _pick(rng, tb.nouns)
    cb = detail_b.clause if detail_b and detail_b.clause and rng.random() < 0.5 else _pick(rng, tb.clauses)
    if sequential:
        return _pick(rng, _SEQUENCE_FRAMES).format(na=na, ca=ca, nb=nb, cb=cb)
    if snr_db is not None and snr_db >= 10.0 and rng.random() < 0.5:
        return _pick(rng, _FAINT_FRAMES).format(na=na, ca=ca, nb=_faint(nb), cb=cb)
    return _pick(rng, _MIX_FRAMES).format(na=na, ca=ca, nb=nb, cb=cb)
