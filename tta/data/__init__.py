"""The training corpus: real, freely licensed recordings from Debian packages, and examples made from them.

``tta data build`` fetches the packages listed in ``sources.tsv`` with ``apt-get download``, pulls the
recordings out (plain files, 0ad's ``public.zip``, gcompris' Qt ``.rcc``, openttd's ``.cat``, a SoundFont),
de-duplicates them, converts them to 16 kHz mono FLAC and writes ``manifest.jsonl`` under
``tta.paths.cache_dir() / "corpus"``. The packages ``flightgear-data-base`` and ``widelands-data`` are
reserved for evaluation and never used.

Modules, in data-flow order:

* :mod:`~tta.data.sources`: the sources list; fetching and unpacking ``.deb`` files.
* :mod:`~tta.data.containers`: ``.rcc``, ``.cat`` and ``.sf2`` readers (and writers for test fixtures).
* :mod:`~tta.data.resolve`: the bytes of one listed recording inside an unpacked package.
* :mod:`~tta.data.convert`: decode -> 16 kHz mono -> FLAC, with the reason when a clip is unusable.
* :mod:`~tta.data.corpus`: the resumable build and the manifest.
* :mod:`~tta.data.splits`: train/valid/test by source recording; class pairs held out of mixtures.
* :mod:`~tta.data.summary`: counts, ``summary.json`` and ``LICENSES.md``.
* :mod:`~tta.data.captions`: class names, captions, mixture captions, held-out paraphrases.
* :mod:`~tta.data.augment` and :mod:`~tta.data.dataset`: ``CorpusDataset``, examples made on the fly.
"""
