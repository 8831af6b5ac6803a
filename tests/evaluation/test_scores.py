"""KL, Inception Score (parity with audioldm_eval) and the CLAP score conventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.evaluation.reference_tools import audioldm_eval_metric
from tta.errors import InputError
from tta.evaluation import clap_cosines, clap_scores, inception_score, kl_divergence


def _logits(n: int = 24, c: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, c)) * 3, rng.normal(size=(n, c)) * 3


def test_kl_matches_audioldm_eval():
    gen, ref = _logits()
    kl = audioldm_eval_metric("kl")
    names = [f"clip_{i}.wav" for i in range(len(gen))]
    theirs, _, _ = kl.calculate_kl(
        {"logits": torch.from_numpy(gen), "file_path_": names},
        {"logits": torch.from_numpy(ref), "file_path_": names},
        "logits",
        same_name=True,
    )
    assert kl_divergence(gen, ref, "softmax") == pytest.approx(theirs["kullback_leibler_divergence_softmax"], rel=1e-6)
    assert kl_divergence(gen, ref, "sigmoid") == pytest.approx(theirs["kullback_leibler_divergence_sigmoid"], rel=1e-6)


def test_kl_known_answers():
    gen, _ = _logits()
    assert kl_divergence(gen, gen, "softmax") == pytest.approx(0.0, abs=1e-4)  # only the 1e-6 epsilon remains
    # two classes, p = (1/2, 1/2) vs q = (e/(1+e), 1/(1+e)): KL(q || p) in closed form
    q = np.array([np.e / (1 + np.e), 1 / (1 + np.e)])
    expected = float(np.sum(q * np.log(q / (0.5 + 1e-6))))
    assert kl_divergence(np.zeros((1, 2)), np.array([[1.0, 0.0]]), "softmax") == pytest.approx(expected, rel=1e-9)
    with pytest.raises(InputError, match="one shape"):
        kl_divergence(gen, gen[:3], "softmax")
    with pytest.raises(InputError, match="activation"):
        kl_divergence(gen, gen, "relu")


@pytest.mark.parametrize("n, splits", [(40, 10), (7, 10), (30, 1)])
def test_inception_score_matches_audioldm_eval(n, splits):
    logits, _ = _logits(n=n, c=12, seed=n)
    theirs = audioldm_eval_metric("isc").calculate_isc(
        {"logits": torch.from_numpy(logits)}, "logits", rng_seed=2020, samples_shuffle=True, splits=min(splits, n)
    )
    mean, std = inception_score(logits, splits=splits, shuffle_seed=2020)
    assert mean == pytest.approx(theirs["inception_score_mean"], rel=1e-9)
    assert std == pytest.approx(theirs["inception_score_std"], rel=1e-6, abs=1e-12)


def test_inception_score_bounds():
    """1 when every clip gets the same prediction; C when each of C classes is predicted with certainty once."""
    c = 8
    assert inception_score(np.zeros((16, c)), splits=1)[0] == pytest.approx(1.0)
    confident = np.eye(c) * 100.0
    assert inception_score(confident, splits=1)[0] == pytest.approx(c, rel=1e-6)


def test_clap_score_conventions():
    rng = np.random.default_rng(0)
    text, audio = rng.normal(size=(5, 16)), rng.normal(size=(5, 16))
    cos = clap_cosines(text, audio)
    by_hand = [t @ a / np.linalg.norm(t) / np.linalg.norm(a) for t, a in zip(text, audio)]
    np.testing.assert_allclose(cos, by_hand, rtol=1e-12)
    scores = clap_scores(cos)
    assert scores["clap_score"] == pytest.approx(np.mean(by_hand))
    assert scores["clap_score_x100"] == pytest.approx(100 * np.mean(by_hand))
    assert scores["clap_score_w2.5"] == pytest.approx(np.mean([2.5 * max(0.0, c) for c in by_hand]))
    assert clap_scores(clap_cosines(text, text))["clap_score"] == pytest.approx(1.0)
    with pytest.raises(InputError):
        clap_cosines(text, audio[:3])
