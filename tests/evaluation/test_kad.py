"""KAD: parity with kadtk 1.1.0 (random sets, and two backends' embeddings of the same clips), unbiasedness, the
per-clip kernel distance, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.evaluation.conftest import clip
from tests.evaluation.reference_tools import kadtk_functions
from tta.errors import InputError
from tta.evaluation.frechet import frechet_distance
from tta.evaluation.kad import (
    kernel,
    kernel_audio_distance,
    median_pairwise_distance,
    per_clip_kernel_distance,
    squared_distances,
)

pytestmark = pytest.mark.filterwarnings("ignore:To copy construct from a tensor:UserWarning")  # inside kadtk


def _kadtk(evaluated, reference, kernel_name: str = "gaussian", bandwidth=None) -> float:
    """kadtk's ``KernelAudioDistance.score(baseline=reference, eval=evaluated)``, in float64 (kadtk's own option)."""
    fn = kadtk_functions().calc_kernel_audio_distance
    x, y = torch.tensor(np.asarray(reference)), torch.tensor(np.asarray(evaluated))
    return float(fn(x, y, (None, None), "cpu", bandwidth=bandwidth, kernel=kernel_name, precision=torch.float64))


def _sets(n: int, m: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * 1.1 + 0.05, rng.normal(size=(m, d))


@pytest.mark.parametrize("shape", [(50, 60, 512), (200, 150, 128), (12, 9, 64), (101, 80, 16)])
@pytest.mark.parametrize("kernel_name", ["gaussian", "iq", "imq"])
def test_matches_kadtk(shape, kernel_name):
    x, y = _sets(*shape)
    assert kernel_audio_distance(x, y, kernel_name=kernel_name) == pytest.approx(_kadtk(x, y, kernel_name), rel=1e-6)


def test_bandwidth_is_kadtks_median_of_the_evaluated_set():
    x, y = _sets(10, 7, 8)  # 45 pairs: odd; 21 pairs for y
    reference = kadtk_functions().median_pairwise_distance
    for sample in (x, y, x[:8]):  # 28 pairs: even, the lower middle value
        assert median_pairwise_distance(sample) == pytest.approx(reference(sample), rel=1e-6)
    h = median_pairwise_distance(y)
    assert kernel_audio_distance(x, y, bandwidth="reference") == pytest.approx(_kadtk(x, y, bandwidth=h), rel=1e-6)
    assert kernel_audio_distance(x, y, bandwidth=2.5) == pytest.approx(_kadtk(x, y, bandwidth=2.5), rel=1e-6)


def _clip_embeddings(backend, sr: int, n: int, seed: int) -> np.ndarray:
    return np.concatenate([backend.features(clip(i % 6, seed + i, sr=sr)).frames for i in range(n)])


def test_matches_kadtk_on_two_backends_embeddings(tiny_clap_backend):
    """The same clips through the CLAP backend (clip-level) and the aisfx network (block frames)."""
    from tta.evaluation.backends.aisfx import AisfxBackend, AisfxNet

    torch.manual_seed(0)
    aisfx = AisfxBackend(model=AisfxNet(width=8).eval(), probe=False)
    for backend, sr in ((tiny_clap_backend, 16000), (aisfx, 44100)):
        gen, ref = _clip_embeddings(backend, sr, 5, seed=0), _clip_embeddings(backend, sr, 6, seed=100)
        assert gen.shape[0] >= 5 and ref.shape[0] >= 6
        ours = kernel_audio_distance(gen, ref)
        assert ours == pytest.approx(_kadtk(gen, ref), rel=1e-6)
        assert ours != pytest.approx(0.0, abs=1e-9)


def test_unbiased_where_fad_is_not():
    """Two samples of one distribution: KAD averages ~0 at any size, FAD grows as the sample shrinks."""
    rng = np.random.default_rng(0)
    kads, fads = [], []
    for _ in range(40):
        x, y = rng.normal(size=(20, 16)), rng.normal(size=(20, 16))
        kads.append(kernel_audio_distance(x, y, bandwidth=5.0))
        fads.append(frechet_distance(x, y))
    kads = np.array(kads)
    assert abs(kads.mean()) < 3 * kads.std() / np.sqrt(len(kads))  # zero within three standard errors
    assert (kads < 0).any() and min(fads) > 1.0  # FAD's small-sample bias: always well above 0


def test_per_clip_distance_formula_and_outlier():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(30, 8))
    clips = [rng.normal(size=(1, 8)), rng.normal(size=(4, 8)), rng.normal(size=(1, 8)) + 6.0]
    h = median_pairwise_distance(ref)
    scores = per_clip_kernel_distance(clips, ref, h)
    x, y = torch.tensor(clips[0]), torch.tensor(ref)
    k_yy = kernel(squared_distances(y, y), h)
    off = (k_yy.sum() - k_yy.diagonal().sum()) / (30 * 29)
    assert scores[0] == pytest.approx(float(100 * (1 + off - 2 * kernel(squared_distances(x, y), h).mean())))
    assert scores[2] == max(scores) and scores[2] > 2 * scores[0]  # the far clip stands out


def test_bad_input():
    x, y = _sets(5, 5, 4)
    with pytest.raises(InputError, match="sizes differ"):
        kernel_audio_distance(x, y[:, :3])
    with pytest.raises(InputError, match="N >= 2"):
        kernel_audio_distance(x[:1], y)
    with pytest.raises(InputError, match="NaN"):
        kernel_audio_distance(np.full((3, 4), np.nan), y)
    with pytest.raises(InputError, match="bandwidth"):
        kernel_audio_distance(x, y, bandwidth=-1.0)
    with pytest.raises(InputError, match="unknown KAD kernel"):
        kernel_audio_distance(x, y, kernel_name="laplace")
