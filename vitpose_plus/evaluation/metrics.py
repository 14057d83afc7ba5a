"""COCO-style keypoint metrics: OKS-NMS, pycocotools AP/AR with per-dataset sigmas, and PCKh.

The computation follows the original evaluation (reference section 5): greedy OKS-NMS per image at 0.9 over the
padded box area, then `COCOeval(..., "keypoints")` with the dataset's own OKS sigmas. The instance rescoring (box
score x mean keypoint score above 0.2) happens in the image processor's post-processing. The `evaluate` metric
module `training/coco_keypoints_metric.py` calls the same functions.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def oks_iou(
    reference: np.ndarray, others: np.ndarray, reference_area: float, other_areas: np.ndarray, sigmas: np.ndarray
) -> np.ndarray:
    """OKS between one instance and several, as the original's `oks_iou` (no visibility threshold).

    Args:
        reference: `(K, 2+)` keypoints (x, y, ...) of one instance.
        others: `(N, K, 2+)` keypoints of N instances.
        reference_area, other_areas: areas (scalar, `(N,)`); the pair's mean is the OKS scale.
        sigmas: `(K,)` per-keypoint OKS sigmas.
    Returns:
        `(N,)` OKS values.
    """
    variances = (np.asarray(sigmas, dtype=np.float64) * 2) ** 2
    delta = others[:, :, :2] - reference[None, :, :2]
    squared = (delta**2).sum(-1)
    scale = (reference_area + np.asarray(other_areas, dtype=np.float64)) / 2 + np.spacing(1)
    e = squared / variances[None] / scale[:, None] / 2
    return np.exp(-e).mean(-1)


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
            threshold: float = 0.9) -> list[int]:
    """Greedy (non-soft) OKS-NMS of one image's instances.

    Args:
        keypoints: `(N, K, 2+)`; scores: `(N,)`; areas: `(N,)` padded box areas; sigmas: `(K,)`.
    Returns:
        Indices of the kept instances, highest score first.
    """
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    while order.size > 0:
        current = int(order[0])
        keep.append(current)
        if order.size == 1:
            break
        overlap = oks_iou(keypoints[current], keypoints[order[1:]], areas[current], areas[order[1:]], sigmas)
        order = order[1:][overlap <= threshold]
    return keep


def apply_oks_nms(predictions: Sequence[dict[str, Any]], sigmas: Sequence[float],
                  threshold: float = 0.9) -> list[dict[str, Any]]:
    """OKS-NMS per image over prediction records with `image_id`, `keypoints` (flat K*3), `score`, `area`."""
    by_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for record in predictions:
        by_image[record["image_id"]].append(record)
    kept = []
    sigmas = np.asarray(sigmas, dtype=np.float64)
    for records in by_image.values():
        keypoints = np.asarray([r["keypoints"] for r in records], dtype=np.float64).reshape(len(records), -1, 3)
        scores = np.asarray([r["score"] for r in records], dtype=np.float64)
        areas = np.asarray([r["area"] for r in records], dtype=np.float64)
        kept.extend(records[i] for i in oks_nms(keypoints, scores, areas, sigmas, threshold))
    return kept


def _ground_truth_coco(ground_truth: dict[str, Any] | Any):
    from pycocotools.coco import COCO

    if isinstance(ground_truth, COCO):
        return ground_truth
    data = copy.deepcopy(ground_truth)
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise ValueError(f"Ground truth for COCO evaluation needs an {key!r} list; got keys {sorted(data)}.")
    for ann in data["annotations"]:
        ann.setdefault("iscrowd", 0)
        ann.setdefault("num_keypoints", int(np.count_nonzero(np.asarray(ann["keypoints"])[2::3])))
        if "area" not in ann:
            ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_keypoint_ap(
    ground_truth: dict[str, Any] | Any,
    predictions: Sequence[dict[str, Any]],
    sigmas: Sequence[float],
    category_id: int | None = None,
) -> dict[str, float]:
    """COCO keypoint AP/AR through pycocotools with the dataset's own sigmas.

    Args:
        ground_truth: a COCO-format dict (images, annotations with keypoints, categories) or a `pycocotools` COCO.
        predictions: result records `{"image_id", "category_id", "keypoints": [x, y, s] * K, "score"}`.
        sigmas: `(K,)` OKS sigmas.
        category_id: category of the predictions when records omit it (defaults to the first GT category).
    Returns:
        `{"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"}`; all 0 without predictions.
    """
    from pycocotools.cocoeval import COCOeval

    if len(sigmas) == 0:
        raise ValueError("COCO keypoint AP needs the dataset's OKS sigmas; its keypoint spec has none ('sigmas').")
    coco_gt = _ground_truth_coco(ground_truth)
    if category_id is None:
        category_id = sorted(coco_gt.getCatIds())[0]
    num_keypoints = len(sigmas)
    results = []
    for record in predictions:
        keypoints = [float(v) for v in record["keypoints"]]
        if len(keypoints) != 3 * num_keypoints:
            raise ValueError(
                f"Prediction for image {record.get('image_id')} has {len(keypoints)} keypoint values, expected "
                f"{3 * num_keypoints} (x, y, score for {num_keypoints} keypoints)."
            )
        results.append(
            {
                "image_id": record["image_id"],
                "category_id": record.get("category_id", category_id),
                "keypoints": keypoints,
                "score": float(record["score"]),
            }
        )
    if not results:
        return dict.fromkeys(COCO_STAT_NAMES, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.params.useSegm = None
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(COCO_STAT_NAMES, evaluator.stats)}


def pckh(
    predicted: np.ndarray, ground_truth: np.ndarray, visible: np.ndarray, head_sizes: np.ndarray,
    threshold: float = 0.5
) -> float:
    """PCKh@threshold: share of visible keypoints within `threshold` x head size of the ground truth.

    Args:
        predicted, ground_truth: `(N, K, 2)`; visible: `(N, K)` bool; head_sizes: `(N,)` (MPII: 0.6 x head box
        diagonal).
    """
    distance = np.linalg.norm(np.asarray(predicted) - np.asarray(ground_truth), axis=-1)
    normalised = distance / np.asarray(head_sizes, dtype=np.float64)[:, None]
    mask = np.asarray(visible, dtype=bool)
    if not mask.any():
        return 0.0
    return float((normalised[mask] <= threshold).mean())
