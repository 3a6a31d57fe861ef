"""Export to ONNX and TorchScript gives the model's outputs; latency is measured and reported."""

import json

import numpy as np
import pytest
import torch

import smoea
from smoea.cli import main
from smoea.deploy import measure_latency

TINY_PRUNE = [
    "--target-params",
    "0.5",
    "--pop-size",
    "6",
    "--generations",
    "1",
    "--search-size",
    "30",
    "--finetune-epochs",
    "0",
    "--final-epochs",
    "0",
    "--val-size",
    "40",
    "--device",
    "cpu",
]


@pytest.fixture(scope="module")
def pruned_file(tmp_path_factory):
    """A pruned resnet20 saved by `smoea prune`, trained and pruned on tiny synthetic data."""
    from tests.conftest import write_image_tree

    root = tmp_path_factory.mktemp("deploy")
    data = write_image_tree(root / "tree")
    base, out = root / "base", root / "pruned"
    train = ["train", "--model", "resnet20", "--width", "0.5", "--data", str(data)]
    train += ["--epochs", "1", "--batch-size", "32", "--val-size", "40", "--device", "cpu"]
    assert main([*train, "--out", str(base)]) == 0
    prune = ["prune", "--checkpoint", str(base / "model.pt"), "--data", str(data), *TINY_PRUNE]
    assert main([*prune, "--out", str(out)]) == 0
    return out, data


@pytest.mark.slow
def test_prune_report_records_latency_of_both_models(pruned_file):
    out, _ = pruned_file
    report = json.loads((out / "report.json").read_text())
    for which in ("baseline", "pruned"):
        latency = report["latency"][which]
        assert latency["batch_1_ms"] > 0 and latency["batch_64_ms"] > 0
        assert latency["threads"] >= 1


@pytest.mark.slow
@pytest.mark.parametrize("fold", [True, False])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_gives_the_same_outputs(pruned_file, tmp_path, fmt, fold):
    out, _ = pruned_file
    target = tmp_path / f"model.{fmt}"
    args = ["export", "--checkpoint", str(out / "model.pt"), "--format", fmt, "--out", str(target)]
    args += [] if fold else ["--no-fold-bn"]
    assert main(args) == 0
    model = smoea.load(out / "model.pt")
    x = torch.randn(5, 3, 16, 16)  # another batch size than the export's example
    with torch.no_grad():
        expected = model(x).numpy()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    else:
        with torch.no_grad():
            loaded = torch.jit.load(str(target))
            got = loaded(x).numpy()
        norms = [m for m in loaded.modules() if m.original_name.startswith("BatchNorm")]
        assert (len(norms) == 0) == fold  # folded away, or kept when asked
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert main(args) == 2  # an existing file is not overwritten without --force
    assert main([*args, "--force"]) == 0


def test_export_rejects_an_unknown_format(pruned_file, tmp_path, capsys):
    out, _ = pruned_file
    args = ["export", "--checkpoint", str(out / "model.pt"), "--format", "tflite"]
    assert main([*args, "--out", str(tmp_path / "m")]) == 2
    assert "unknown --format" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_evaluate_latency_json(pruned_file, capsys):
    out, data = pruned_file
    args = ["evaluate", "--checkpoint", str(out / "model.pt"), "--data", str(data)]
    capsys.readouterr()
    assert main([*args, "--val-size", "40", "--device", "cpu", "--json", "--latency"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["latency"]["batch_1_ms"] > 0
    assert figures["latency"]["batch_64_ms"] >= figures["latency"]["batch_1_ms"] * 0.5


def test_measure_latency_reports_each_batch_size():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    result = measure_latency(model, (3, 8, 8), batch_sizes=(1, 4), repeats=3, warmup=1)
    assert set(result) >= {"batch_1_ms", "batch_4_ms", "threads", "device"}
