"""Ground truth of an evaluation file per protocol, and the crop targets the original evaluates.

`load_ground_truth(file, protocol)` reads the file with the data side's parser (`vitpose_plus.data.formats`, float64,
the same top-down filter as training). `crop_targets(gt, detections)` lists what the model is run on:

* ground-truth boxes exactly as the original's GT-box path (`use_gt_bbox=True`): the annotations its top-down loader
  keeps, sanitised boxes (`keypoint_codecs.sanitize_box`), box score 1, each with its annotation's category;
* or a detection results file: boxes used unchanged, kept when `score >= det_bbox_thr` (default 0.0, so score-0
  boxes stay) and of the protocol's category (1, person; AP-10K-like protocols keep every ground-truth category);
* MPII: one target per annotated entry, with the annotated center/scale (`mpii_center_scale`).

Each target has a `target_id` (the original's `bbox_id`: unique, in file order), its image, category and box score.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vitpose_plus.data.formats import (
    MPII_MAT_JOINTS,
    MpiiReference,
    ParsedAnnotations,
    parse_annotation_data,
    read_mpii_reference,
)
from vitpose_plus.data.specs import resolve_dataset_spec
from vitpose_plus.file_io import inspect_image_file, read_json_file
from vitpose_plus.modeling.dataset_specs import KeypointDatasetSpec
from vitpose_plus.modeling.keypoint_codecs import DEFAULT_INPUT_SIZE, DEFAULT_PADDING, box_to_center_scale, sanitize_box

from .protocols import EvaluationProtocol, resolve_protocol

logger = logging.getLogger(__name__)

@dataclass
class GroundTruth:
    """An evaluation file read per protocol."""

    annotation_file: str
    protocol: EvaluationProtocol
    spec: KeypointDatasetSpec
    annotations: ParsedAnnotations
    image_paths: dict[int, str]
    mpii_reference: MpiiReference | None = None

    @property
    def category_ids(self) -> list[int]:
        return sorted(int(c["id"]) for c in self.annotations.categories)


def load_ground_truth(
    annotation_file: str | os.PathLike | dict[str, Any] | list,
    protocol: str | EvaluationProtocol | None = None,
    spec: str | KeypointDatasetSpec | None = None,
    image_root: str | os.PathLike = "",
    mpii_gt_mat: str | os.PathLike | None = None,
    source: str | None = None,
    read_image_sizes: bool = True,
) -> GroundTruth:
    """Read an evaluation file.

    Args:
        annotation_file: path of the file, or its already-loaded JSON content (then `source` names it).
        protocol: a `PROTOCOLS` name; defaults from the spec name (`generic` for other names).
        spec: the keypoint layout (sigmas, K); defaults to the protocol's (OCHuman: COCO).
        image_root: folder of the images (missing image sizes are read from their headers).
        mpii_gt_mat: MPII only: `mpii_gt_val.mat`; defaults to the file next to the annotation file, as the original.
        read_image_sizes: read sizes the file lacks from the image headers (needed for ground-truth boxes; scoring
            alone does not need them).
    """
    if spec is None:
        if protocol is None:
            raise ValueError("load_ground_truth needs a protocol or a keypoint spec.")
        name = protocol.name if isinstance(protocol, EvaluationProtocol) else protocol
        proto = resolve_protocol(protocol, name)
        if proto.name == "generic":
            raise ValueError("The generic protocol needs the dataset's keypoint spec (its sigmas).")
        spec = resolve_dataset_spec(proto.spec or proto.name)
    else:
        spec = resolve_dataset_spec(spec)
        proto = resolve_protocol(protocol, spec.name)
    if proto.metric != "pckh" and len(spec.sigmas) != spec.num_keypoints:
        raise ValueError(f"Protocol {proto.name!r} scores OKS, but keypoint spec {spec.name!r} has no sigmas.")
    root = os.fspath(image_root)
    if isinstance(annotation_file, (dict, list)):
        data, path = annotation_file, source or "<in-memory ground truth>"
    else:
        path = os.fspath(annotation_file)
        data = read_json_file(path, "annotation")

    def size_reader(image_path: str) -> tuple[int, int]:
        size = inspect_image_file(image_path, "header")
        assert size is not None
        return size

    # MPII crops come from the annotation, so image sizes are not needed there.
    parsed = parse_annotation_data(data, path, proto.format, spec.num_keypoints, root,
                                   size_reader if read_image_sizes and not proto.annotated_crops else None, spec.name)
    for message in parsed.warnings:
        logger.warning(message)
    image_paths = {image.image_id: os.path.join(root, image.file_name) for image in parsed.images}
    reference = None
    if proto.metric == "pckh":
        if mpii_gt_mat is None:
            if isinstance(annotation_file, (dict, list)):
                raise ValueError("MPII evaluation needs mpii_gt_val.mat (mpii_gt_mat=...).")
            mpii_gt_mat = os.path.join(os.path.dirname(path), "mpii_gt_val.mat")
            if not os.path.isfile(mpii_gt_mat):
                raise ValueError(f"MPII evaluation needs the head boxes of mpii_gt_val.mat; not found at "
                                 f"{mpii_gt_mat!r} (next to the annotation file, where the original looks). Pass "
                                 "its path (--mpii-gt-mat).")
        reference = read_mpii_reference(mpii_gt_mat)
        if reference.num_entries != parsed.num_annotations:
            raise ValueError(f"{os.fspath(mpii_gt_mat)} has {reference.num_entries} entries but {path} has "
                             f"{parsed.num_annotations}; the .mat must belong to this annotation file.")
    return GroundTruth(path, proto, spec, parsed, image_paths, reference)


# ----------------------------------------------------------------------------------------------- crop targets
@dataclass(frozen=True)
class CropTarget:
    """One crop to run the model on.

    `bbox` is xywh (a sanitised GT box, a detector box, or MPII's square annotated box); `center` / `scale` `(2,)`
    are the crop parameters (`box_to_center_scale` of the box, or MPII's annotated ones); `source_id` is the
    annotation id (GT boxes, MPII) or the index in the detection file.
    """

    target_id: int
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]
    center: np.ndarray
    scale: np.ndarray
    box_score: float
    source: str  # "ground_truth", "detection" or "annotated"
    source_id: int

    @property
    def padded_area(self) -> float:
        """The crop's area in image pixels, `(200 s_w)(200 s_h)`: the OKS-NMS area of its prediction."""
        return float(np.prod(np.asarray(self.scale, dtype=np.float64) * 200.0))


def crop_targets(
    ground_truth: GroundTruth,
    detections: str | os.PathLike | list[dict[str, Any]] | None = None,
    det_bbox_thr: float = 0.0,
    input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
    padding: float = DEFAULT_PADDING,
) -> list[CropTarget]:
    """The crops the original evaluates (see the module docstring), in `target_id` order.

    Args:
        ground_truth: from `load_ground_truth`.
        detections: a COCO detection results file (or its list): `image_id`, `bbox` (xywh), `score`, `category_id`
            (missing: the protocol's category). `None`: ground-truth boxes.
        det_bbox_thr: keep detections with `score >= det_bbox_thr` (the original's `det_bbox_thr`, default 0.0).
        input_size: model input `(height, width)`; its aspect ratio shapes the crop.
        padding: context factor around the box (1.25).
    """
    gt = ground_truth
    proto = gt.protocol
    if proto.annotated_crops:
        if detections is not None:
            raise ValueError(f"Protocol {proto.name!r} crops the annotated center/scale; it takes no detections.")
        targets = [
            CropTarget(inst.annotation_id, inst.image_id, inst.category_id, tuple(float(v) for v in inst.bbox),
                       np.asarray(inst.center, dtype=np.float64), np.asarray(inst.scale, dtype=np.float64), 1.0,
                       "annotated", inst.annotation_id)
            for inst in gt.annotations.instances()
        ]
        return sorted(targets, key=lambda t: t.target_id)
    if detections is None:
        targets = []
        for image in gt.annotations.images:
            for inst in image.instances:
                if inst.top_down_skip:
                    continue
                box = sanitize_box(inst.bbox, image.width, image.height)
                center, scale = box_to_center_scale(np.asarray(box, dtype=np.float64), input_size, padding)
                targets.append(CropTarget(len(targets), image.image_id, inst.category_id, tuple(box), center, scale,
                                          1.0, "ground_truth", inst.annotation_id))
        skipped: dict[str, list[int]] = {}
        for inst in gt.annotations.instances():
            if inst.top_down_skip:
                skipped.setdefault(inst.top_down_skip, []).append(inst.annotation_id)
        counts = ", ".join(f"{len(ids)} {reason} (ids {ids[:10]}{' ...' if len(ids) > 10 else ''})"
                           for reason, ids in skipped.items())
        if not targets:
            raise ValueError(f"{gt.annotation_file}: no annotation is left to evaluate with ground-truth boxes: the "
                             f"original's top-down filters skip all {gt.annotations.num_annotations} "
                             f"({counts or 'the file has no annotation'}). Check the 'bbox', 'area' and 'keypoints' "
                             "of the file.")
        logger.info("%s: %d ground-truth boxes to evaluate; top-down skips: %s", gt.annotation_file, len(targets),
                    counts or "none")
        return targets
    return _detection_targets(gt, detections, det_bbox_thr, input_size, padding)


def _detection_targets(gt: GroundTruth, detections: Any, det_bbox_thr: float, input_size: Sequence[int],
                       padding: float) -> list[CropTarget]:
    source = "detections"
    if isinstance(detections, (str, os.PathLike)):
        source = os.fspath(detections)
        detections = read_json_file(source, "detection results")
    if not isinstance(detections, list):
        raise ValueError(f"{source}: expected a list of COCO detection results, got {type(detections).__name__}.")
    if not detections:
        raise ValueError(f"{source}: the detection results list is empty.")
    wanted = gt.protocol.detection_category
    categories = set(gt.category_ids)
    image_ids = set(gt.image_paths)
    targets: list[CropTarget] = []
    other_category = degenerate = 0
    for i, det in enumerate(detections):
        if not isinstance(det, dict):
            raise ValueError(f"{source}: detection #{i} must be a dict, got {type(det).__name__}.")
        missing = [key for key in ("image_id", "bbox", "score") if key not in det]
        if missing:
            raise ValueError(f"{source}: detection #{i} lacks {missing}; each needs image_id, bbox (xywh), score "
                             "and category_id.")
        category = int(det.get("category_id", wanted if wanted is not None else min(categories)))
        if (wanted is not None and category != wanted) or category not in categories:
            other_category += 1
            continue
        score = float(det["score"])
        if score < det_bbox_thr:
            continue
        image_id = int(det["image_id"])
        if image_id not in image_ids:
            raise ValueError(f"{source}: detection #{i} refers to image_id {image_id}, absent from the ground-truth "
                             f"file {gt.annotation_file}.")
        box = det["bbox"]
        if not isinstance(box, (list, tuple)) or len(box) < 4:
            raise ValueError(f"{source}: detection #{i} has bbox {box!r}, expected 4 numbers (x, y, w, h).")
        box = tuple(float(v) for v in box[:4])
        if not (np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0):
            degenerate += 1  # the original would crop a zero-size box; nothing can be predicted from it
            continue
        center, scale = box_to_center_scale(np.asarray(box, dtype=np.float64), input_size, padding)
        targets.append(CropTarget(len(targets), image_id, category, box, center, scale, score, "detection", i))
    if degenerate:
        logger.warning("%s: skipped %d detections with a non-positive or non-finite box.", source, degenerate)
    if other_category:
        logger.info("%s: %d detections of other categories ignored.", source, other_category)
    return targets


__all__ = [
    "MPII_MAT_JOINTS",
    "CropTarget",
    "GroundTruth",
    "MpiiReference",
    "crop_targets",
    "load_ground_truth",
    "read_mpii_reference",
]
