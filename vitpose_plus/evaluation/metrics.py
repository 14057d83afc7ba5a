"""Keypoint metrics exactly as the original computes them: OKS-NMS, xtcocotools keypoint AP/AR, MPII PCKh.

**Engine.** The original scores with xtcocotools' `COCOeval`. xtcocotools is not used here: it is a compiled
package that trails numpy releases (its wheels need numpy 1.x) and adds nothing pycocotools lacks except a few
rules. pycocotools (maintained, already a dependency) stays the matching and accumulation engine, and
`keypoint_ap` feeds it so that it computes what xtcocotools computes (verified against xtcocotools 1.14.3 on the test
fixtures):

* ground-truth ids are renumbered 1..N: pycocotools marks "unmatched" with id 0 (xtcocotools with -1), so an
  annotation with id 0 could never be matched;
* a ground truth is ignored when none of its keypoints (of the evaluated part) is labelled, counted from the
  keypoints (xtcocotools) rather than from the `num_keypoints` field (pycocotools);
* detections whose keypoint scores are all <= 0 are dropped (xtcocotools `_prepare`);
* the OKS scale and the area ranges use `area`, or `bbox_w * bbox_h * 0.53` when the annotation has no area or the
  protocol sets `use_area=False` (AIC);
* COCO-WholeBody parts are evaluated separately (xtcocotools' `keypoints_foot`, ... iouTypes) by slicing the
  keypoints and sigmas; a detection's area (for the area ranges) is the extent of its 17 body keypoints, as
  xtcocotools' `loadRes` computes it from the `keypoints` field.

**OKS-NMS** transcribes the original `oks_nms` / `oks_iou`: greedy, OKS against the pair's mean area plus `eps`, no
visibility threshold, float32 overlaps compared with `<= thr`, and `scores.argsort()[::-1]`, so that among exactly
equal scores the later record is kept first (a stable sort reversed; the original's quicksort is stable for up to
16 records per image, the only case where its order is defined).
"""

from __future__ import annotations

import contextlib
import io
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from .protocols import COCO_METRIC_NAMES

COCO_STAT_NAMES = COCO_METRIC_NAMES
AREA_FACTOR = 0.53  # xtcocotools' area stand-in: bbox_w * bbox_h * 0.53


