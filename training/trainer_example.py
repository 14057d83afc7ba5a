"""Fine-tune `VitPosePlusForPoseEstimation` with `transformers.Trainer` (a runnable, documented example).

    python -m vitpose_plus.training.trainer_example --output-dir runs/trainer --max-steps 300
    python -m vitpose_plus.training.trainer_example --train-annotations train.json --train-images images/ \
        --val-annotations val.json --val-images images/ --dataset coco --model path/to/converted-model

Without annotation files it renders a small synthetic COCO-layout dataset. With `--model`, the dataset must be one
of the model's datasets (its expert and head are fine-tuned); otherwise a small fresh model is built.
"""

from __future__ import annotations

import argparse
import os
import tempfile

from transformers import Trainer, TrainingArguments

from vitpose_plus.data.datasets import flatten_top_down, load_keypoint_dataset
from vitpose_plus.modeling import VitPosePlusConfig, VitPosePlusForPoseEstimation

from .trainer_utils import KeypointCollator, make_compute_metrics, trainer_arguments
from .transforms import TopDownTransform


def build_trainer(model: VitPosePlusForPoseEstimation, dataset: str, train_rows, val_rows, output_dir: str,
                  **training_kwargs) -> Trainer:
    """A `Trainer` for one dataset of `model` (train/val rows from `load_keypoint_dataset`)."""
    config = model.config
    index = config.dataset_id(dataset)
    spec = config.dataset_spec(index)
    image_wh = (config.image_size[1], config.image_size[0])
    common = {"dataset_index": index, "image_size": image_wh, "heatmap_size": config.heatmap_size[::-1]}
    train_set = train_rows.with_transform(TopDownTransform(spec, train=True, seed=0, **common))
    eval_set = val_rows.with_transform(TopDownTransform(spec, train=False, **common)) if val_rows else None
    args = TrainingArguments(output_dir, **trainer_arguments(), report_to=[], **training_kwargs)
    return Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                   data_collator=KeypointCollator(config.max_num_keypoints),
                   compute_metrics=make_compute_metrics(config))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="runs/trainer")
    parser.add_argument("--model", default=None, help="a saved model folder to fine-tune (default: a small new one)")
    parser.add_argument("--dataset", default="coco", help="keypoint layout / the model's dataset name")
    parser.add_argument("--train-annotations"), parser.add_argument("--train-images")
    parser.add_argument("--val-annotations"), parser.add_argument("--val-images")
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    args = parser.parse_args(argv)

    if args.model:
        model = VitPosePlusForPoseEstimation.from_pretrained(args.model)
    else:
        model = VitPosePlusForPoseEstimation(VitPosePlusConfig(
            image_size=[128, 96], hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
            deconv_channels=[64, 64], datasets=[args.dataset]))
    spec = model.config.dataset_spec(args.dataset)
    with tempfile.TemporaryDirectory(prefix="vitpose_trainer_") as tmp:
        if args.train_annotations is None:
            from vitpose_plus.data.synthetic import make_synthetic_dataset

            train_json = make_synthetic_dataset(spec, 300, 0, os.path.join(tmp, "train"))
            val_json = make_synthetic_dataset(spec, 40, 1, os.path.join(tmp, "val"))
            splits = (train_json, os.path.join(tmp, "train"), val_json, os.path.join(tmp, "val"))
        else:
            splits = (args.train_annotations, args.train_images, args.val_annotations, args.val_images)
        train_rows = flatten_top_down(load_keypoint_dataset(splits[0], splits[1], spec))
        val_rows = flatten_top_down(load_keypoint_dataset(splits[2], splits[3], spec)) if splits[2] else None
        trainer = build_trainer(
            model, args.dataset, train_rows, val_rows, args.output_dir, max_steps=args.max_steps,
            per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=args.batch_size,
            learning_rate=args.learning_rate, warmup_steps=min(50, args.max_steps // 10), lr_scheduler_type="cosine",
            weight_decay=0.05, max_grad_norm=1.0, logging_steps=10, eval_strategy="no", save_strategy="no",
        )
        trainer.train()
        if val_rows is not None:
            print(trainer.evaluate())
        trainer.save_model(os.path.join(args.output_dir, "model"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
