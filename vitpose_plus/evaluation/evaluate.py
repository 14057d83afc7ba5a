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
import torch
from tqdm.auto import tqdm

from vitpose_plus.file_io import decode_image
from vitpose_plus.modeling.dataset_specs import KeypointDatasetSpec
from vitpose_plus.modeling.image_processing_vitpose_plus import VitPosePlusImageProcessor
from vitpose_plus.modeling.keypoint_codecs import decode_heatmaps, warp_image, warp_matrix

from .ground_truth import CropTarget, crop_targets, load_ground_truth
from .protocols import EvaluationProtocol, resolve_protocol
from .records import prediction_record
from .scoring import score_predictions

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


@torch.no_grad()
def predict_keypoints(
    model: torch.nn.Module,
    processor: VitPosePlusImageProcessor,
    images: Mapping[int, Any],
    targets: Sequence[CropTarget],
    dataset: int | str,
    batch_size: int = 32,
    flip_test: bool = True,
    progress: bool = True,
    dark_kernel_size: int = 11,
) -> list[dict[str, Any]]:
    """Prediction records for every crop target, batched across images.

    Args:
        images: image id -> image (file path or anything `decode_image` reads).
        targets: the crops (`crop_targets`), each with its center/scale.
        dataset: the model's dataset (name or index) whose expert, head, geometry and decoding are used.
    Returns:
        Records (`vitpose_plus.evaluation.records`), in target order per image.
    """
    config = model.config
    dataset_id = config.dataset_id(dataset)
    spec: KeypointDatasetSpec = config.dataset_spec(dataset_id)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    size = processor.input_size
    per_image: dict[int, list[CropTarget]] = defaultdict(list)
    for target in targets:
        per_image[target.image_id].append(target)
    records: list[dict[str, Any]] = []
    pending: list[tuple[CropTarget, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        crops = [crop for _, crop in pending]
        pixel_values = processor(crops, do_affine_transform=False)["pixel_values"].to(device, dtype)
        heatmaps = model(pixel_values, dataset_index=dataset_id, flip_test=flip_test).heatmaps
        centers = np.stack([t.center for t, _ in pending])
        scales = np.stack([t.scale for t, _ in pending])
        coords, scores = decode_heatmaps(heatmaps[:, :spec.num_keypoints].float(), centers, scales,
                                         use_udp=spec.use_udp, kernel_size=dark_kernel_size)
        for (target, _), kp, sc in zip(pending, coords.cpu().numpy(), scores.cpu().numpy()):
            records.append(prediction_record(target, kp, sc))
        pending.clear()

    for image_id in tqdm(list(per_image), desc=f"evaluate {spec.name}", disable=not progress, unit="img"):
        image = decode_image(images[image_id], context=f"image id {image_id}")
        for target in per_image[image_id]:
            matrix = warp_matrix(target.center, target.scale, 0.0, size, spec.use_udp)
            pending.append((target, warp_image(image, matrix, size, processor.crop_backend)))
        if len(pending) >= batch_size:
            flush()
    flush()
    return records


def evaluate_keypoints(
    model: torch.nn.Module,
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
    dark_kernel_size: int = 11,
    protocol: str | EvaluationProtocol | None = None,
    mpii_gt_mat: str | os.PathLike | None = None,
) -> EvaluationResult:
    """Evaluate `model` on one dataset file as the original (see the module docstring).

    Args:
        annotation_file: the ground truth in its released format; images are read from `image_root/file_name`.
        dataset: the model's dataset (name or index) the file is evaluated with (OCHuman: the COCO head).
        detections_file: COCO detection results (xywh boxes with scores); ground-truth boxes when `None`.
        detection_score_threshold: keep detections with `score >=` it (the original's `det_bbox_thr`, 0.0).
        nms_threshold: OKS-NMS threshold (`None` disables it).
        dark_kernel_size: DARK-UDP blur kernel (the original's `modulate_kernel`, 11 for 64x48 heatmaps).
        protocol: `protocols.PROTOCOLS` name; defaults from the dataset name (`generic` for other names).
        mpii_gt_mat: MPII: `mpii_gt_val.mat` (default: next to the annotation file).
    """
    spec = model.config.dataset_spec(dataset)
    proto = resolve_protocol(protocol, spec.name)
    gt = load_ground_truth(annotation_file, proto, spec, image_root, mpii_gt_mat)
    targets = crop_targets(gt, detections_file, detection_score_threshold, processor.input_size,
                           processor.padding_factor)
    records = predict_keypoints(model, processor, gt.image_paths, targets, dataset, batch_size, flip_test, progress,
                                dark_kernel_size)
    scored = score_predictions(gt, records, nms_threshold)
    return EvaluationResult(dataset=spec.name, metrics=scored.metrics, predictions=scored.kept,
                            num_boxes=len(records), protocol=proto.name, results=scored.results)


__all__ = ["EvaluationResult", "evaluate_keypoints", "predict_keypoints"]
