"""Every prompt table of tta, in one place: what training, evaluation and the benchmarks prompt the model with.

* :data:`DEFAULT_EVAL_PROMPTS`: what ``tta train ldm`` generates at each evaluation (TensorBoard, ``gen_top1``).
* :data:`PARAPHRASE_PROMPTS`: two rewordings of each corpus class, unlike any training caption; the CLAP
  stage's paraphrase check during training.
* :data:`PARAPHRASES`: two more rewordings of each class, unlike both the captions and
  :data:`PARAPHRASE_PROMPTS`: the held-out paraphrase-robustness test and the report prompts
  (:func:`tta.evaluation.generation.single_source_prompts`: the first of each).
* :data:`TWO_SOURCE_PROMPTS` / :data:`TUNING_TWO_SOURCE_PROMPTS`: prompts naming two sounds, for reporting and
  for choosing settings respectively (never the same pairs or words).

``demo/example_prompts.txt`` holds the demo's and the benchmarks' example prompts (a text file, one a line).
"""

from __future__ import annotations

DEFAULT_EVAL_PROMPTS = (
    "a dog barking",
    "rain falling",
    "a cow mooing",
    "footsteps on gravel",
    "a man giving a speech",
    "birds chirping",
    "an explosion",
    "a dog barking in the rain",
)

PARAPHRASE_PROMPTS: dict[str, list[str]] = {
    "dog barking": ["a canine yapping", "woof woof from a hound"],
    "cat meowing": ["a kitty mewing", "a feline calling out"],
    "birds chirping": ["songbirds tweeting at dawn", "warbling of small birds"],
    "cow mooing": ["a bovine lowing in a field", "cattle calling"],
    "sheep bleating": ["a lamb baaing", "a flock calling baa"],
    "horse": ["a stallion whinnying", "hoofbeats of a steed"],
    "chicken": ["poultry clucking in a coop", "a cockerel calling at sunrise"],
    "pig grunting": ["a hog snorting", "swine snuffling in mud"],
    "duck quacking": ["waterfowl quacking on a pond", "a mallard calling"],
    "large animal roaring": ["a big cat's roar", "a pachyderm's trumpet call"],
    "wolf howling": ["a lone wolf baying at the moon", "a canine howl in the wild"],
    "frogs croaking": ["amphibians ribbiting by a pond", "toads calling at night"],
    "insects buzzing": ["the drone of a bumblebee", "mosquitoes whining"],
    "rain": ["a downpour drumming on the ground", "drizzle pattering"],
    "wind": ["a breeze gusting", "a gale whistling"],
    "thunder": ["a storm rumbling overhead", "a booming thunderstorm"],
    "flowing water": ["a creek gurgling", "a brook burbling over stones"],
    "ocean waves": ["surf rolling onto a beach", "breakers on the coast"],
    "water splashing": ["something plopping into a pool", "liquid sloshing"],
    "fire crackling": ["a campfire popping", "logs burning in a fireplace"],
    "footsteps": ["a person strolling", "somebody's shoes stepping"],
    "door": ["a hinge creaking as a door swings", "a door being shut"],
    "typing": ["fingers tapping computer keys", "clacking of a keyboard"],
    "clock ticking": ["the tick-tock of a timepiece", "a wall clock counting seconds"],
    "bell ringing": ["chimes tolling", "a church bell pealing"],
    "telephone ringing": ["a phone's ringtone", "an old telephone trilling"],
    "glass breaking": ["a window smashing", "a bottle shattering"],
    "hammering": ["a blacksmith striking an anvil", "metal being pounded"],
    "wood chopping": ["a lumberjack splitting logs", "a handsaw cutting timber"],
    "sword clashing": ["steel blades ringing in a duel", "fencing with metal swords"],
    "bow and arrow": ["an archer loosing an arrow", "a bowstring snapping"],
    "gunshot": ["a rifle being discharged", "pistol shots"],
    "explosion": ["a detonation", "a bomb going off"],
    "car engine": ["a motor vehicle accelerating", "an automobile idling"],
    "car horn": ["a vehicle tooting", "a motorist beeping"],
    "train": ["a railway locomotive passing", "a steam engine chugging"],
    "airplane": ["an aircraft overhead", "a jetliner departing"],
    "helicopter": ["a chopper hovering", "the whirring of a rotorcraft"],
    "siren": ["an ambulance alarm", "a police car wailing"],
    "applause": ["an audience giving an ovation", "spectators clapping hands"],
    "laughter": ["giggling and chuckling", "a person cracking up"],
    "screaming": ["a shriek of terror", "someone wailing in agony"],
    "coughing": ["a person clearing their throat", "hacking coughs"],
    "snoring": ["a sleeper breathing noisily", "someone sawing logs in their sleep"],
    "heartbeat": ["a pulse thumping", "the lub-dub of a heart"],
    "speech": ["somebody saying something", "a human voice conversing"],
    "telephone speech": ["a narrow-band phone voice", "an answering machine message"],
    "music": ["a tune being performed", "a soundtrack playing"],
    "musical instrument": ["a single tone from an instrument", "a percussion sample"],
}

