"""torchvision classifiers of each family through the whole path at a tiny size: prune to a MAC
target, save, load with weights_only, export to ONNX with the same outputs."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from smoea.checkpoint import load, save_model
from smoea.data import TensorData
from smoea.deploy import export
from smoea.errors import SmoeaError
from smoea.models import build_model, make_arch
from smoea.pipeline import prune
from smoea.prune_config import PruneConfig
from smoea.train import TrainConfig

FAMILIES = {  # name: budget rule (the measured plan once; elsewhere a rule without curves)
    "resnet18": "fronts",  # residual additions
    "mobilenet_v3_small": "heavy-late",  # depthwise, squeeze-excitation
    "regnet_x_400mf": "heavy-late",  # grouped convolutions, shortcut declared first
}


def _data(n: int, seed: int) -> TensorData:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8)
    return TensorData(x, torch.arange(n) % 3)


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_a_torchvision_family_prunes_saves_loads_and_exports(name, tmp_path):
    torch.manual_seed(0)
    arch = make_arch(f"torchvision:{name}", 1.0, 3, 3, 32)
    model = build_model(arch)
    config = PruneConfig(
        target_macs=0.6,
        pop_size=4,
        generations=1,
        effort="fixed",  # every group searched: the sliced graph scores real candidates
        budget=FAMILIES[name],
        search_size=16,
        calibration_images=8,
        eval_batch_size=16,
        final=TrainConfig(epochs=0),
    )
    pruned, report = prune(model, _data(32, 0), _data(16, 1), config, "cpu", log=lambda m: None)
    assert len(report["filters_after"]) == len(report["filters_before"])
    assert report["macs_ratio"] <= 0.6 + 1e-9 and report["macs_ratio"] > 0.5
    assert all(g["evaluator"] != "masked" for g in report["groups"])  # sliced everywhere
    path = tmp_path / "model.pt"
    save_model(path, pruned, arch, {})
    loaded = load(path)  # weights_only: the file holds data, no code
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = pruned.eval()(x)
        assert torch.allclose(loaded(x), expected, rtol=1e-4, atol=1e-4)
    onnxruntime = pytest.importorskip("onnxruntime")
    target = export(loaded, (3, 32, 32), "onnx", tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert np.allclose(out, expected.numpy(), rtol=1e-4, atol=1e-3)


def test_a_state_dict_with_version_metadata_loads_back(tmp_path):
    """torchvision's MNASNet reads a version from the state dict's metadata when loading."""
    torch.manual_seed(0)
    arch = make_arch("torchvision:mnasnet0_5", 1.0, 3, 3, 32)
    model = build_model(arch).eval()
    save_model(tmp_path / "model.pt", model, arch, {})
    loaded = load(tmp_path / "model.pt")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), rtol=1e-4, atol=1e-4)


def test_auxiliary_heads_are_left_out_and_too_small_images_are_refused_in_one_line():
    """googlenet trains on plain logits (its auxiliary heads serve only torchvision's own
    training); inception_v3 cannot take 32 px images and says so instead of a traceback."""
    model = build_model(make_arch("torchvision:googlenet", 1.0, 3, 3, 32)).train()
    assert isinstance(model(torch.randn(2, 3, 32, 32)), torch.Tensor)
    with pytest.raises(SmoeaError, match="inception_v3 cannot run on 3x32x32 images") as info:
        build_model(make_arch("torchvision:inception_v3", 1.0, 3, 3, 32))
    assert "\n" not in str(info.value)


ZOO = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "torchvision-zoo"


def _onnx_agrees(r: dict) -> bool:
    """ONNX within 1e-3 of the largest logit of PyTorch's float32 output, or (ill-conditioned
    random-weight logits, where float32 rounding alone differs more) no further from the float64
    output than PyTorch's own float32 output is, with a factor 2 for a different kernel's order."""
    if r["onnx_max_rel_diff"] < 1e-3:
        return True
    return "onnx_from_exact_rel" in r and (
        r["onnx_from_exact_rel"] <= 2 * r["torch_from_exact_rel"] + 1e-3
    )


def test_every_torchvision_classifier_pruned_or_was_refused():
    """The committed run of benchmarks/torchvision_zoo.py (a classifier torchvision lists, each
    record): pruned (reloads, ONNX agrees) or refused in one line, never failed; every one has
    a record."""
    import torchvision

    records = {p.stem: json.loads(p.read_text()) for p in ZOO.glob("*.json")}
    every = set(torchvision.models.list_models(module=torchvision.models))
    assert set(records) <= every
    assert every == set(records), sorted(every - set(records))
    for name, r in records.items():
        assert r["status"] in ("pruned", "refused"), f"{name}: {r.get('reason')}"
        if r["status"] == "refused":
            assert r["reason"] and "\n" not in r["reason"], name
        else:
            # random weights give logits in the thousands on the deepest models: both are
            # relative to the largest logit (records before the relative one: absolute)
            assert r.get("reload_state_equal", True), name  # every tensor, bit for bit
            if "reload_max_rel_diff" in r:
                assert r["reload_max_rel_diff"] < 1e-3, name
            else:
                assert r["reload_max_abs_diff"] < 1.0, name
            assert _onnx_agrees(r), name
            assert 0.5 < r["macs_ratio"] <= 0.6 + 1e-9, name
