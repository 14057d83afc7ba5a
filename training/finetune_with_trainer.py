"""Fine-tune one dataset of a model with `transformers.Trainer`: `vitpose-plus finetune` (a readable, runnable
example of `trainer_utils.build_trainer`; the Accelerate loop with every option is `vitpose-plus train`).

    vitpose-plus finetune --output-dir runs/trainer --max-steps 300
    vitpose-plus finetune --model path/to/converted-model --dataset coco --train-annotations train.json \
        --train-images images/ --val-annotations val.json --val-images images/

Without annotation files it renders a small synthetic dataset in the dataset's keypoint layout. With `--model`, the
dataset must be one of the model's datasets (its expert and head are fine-tuned); otherwise a small fresh model is
built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vitpose_plus.data.datasets import load_keypoint_dataset
from vitpose_plus.file_io import check_local_path, load_model_folder
from vitpose_plus.modeling import VitPosePlusConfig, VitPosePlusForPoseEstimation

from .trainer_utils import build_trainer


@dataclass
class FinetuneResult:
    model_dir: str
    metrics: dict[str, float]
    step: int


def finetune_with_trainer(
    output_dir: str,
    model: str | None = None,
    dataset: int | str = "coco",
    train_annotations: str | None = None,
    train_images: str | None = None,
    val_annotations: str | None = None,
    val_images: str | None = None,
    max_steps: int = 300,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    save_steps: int = 100,
    resume: bool = False,
    seed: int = 0,
) -> FinetuneResult:
    """Fine-tune, evaluate and save `output_dir/model` (weights, processor, card); see the module docstring."""
    # 1. The model: a saved folder (a converted checkpoint, a trained run) or a small new one.
    if model is not None:
        net = load_model_folder(check_local_path(model))
    else:
        name = dataset if isinstance(dataset, str) else "coco"
        net = VitPosePlusForPoseEstimation(VitPosePlusConfig(
            image_size=[128, 96], hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
            deconv_channels=[64, 64], datasets=[name]))
    index = net.config.dataset_id(dataset)
    spec = net.config.dataset_spec(index)

    # 2. The data: released-format files, or a synthetic set rendered once into the output folder.
    if train_annotations is None:
        from vitpose_plus.data.synthetic import make_synthetic_dataset

        data = os.path.join(output_dir, "data")
        train_annotations = make_synthetic_dataset(spec, 300, seed, os.path.join(data, "train"))
        val_annotations = make_synthetic_dataset(spec, 40, seed + 1, os.path.join(data, "val"))
        train_images, val_images = os.path.join(data, "train"), os.path.join(data, "val")
    train_rows = load_keypoint_dataset(train_annotations, train_images, spec)
    val_rows = load_keypoint_dataset(val_annotations, val_images, spec) if val_annotations else None

    # 3. Train (resumable from the newest checkpoint), evaluate, save.
    trainer = build_trainer(
        net, index, train_rows, val_rows, output_dir, seed=seed, max_steps=max_steps,
        per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size, learning_rate=learning_rate,
        warmup_steps=min(50, max_steps // 10), lr_scheduler_type="cosine", weight_decay=0.05, max_grad_norm=1.0,
        logging_steps=10, eval_strategy="no", save_strategy="steps", save_steps=save_steps, save_total_limit=2,
    )
    trainer.train(resume_from_checkpoint=resume or None)
    metrics = trainer.evaluate() if val_rows is not None else {}
    model_dir = os.path.join(output_dir, "model")
    trainer.save_model(model_dir)
    return FinetuneResult(model_dir, metrics, trainer.state.global_step)


__all__ = ["FinetuneResult", "finetune_with_trainer"]