# ----------------------------------------------------------------------------------------------- OKS-NMS
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
        `(N,)` float32 OKS values (the original stores them in a float32 array).
    """
    variances = (np.asarray(sigmas, dtype=np.float64) * 2) ** 2
    reference = np.asarray(reference, dtype=np.float64)
    others = np.asarray(others, dtype=np.float64).reshape(len(other_areas), *reference.shape)
    delta = others[:, :, :2] - reference[None, :, :2]
    squared = (delta**2).sum(-1)
    scale = (reference_area + np.asarray(other_areas, dtype=np.float64)) / 2 + np.spacing(1)
    e = squared / variances[None] / scale[:, None] / 2
    return (np.exp(-e).sum(-1) / e.shape[-1]).astype(np.float32)


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
            threshold: float = 0.9) -> list[int]:
    """Greedy (non-soft) OKS-NMS of one image's instances, the original `oks_nms`.

    Args:
        keypoints: `(N, K, 2+)`; scores: `(N,)`; areas: `(N,)` padded box areas; sigmas: `(K,)`.
    Returns:
        Indices of the kept instances, highest score first (exact ties: the higher index first, as the original).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return []
    keypoints = np.asarray(keypoints, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    order = np.argsort(scores, kind="stable")[::-1]
    keep: list[int] = []
    while order.size > 0:
        current = int(order[0])
        keep.append(current)
        overlap = oks_iou(keypoints[current], keypoints[order[1:]], areas[current], areas[order[1:]], sigmas)
        order = order[1:][overlap <= threshold]
    return keep


def apply_oks_nms(predictions: Sequence[dict[str, Any]], sigmas: Sequence[float],
                  threshold: float = 0.9) -> list[dict[str, Any]]:
    """OKS-NMS per image over records with `image_id`, `keypoints` (flat K*3), `score`, `area`.

    Within an image, records are taken in `target_id` order when they have one (the original sorts by `bbox_id`
    before the NMS), else in the given order; the kept records come out in NMS order, image by image.
    """
    by_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for record in predictions:
        by_image[record["image_id"]].append(record)
    kept = []
    sigmas = np.asarray(sigmas, dtype=np.float64)
    for records in by_image.values():
        if all("target_id" in r for r in records):
            records = sorted(records, key=lambda r: r["target_id"])
        keypoints = np.asarray([r["keypoints"] for r in records], dtype=np.float64).reshape(len(records), -1, 3)
        scores = np.asarray([r["score"] for r in records], dtype=np.float64)
        areas = np.asarray([r["area"] for r in records], dtype=np.float64)
        kept.extend(records[i] for i in oks_nms(keypoints, scores, areas, sigmas, threshold))
    return kept


# ----------------------------------------------------------------------------------------------- keypoint AP
def keypoint_extent_area(keypoints: Sequence[float]) -> float:
    """xtcocotools' `loadRes` area of a result: `(max x - min x) * (max y - min y)` of its flat keypoints."""
    kp = np.asarray(keypoints, dtype=np.float64)
    x, y = kp[0::3], kp[1::3]
    return float((x.max() - x.min()) * (y.max() - y.min()))


def keypoint_ap(
    image_ids: Sequence[int],
    category_ids: Sequence[int],
    ground_truth: Sequence[dict[str, Any]],
    detections: Sequence[dict[str, Any]],
    sigmas: Sequence[float],
    use_area: bool = True,
) -> dict[str, float]:
    """COCO keypoint AP/AR as xtcocotools' `COCOeval(gt, dt, 'keypoints', sigmas, use_area)` computes it.

    Args:
        image_ids, category_ids: the ground truth's images and categories (all are evaluated).
        ground_truth: `{"image_id", "category_id", "keypoints": [x, y, v] * K, "bbox", "area" (or None),
            "iscrowd"}` per annotation (any ids; renumbered here).
        detections: `{"image_id", "category_id", "keypoints": [x, y, s] * K, "score", "area"}`; `area` (used only
            for the medium/large area ranges) defaults to `keypoint_extent_area`.
        sigmas: `(K,)` OKS sigmas.
        use_area: use `area` for the OKS scale and area ranges (else `bbox_w * bbox_h * 0.53`).
    Returns:
        `{"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"}` (-1 where there is no ground truth,
        as COCOeval).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    sigmas = np.asarray(sigmas, dtype=np.float64)
    k = sigmas.size
    if k == 0:
        raise ValueError("Keypoint AP needs the dataset's OKS sigmas; its keypoint spec has none ('sigmas').")
    images = [{"id": int(i)} for i in image_ids]
    categories = [{"id": int(c)} for c in category_ids]
    known_images = {img["id"] for img in images}
    gt_anns = []
    for i, gt in enumerate(ground_truth):
        kp = np.asarray(gt["keypoints"], dtype=np.float64).reshape(-1)
        if kp.size != 3 * k:
            raise ValueError(f"Ground truth of image {gt.get('image_id')} has {kp.size} keypoint values, expected "
                             f"{3 * k}.")
        bbox = [float(v) for v in gt["bbox"]]
        area = gt.get("area")
        if area is None or not use_area:
            area = bbox[2] * bbox[3] * AREA_FACTOR
        gt_anns.append({
            "id": i + 1, "image_id": int(gt["image_id"]), "category_id": int(gt["category_id"]),
            "keypoints": kp.tolist(), "bbox": bbox, "area": float(area), "iscrowd": int(gt.get("iscrowd", 0) or 0),
            "num_keypoints": int(np.count_nonzero(kp[2::3] > 0)),
        })
    dt_anns = []
    for det in detections:
        kp = np.asarray(det["keypoints"], dtype=np.float64).reshape(-1)
        if kp.size != 3 * k:
            raise ValueError(f"Prediction for image {det.get('image_id')} has {kp.size} keypoint values, expected "
                             f"{3 * k} (x, y, score for {k} keypoints).")
        if int(det["image_id"]) not in known_images:
            raise ValueError(f"Prediction for image_id {det['image_id']}: no such image in the ground truth.")
        if not np.any(kp[2::3] > 0):  # xtcocotools drops results without a positive keypoint score
            continue
        x, y = kp[0::3], kp[1::3]
        area = det.get("area")
        dt_anns.append({
            "id": len(dt_anns) + 1, "image_id": int(det["image_id"]), "category_id": int(det["category_id"]),
            "keypoints": kp.tolist(), "score": float(det["score"]), "iscrowd": 0,
            "area": float(area) if area is not None else keypoint_extent_area(kp),
            "bbox": [float(x.min()), float(y.min()), float(x.max() - x.min()), float(y.max() - y.min())],
        })
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt, coco_dt = COCO(), COCO()
        coco_gt.dataset = {"images": images, "categories": categories, "annotations": gt_anns}
        coco_dt.dataset = {"images": images, "categories": categories, "annotations": dt_anns}
        coco_gt.createIndex()
        coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        evaluator.params.kpt_oks_sigmas = sigmas
        evaluator.params.useSegm = None
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(COCO_STAT_NAMES, evaluator.stats)}


def coco_keypoint_ap(
    ground_truth: dict[str, Any],
    predictions: Sequence[dict[str, Any]],
    sigmas: Sequence[float],
    category_id: int | None = None,
    use_area: bool = True,
) -> dict[str, float]:
    """`keypoint_ap` on a COCO-format ground-truth dict and result records.

    Args:
        ground_truth: `{"images", "annotations" (with keypoints, bbox, optional area/iscrowd/category_id),
            "categories"}`.
        predictions: records `{"image_id", "keypoints": [x, y, s] * K, "score", optional "category_id"}`; their
            `area` (the padded box area of OKS-NMS) is not the result area, which is the keypoint extent.
        category_id: category of records that have none (default: the first ground-truth category).
    """
    for key in ("images", "annotations"):
        if key not in ground_truth:
            raise ValueError(f"Ground truth for COCO evaluation needs an {key!r} list; got keys "
                             f"{sorted(ground_truth)}.")
    categories = ground_truth.get("categories") or [{"id": 1}]
    category_ids = sorted(int(c["id"]) for c in categories)
    default_category = category_ids[0] if category_id is None else category_id
    gts = [{**ann, "category_id": ann.get("category_id", default_category), "area": ann.get("area")}
           for ann in ground_truth["annotations"]]
    dts = [{"image_id": r["image_id"], "category_id": r.get("category_id", default_category),
            "keypoints": r["keypoints"], "score": r["score"]} for r in predictions]
    return keypoint_ap([img["id"] for img in ground_truth["images"]], category_ids, gts, dts, sigmas, use_area)


# ----------------------------------------------------------------------------------------------- PCKh
MPII_SC_BIAS = 0.6
"""The original's head-size factor: PCKh normalises by 0.6 x the head box diagonal."""


def mpii_pckh(predictions: np.ndarray, reference: Any, threshold: float = 0.5) -> dict[str, float]:
    """The original MPII PCKh (`TopDownMpiiDataset.evaluate`), transcribed.

    Args:
        predictions: `(N, 16, 2)` predicted joints in 1-based pixels (0-based predictions + 1), in the order of the
            annotation entries (= the columns of `mpii_gt_val.mat`).
        reference: an `MpiiReference` (`dataset_joints`, `jnt_missing`, `pos_gt_src`, `headboxes_src`).
        threshold: the PCKh threshold (0.5).
    Returns:
        `Head`, `Shoulder`, `Elbow`, `Wrist`, `Hip`, `Knee`, `Ankle` (PCKh@threshold in percent, left/right averaged),
        `PCKh` (the mean over joints weighted by their counts, pelvis and thorax excluded) and `PCKh@0.1`.
    """
    preds = np.asarray(predictions, dtype=np.float64)
    if preds.shape != (reference.num_entries, 16, 2):
        raise ValueError(f"MPII PCKh needs predictions of shape ({reference.num_entries}, 16, 2), got {preds.shape}.")
    names = np.asarray(reference.dataset_joints)

    def joint(name: str) -> int:
        return int(np.where(names == name)[0][0])

    pos_pred_src = np.transpose(preds, [1, 2, 0])
    jnt_visible = 1 - reference.jnt_missing
    uv_err = np.linalg.norm(pos_pred_src - reference.pos_gt_src, axis=1)
    headsizes = np.linalg.norm(reference.headboxes_src[1, :, :] - reference.headboxes_src[0, :, :], axis=0)
    headsizes = headsizes * MPII_SC_BIAS
    scale = headsizes * np.ones((len(uv_err), 1), dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):  # a joint never labelled gives NaN, as in the original
        scaled_uv_err = uv_err / scale * jnt_visible
        jnt_count = np.sum(jnt_visible, axis=1)
        less_than_threshold = (scaled_uv_err <= threshold) * jnt_visible
        pckh_values = 100.0 * np.sum(less_than_threshold, axis=1) / jnt_count
        rng = np.arange(0, 0.5 + 0.01, 0.01)
        pck_all = np.zeros((len(rng), 16), dtype=np.float32)
        for r, thr in enumerate(rng):
            pck_all[r, :] = 100.0 * np.sum((scaled_uv_err <= thr) * jnt_visible, axis=1) / jnt_count
    pckh_masked = np.ma.array(pckh_values, mask=False)
    pckh_masked.mask[6:8] = True
    count_masked = np.ma.array(jnt_count, mask=False)
    count_masked.mask[6:8] = True
    ratio = count_masked / np.sum(count_masked).astype(np.float64)

    def pair(left: str, right: str) -> float:
        return float(0.5 * (pckh_masked[joint(left)] + pckh_masked[joint(right)]))

    return {
        "Head": float(pckh_masked[joint("head")]),
        "Shoulder": pair("lsho", "rsho"),
        "Elbow": pair("lelb", "relb"),
        "Wrist": pair("lwri", "rwri"),
        "Hip": pair("lhip", "rhip"),
        "Knee": pair("lkne", "rkne"),
        "Ankle": pair("lank", "rank"),
        "PCKh": float(np.sum(pckh_masked * ratio)),
        "PCKh@0.1": float(np.sum(pck_all[10, :] * ratio)),
    }


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


__all__ = [
    "COCO_STAT_NAMES",
    "MPII_SC_BIAS",
    "apply_oks_nms",
    "coco_keypoint_ap",
    "keypoint_ap",
    "keypoint_extent_area",
    "mpii_pckh",
    "oks_iou",
    "oks_nms",
    "pckh",
]
