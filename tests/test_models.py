"""ResNets, MobileNetV2 and torchvision models: coupled units, masking equals removal, files."""

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch_pruning as tp

from smoea import PruneConfig, TensorData, prune
from smoea.checkpoint import load, save_model
from smoea.errors import SmoeaError
from smoea.models import build_model, make_arch
from smoea.structure import Structure, default_groups
from smoea.train import TrainConfig
from tests.test_structure import _random_bn

SHAPE = (3, 16, 16)
ARCHS = {
    "resnet20": make_arch("resnet20", 0.5, 3, 3, 16),
    "mobilenetv2": make_arch("mobilenetv2", 0.25, 3, 3, 16),
    "torchvision:resnet18": make_arch("torchvision:resnet18", 1.0, 3, 3, 16),
}


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return _random_bn(build_model(ARCHS[name]), SHAPE)


def _random_masks(s: Structure, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    masks = {i: rng.random(layer.units) < 0.6 for i, layer in enumerate(s.layers)}
    for keep in masks.values():
        keep[0] = True
    return masks


@pytest.mark.parametrize("name", list(ARCHS))
def test_masked_logits_equal_the_physically_pruned_model(name):
    model = _model(name)
    example = torch.zeros(1, *SHAPE)
    s = Structure(model, example)
    masks = _random_masks(s)
    x = torch.randn(4, *SHAPE)
    with torch.no_grad(), s.masking():
        s.set_masks(masks)
        masked = model(x)
    kept = s.kept_from_masks(masks)
    params, macs = s.count(kept, "params")[0], s.count(kept, "macs")[0]
    s.remove(masks)
    with torch.no_grad():
        removed = model(x)
    assert torch.allclose(masked, removed, atol=1e-4)
    real_macs, real_params = tp.utils.count_ops_and_params(model, example)
    assert (params, macs) == (real_params, real_macs)


def test_residual_channels_are_one_unit_per_coupled_group():
    """resnet20: the stem and every block's second conv of a stage share their channels through
    the additions, so each stage's residual channels are one layer of units, not nine."""
    model = build_model(ARCHS["resnet20"])
    s = Structure(model, torch.zeros(1, *SHAPE))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 21  # 19 3x3 convs + 2 projection shortcuts
    assert len(s.layers) == 9 + 3  # one per block's first conv, one per stage's residual
    assert len(default_groups(s)) == 3  # one group per stage


def test_mobilenetv2_depthwise_convs_follow_their_expansion():
    model = build_model(ARCHS["mobilenetv2"])
    s = Structure(model, torch.zeros(1, *SHAPE))
    roots = {layer.conv for layer in s.layers}
    assert not any(conv.groups > 1 for conv in roots)


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2"])
def test_pruned_model_file_rebuilds_from_data(tmp_path, name):
    model = _model(name)
    s = Structure(model, torch.zeros(1, *SHAPE))
    s.remove(_random_masks(s, seed=2))
    path = tmp_path / "model.pt"
    save_model(path, model, ARCHS[name], {})
    loaded = load(path)  # weights_only: no code from the file
    x = torch.randn(3, *SHAPE)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), loaded(x), atol=1e-5)


@pytest.mark.slow
def test_prune_resnet20_to_a_mac_target_with_three_objectives():
    from tests.conftest import synthetic_images

    x, y = synthetic_images(160)
    model = build_model(ARCHS["resnet20"])
    config = PruneConfig(
        target_params=None,
        target_macs=0.5,
        objectives="error,params,macs",
        pop_size=8,
        generations=2,
        search_size=40,
        finetune=TrainConfig(epochs=0),
        final=TrainConfig(epochs=0),
    )
    notes = []
    pruned, report = prune(
        model,
        TensorData(x[:120], y[:120]),
        TensorData(x[120:], y[120:]),
        config,
        "cpu",
        log=notes.append,
    )
    assert 0.49 <= report["macs_ratio"] <= 0.5
    last = [n for n in notes if "on the search set" in n][-1]  # each size named as what it is
    assert f"params {report['groups'][-1]['chosen'][1]:.4f}, macs 0.4" in last
    assert report["objectives"] == ["error", "params", "macs"]
    for group in report["groups"]:
        F = np.array(group["front"])
        assert F.shape[1] == 3
        dominated = [
            any((G <= f).all() and (G < f).any() for G in F) for f in F
        ]  # no point of the front dominates another
        assert not any(dominated)
    with torch.no_grad():
        assert pruned(torch.zeros(2, *SHAPE)).shape == (2, 3)


def test_objectives_and_targets_are_checked():
    with pytest.raises(SmoeaError, match="must include macs"):
        PruneConfig(target_macs=0.5, objectives="error,params").validate()
    with pytest.raises(SmoeaError, match="unknown size"):
        PruneConfig(objectives="error,params,flops").validate()
    with pytest.raises(SmoeaError, match="--target-macs"):
        PruneConfig(target_macs=1.5).validate()
    PruneConfig(target_macs=0.5, objectives="loss,macs").validate()


def test_unknown_torchvision_model_is_a_clear_error():
    with pytest.raises(SmoeaError, match="unknown torchvision model"):
        make_arch("torchvision:resnet9000", 1.0, 10, 3, 32)
    with pytest.raises(SmoeaError, match="3-channel"):
        make_arch("torchvision:resnet18", 1.0, 10, 1, 28)


def test_copy_of_model_is_independent():
    model = build_model(ARCHS["resnet20"])
    twin = copy.deepcopy(model)
    s = Structure(model, torch.zeros(1, *SHAPE))
    s.remove(_random_masks(s))
    assert sum(p.numel() for p in twin.parameters()) > sum(p.numel() for p in model.parameters())


@pytest.mark.slow
def test_cli_mac_target_with_three_objectives_writes_and_plots_the_front(
    tmp_path, image_archive, baseline
):
    import json

    from smoea.cli import main

    out = tmp_path / "macs"
    args = ["prune", "--checkpoint", str(baseline / "model.pt"), "--data", str(image_archive)]
    args += ["--target-macs", "0.5", "--objectives", "error,params,macs", "--pop-size", "6"]
    args += ["--generations", "1", "--search-size", "30", "--finetune-epochs", "0"]
    args += ["--final-epochs", "0", "--val-size", "40", "--device", "cpu", "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert 0.49 <= report["macs_ratio"] <= 0.5
    assert report["target_measure"] == "macs"
    assert all(len(point) == 3 for g in report["groups"] for point in g["front"])
    assert (out / "fronts.png").stat().st_size > 0
    both = [*args[:-2], "--target-params", "0.5", "--out", str(tmp_path / "both")]
    assert main(both) == 2  # one target at a time
