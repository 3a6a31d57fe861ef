"""Distillation from the unpruned model, and `smoea train --from`."""

import copy
import json

import pytest
import torch
import torch.nn as nn

import smoea
from smoea.cli import main
from smoea.errors import SmoeaError
from smoea.train import Distill, TrainConfig, train

TUNE = TrainConfig(epochs=1, batch_size=32, lr=0.01, schedule="cosine")


def _student(trained_tiny) -> nn.Module:
    """A student that differs from the teacher (its first layer perturbed)."""
    student = copy.deepcopy(trained_tiny[0])
    with torch.no_grad():
        student[0].weight.mul_(0.5)
    return student


def test_weight_zero_is_exactly_the_plain_fine_tune(trained_tiny):
    teacher, splits = trained_tiny
    plain, mixed = _student(trained_tiny), _student(trained_tiny)
    train(plain, splits, TUNE, torch.device("cpu"), seed=3)
    distill = Distill(copy.deepcopy(teacher), temperature=4.0, weight=0.0)
    train(mixed, splits, TUNE, torch.device("cpu"), seed=3, distill=distill)
    a, b = plain.state_dict(), mixed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_distillation_changes_the_student_and_never_the_teacher(trained_tiny):
    teacher, splits = trained_tiny
    teacher = copy.deepcopy(teacher)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}  # BN statistics included
    plain, taught = _student(trained_tiny), _student(trained_tiny)
    train(plain, splits, TUNE, torch.device("cpu"), seed=3)
    history = train(
        taught, splits, TUNE, torch.device("cpu"), seed=3, distill=Distill(teacher, 4.0, 0.7)
    )
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert not torch.equal(plain[0].weight, taught[0].weight)
    assert history[0]["distill"] == {"temperature": 4.0, "weight": 0.7}


def test_the_teacher_sees_the_students_augmented_batch(trained_tiny):
    teacher, splits = trained_tiny
    teacher, student = copy.deepcopy(teacher), _student(trained_tiny)
    seen = {"teacher": [], "student": []}
    teacher.register_forward_pre_hook(lambda m, a: seen["teacher"].append(a[0].clone()))
    student.register_forward_pre_hook(lambda m, a: seen["student"].append(a[0].clone()))
    train(student, splits, TUNE, torch.device("cpu"), seed=5, distill=Distill(teacher, 2.0, 0.5))
    n = len(seen["teacher"])
    assert n == 6  # one teacher pass per step (180 images, batches of 32)
    # the student also runs on the validation split after the epoch: compare the steps only
    assert all(torch.equal(t, s) for t, s in zip(seen["teacher"], seen["student"][:n]))


@pytest.mark.parametrize(
    "temperature, weight, message",
    [(-1.0, 0.5, "--distill-temperature"), (4.0, 1.5, "--distill-weight")],
)
def test_bad_distillation_settings_are_refused(temperature, weight, message):
    config = smoea.PruneConfig(distill=True, distill_temperature=temperature, distill_weight=weight)
    with pytest.raises(SmoeaError, match=message):
        config.validate()


def test_a_teacher_with_other_classes_is_refused(trained_tiny):
    model, splits = trained_tiny
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 7))
    config = smoea.PruneConfig(distill=True, pop_size=4, generations=1, search_size=20)
    with pytest.raises(SmoeaError, match="teacher gives 7 class scores, the model 3"):
        smoea.prune(copy.deepcopy(model), splits.train, splits.val, config, "cpu", teacher=teacher)


def _distilled_config() -> smoea.PruneConfig:
    config = smoea.PruneConfig(
        target_params=0.5, distill=True, pop_size=6, generations=2, search_size=40
    )
    config.finetune = TrainConfig(epochs=1, batch_size=32, lr=0.01, schedule="cosine")
    config.final = TrainConfig(epochs=1, batch_size=32, lr=0.01, schedule="cosine")
    return config


