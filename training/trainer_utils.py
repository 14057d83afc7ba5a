"""Fine-tuning with `transformers.Trainer`: a `Trainer` subclass, the collator, a streaming `compute_metrics` and the
arguments that matter.

    from vitpose_plus.training.trainer_utils import build_trainer

    trainer = build_trainer(model, "coco", train_rows, val_rows, "out", max_steps=1000,
                            per_device_train_batch_size=32, save_steps=200)
    trainer.train()                       # trainer.train(resume_from_checkpoint=True) continues bit-exactly
    trainer.save_model("out/model")       # weights, config, preprocessor_config.json and this repository's card

What `build_trainer` / `VitPosePlusTrainer` take care of:

- the processor is the `processing_class`, so every checkpoint and the final folder carry `preprocessor_config.json`
  (the crop and decoding settings the model is evaluated with);
- exact resume: each sample's augmentation is seeded by (seed, dataset, epoch, index) (`TopDownTrainingDataset`), and
  `SetEpochCallback` hands the Trainer's epoch to the dataset, so a resumed run sees the same crops;
- streaming evaluation (`batch_eval_metrics=True`): `CropSpaceMetrics` decodes each batch's heatmaps and keeps only
  keypoints, instead of every heatmap of the evaluation set (about 21 GB for a six-dataset COCO val);
- `create_model_card` (called by `save_model` / `push_to_hub`) writes this repository's card, with the last
  evaluation's AP per dataset in its `model-index`.

The metric is a crop-space COCO-style AP: predicted and target heatmaps are both decoded (DARK-UDP or quarter-pixel
per dataset), each crop is one image with one instance whose OKS scale is the unpadded box area in heatmap pixels. It
tracks the real metric closely and needs no image metadata; the exact COCO protocol (image coordinates, detector
boxes, OKS-NMS) is `vitpose-plus evaluate`.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from vitpose_plus.evaluation.metrics import coco_keypoint_ap
from vitpose_plus.modeling import VitPosePlusConfig, VitPosePlusForPoseEstimation, VitPosePlusImageProcessor
from vitpose_plus.modeling.keypoint_codecs import codec_for

from .data_pipeline import KeypointCollator, TopDownTrainingDataset
from .transforms import TopDownTransform

__all__ = [
    "CropSpaceMetrics",
    "KeypointCollator",
    "SetEpochCallback",
    "VitPosePlusTrainer",
    "build_trainer",
    "make_compute_metrics",
    "trainer_arguments",
]

PADDING = 1.25  # the top-down crop's padding around the (aspect-fixed) box
LABEL_NAMES = ["labels", "label_weights", "dataset_index"]


def trainer_arguments() -> dict[str, Any]:
    """`TrainingArguments` keyword arguments needed by this model and collator: the transform's columns are not the
    raw dataset's (`remove_unused_columns=False`), evaluation hands the targets and dataset indices to
    `compute_metrics` (`label_names`), and metrics stream batch by batch (`batch_eval_metrics`)."""
    return {"remove_unused_columns": False, "label_names": list(LABEL_NAMES), "batch_eval_metrics": True}


# ------------------------------------------------------------------------------------------------------- metrics
class CropSpaceMetrics:
    """`compute_metrics` for `transformers.Trainer`: crop-space AP per dataset (`<name>_AP`, `<name>_AR`) and their
    mean (`AP`).

    Works both ways the Trainer calls it: once with every heatmap of the evaluation set, or per batch with
    `compute_result` (`batch_eval_metrics=True`), keeping only decoded keypoints between batches.
    """

    def __init__(self, config: VitPosePlusConfig):
        self.config = config
        self._parts: dict[int, list[tuple[np.ndarray, ...]]] = {}

    def __call__(self, eval_prediction: Any, compute_result: bool | None = None) -> dict[str, float] | None:
        self._add(eval_prediction)
        if compute_result is False:
            return None
        results = self._result()
        self._parts = {}
        return results

    def _add(self, eval_prediction: Any) -> None:
        heatmaps = eval_prediction.predictions
        heatmaps = heatmaps[0] if isinstance(heatmaps, (tuple, list)) else heatmaps
        label_ids = eval_prediction.label_ids
        if not isinstance(label_ids, (tuple, list)) or len(label_ids) != 3:
            raise ValueError(f"compute_metrics needs label_names={LABEL_NAMES} in the TrainingArguments (see "
                             "trainer_arguments()).")
        heatmaps = torch.as_tensor(heatmaps).detach().float().cpu()
        labels, weights, index = (torch.as_tensor(v).detach().cpu() for v in label_ids)
        for dataset in torch.unique(index).tolist():
            spec = self.config.dataset_spec(int(dataset))
            rows = index == dataset
            k = spec.num_keypoints
            codec = codec_for(spec.use_udp)
            predicted, scores = codec.decode(heatmaps[rows, :k])
            target, _ = codec.decode(labels[rows, :k].float())
            self._parts.setdefault(int(dataset), []).append(
                (predicted.numpy(), scores.numpy(), target.numpy(), weights[rows, :k].numpy(),
                 tuple(heatmaps.shape[-2:])))

    def _result(self) -> dict[str, float]:
        results: dict[str, float] = {}
        for dataset, parts in sorted(self._parts.items()):
            spec = self.config.dataset_spec(dataset)
            predicted, scores, target, weights = (np.concatenate([p[i] for p in parts]) for i in range(4))
            ground_truth, records = crop_space_records(predicted, scores, target, weights, parts[0][4])
            metrics = coco_keypoint_ap(ground_truth, records, spec.sigmas)
            results[f"{spec.name}_AP"] = metrics["AP"]
            results[f"{spec.name}_AR"] = metrics["AR"]
        aps = [v for key, v in results.items() if key.endswith("_AP")]
        results["AP"] = float(np.mean(aps)) if aps else 0.0
        return results


def make_compute_metrics(config: VitPosePlusConfig) -> CropSpaceMetrics:
    """The `compute_metrics` of `build_trainer` (a `CropSpaceMetrics`)."""
    return CropSpaceMetrics(config)


def crop_space_records(predicted: np.ndarray, scores: np.ndarray, target: np.ndarray, label_weights: np.ndarray,
                       heatmap_size: tuple[int, int], first_id: int = 1
                       ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Ground truth and predictions of one dataset in heatmap coordinates, one crop per image.

    Args:
        predicted, target: `(N, K, 2)` decoded keypoints of the predicted and target heatmaps; scores: `(N, K)`
            predicted maxima; label_weights: `(N, K)`; heatmap_size: `(h, w)`.
    Returns:
        A COCO ground-truth dict and prediction records for `coco_keypoint_ap`.
    """
    n, k = predicted.shape[:2]
    h, w = heatmap_size
    area = float(h * w) / PADDING**2
    box = [w * (1 - 1 / PADDING) / 2, h * (1 - 1 / PADDING) / 2, w / PADDING, h / PADDING]
    images, annotations, records = [], [], []
    for i in range(n):
        visible = np.asarray(label_weights[i]) > 0
        if not visible.any():
            continue
        image_id = first_id + i
        gt = np.zeros((k, 3))
        gt[:, :2] = target[i]
        gt[visible, 2] = 2
        gt[~visible, :2] = 0
        images.append({"id": image_id})
        annotations.append({"id": image_id, "image_id": image_id, "category_id": 1, "bbox": box, "area": area,
                            "keypoints": gt.reshape(-1).tolist(), "iscrowd": 0})
        pred = np.concatenate([predicted[i], scores[i][:, None]], axis=1)
        records.append({"image_id": image_id, "keypoints": pred.reshape(-1).tolist(), "score": float(scores[i].mean())})
    ground_truth = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "instance"}]}
    return ground_truth, records


