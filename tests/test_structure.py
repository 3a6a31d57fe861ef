"""Masking equals removal; counts from masks equal the counter's after removal; groups."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch_pruning as tp

from smoea.errors import SmoeaError
from smoea.models import build_model, make_arch
from smoea.structure import Structure, default_groups, parse_groups, split_at


def _random_bn(model: nn.Module, shape=(3, 32, 32)) -> nn.Module:
    """Calibrated, non-trivial BatchNorm statistics so that a wrongly zeroed channel would show."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.momentum = None  # cumulative average over the calibration batches
            m.weight.data.uniform_(0.5, 1.5, generator=gen)
            m.bias.data.normal_(0, 0.2, generator=gen)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, *shape, generator=gen))
    return model.eval()


CASES = [("vgg14", 3, 32), ("vgg16", 3, 32), ("vgg14", 1, 28)]


@pytest.mark.parametrize("name,channels,size", CASES)
def test_masking_equals_physical_removal_and_counts_are_exact(name, channels, size):
    torch.manual_seed(0)
    model = _random_bn(
        build_model(make_arch(name, 0.125, 10, channels, size)), (channels, size, size)
    )
    example = torch.zeros(1, channels, size, size)
    s = Structure(model, example)
    rng = np.random.default_rng(1)
    masks = {i: rng.random(layer.units) < 0.6 for i, layer in enumerate(s.layers)}
    for keep in masks.values():
        keep[0] = True
    x = torch.randn(6, channels, size, size)
    with torch.no_grad(), s.masking():
        s.set_masks(masks)
        masked = model(x)
    kept = s.kept_from_masks(masks)
    params, macs = s.count(kept, "params")[0], s.count(kept, "macs")[0]
    s.remove(masks)
    with torch.no_grad():
        removed = model(x)
    assert torch.allclose(masked, removed, atol=1e-4)
    assert not torch.allclose(removed[0], removed[1])  # logits depend on the input
    real_macs, real_params = tp.utils.count_ops_and_params(model, example)
    assert params == real_params
    assert macs == real_macs
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == kept.tolist()


def test_masking_changes_logits_only_while_active():
    model = _random_bn(build_model(make_arch("vgg14", 0.125, 10, 3, 32)))
    s = Structure(model, torch.zeros(1, 3, 32, 32))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        with s.masking():
            s.set_masks({0: np.r_[np.zeros(4), np.ones(4)]})
            during = model(x)
        after = model(x)
    assert not torch.allclose(before, during)
    assert torch.equal(before, after)


def test_vgg14_has_13_layers_in_5_stage_groups():
    s = Structure(build_model(make_arch("vgg14", 0.125, 10, 3, 32)), torch.zeros(1, 3, 32, 32))
    assert default_groups(s) == [[0, 1], [2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]


def test_parse_groups_and_its_errors():
    assert parse_groups("1-2,3-4,5", 13) == [[0, 1], [2, 3], [4]]
    for bad in ("", "0-2", "1-14", "3-1", "a-b", "1-3,2-4"):
        with pytest.raises(SmoeaError):
            parse_groups(bad, 13)


def test_model_without_convolutions_is_refused():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with pytest.raises(SmoeaError, match="no prunable convolution"):
        Structure(model, torch.zeros(1, 3, 2, 2))


def test_split_at_gives_the_same_output_as_the_whole_model():
    model = build_model(make_arch("vgg14", 0.125, 10, 3, 32)).eval()
    s = Structure(model, torch.zeros(1, 3, 32, 32))
    prefix, rest = split_at(model, s.layers[4].conv)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(rest(prefix(x)), model(x))
    assert len(prefix) > 0


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_a_later_structure_reuses_the_owners_and_counts_exactly(name):
    """After pruning, a Structure given the first one's element-wise owners counts exactly as a
    fresh one (torchvision reuses one ReLU several times per block: its calls' shares change)."""
    import torchvision

    from smoea.report import model_counts

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=3).eval()
    example = torch.zeros(1, 3, 32, 32)
    first = Structure(model, example)
    rng = np.random.default_rng(0)
    masks = {i: rng.random(layer.units) < 0.6 for i, layer in enumerate(first.layers)}
    for keep in masks.values():
        keep[0] = True
    first.remove(masks)
    names = [layer.name for layer in first.layers]
    reused = Structure(model, example, layer_names=names, elementwise=first.elementwise)
    fresh = Structure(model, example, layer_names=names)
    kept = reused.units_per_layer
    counted = model_counts(model, (3, 32, 32))
    assert reused.count(kept, "params")[0] == fresh.count(kept, "params")[0] == counted["params"]
    assert reused.count(kept, "macs")[0] == fresh.count(kept, "macs")[0] == counted["macs"]
    half = np.maximum(1, kept // 2)
    for what in ("params", "macs"):
        assert reused.count(half, what)[0] == fresh.count(half, what)[0]


def _raised_inside_torch_pruning(error: Exception) -> Exception:
    """`error`, raised from a comprehension inside a function of a file Torch-Pruning's."""
    code = "def build_dependency(e):\n    return [_raise(e) for _ in range(1)]\n"
    scope = {"_raise": lambda e: (_ for _ in ()).throw(e)}
    exec(compile(code, "/site-packages/torch_pruning/dependency/graph.py", "exec"), scope)
    try:
        scope["build_dependency"](error)
    except Exception as exc:
        return exc
    raise AssertionError("nothing raised")


def test_a_tracing_failure_names_torch_prunings_function_in_one_line():
    from smoea.structure import _trace_failure

    memory = _trace_failure(_raised_inside_torch_pruning(MemoryError()))
    assert memory == "Torch-Pruning's dependency graph runs out of memory in its build_dependency"
    other = _trace_failure(_raised_inside_torch_pruning(ValueError("bad\nshape")))
    assert "build_dependency" in other and "<listcomp>" not in other and "\n" not in other
    assert other.endswith("(ValueError: bad)")


def test_a_reshape_traced_past_the_bound_is_refused_naming_the_layer(monkeypatch):
    """Torch-Pruning expands a channel through a flatten onto every position it covers; on
    some models (swin_v2) that grows until the OOM killer ends the run. Past the bound: one
    line naming the layer, and Torch-Pruning's mapping is left as it was."""
    from torch_pruning.dependency.index_mapping import _FlattenIndexMapping

    import smoea.structure as structure

    original = _FlattenIndexMapping.__call__
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.Flatten(),
        nn.Linear(8 * 4 * 4, 3),
    )  # fmt: skip
    Structure(model, torch.zeros(1, 3, 4, 4))  # 8 channels x 16 positions: within the bound
    monkeypatch.setattr(structure, "MAX_TRACED_POSITIONS", 100)
    with pytest.raises(SmoeaError, match=r"^cannot prune layer 2: .* 128 positions, over 100"):
        Structure(model, torch.zeros(1, 3, 4, 4))
    assert _FlattenIndexMapping.__call__ is original
