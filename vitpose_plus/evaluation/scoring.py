"""Scoring prediction records against a ground truth exactly as the original (the "score records" half).

`score_predictions(ground_truth, records)`:

* COCO-style protocols: per image, records in `target_id` order with repeated targets dropped (the original's
  `_sort_and_unique_bboxes`), OKS-NMS at 0.9 with the dataset's sigmas and the original's tie order, then the results
  written as the original writes them (each with its target's category; COCO-WholeBody split into `keypoints`,
  `foot_kpts`, `face_kpts`, `lefthand_kpts`, `righthand_kpts`) and scored with xtcocotools' rules over all
  categories (`metrics.keypoint_ap`): `AP` ... `ARl`; COCO-WholeBody adds `body_AP` ... `righthand_ARl` per part,
  with `AP` ... the whole-body values, each part with its own sigmas and `use_area=True`.
* MPII: one record per annotated entry, in annotation order, scored with the original PCKh on the head boxes of
  `mpii_gt_val.mat` (`Head` ... `Ankle`, `PCKh`, `PCKh@0.1`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vitpose_plus.data.formats import WHOLEBODY_PARTS, wholebody_part_slices

from .ground_truth import GroundTruth
from .metrics import apply_oks_nms, keypoint_ap, keypoint_extent_area, mpii_pckh


@dataclass
class ScoreResult:
    """Metrics, the records that survived de-duplication and OKS-NMS, and the results as the original writes them."""

    metrics: dict[str, float]
    kept: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)


def _check_records(gt: GroundTruth, records: Sequence[dict[str, Any]]) -> None:
    k = gt.spec.num_keypoints
    categories = set(gt.category_ids)
    for i, record in enumerate(records):
        missing = [key for key in ("image_id", "target_id", "category_id", "keypoints", "score", "area")
                   if key not in record]
        if missing:
            raise ValueError(f"Prediction record #{i} lacks {missing}; records need image_id, target_id, category_id, "
                             "keypoints, score and area (see vitpose_plus.evaluation.records).")
        if len(record["keypoints"]) != 3 * k:
            raise ValueError(f"Prediction record #{i} (target {record['target_id']}) has {len(record['keypoints'])} "
                             f"keypoint values, expected {3 * k} (x, y, score for {k} keypoints of {gt.spec.name!r}).")
        if record["image_id"] not in gt.image_paths:
            raise ValueError(f"Prediction record #{i} refers to image_id {record['image_id']}, absent from "
                             f"{gt.annotation_file}.")
        if record["category_id"] not in categories:
            raise ValueError(f"Prediction record #{i} has category_id {record['category_id']}, not one of the ground "
                             f"truth's categories {sorted(categories)}.")


def _unique_by_target(records: Sequence[dict[str, Any]]) -> dict[Any, list[dict[str, Any]]]:
    by_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_image[record["image_id"]].append(record)
    for image_id, image_records in by_image.items():
        image_records.sort(key=lambda r: r["target_id"])
        by_image[image_id] = [r for j, r in enumerate(image_records)
                              if j == 0 or r["target_id"] != image_records[j - 1]["target_id"]]
    return by_image


def score_predictions(
    ground_truth: GroundTruth, records: Sequence[dict[str, Any]], nms_threshold: float | None = 0.9
) -> ScoreResult:
    """Score prediction records (see the module docstring).

    Args:
        ground_truth: from `load_ground_truth`.
        records: prediction records (`vitpose_plus.evaluation.records`), one per crop target.
        nms_threshold: OKS-NMS threshold (0.9 as the original); `None` disables it. Unused for MPII.
    """
    _check_records(ground_truth, records)
    if ground_truth.protocol.metric == "pckh":
        return _score_mpii(ground_truth, records)
    by_image = _unique_by_target(records)
    sigmas = np.asarray(ground_truth.spec.sigmas, dtype=np.float64)
    kept: list[dict[str, Any]] = []
    for image_records in by_image.values():
        kept.extend(apply_oks_nms(image_records, sigmas, nms_threshold) if nms_threshold is not None else image_records)
    wholebody = ground_truth.protocol.metric == "coco_wholebody"
    results = [_result(record, wholebody) for record in kept]
    return ScoreResult(_coco_metrics(ground_truth, results, wholebody), kept, results)


def _result(record: dict[str, Any], wholebody: bool) -> dict[str, Any]:
    """The original's result entry (WholeBody: the 133 keypoints split into its five part fields)."""
    keypoints = [float(v) for v in record["keypoints"]]
    out = {"image_id": record["image_id"], "category_id": record["category_id"], "score": float(record["score"])}
    if not wholebody:
        out["keypoints"] = keypoints
        return out
    for name, key, _, _ in WHOLEBODY_PARTS:
        part = wholebody_part_slices()[name]
        out[key] = keypoints[3 * part.start:3 * part.stop]
    return out


def _coco_metrics(gt: GroundTruth, results: list[dict[str, Any]], wholebody: bool) -> dict[str, float]:
    parsed = gt.annotations
    image_ids = [image.image_id for image in parsed.images]
    use_area = gt.protocol.use_area
    instances = list(parsed.instances())
    sigmas = np.asarray(gt.spec.sigmas, dtype=np.float64)

    def evaluate(part: slice | None) -> dict[str, float]:
        sl = part if part is not None else slice(None)
        gts = [{"image_id": inst.image_id, "category_id": inst.category_id, "bbox": inst.bbox, "area": inst.area,
                "iscrowd": inst.iscrowd, "keypoints": inst.keypoints[sl].reshape(-1)} for inst in instances]
        dts = []
        for res in results:
            flat = np.concatenate([res[key] for _, key, _, _ in WHOLEBODY_PARTS]) if wholebody else \
                np.asarray(res["keypoints"])
            body = res["keypoints"]  # the result's area comes from its `keypoints` field, as xtcocotools' loadRes
            dts.append({"image_id": res["image_id"], "category_id": res["category_id"], "score": res["score"],
                        "keypoints": flat.reshape(-1, 3)[sl].reshape(-1), "area": keypoint_extent_area(body)})
        return keypoint_ap(image_ids, gt.category_ids, gts, dts, sigmas[sl], use_area)

    if not wholebody:
        return evaluate(None)
    metrics: dict[str, float] = {}
    for name, part in wholebody_part_slices().items():
        metrics.update({f"{name}_{key}": value for key, value in evaluate(part).items()})
    return {**evaluate(None), **metrics}


def _score_mpii(gt: GroundTruth, records: Sequence[dict[str, Any]]) -> ScoreResult:
    reference = gt.mpii_reference
    assert reference is not None
    ordered = sorted(records, key=lambda r: r["target_id"])
    unique = [r for j, r in enumerate(ordered) if j == 0 or r["target_id"] != ordered[j - 1]["target_id"]]
    expected = sorted(inst.annotation_id for inst in gt.annotations.instances())
    got = [r["target_id"] for r in unique]
    if got != expected:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        raise ValueError(f"MPII PCKh needs one prediction per annotated entry of {gt.annotation_file} "
                         f"({len(expected)}); missing targets {missing[:10]}{' ...' if len(missing) > 10 else ''}, "
                         f"unknown targets {extra[:10]}.")
    preds = np.asarray([r["keypoints"] for r in unique], dtype=np.float64).reshape(len(unique), -1, 3)
    metrics = mpii_pckh(preds[..., :2] + 1.0, reference)  # 0-based -> 1-based, as the original
    return ScoreResult(metrics, unique, [dict(r) for r in unique])


__all__ = ["ScoreResult", "score_predictions"]
