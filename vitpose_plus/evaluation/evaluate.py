"""Top-down evaluation of a model on a dataset file, as the original: targets, crops, model, records, score.

`evaluate_keypoints` runs, per protocol (`protocols.PROTOCOLS`, default from the dataset name):

1. `load_ground_truth`: the file in its released format (COCO, OCHuman, AIC, MPII, AP-10K, APT-36K, WholeBody);
2. `crop_targets`: ground-truth boxes as the original's GT-box path, a detection file (`score >= det_bbox_thr`), or
   MPII's annotated center/scale;
3. `predict_keypoints` (the "make records" half): crops with the dataset's geometry (UDP or not), the model with
   flip test, decoding (DARK-UDP or quarter-pixel), rescoring (box score x mean keypoint score above 0.2);
4. `score_predictions` (the "score records" half): OKS-NMS at 0.9, then the protocol's metric.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from vitpose_plus.file_io import decode_image
from vitpose_plus.modeling import ImageInstances, TopDownPredictor, VitPosePlusImageProcessor

from .ground_truth import CropTarget, GroundTruth, crop_targets, load_ground_truth
from .protocols import EvaluationProtocol, resolve_protocol
from .records import prediction_record
from .scoring import ScoreResult, score_predictions

logger = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """Metrics (`AP` ... `ARl`, WholeBody parts, or MPII PCKh names), the kept records and the results written."""

    dataset: str
    metrics: dict[str, float]
    predictions: list[dict[str, Any]] = field(default_factory=list)
    num_boxes: int = 0
    protocol: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)


def predict_keypoints(
    model: Any,
    processor: VitPosePlusImageProcessor,
    images: Mapping[int, Any],
    targets: Sequence[CropTarget],
    dataset: int | str,
    batch_size: int = 32,
    flip_test: bool = True,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Prediction records for every crop target through the shared `TopDownPredictor` (the crops, model call, flip
    test and decoding of `predict` and the pipeline), batched across images.

    Args:
        model: the pose model (or any callable the predictor accepts, e.g. a test oracle).
        images: image id -> image (file path or anything `decode_image` reads).
        targets: the crops (`crop_targets`), each with its center/scale.
        dataset: the model's dataset (name or index) whose expert, head, geometry and decoding are used.
    Returns:
        Records (`vitpose_plus.evaluation.records`), in target order per image.
    """
    per_image: dict[int, list[CropTarget]] = defaultdict(list)
    for target in targets:
        per_image[target.image_id].append(target)
    name = model.config.dataset_names[model.config.dataset_id(dataset)] if hasattr(model, "config") else dataset
    items = (
        ImageInstances(
            key=image_id,
            image=lambda image_id=image_id: decode_image(images[image_id], context=f"image id {image_id}"),
            centers=np.stack([t.center for t in image_targets]),
            scales=np.stack([t.scale for t in image_targets]),
            extra=[{"target": t} for t in image_targets],
        )
        for image_id, image_targets in per_image.items()
    )
    predictor = TopDownPredictor(model, processor, batch_size=batch_size, flip_test=flip_test)
    records: list[dict[str, Any]] = []
    stream = predictor.predict_iter(items, processor.dataset_index(name))
    for _, predictions in tqdm(stream, total=len(per_image), desc="evaluate", disable=not progress, unit="img"):
        records.extend(prediction_record(p.extra["target"], p.keypoints, p.keypoint_scores) for p in predictions)
    return records


@dataclass
class PreparedSplit:
    """A validation split ready to predict: its ground truth, protocol and crop targets."""

    dataset: str
    protocol: EvaluationProtocol
    ground_truth: GroundTruth
    targets: list[CropTarget]


