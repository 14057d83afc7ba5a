"""Fine-tuning with transformers.Trainer (training/trainer_utils.py, finetune_with_trainer.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml
from test_train import TINY_MODEL
from transformers import EvalPrediction, TrainerCallback

from vitpose_plus import VitPosePlusConfig, VitPosePlusForPoseEstimation
from vitpose_plus.cli import main
from vitpose_plus.training.trainer_utils import CropSpaceMetrics, build_trainer

DENSE = {k: v for k, v in TINY_MODEL.items() if k not in ("num_experts", "part_features")}


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    from vitpose_plus.data.datasets import load_keypoint_dataset
    from vitpose_plus.data.synthetic import make_synthetic_dataset

    folder = tmp_path_factory.mktemp("data")
    annotations = make_synthetic_dataset("coco", 6, 0, folder, image_size=(96, 96))
    return load_keypoint_dataset(annotations, folder, "coco")


def _model() -> VitPosePlusForPoseEstimation:
    torch.manual_seed(0)
    return VitPosePlusForPoseEstimation(VitPosePlusConfig(**DENSE, datasets=["coco"]))


def _trainer(rows, output_dir, **kwargs):
    arguments = {"max_steps": 4, "per_device_train_batch_size": 4, "per_device_eval_batch_size": 4,
                 "learning_rate": 1e-3, "logging_steps": 1, "save_strategy": "steps", "save_steps": 2,
                 "use_cpu": True, "eval_strategy": "no", **kwargs}
    return build_trainer(_model(), "coco", rows, rows, str(output_dir), **arguments)


def test_trainer_saves_processor_and_card_with_metrics(rows, tmp_path):
    trainer = _trainer(rows, tmp_path / "out")
    result = trainer.train()
    assert result.global_step == 4 and math.isfinite(result.training_loss)
    for checkpoint in ("checkpoint-2", "checkpoint-4"):  # every checkpoint can be loaded and decoded on its own
        assert (tmp_path / "out" / checkpoint / "preprocessor_config.json").exists()
    metrics = trainer.evaluate()
    assert math.isfinite(metrics["eval_loss"]) and 0.0 <= metrics["eval_coco_AP"] <= 1.0
    assert metrics["eval_AP"] == metrics["eval_coco_AP"]
    trainer.save_model(str(tmp_path / "model"))
    card = (tmp_path / "model" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    (entry,) = meta["model-index"][0]["results"]
    ap = next(m["value"] for m in entry["metrics"] if m["type"] == "AP")
    assert ap == pytest.approx(100 * metrics["eval_coco_AP"], abs=0.05) or ap == pytest.approx(metrics["eval_coco_AP"])
    assert (tmp_path / "model" / "preprocessor_config.json").exists()
    assert json.loads((tmp_path / "model" / "config.json").read_text())["model_type"] == "vitpose_plus"


def test_streaming_metrics_equal_all_at_once(rows):
    """`batch_eval_metrics` (decode each batch, keep keypoints) gives the metric of all heatmaps at once."""
    model = _model().eval()
    trainer = _trainer(rows, "unused")
    batches = list(trainer.get_eval_dataloader())
    generator = torch.Generator().manual_seed(0)
    predictions, labels = [], []
    for batch in batches:  # noisy targets as predictions: an AP strictly between 0 and 1
        noise = torch.rand(batch["labels"].shape, generator=generator)
        predictions.append(batch["labels"] + 0.6 * noise)
        labels.append((batch["labels"], batch["label_weights"], batch["dataset_index"]))
    metrics = CropSpaceMetrics(model.config)
    for i, (heatmaps, label) in enumerate(zip(predictions, labels)):
        streamed = metrics(EvalPrediction(heatmaps, label), compute_result=i == len(batches) - 1)
    at_once = CropSpaceMetrics(model.config)(EvalPrediction(
        torch.cat(predictions), tuple(torch.cat([lab[j] for lab in labels]) for j in range(3))))
    assert len(batches) > 1 and streamed == at_once and 0.0 < at_once["coco_AP"] < 1.0


class _StopAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


def test_trainer_resume_is_exact(rows, tmp_path):
    """Stopped after a checkpoint and resumed, the Trainer ends with the weights of an uninterrupted run (the
    augmentation is seeded by sample index and epoch; the resumed part crosses an epoch boundary)."""
    straight = _trainer(rows, tmp_path / "a", max_steps=6)
    straight.train()
    steps_per_epoch = len(straight.get_train_dataloader())
    assert steps_per_epoch < 6
    interrupted = _trainer(rows, tmp_path / "b", max_steps=6)
    interrupted.add_callback(_StopAt(2))
    interrupted.train()
    assert interrupted.state.global_step == 2
    resumed = _trainer(rows, tmp_path / "b", max_steps=6)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 6 and resumed.train_dataset.epoch == (6 - 1) // steps_per_epoch
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_augmentation_changes_between_epochs(rows):
    dataset = _trainer(rows, "unused").train_dataset
    dataset.set_epoch(0)
    first = dataset[0]["pixel_values"]
    dataset.set_epoch(1)
    assert not np.array_equal(first, dataset[0]["pixel_values"])
    dataset.set_epoch(0)
    assert np.array_equal(first, dataset[0]["pixel_values"])


def test_finetune_command(tmp_path, capsys):
    out = tmp_path / "ft"
    model_dir = tmp_path / "start"
    VitPosePlusForPoseEstimation(VitPosePlusConfig(**DENSE, datasets=["coco"])).save_pretrained(model_dir)
    code = main(["finetune", "--output-dir", str(out), "--model", str(model_dir), "--dataset", "0",
                 "--max-steps", "2", "--batch-size", "8", "--save-steps", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "eval_coco_AP" in printed and f"model saved to {out / 'model'}" in printed
    assert json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["global_step"] == 2
    assert (out / "checkpoint-2" / "preprocessor_config.json").exists() and (out / "model" / "README.md").exists()
