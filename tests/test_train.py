"""The training loop (training/train.py): loss, outputs, resume, divergence, schedule, start-up checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers import write_yaml_config

from vitpose_plus import VitPosePlusForPoseEstimation
from vitpose_plus.training.config import load_training_config
from vitpose_plus.training.train import TrainingDiverged, train, training_schedule

TINY_MODEL = {
    "image_size": [64, 48],
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 4,
    "num_experts": 2,
    "part_features": 8,
    "deconv_channels": [16, 16],
}


def write_config(tmp_path, **sections) -> str:
    config = {
        "runtime": {"output_dir": str(tmp_path / "run"), "log_every": 1, "save_every": 3, "eval_every": 0,
                    "trackers": [], "eval_batch_size": 16},
        "model": {"overrides": TINY_MODEL},
        "optimization": {"batch_size": 4, "max_steps": 6, "learning_rate": 1e-3, "warmup_steps": 2,
                         "schedule": "cosine"},
        "datasets": [
            {"name": "coco", "synthetic": {"train_images": 6, "val_images": 3, "seed": 0, "image_size": [96, 96]}},
            {"name": "ap10k", "synthetic": {"train_images": 6, "val_images": 0, "seed": 1, "image_size": [96, 96]}},
        ],
    }
    return write_yaml_config(tmp_path, config, sections)


def final_weights(output_dir) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    checkpoints = sorted((output_dir / "checkpoints").iterdir(), key=lambda p: int(p.name.split("_")[1]))
    return load_file(str(checkpoints[-1] / "model.safetensors"))


def test_short_run_loss_falls_and_writes_outputs(tmp_path):
    config = load_training_config(write_config(
        tmp_path, optimization={"max_steps": 12, "learning_rate": 3e-3, "schedule": "step", "milestones": [10]}))
    result = train(config, progress=False)
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 12 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
    assert set(result.metrics) == {"coco"}  # ap10k has no val split
    assert 0.0 <= result.metrics["coco"]["AP"] <= 1.0
    model = VitPosePlusForPoseEstimation.from_pretrained(run / "model")
    assert model.config.dataset_names == ["coco", "ap10k"] and model.config.num_experts == 2
    assert (run / "model" / "preprocessor_config.json").exists()
    assert (run / "learning_curve.png").stat().st_size > 10_000
    assert json.loads((run / "final_metrics.json").read_text())["coco"]["AP"] == result.metrics["coco"]["AP"]


def test_resume_equals_uninterrupted_run(tmp_path):
    straight = load_training_config(write_config(tmp_path / "a"))
    train(straight, progress=False)
    interrupted = load_training_config(write_config(tmp_path / "b"))
    first = train(interrupted, progress=False, stop_after=4)  # "killed" after step 4; last checkpoint at step 4
    assert first.step == 4 and first.model_dir is None
    resumed = train(load_training_config(write_config(tmp_path / "b")), resume=True, progress=False)
    assert resumed.step == 6
    a, b = final_weights(tmp_path / "a" / "run"), final_weights(tmp_path / "b" / "run")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    logged = [json.loads(line)["step"] for line in (tmp_path / "b" / "run" / "log.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert logged == [1, 2, 3, 4, 5, 6]  # no lost or repeated step


def test_nan_loss_stops_with_clear_message(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = VitPosePlusForPoseEstimation.compute_loss

    def poisoned(self, *args, **kwargs):
        calls["n"] += 1
        loss = original(self, *args, **kwargs)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(VitPosePlusForPoseEstimation, "compute_loss", poisoned)
    config = load_training_config(write_config(tmp_path))
    with pytest.raises(TrainingDiverged, match=r"The loss is nan at step 4 .*last good checkpoint is .*step_3"):
        train(config, progress=False)
    assert (tmp_path / "run" / "checkpoints" / "step_3" / "model.safetensors").exists()


def test_keypoint_count_mismatch_fails_at_start(tmp_path):
    from vitpose_plus.data.synthetic import make_synthetic_dataset

    annotations = make_synthetic_dataset("coco", 2, 0, tmp_path / "coco_data", image_size=(96, 96))
    path = write_config(tmp_path, datasets=[
        {"name": "aic", "train": {"annotations": annotations, "images": str(tmp_path / "coco_data")}}])
    expected = r"annotations.json: annotation id 1 \(dataset 'aic', K=14\): 'keypoints' has 51 values, expected 42"
    with pytest.raises(ValueError, match=expected):
        train(load_training_config(path), progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_lr_schedule_warmup_step_and_cosine():
    from dataclasses import replace

    config = load_training_config(None)  # the default synthetic run parses and validates
    opt = replace(config.optimization, warmup_steps=10, warmup_ratio=0.001, schedule="step", milestones=[20, 30],
                  gamma=0.1, max_steps=40)
    schedule = training_schedule(opt, steps_per_epoch=7)
    assert schedule.lr_factor(0) == pytest.approx(0.001)
    assert schedule.lr_factor(5) == pytest.approx(1 - 0.5 * 0.999)
    assert schedule.lr_factor(10) == 1.0 and schedule.lr_factor(25) == pytest.approx(0.1)
    assert schedule.lr_factor(35) == pytest.approx(0.01)
    cosine = training_schedule(replace(opt, schedule="cosine", warmup_steps=0, min_lr_ratio=0.0), 7)
    assert cosine.lr_factor(20) == pytest.approx(0.5) and cosine.lr_factor(40) == pytest.approx(0.0)
    # Epoch recipes become steps with the loader length, without touching the config.
    epochs = training_schedule(replace(opt, max_epochs=3, milestone_epochs=[2]), steps_per_epoch=7)
    assert (epochs.max_steps, epochs.milestones) == (21, (14,)) and opt.max_steps == 40




def test_train_split_from_a_saved_datasets_folder(tmp_path):
    """`train.hub_dataset` names a `datasets` dataset (here a save_to_disk folder) with the loader's columns: one
    stored row (and image) per image, however many people it holds."""
    from vitpose_plus.data.datasets import load_keypoint_dataset
    from vitpose_plus.data.synthetic import make_synthetic_dataset

    annotations = make_synthetic_dataset("coco", 6, 0, tmp_path / "data", image_size=(96, 96), max_instances=3)
    rows = load_keypoint_dataset(annotations, tmp_path / "data", "coco")
    people = sum(len(r["instances"]["bbox"]) for r in rows)
    assert len(rows) == 6 and people > 6
    rows.save_to_disk(str(tmp_path / "saved"))
    path = write_config(tmp_path, datasets=[{"name": "coco", "train": {"hub_dataset": str(tmp_path / "saved")}}],
                        model={"overrides": {**TINY_MODEL, "num_experts": 1}},
                        optimization={"max_steps": 2, "batch_size": 2})
    result = train(load_training_config(path), progress=False)
    assert result.step == 2 and (tmp_path / "run" / "model" / "model.safetensors").exists()

    bad = write_config(tmp_path / "bad", datasets=[{"name": "coco", "train": {"hub_dataset": str(tmp_path / "saved")},
                                                    "val": {"hub_dataset": str(tmp_path / "saved")}}])
    with pytest.raises(ValueError, match=r"val.hub_dataset: the evaluation protocol reads the released"):
        load_training_config(bad)