def prepare_split(
    processor: VitPosePlusImageProcessor,
    annotation_file: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset: int | str,
    detections_file: str | os.PathLike | None = None,
    detection_score_threshold: float = 0.0,
    protocol: str | EvaluationProtocol | None = None,
    mpii_gt_mat: str | os.PathLike | None = None,
) -> PreparedSplit:
    """The ground truth (in its released format, which the protocol decides) and the crop targets the original
    evaluates. The dataset's spec is the processor's (the model's datasets), so any callable model works."""
    spec = processor.dataset_spec(dataset)
    proto = resolve_protocol(protocol, spec.name)
    gt = load_ground_truth(annotation_file, proto, spec, image_root, mpii_gt_mat)
    targets = crop_targets(gt, detections_file, detection_score_threshold, processor.input_size,
                           processor.padding_factor)
    return PreparedSplit(spec.name, proto, gt, targets)


def predict_split(
    model: Any,
    processor: VitPosePlusImageProcessor,
    annotation_file: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset: int | str,
    batch_size: int = 32,
    flip_test: bool = True,
    progress: bool = True,
    shard: tuple[int, int] = (0, 1),
    **prepare_kwargs: Any,
) -> tuple[PreparedSplit, list[dict[str, Any]]]:
    """`prepare_split`, then the records of this process's share of the images (`shard = (rank, world)`: every
    `world`-th image from `rank`), so that several processes each predict part of a split."""
    prepared = prepare_split(processor, annotation_file, image_root, dataset, **prepare_kwargs)
    rank, world = shard
    image_ids = sorted({t.image_id for t in prepared.targets})[rank::world]
    mine = set(image_ids)
    targets = [t for t in prepared.targets if t.image_id in mine]
    records = predict_keypoints(model, processor, prepared.ground_truth.image_paths, targets, dataset, batch_size,
                                flip_test, progress)
    return prepared, records


def score_split(prepared: PreparedSplit, records: Sequence[dict[str, Any]], nms_threshold: float | None = 0.9
                ) -> ScoreResult:
    """The protocol's metrics of the records of a split (from one process or gathered from several)."""
    ordered = sorted(records, key=lambda r: r["target_id"])  # the same order whatever the sharding
    return score_predictions(prepared.ground_truth, ordered, nms_threshold)


def evaluate_keypoints(
    model: Any,
    processor: VitPosePlusImageProcessor,
    annotation_file: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset: int | str,
    detections_file: str | os.PathLike | None = None,
    detection_score_threshold: float = 0.0,
    batch_size: int = 32,
    flip_test: bool = True,
    nms_threshold: float | None = 0.9,
    progress: bool = True,
    protocol: str | EvaluationProtocol | None = None,
    mpii_gt_mat: str | os.PathLike | None = None,
) -> EvaluationResult:
    """Evaluate `model` on one dataset file as the original (see the module docstring). The decoding settings (blur
    kernel) are the processor's, i.e. those saved with the model.

    Args:
        annotation_file: the ground truth in its released format; images are read from `image_root/file_name`.
        dataset: the model's dataset (name or index) the file is evaluated with (OCHuman: the COCO head).
        detections_file: COCO detection results (xywh boxes with scores); ground-truth boxes when `None`.
        detection_score_threshold: keep detections with `score >=` it (the original's `det_bbox_thr`, 0.0).
        nms_threshold: OKS-NMS threshold (`None` disables it).
        protocol: `protocols.PROTOCOLS` name; defaults from the dataset name (`generic` for other names).
        mpii_gt_mat: MPII: `mpii_gt_val.mat` (default: next to the annotation file).
    """
    prepared, records = predict_split(
        model, processor, annotation_file, image_root, dataset, batch_size=batch_size, flip_test=flip_test,
        progress=progress, detections_file=detections_file, detection_score_threshold=detection_score_threshold,
        protocol=protocol, mpii_gt_mat=mpii_gt_mat,
    )
    scored = score_split(prepared, records, nms_threshold)
    return EvaluationResult(dataset=prepared.dataset, metrics=scored.metrics, predictions=scored.kept,
                            num_boxes=len(records), protocol=prepared.protocol.name, results=scored.results)


__all__ = ["EvaluationResult", "PreparedSplit", "evaluate_keypoints", "predict_keypoints", "predict_split",
           "prepare_split", "score_split"]