@pytest.mark.slow
def test_a_resumed_distilled_prune_equals_an_uninterrupted_one(trained_tiny):
    model, splits = trained_tiny
    args = (splits.train, splits.val)
    full, report = smoea.prune(
        copy.deepcopy(model), *args, _distilled_config(), "cpu", log=lambda m: None
    )
    assert report["distill"]["on"] and report["distill"]["teacher_val_accuracy"] > 0.5
    assert report["final_finetune"]["ran"]["distill"] == {"temperature": 4.0, "weight": 0.5}

    saved = {}

    class Stop(Exception):
        pass

    def stop_after_two(m, r):
        if len(r["groups"]) == 2:
            saved["model"], saved["report"] = copy.deepcopy(m), json.loads(json.dumps(r))
            raise Stop

    with pytest.raises(Stop):
        smoea.prune(
            copy.deepcopy(model),
            *args,
            _distilled_config(),
            "cpu",
            lambda m: None,
            on_group_done=stop_after_two,
        )
    with pytest.raises(SmoeaError, match="needs the unpruned model as teacher"):
        smoea.prune(
            copy.deepcopy(saved["model"]),
            *args,
            _distilled_config(),
            "cpu",
            log=lambda m: None,
            resume_report=copy.deepcopy(saved["report"]),
        )
    resumed, again = smoea.prune(
        saved["model"],
        *args,
        _distilled_config(),
        "cpu",
        log=lambda m: None,
        resume_report=saved["report"],
        teacher=copy.deepcopy(model),
    )
    a, b = full.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [g["filters_after"] for g in report["groups"]] == [
        g["filters_after"] for g in again["groups"]
    ]


@pytest.mark.slow
def test_prune_command_with_distill_records_it(tmp_path, image_archive, baseline):
    out = tmp_path / "p"
    flags = ["--target-params", "0.5", "--pop-size", "6", "--generations", "1"]
    flags += ["--search-size", "30", "--finetune-epochs", "0", "--final-epochs", "1"]
    flags += ["--batch-size", "32", "--device", "cpu", "--distill", "--distill-weight", "0.5"]
    code = main(
        [
            "prune",
            "--checkpoint",
            str(baseline / "model.pt"),
            "--data",
            str(image_archive),
            "--out",
            str(out),
            *flags,
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["distill"]["on"] and report["distill"]["weight"] == 0.5
    bad = main(
        [
            "prune",
            "--checkpoint",
            str(baseline / "model.pt"),
            "--data",
            str(image_archive),
            "--out",
            str(tmp_path / "q"),
            *flags[:-2],
            "--distill-weight",
            "2",
        ]
    )
    assert bad == 2


def test_train_from_continues_a_model_file(tmp_path, image_archive, baseline):
    out = tmp_path / "more"
    code = main(
        [
            "train",
            "--from",
            str(baseline / "model.pt"),
            "--data",
            str(image_archive),
            "--epochs",
            "1",
            "--lr",
            "0.01",
            "--schedule",
            "cosine",
            "--batch-size",
            "32",
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    start = torch.load(baseline / "model.pt", weights_only=True)
    after = torch.load(out / "model.pt", weights_only=True)
    assert after["split"] == start["split"] and after["arch"] == start["arch"]
    assert not torch.equal(
        next(iter(start["state_dict"].values())), next(iter(after["state_dict"].values()))
    )
    record = json.loads((out / "train.json").read_text())
    assert record["from"] == str(baseline / "model.pt") and record["config"]["epochs"] == 1


def test_train_from_with_a_teacher_distils_and_checks_its_settings(
    tmp_path, image_archive, baseline
):
    common = ["--from", str(baseline / "model.pt"), "--data", str(image_archive), "--epochs", "1"]
    common += ["--lr", "0.01", "--schedule", "cosine", "--batch-size", "32", "--device", "cpu"]
    common += ["--teacher", str(baseline / "model.pt")]
    assert main(["train", *common, "--out", str(tmp_path / "t")]) == 0
    record = json.loads((tmp_path / "t" / "train.json").read_text())
    assert record["history"][0]["distill"] == {"temperature": 4.0, "weight": 0.5}
    bad = ["--distill-temperature", "0", "--out", str(tmp_path / "u")]
    assert main(["train", *common, *bad]) == 2
