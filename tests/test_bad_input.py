"""Every user mistake: exit code 2, one line on stderr naming it, nothing written or overwritten."""

import errno
import shutil
from pathlib import Path

import pytest
import torch

from smoea.checkpoint import atomic_save
from smoea.cli import main
from smoea.errors import SmoeaError
from tests.conftest import write_image_tree

TRAIN = [
    "--width",
    "0.125",
    "--epochs",
    "1",
    "--batch-size",
    "32",
    "--val-size",
    "40",
    "--device",
    "cpu",
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    tree = write_image_tree(root / "tree")
    shutil.make_archive(str(root / "good"), "gztar", root, "tree")
    ckpt_dir = root / "base"
    assert (
        main(
            [
                "train",
                *TRAIN,
                "--data",
                str(root / "good.tar.gz"),
                "--out",
                str(ckpt_dir),
                "--cache-dir",
                str(root / "cache"),
            ]
        )
        == 0
    )
    gray = write_image_tree(root / "gray", size=28)
    return {
        "root": root,
        "tree": tree,
        "archive": root / "good.tar.gz",
        "ckpt": ckpt_dir / "model.pt",
        "gray": gray,
    }


def _snapshot(path):
    return {p: p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _check(capsys, argv, out, expect):
    out.mkdir(parents=True, exist_ok=True)
    (out / "keep.txt").write_text("previous result")
    before = _snapshot(out)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (argv, err)
    errors = [line for line in err if "smoea: error:" in line]
    assert len(errors) == 1 and err[-1] == errors[0], err  # progress bars may come before
    assert not any("Traceback" in line for line in err)
    assert expect in errors[0], err
    assert _snapshot(out) == before


def _bad_files(ws):
    root = ws["root"]
    (root / "corrupt.tar.gz").write_bytes(ws["archive"].read_bytes()[:300])
    (root / "notar.tar.gz").write_bytes(b"plain text, not an archive")
    (root / "empty").mkdir(exist_ok=True)
    (root / "truncated.pt").write_bytes(ws["ckpt"].read_bytes()[:1000])
    (root / "text.pt").write_text("hello")
    record = torch.load(ws["ckpt"], weights_only=True)
    torch.save(dict(record, arch=dict(record["arch"], name="resnet9000")), root / "alien.pt")
    torch.save(dict(record, arch=dict(record["arch"], filters=[3] * 13)), root / "mismatch.pt")
    shutil.make_archive(str(root / "gray"), "gztar", root, "gray")
    two = root / "two"
    if not two.exists():
        shutil.copytree(ws["tree"], two)
        for split in ("train", "test"):
            shutil.rmtree(two / split / "plain")
    return root


CASES = {
    "missing data": (["train", "--data", "{root}/nowhere"], "does not exist"),
    "corrupt archive": (["train", "--data", "{root}/corrupt.tar.gz"], "cannot read archive"),
    "not an archive": (["train", "--data", "{root}/notar.tar.gz"], "cannot read archive"),
    "no train/test": (["train", "--dataset", "imagefolder", "--data", "{root}/empty"], "train/"),
    "unknown model": (["train", "--model", "resnet9000", "--data", "{archive}"], "unknown model"),
    "unknown dataset": (["train", "--dataset", "imagenet", "--data", "{archive}"], "unknown data"),
    "shape mismatch": (
        ["evaluate", "--checkpoint", "{ckpt}", "--data", "{root}/gray.tar.gz"],
        "expects",
    ),
    "class mismatch": (["evaluate", "--checkpoint", "{ckpt}", "--data", "{root}/two"], "classes"),
    "finished prune run": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--out", "{root}/base"],
        "--force",
    ),
    "not a model file": (
        ["evaluate", "--checkpoint", "{root}/text.pt", "--data", "{archive}"],
        "checkpoint",
    ),
    "truncated model": (
        ["evaluate", "--checkpoint", "{root}/truncated.pt", "--data", "{archive}"],
        "checkpoint",
    ),
    "other architecture": (
        ["evaluate", "--checkpoint", "{root}/alien.pt", "--data", "{archive}"],
        "unknown model",
    ),
    "weights do not fit": (
        ["evaluate", "--checkpoint", "{root}/mismatch.pt", "--data", "{archive}"],
        "does not match",
    ),
    "target above 1": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--target-params", "1.5"],
        "(0, 1]",
    ),
    "target zero": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--target-params", "0"],
        "(0, 1]",
    ),
    "target below minimum": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--target-params", "0.001"],
        "per-layer minimum",
    ),
    "empty groups": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--groups", ","],
        "--groups",
    ),
    "groups out of range": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--groups", "1-2,14-20"],
        "--groups",
    ),
    "unknown objective": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--objective", "vibes"],
        "--objective",
    ),
    "unknown compare method": (
        ["compare", "--checkpoint", "{ckpt}", "--data", "{archive}", "--methods", "smoea,magic"],
        "unknown method magic",
    ),
    "bad seeds": (
        ["compare", "--checkpoint", "{ckpt}", "--data", "{archive}", "--seeds", "0,x"],
        "--seeds",
    ),
    "compare target above 1": (
        ["compare", "--checkpoint", "{ckpt}", "--data", "{archive}", "--select", "knee"]
        + ["--target-params", "1.5"],
        "(0, 1]",
    ),
    "round-to below 1": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--round-to", "0"],
        "--round-to",
    ),
    "negative calibration images": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--calibration-images", "-1"],
        "--calibration-images",
    ),
    "unknown budget rule": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--budget", "guess"],
        "--budget",
    ),
    "compare at both targets": (
        ["compare", "--checkpoint", "{ckpt}", "--data", "{archive}", "--target-params", "0.5"]
        + ["--target-macs", "0.5"],
        "give one target",
    ),
    "latency target with another target": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--target-latency", "0.5"]
        + ["--target-macs", "0.5"],
        "give one target",
    ),
    "latency target out of range": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--target-latency", "1.5"],
        "--target-latency must be in",
    ),
    "latency batch below one": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--target-latency", "0.5"]
        + ["--latency-batch", "0"],
        "--latency-batch",
    ),
    "latency batch beyond the memory": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--target-latency", "0.5"]
        + ["--latency-batch", "1000000000"],
        "does not fit in the memory",
    ),
    "latency target below minimum": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--target-latency", "0.001"],
        "per-layer minimum",
    ),
    "unknown genome": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--genome", "floats"],
        "--genome",
    ),
    "diverging loss": (["train", "--data", "{archive}", "--lr", "1e12"], "loss became"),
    "evaluation total too small to search": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--effort", "plan"]
        + ["--evaluations", "10"],
        "too small to search",
    ),
    "an evaluation total without the plan rule": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--evaluations", "500"]
        + ["--effort", "fixed"],
        "add --effort plan",
    ),
    "unknown effort": (
        ["prune", "--checkpoint", "{ckpt}", "--data", "{archive}", "--effort", "lots"],
        "--effort",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, workspace, capsys, tmp_path):
    root = _bad_files(workspace)
    argv, expect = CASES[case]
    argv = [a.format(root=root, archive=workspace["archive"], ckpt=workspace["ckpt"]) for a in argv]
    common = ["--val-size", "40", "--device", "cpu", "--cache-dir", str(root / "cache")]
    out = tmp_path / "out"
    if "--out" in argv:  # the case names its own output directory
        out = Path(argv[argv.index("--out") + 1])
    elif argv[0] in ("train", "prune", "compare"):
        common += ["--out", str(out)]
    if argv[0] == "train":
        common += ["--width", "0.125", "--epochs", "1", "--batch-size", "32"]
    argv += common
    _check(capsys, argv, out, expect)


def test_full_disk_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "state.pt"
    atomic_save({"good": 1}, path)
    before = path.read_bytes()

    def no_space(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(SmoeaError, match="No space left"):
        atomic_save({"new": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]
