"""Top-down evaluation on a COCO-format keypoint file: boxes -> crops -> model (flip test) -> keypoints -> AP.

`evaluate_keypoints` runs the original evaluation protocol (reference section 5): ground-truth boxes or a detection
results file, flip test, per-dataset decoding (DARK-UDP or quarter-pixel, from the dataset spec), rescoring
(box score x mean keypoint score above 0.2), OKS-NMS at 0.9 and pycocotools AP/AR with the dataset's sigmas.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from vitpose_plus.file_io import decode_image, read_json_file
from vitpose_plus.modeling import ImageInstances, TopDownPredictor
from vitpose_plus.modeling.image_processing_vitpose_plus import VitPosePlusImageProcessor
from vitpose_plus.modeling.keypoint_codecs import sanitize_box

from .metrics import apply_oks_nms, coco_keypoint_ap

logger = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """Metrics (`AP`, `AP50`, ... as `coco_keypoint_ap` names them) and the kept prediction records."""

    dataset: str
    metrics: dict[str, float]
    predictions: list[dict[str, Any]] = field(default_factory=list)
    num_boxes: int = 0


def boxes_from_ground_truth(ground_truth: dict[str, Any]) -> dict[int, list[tuple[list[float], float]]]:
    """Per image, the sanitised ground-truth boxes of annotated instances with score 1 (as the original GT-box eval)."""
    sizes = {img["id"]: (img.get("width"), img.get("height")) for img in ground_truth["images"]}
    boxes: dict[int, list[tuple[list[float], float]]] = defaultdict(list)
    for ann in ground_truth["annotations"]:
        if ann.get("iscrowd", 0) or max(ann.get("keypoints", [0])[2::3] or [0]) == 0:
            continue
        width, height = sizes[ann["image_id"]]
        box = sanitize_box(ann["bbox"], width, height) if width and height else list(ann["bbox"])
        if box is not None:
            boxes[ann["image_id"]].append((box, 1.0))
    return boxes


def boxes_from_detections(
    detections: list[dict[str, Any]], image_ids: set[int], category_id: int, score_threshold: float = 0.0,
    source: str = "detections",
) -> dict[int, list[tuple[list[float], float]]]:
    """Per image, detector boxes (xywh) of `category_id` with score > `score_threshold`, used unchanged."""
    boxes: dict[int, list[tuple[list[float], float]]] = defaultdict(list)
    if not isinstance(detections, list):
        raise ValueError(f"{source}: expected a list of COCO detection results, got {type(detections).__name__}.")
    for i, det in enumerate(detections):
        missing = [k for k in ("image_id", "bbox", "score") if k not in det]
        if missing:
            raise ValueError(f"{source}: detection #{i} lacks {missing}; each needs image_id, bbox (xywh) and score.")
        if det.get("category_id", category_id) != category_id or det["score"] <= score_threshold:
            continue
        if det["image_id"] not in image_ids:
            raise ValueError(f"{source}: detection #{i} refers to image_id {det['image_id']}, absent from the "
                             "ground-truth file.")
        if len(det["bbox"]) != 4:
            raise ValueError(f"{source}: detection #{i} has bbox {det['bbox']}, expected 4 numbers (x, y, w, h).")
        boxes[det["image_id"]].append(([float(v) for v in det["bbox"]], float(det["score"])))
    return boxes


def predict_keypoints(
    model: torch.nn.Module,
    processor: VitPosePlusImageProcessor,
    images: dict[int, str],
    boxes: dict[int, list[tuple[list[float], float]]],
    dataset: int | str,
    batch_size: int = 32,
    flip_test: bool = True,
    category_id: int = 1,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Keypoint result records for every box, through the shared `TopDownPredictor` (batched across images).

    Args:
        images: image id -> image file path.
        boxes: image id -> list of `(xywh box, box score)`.
        dataset: the model's dataset (name or index) whose expert, head and decoding are used.
    Returns:
        Records `{"image_id", "category_id", "keypoints": [x, y, s] * K, "score", "area", "bbox"}` with
        score = box score x mean keypoint score above 0.2 and area = padded box area (200 s_w)(200 s_h).
    """
    predictor = TopDownPredictor(model, processor, batch_size=batch_size, flip_test=flip_test)
    image_ids = [i for i in boxes if boxes[i]]
    items = (
        ImageInstances(
            key=image_id,
            image=lambda path=images[image_id], image_id=image_id: decode_image(path, context=f"image id {image_id}"),
            boxes=np.asarray([b for b, _ in boxes[image_id]], dtype=np.float64),
            box_scores=np.asarray([s for _, s in boxes[image_id]], dtype=np.float64),
        )
        for image_id in image_ids
    )
    records: list[dict[str, Any]] = []
    stream = predictor.predict_iter(items, processor.dataset_index(model.config.dataset_names[
        model.config.dataset_id(dataset)]))
    for image_id, predictions in tqdm(stream, total=len(image_ids), desc="evaluate", disable=not progress,
                                      unit="img"):
        for prediction in predictions:
            records.append({**prediction.to_coco(image_id, category_id), "area": prediction.area})
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
) -> EvaluationResult:
    """COCO keypoint AP of `model` on one dataset (see the module docstring).

    Args:
        annotation_file: COCO-format keypoint ground truth; images are read from `image_root/file_name`.
        dataset: the model's dataset (name or index) the file belongs to.
        detections_file: COCO detection results (xywh boxes with scores); ground-truth boxes when `None`.
        nms_threshold: OKS-NMS threshold (`None` disables it, e.g. with ground-truth boxes of crowded scenes).
    """
    ground_truth = read_json_file(annotation_file, "annotation")
    for key in ("images", "annotations"):
        if key not in ground_truth:
            raise ValueError(f"Annotation file {os.fspath(annotation_file)!r} has no {key!r} list.")
    categories = ground_truth.get("categories") or [{"id": 1, "name": "person"}]
    ground_truth.setdefault("categories", categories)
    category_id = categories[0]["id"]
    images = {img["id"]: os.path.join(image_root, img["file_name"]) for img in ground_truth["images"]}
    if detections_file is None:
        boxes = boxes_from_ground_truth(ground_truth)
    else:
        detections = read_json_file(detections_file, "detection results")
        boxes = boxes_from_detections(detections, set(images), category_id, detection_score_threshold,
                                      source=os.fspath(detections_file))
    spec = model.config.dataset_spec(dataset)
    if ground_truth["annotations"]:
        first = ground_truth["annotations"][0]["keypoints"]
        if len(first) != 3 * spec.num_keypoints:
            raise ValueError(
                f"Annotation file {os.fspath(annotation_file)!r} has {len(first) // 3} keypoints per instance, but "
                f"the model's dataset {spec.name!r} has {spec.num_keypoints}."
            )
    records = predict_keypoints(model, processor, images, boxes, dataset, batch_size, flip_test, category_id,
                                progress)
    kept = apply_oks_nms(records, spec.sigmas, nms_threshold) if nms_threshold is not None else records
    metrics = coco_keypoint_ap(ground_truth, kept, spec.sigmas, category_id)
    return EvaluationResult(dataset=spec.name, metrics=metrics, predictions=kept, num_boxes=len(records))
