"""Fine-tuning with transformers.Trainer (training/trainer_utils.py, trainer_example.py)."""

from __future__ import annotations

import math

import torch
from test_train import TINY_MODEL

from vitpose_plus import VitPosePlusForPoseEstimation


def test_trainer_runs_a_few_steps_with_compute_metrics(tmp_path):
    from vitpose_plus import VitPosePlusConfig
    from vitpose_plus.data.datasets import load_keypoint_dataset
    from vitpose_plus.data.synthetic import make_synthetic_dataset
    from vitpose_plus.training.trainer_example import build_trainer

    annotations = make_synthetic_dataset("coco", 4, 0, tmp_path / "data", image_size=(96, 96))
    rows = load_keypoint_dataset(annotations, tmp_path / "data", "coco")
    config = VitPosePlusConfig(**{k: v for k, v in TINY_MODEL.items() if k not in ("num_experts", "part_features")},
                               datasets=["coco"])
    torch.manual_seed(0)
    model = VitPosePlusForPoseEstimation(config)
    trainer = build_trainer(model, "coco", rows, rows, str(tmp_path / "out"), max_steps=3,
                            per_device_train_batch_size=4, per_device_eval_batch_size=4, learning_rate=1e-3,
                            logging_steps=1, save_strategy="no", use_cpu=True)
    result = trainer.train()
    assert result.global_step == 3 and math.isfinite(result.training_loss)
    metrics = trainer.evaluate()
    assert math.isfinite(metrics["eval_loss"]) and 0.0 <= metrics["eval_coco_AP"] <= 1.0
    assert metrics["eval_AP"] == metrics["eval_coco_AP"]


