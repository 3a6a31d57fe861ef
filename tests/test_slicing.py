"""Sliced scoring on every family: residual, depthwise, grouped, concatenating, squeeze-excitation.

Sliced scores equal masked scores (calibration on and off), masking equals physical removal for
grouped convolutions (units are whole places in every group), and a fixed seed chooses the same
candidate whichever way it is scored.
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision

from smoea.data import TensorData
from smoea.errors import SmoeaError
from smoea.evaluator import make_evaluator
from smoea.models import build_model, make_arch
from smoea.search import Genome, GroupProblem, run_nsga2
from smoea.structure import Structure, default_groups


class TinyGrouped(nn.Module):
    """A ResNeXt-like bottleneck: 1x1, grouped 3x3 (4 groups), 1x1, with a residual."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.a = nn.Sequential(nn.Conv2d(8, 16, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=4), nn.BatchNorm2d(16))
        self.c = nn.Sequential(nn.ReLU(), nn.Conv2d(16, 8, 1), nn.BatchNorm2d(8))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))

    def forward(self, x):
        x = self.stem(x)
        return self.head(torch.relu(x + self.c(self.b(self.a(x)))))


class TinyConcat(nn.Module):
    """Two branches concatenated along channels, then a convolution over both."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.one = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.two = nn.Sequential(nn.Conv2d(6, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.mix = nn.Sequential(nn.Conv2d(10, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))

    def forward(self, x):
        y = self.one(x)
        return self.head(self.mix(torch.cat([y, self.two(y)], 1)))


def _model(name: str) -> tuple[nn.Module, int]:
    if name in ("resnet20", "mobilenetv2"):
        return build_model(make_arch(name, 0.25, 3, 3, 16)), 16
    if name == "mobilenet_v3_small":
        return torchvision.models.mobilenet_v3_small(num_classes=3), 32
    return {"grouped": TinyGrouped, "concat": TinyConcat}[name](), 16


def _randomise_norms(model: nn.Module) -> None:
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
            m.weight.data.copy_(1 + 0.2 * torch.randn(m.num_features, generator=gen))
            m.bias.data.copy_(0.2 * torch.randn(m.num_features, generator=gen))
        elif isinstance(m, nn.Linear):  # logits far enough from zero to tell candidates apart
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=gen))


def _setup(name: str):
    torch.manual_seed(0)
    model, size = _model(name)
    model.eval()
    _randomise_norms(model)
    s = Structure(model, torch.zeros(1, 3, size, size))
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (40, 3, size, size), generator=gen, dtype=torch.uint8)
    data = TensorData(x, torch.randint(0, 3, (40,), generator=gen))
    return model, s, data


def _evaluator(s, layers, data, calibration: bool, sliced):
    genome = Genome(layers, [s.layers[i].units for i in layers], [1] * len(layers))
    calib = data if calibration else None
    mean, std = [0.5] * 3, [0.25] * 3
    return make_evaluator(s, genome, data, mean, std, "loss", 20, calib, sliced)


def _candidates(genome: Genome, n: int = 5) -> np.ndarray:
    X = np.random.default_rng(0).random((n, genome.n_var)) < 0.5
    X[0] = True
    for start in genome.offsets[:-1]:
        X[:, start] = True  # every layer keeps a unit
    return X


FAMILIES = ["resnet20", "mobilenetv2", "grouped", "concat", "mobilenet_v3_small"]


@pytest.mark.slow
@pytest.mark.parametrize("calibration", [True, False])
@pytest.mark.parametrize("name", FAMILIES)
def test_sliced_scores_equal_masked_scores_on_every_family(name, calibration):
    _, s, data = _setup(name)
    for layers in default_groups(s)[:3]:
        sliced = _evaluator(s, layers, data, calibration, None)
        masked = _evaluator(s, layers, data, calibration, False)
        assert sliced.mode in ("sliced", "sliced-graph") and masked.mode == "masked"
        X = _candidates(sliced.genome)
        scores = sliced(X)
        assert np.allclose(scores, masked(X), atol=1e-4)
        assert len(set(np.round(scores, 6))) > 1  # the candidates differ: the check can fail


def test_a_grouped_convolution_loses_the_same_places_in_every_group():
    model, s, data = _setup("grouped")
    layer = next(layer for layer in s.layers if layer.per_unit > 1)
    assert (layer.per_unit, layer.units) == (4, 4)  # 16 channels feed a 4-group convolution
    keep = np.array([True, False, True, False])
    x = torch.randn(6, 3, 16, 16)
    with torch.no_grad(), s.masking():
        s.set_masks({layer.index: keep})
        masked = model(x)
    pruned = copy.deepcopy(model)
    ps = Structure(pruned, s.example)
    ps.remove({layer.index: keep})
    assert pruned.b[0].groups == 4 and pruned.b[0].in_channels == 8
    with torch.no_grad():
        assert torch.allclose(pruned(x), masked, atol=1e-5)
    kept = s.units_per_layer.copy()
    kept[layer.index] = 2
    params = sum(p.numel() for p in pruned.parameters())
    assert s.count(kept, "params")[0] == params


def test_a_fixed_seed_chooses_the_same_candidate_sliced_or_masked():
    _, s, data = _setup("resnet20")
    layers = default_groups(s)[1]
    chosen = []
    for sliced in (None, False):
        evaluator = _evaluator(s, layers, data, True, sliced)
        original = s.count(s.units_per_layer, "params")[0]
        problem = GroupProblem(evaluator, s.units_per_layer, original, 0.8)
        l1 = [s.l1_norms(i) for i in layers]
        result = run_nsga2(problem, l1, 8, 3, seed=3, genome_kind="counts")
        chosen.append(result.X[np.argmin(result.F[:, 0])])
    assert np.array_equal(chosen[0], chosen[1])


def test_squeeze_excitation_layers_join_their_stage():
    _, s, _ = _setup("mobilenet_v3_small")
    groups = default_groups(s)
    # 32 px: stages at 16, 8, 4, 2 and 1 pixels; a 1x1 squeeze layer inside a stage joins it
    assert [s.layers[g[0]].spatial for g in groups] == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    assert groups[0] == [0, 1] and s.layers[1].spatial == (1, 1)
    assert sorted(i for g in groups for i in g) == list(range(len(s.layers)))


class TinyDense(nn.Module):
    """DenseNet's pre-activation: a BatchNorm over a concatenation of two layers' channels."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.one = nn.Conv2d(3, 6, 3, padding=1)
        self.two = nn.Sequential(nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 4, 3, padding=1))
        self.mix = nn.Sequential(nn.BatchNorm2d(10), nn.ReLU(), nn.Conv2d(10, 8, 3, padding=1))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))

    def forward(self, x):
        y = self.one(x)
        return self.head(self.mix(torch.cat([y, self.two(y)], 1)))


def test_a_model_smoea_cannot_follow_is_refused_in_one_line_naming_the_layer():
    """A BatchNorm over a concatenation holds several layers' channels: not maskable yet."""
    with pytest.raises(SmoeaError, match="cannot prune layer one: its 6 channels reach") as info:
        Structure(TinyDense(), torch.zeros(1, 3, 16, 16))
    assert "\n" not in str(info.value)


def test_an_operation_the_graph_cannot_follow_gives_one_line_naming_it():
    """shufflenet's channel shuffle (a reshape) breaks Torch-Pruning's index mapping."""
    model = torchvision.models.shufflenet_v2_x0_5(num_classes=3)
    with pytest.raises(SmoeaError, match="a reshape of the channels") as info:
        Structure(model, torch.zeros(1, 3, 32, 32))
    assert "\n" not in str(info.value) and "cannot prune this model" in str(info.value)
