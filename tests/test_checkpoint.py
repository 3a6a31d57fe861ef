"""Model files load as data; pickled code needs explicit trust."""

import pytest
import torch
import torch.nn as nn

from smoea.checkpoint import load, load_record, save_model
from smoea.errors import SmoeaError
from smoea.models import build_model, make_arch


def test_our_model_round_trips_with_weights_only(tmp_path):
    arch = make_arch("vgg16", 0.125, 10, 1, 28)
    model = build_model(arch).eval()
    save_model(tmp_path / "m.pt", model, arch, {})
    record = torch.load(tmp_path / "m.pt", weights_only=True)
    assert record["arch"]["filters"] == [8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64]
    again = load(tmp_path / "m.pt")
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_pickled_module_needs_trust(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    save_model(tmp_path / "p.pt", model, None, {})
    with pytest.raises(SmoeaError, match="trust"):
        load(tmp_path / "p.pt")
    assert isinstance(load(tmp_path / "p.pt", trust=True), nn.Sequential)


@pytest.mark.parametrize("content", [b"", b"garbage", None])
def test_broken_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.pt"
    if content is None:
        torch.save({"something": 1}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(SmoeaError):
        load_record(path)


def test_versions_name_the_commit_that_ran():
    """A result is tied to its code: the checkout's commit, and whether it had changes."""
    import subprocess
    from pathlib import Path

    import smoea
    from smoea.report import versions

    where = Path(smoea.__file__).resolve().parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True)
    found = versions()
    if head.returncode:  # not run from a git checkout: nothing to name
        assert found["commit"] is None and found["dirty"] is None
    else:
        assert found["commit"] == head.stdout.strip() and isinstance(found["dirty"], bool)
