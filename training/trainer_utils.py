"""Fine-tuning with `transformers.Trainer`: the collator, `compute_metrics` and the arguments that matter.

    from transformers import Trainer, TrainingArguments
    from vitpose_plus.training.trainer_utils import KeypointCollator, make_compute_metrics, trainer_arguments

    rows = load_keypoint_dataset("train.json", "images/", "coco")
    train_set = rows.with_transform(TopDownTransform("coco", dataset_index=0, train=True))
    eval_set = val_rows.with_transform(TopDownTransform("coco", dataset_index=0, train=False))
    args = TrainingArguments("out", **trainer_arguments(), per_device_train_batch_size=32, max_steps=1000)
    trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                      data_collator=KeypointCollator(model.config.max_num_keypoints),
                      compute_metrics=make_compute_metrics(model.config))

`trainer_arguments()` sets `remove_unused_columns=False` (the transform's output columns are not the raw dataset's)
and `label_names=["labels", "label_weights", "dataset_index"]`, so that evaluation hands the targets and dataset
indices to `compute_metrics`. A runnable example: `python -m vitpose_plus.training.trainer_example`.

`compute_metrics` reports a crop-space COCO-style AP: predicted and target heatmaps are both decoded (DARK-UDP or
quarter-pixel per dataset), each crop is one image with one instance whose OKS scale is the unpadded box area in
heatmap pixels. It tracks the real metric closely and needs no image metadata; the exact COCO protocol (image
coordinates, detector boxes, OKS-NMS) is `vitpose-plus evaluate`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vitpose_plus.evaluation.metrics import coco_keypoint_ap
from vitpose_plus.modeling import VitPosePlusConfig
from vitpose_plus.modeling.keypoint_codecs import codec_for

from .data_pipeline import KeypointCollator

__all__ = ["KeypointCollator", "make_compute_metrics", "trainer_arguments"]

PADDING = 1.25  # the top-down crop's padding around the (aspect-fixed) box


def trainer_arguments() -> dict[str, Any]:
    """`TrainingArguments` keyword arguments needed by this model and collator."""
    return {"remove_unused_columns": False, "label_names": ["labels", "label_weights", "dataset_index"]}


def crop_space_records(
    heatmaps: np.ndarray, labels: np.ndarray, label_weights: np.ndarray, use_udp: bool, first_id: int = 1
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Ground truth and predictions of one dataset in heatmap coordinates, one crop per image.

    Args:
        heatmaps, labels: `(N, K, h, w)` predicted and target heatmaps; label_weights: `(N, K)`.
    Returns:
        A COCO ground-truth dict and prediction records for `coco_keypoint_ap`.
    """
    codec = codec_for(use_udp)
    predicted, scores = codec.decode(torch.as_tensor(heatmaps))
    target, _ = codec.decode(torch.as_tensor(labels))
    n, k, h, w = heatmaps.shape
    area = float(h * w) / PADDING**2
    box = [w * (1 - 1 / PADDING) / 2, h * (1 - 1 / PADDING) / 2, w / PADDING, h / PADDING]
    images, annotations, records = [], [], []
    for i in range(n):
        visible = np.asarray(label_weights[i]) > 0
        if not visible.any():
            continue
        image_id = first_id + i
        gt = np.zeros((k, 3))
        gt[:, :2] = target[i].numpy()
        gt[visible, 2] = 2
        gt[~visible, :2] = 0
        images.append({"id": image_id})
        annotations.append({"id": image_id, "image_id": image_id, "category_id": 1, "bbox": box, "area": area,
                            "keypoints": gt.reshape(-1).tolist(), "iscrowd": 0})
        pred = np.concatenate([predicted[i].numpy(), scores[i].numpy()[:, None]], axis=1)
        records.append({"image_id": image_id, "keypoints": pred.reshape(-1).tolist(),
                        "score": float(scores[i].mean())})
    ground_truth = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "instance"}]}
    return ground_truth, records


def make_compute_metrics(config: VitPosePlusConfig) -> Callable[[Any], dict[str, float]]:
    """A `compute_metrics` for `transformers.Trainer`: crop-space AP per dataset (`<name>_AP`) and their mean."""

    def compute_metrics(eval_prediction: Any) -> dict[str, float]:
        heatmaps = eval_prediction.predictions
        heatmaps = heatmaps[0] if isinstance(heatmaps, (tuple, list)) else heatmaps
        label_ids = eval_prediction.label_ids
        if not isinstance(label_ids, (tuple, list)) or len(label_ids) != 3:
            raise ValueError("compute_metrics needs label_names=['labels', 'label_weights', 'dataset_index'] in the "
                             "TrainingArguments (see trainer_arguments()).")
        labels, weights, index = (np.asarray(v) for v in label_ids)
        results: dict[str, float] = {}
        for dataset in np.unique(index).tolist():
            spec = config.dataset_spec(int(dataset))
            rows = index == dataset
            k = spec.num_keypoints
            ground_truth, records = crop_space_records(
                np.asarray(heatmaps)[rows, :k], labels[rows, :k], weights[rows, :k], spec.use_udp
            )
            metrics = coco_keypoint_ap(ground_truth, records, spec.sigmas)
            results[f"{spec.name}_AP"] = metrics["AP"]
            results[f"{spec.name}_AR"] = metrics["AR"]
        aps = [v for key, v in results.items() if key.endswith("_AP")]
        results["AP"] = float(np.mean(aps)) if aps else 0.0
        return results

    return compute_metrics