# Our own descriptions of each class, worded unlike any training caption (tta.data.captions templates) and
# unlike PARAPHRASE_PROMPTS, for the paraphrase-robustness test.
PARAPHRASES: dict[str, tuple[str, ...]] = {
    "dog barking": ("a pet dog giving loud barks", "the yelping of a hound"),
    "cat meowing": ("a house cat crying for food", "mewling from a kitten"),
    "birds chirping": ("little birds twittering in a garden", "a chorus of songbirds"),
    "cow mooing": ("a cow in a barn calling out", "the low moo of cattle on a farm"),
    "sheep bleating": ("a flock of sheep calling", "the baa of a lamb"),
    "horse": ("a pony snorting and neighing", "clip-clop of a horse walking"),
    "chicken": ("hens in a farmyard", "a cock-a-doodle-doo"),
    "pig grunting": ("oinks from a pigsty", "a hog grunting loudly"),
    "duck quacking": ("ducks calling on a lake", "a quack from a duck"),
    "large animal roaring": ("the roar of a wild beast", "a tiger snarling"),
    "wolf howling": ("wolves calling in the night", "a long howl from a wolf pack"),
    "frogs croaking": ("a bullfrog calling from a marsh", "a pond full of frogs at night"),
    "insects buzzing": ("a swarm of flies", "bees humming around a hive"),
    "rain": ("raindrops hitting a window", "a rainy day outside"),
    "wind": ("air rushing past", "a windy storm blowing outdoors"),
    "thunder": ("a thunderstorm in the distance", "a crack of thunder during a storm"),
    "flowing water": ("a river rushing over rocks", "water streaming down a creek"),
    "ocean waves": ("the sea hitting the beach", "waves rolling in at the seaside"),
    "water splashing": ("a splash in a bathtub", "water being poured and sloshed"),
    "fire crackling": ("a bonfire burning", "the popping of burning logs"),
    "footsteps": ("a person walking by", "shoes stepping on the floor"),
    "door": ("a door being slammed shut", "someone opening a wooden door"),
    "typing": ("someone writing on a computer keyboard", "tapping on keys of a typewriter"),
    "clock ticking": ("the tick tock of a clock", "a watch ticking"),
    "bell ringing": ("church bells ringing out", "a small bell tinkling"),
    "telephone ringing": ("an incoming call ringing", "a landline phone ringing"),
    "glass breaking": ("a glass smashing on the floor", "a window pane cracking into pieces"),
    "hammering": ("someone banging with a hammer", "metal being struck repeatedly"),
    "wood chopping": ("an axe hitting a log", "sawing through a plank of wood"),
    "sword clashing": ("two knights fighting with swords", "metal weapons clanging in battle"),
    "bow and arrow": ("an archer shooting", "the twang of a bowstring and a flying arrow"),
    "gunshot": ("a pistol firing", "bullets being shot from a gun"),
    "explosion": ("a huge blast going off", "a bomb detonating with a boom"),
    "car engine": ("a car motor running", "a vehicle driving past on the road"),
    "car horn": ("a driver honking the horn", "a car beeping its horn in traffic"),
    "train": ("a railway train going past", "a locomotive on the tracks"),
    "airplane": ("a jet flying overhead", "an aeroplane taking off from a runway"),
    "helicopter": ("a helicopter flying overhead", "the chopping of helicopter blades"),
    "siren": ("a police siren", "an ambulance siren going by"),
    "applause": ("an audience clapping their hands", "a crowd giving applause"),
    "laughter": ("people laughing out loud", "a giggle"),
    "screaming": ("a person shrieking", "a loud yell of fear"),
    "coughing": ("a person with a cough", "someone coughing repeatedly"),
    "snoring": ("a person snoring in bed", "loud snores while sleeping"),
    "heartbeat": ("the thump of a heart", "a pulse beating steadily"),
    "speech": ("a man talking", "a voice saying some words"),
    "telephone speech": ("a voice message heard through a phone", "an automated voice on a phone line"),
    "music": ("a song with instruments", "a musical track playing"),
    "musical instrument": ("one note played by an instrument", "a single strike on a drum"),
}

# (prompt, class a, class b): two sounds at once, in words no training caption uses. The first five are the
# class pairs held out of the CLAP's and the LDM's training mixtures (tta.data.splits.HELD_OUT_PAIRS).
TWO_SOURCE_PROMPTS: tuple[tuple[str, str, str], ...] = (
    ("a dog barking in the rain", "dog barking", "rain"),
    ("footsteps crunching along while the wind blows", "footsteps", "wind"),
    ("songbirds above a babbling brook", "birds chirping", "flowing water"),
    ("a car horn honking in a downpour", "car horn", "rain"),
    ("a man talking beside crashing surf", "speech", "ocean waves"),
    ("a cow mooing while small birds sing", "cow mooing", "birds chirping"),
    ("thunder rumbling over steady rain", "thunder", "rain"),
    ("a crowd clapping and laughing", "applause", "laughter"),
    ("a horse neighing next to a crackling campfire", "horse", "fire crackling"),
    ("sheep calling on a windy hill", "sheep bleating", "wind"),
)

# Two-source prompts for choosing settings (``benchmarks/eval_ldm.py --prompt-set tuning``): other pairs and
# other words than TWO_SOURCE_PROMPTS, so reported figures are not the ones settings were picked on.
TUNING_TWO_SOURCE_PROMPTS: tuple[tuple[str, str, str], ...] = (
    ("a cat meowing while thunder rolls", "cat meowing", "thunder"),
    ("church bells ringing over birdsong", "bell ringing", "birds chirping"),
    ("a car engine idling in the rain", "car engine", "rain"),
    ("people applauding as a siren goes by", "applause", "siren"),
    ("a clock ticking beside a crackling fire", "clock ticking", "fire crackling"),
    ("a helicopter flying over the sea waves", "helicopter", "ocean waves"),
    ("a man speaking while someone types on a keyboard", "speech", "typing"),
    ("frogs croaking next to a running stream", "frogs croaking", "flowing water"),
    ("hammering with music playing in the background", "hammering", "music"),
    ("a chicken clucking in strong wind", "chicken", "wind"),
)
