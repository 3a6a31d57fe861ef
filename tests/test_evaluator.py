"""Candidate scoring: sliced equals masked equals physical removal, with adaptive BatchNorm."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from smoea.data import normalize
from smoea.evaluator import kept_norm_stats, make_evaluator, norm_layers, recalibrate
from smoea.search import Genome
from smoea.structure import Structure, split_at


def _setup(trained_tiny, layers=(2, 3), calibration=True, sliced=None):
    model = copy.deepcopy(trained_tiny[0])
    splits = trained_tiny[1]
    s = Structure(model, torch.zeros(1, 3, 16, 16))
    genome = Genome(list(layers), [s.layers[i].units for i in layers], [1] * len(layers))
    calib = splits.train.subset(torch.arange(64)) if calibration else None
    evaluator = make_evaluator(
        s, genome, splits.val, splits.mean, splits.std, "loss", 25, calib, sliced
    )
    return s, genome, evaluator, splits


def _candidates(genome, n=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, genome.n_var)) < 0.6
    X[0] = True
    X[:, 0] = True  # every layer keeps a unit
    o = genome.offsets
    for j in range(len(genome.units)):
        X[:, o[j]] = True
    return X


def _norm_state(model):
    return [
        (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
        for m in norm_layers(model)
    ]


@pytest.mark.parametrize("calibration", [False, True])
@pytest.mark.parametrize("layers", [(0, 1), (2, 3), (9, 10, 11, 12)])
def test_sliced_scores_equal_masked_scores(trained_tiny, calibration, layers):
    _, genome, sliced, _ = _setup(trained_tiny, layers, calibration, sliced=True)
    _, _, masked, _ = _setup(trained_tiny, layers, calibration, sliced=False)
    assert sliced.mode == "sliced" and masked.mode == "masked"
    X = _candidates(genome)
    assert np.allclose(sliced(X), masked(X), atol=1e-4)


def test_calibrated_score_equals_physical_removal_with_recalibrated_statistics(trained_tiny):
    s, genome, evaluator, splits = _setup(trained_tiny, (2, 3), calibration=True)
    x = _candidates(genome, n=3, seed=1)[2]
    score = evaluator(x[None])[0]
    pruned = copy.deepcopy(trained_tiny[0])
    ps = Structure(pruned, torch.zeros(1, 3, 16, 16))
    ps.remove(genome.split(x))
    prefix, suffix = split_at(pruned, ps.layers[2].conv)
    with torch.no_grad():
        calib = prefix(normalize(splits.train.x[:64], splits.mean, splits.std))
        recalibrate(suffix, [calib[i : i + 25] for i in range(0, 64, 25)])
        logits = pruned(normalize(splits.val.x, splits.mean, splits.std))
    assert score == pytest.approx(F.cross_entropy(logits, splits.val.y).item(), abs=1e-4)


@pytest.mark.parametrize("sliced", [True, False])
def test_calibration_changes_scores_and_leaves_the_model_statistics_alone(trained_tiny, sliced):
    s, genome, calibrated, _ = _setup(trained_tiny, (9, 10, 11, 12), True, sliced)
    _, _, plain, _ = _setup(trained_tiny, (9, 10, 11, 12), False, sliced)
    before = _norm_state(s.model)
    X = _candidates(genome, n=4, seed=2)
    a, b = calibrated(X), plain(X)
    assert not np.allclose(a[1:], b[1:])  # pruned candidates are scored with new statistics
    after = _norm_state(s.model)
    for (m0, v0, n0), (m1, v1, n1) in zip(before, after):
        assert torch.equal(m0, m1) and torch.equal(v0, v1) and torch.equal(n0, n1)


def test_kept_norm_stats_restores_after_an_error(trained_tiny):
    model = copy.deepcopy(trained_tiny[0])
    before = _norm_state(model)
    with pytest.raises(RuntimeError), kept_norm_stats(model):
        recalibrate(model, [torch.randn(8, 3, 16, 16)])
        raise RuntimeError("stop")
    for (m0, v0, _), (m1, v1, _) in zip(before, _norm_state(model)):
        assert torch.equal(m0, m1) and torch.equal(v0, v1)


def test_keep_all_without_calibration_scores_the_model_itself(trained_tiny):
    _, genome, evaluator, splits = _setup(trained_tiny, (2, 3), calibration=False)
    model = trained_tiny[0]
    with torch.no_grad():
        logits = model(normalize(splits.val.x, splits.mean, splits.std))
    expected = F.cross_entropy(logits, splits.val.y).item()
    assert evaluator(np.ones((1, genome.n_var), bool))[0] == pytest.approx(expected, abs=1e-4)