# ------------------------------------------------------------------------------------------------------- trainer
class SetEpochCallback(TrainerCallback):
    """Tells the training dataset the epoch at the start of each epoch (also the resumed one), so its augmentation
    seeds include the epoch (Accelerate only forwards `set_epoch` to the dataset when the sampler has none)."""

    def on_epoch_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        dataset = getattr(kwargs.get("train_dataloader"), "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(math.floor(state.epoch + 1e-9))


class VitPosePlusTrainer(Trainer):
    """`transformers.Trainer` with the epoch handed to the dataset and this repository's model card."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_callback(SetEpochCallback())

    def create_model_card(self, model_name: str | None = None, **kwargs: Any) -> None:
        """Write `README.md` into `args.output_dir` (what `push_to_hub` uploads): this repository's card. Trainer's
        generic keyword arguments (language, tags, finetuned_from, ...) do not apply to it and are ignored."""
        if self.is_world_process_zero():
            self.write_model_card(self.args.output_dir, model_name)

    def write_model_card(self, folder: str, model_name: str | None = None) -> None:
        """This repository's card (architecture, datasets, usage code) in `folder/README.md`, with the AP per dataset
        of the last evaluation in `model-index`."""
        from vitpose_plus.file_io import write_text
        from vitpose_plus.hub_cards.cards import card_info_for_model, render_model_card

        model = self.accelerator.unwrap_model(self.model)
        evaluation = next((entry for entry in reversed(self.state.log_history)
                           if any(key.endswith("_AP") for key in entry)), {})
        measured = {name: {metric: evaluation[f"eval_{name}_{metric}"] for metric in ("AP", "AR")
                           if f"eval_{name}_{metric}" in evaluation}
                    for name in model.config.dataset_names if f"eval_{name}_AP" in evaluation}
        info = card_info_for_model(
            model,
            title=model_name or os.path.basename(os.path.normpath(self.args.output_dir)) or "vitpose-plus-model",
            description=f"A ViTPose model fine-tuned with `transformers.Trainer` on "
                        f"{', '.join(model.config.dataset_names)} (crop-space AP of its last evaluation below).",
            provenance=[f"Fine-tuned with `vitpose_plus.training.trainer_utils.build_trainer` for "
                        f"{self.state.global_step} steps."],
            measured_results=measured,
        )
        write_text(os.path.join(folder, "README.md"), render_model_card(info))

    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        """Every saved folder (checkpoints and `save_model`) gets the card too."""
        super()._save(output_dir, state_dict)
        if self.is_world_process_zero():
            self.write_model_card(output_dir or self.args.output_dir)


def build_trainer(model: VitPosePlusForPoseEstimation, dataset: int | str, train_rows: Any, val_rows: Any,
                  output_dir: str, processor: VitPosePlusImageProcessor | None = None, seed: int = 0,
                  **training_kwargs: Any) -> VitPosePlusTrainer:
    """A `VitPosePlusTrainer` for one dataset of `model` (train/val rows from `load_keypoint_dataset`).

    `training_kwargs` go to `TrainingArguments` (with `trainer_arguments()` and `report_to=[]` as defaults).
    """
    config = model.config
    index = config.dataset_id(dataset)
    processor = processor or VitPosePlusImageProcessor.from_model_config(config, index)
    train_set = TopDownTrainingDataset(train_rows, TopDownTransform(processor, index, train=True), seed=seed)
    eval_set = None
    if val_rows is not None:
        eval_set = TopDownTrainingDataset(val_rows, TopDownTransform(processor, index, train=False), seed=seed)
    arguments = {**trainer_arguments(), "report_to": [], "seed": seed,
                 "dataloader_pin_memory": torch.cuda.is_available(), **training_kwargs}
    args = TrainingArguments(output_dir, **arguments)
    return VitPosePlusTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                              data_collator=KeypointCollator(config.max_num_keypoints), processing_class=processor,
                              compute_metrics=make_compute_metrics(config))
