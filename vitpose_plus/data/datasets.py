"""Keypoint datasets on Hugging Face `datasets`: COCO-format (and MPII-format) annotations to one row per instance.

`load_keypoint_dataset(annotation_json, image_root, spec)` returns a `datasets.Dataset` with the columns

* `image` (`datasets.Image`, decoded lazily from the file path),
* `image_id` (int64), `annotation_id` (int64),
* `bbox` (4 float32, COCO `x, y, w, h`, sanitised as the original),
* `keypoints` (`K x 3` float32, `x, y, v`),
* `area` (float32), `dataset` (string, the spec name),
* and, for MPII-format files only, `center` / `scale` (2 float32 each, already converted with the MPII convention).

A dataset from the Hub with the same columns (`datasets.load_dataset`) works with the same training transform, and
the result can be saved with `save_to_disk` or `push_to_hub` (the image files are embedded then).

Bad input: malformed files raise `ValueError` naming the file and the annotation id; instances the original skips
(no labelled keypoints, empty box after sanitising) are skipped, counted in `KeypointLoadStats` and logged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from datasets import Array2D, Dataset, Features, Image, Sequence, Value

from vitpose_plus.file_io import read_json_file
from vitpose_plus.modeling.dataset_specs import KeypointDatasetSpec, get_dataset_spec
from vitpose_plus.modeling.keypoint_codecs import mpii_center_scale, sanitize_box

logger = logging.getLogger(__name__)


@dataclass
class KeypointLoadStats:
    """Counts of what `load_keypoint_dataset` kept and skipped (skips follow the original COCO loader)."""

    annotation_file: str
    num_annotations: int = 0
    num_instances: int = 0
    skipped_without_keypoints: int = 0
    skipped_invalid_box: int = 0
    skipped_annotation_ids: list[int] = field(default_factory=list)

    @property
    def num_skipped(self) -> int:
        return self.skipped_without_keypoints + self.skipped_invalid_box

    def summary(self) -> str:
        return (
            f"{self.annotation_file}: {self.num_instances} instances kept of {self.num_annotations} annotations; "
            f"skipped {self.skipped_without_keypoints} without labelled keypoints and {self.skipped_invalid_box} "
            "with an empty box after sanitising"
        )


def keypoint_features(num_keypoints: int, with_center_scale: bool = False) -> Features:
    """The `datasets.Features` of a keypoint dataset with K keypoints."""
    feats = {
        "image": Image(),
        "image_id": Value("int64"),
        "annotation_id": Value("int64"),
        "bbox": Sequence(Value("float32"), length=4),
        "keypoints": Array2D(shape=(num_keypoints, 3), dtype="float32"),
        "area": Value("float32"),
        "dataset": Value("string"),
    }
    if with_center_scale:
        feats["center"] = Sequence(Value("float32"), length=2)
        feats["scale"] = Sequence(Value("float32"), length=2)
    return Features(feats)




def _numbers(value: Any, length: int, what: str, where: str) -> np.ndarray:
    """`value` as a float64 array of `length` finite numbers, else a ValueError naming `where`."""
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: '{what}' must be a list of numbers, got {value!r}.") from err
    if arr.size != length:
        raise ValueError(f"{where}: '{what}' has {arr.size} values, expected {length}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: '{what}' contains NaN or infinite values: {value!r}.")
    return arr


def _check_image_file(path: str, annotation_ids: list[int], annotation_file: str, verify: bool) -> None:
    ids = ", ".join(str(i) for i in annotation_ids[:5]) + (" ..." if len(annotation_ids) > 5 else "")
    if not os.path.isfile(path):
        raise ValueError(f"{annotation_file}: image file {path!r} (annotation ids {ids}) does not exist.")
    if verify:
        from PIL import Image as PILImage

        try:
            with PILImage.open(path) as img:
                img.verify()
        except Exception as err:  # PIL raises several types for broken files
            raise ValueError(
                f"{annotation_file}: image file {path!r} (annotation ids {ids}) is not a readable image: {err}"
            ) from err


def load_keypoint_dataset(
    annotation_json: str | os.PathLike,
    image_root: str | os.PathLike,
    spec: str | KeypointDatasetSpec,
    *,
    strict: bool = False,
    verify_images: bool = True,
    return_stats: bool = False,
) -> Dataset | tuple[Dataset, KeypointLoadStats]:
    """Read keypoint annotations into a `datasets.Dataset`, one row per annotated instance.

    Two layouts are accepted:

    * COCO (`{"images": [...], "annotations": [...]}`): each annotation needs `image_id`, `bbox` (xywh) and
      `keypoints` (3K numbers); each image needs `id` and `file_name` (`width`/`height` are read from the file when
      missing). Boxes are sanitised as the original (`sanitize_box`); annotations without `keypoints`, with all-zero
      keypoints or `num_keypoints == 0` and those whose sanitised box is empty are skipped and counted (with
      `strict=True` an empty box raises instead).
    * MPII (a list of `{"image", "center", "scale", "joints", "joints_vis"}`, 1-based MATLAB pixels): joints and
      center are shifted by -1 and `center`/`scale` follow the original MPII convention (`mpii_center_scale`);
      `bbox` is the square `200 * scale` box around the adjusted centre (before the 1.25 padding).

    Args:
        annotation_json: path of the annotation file.
        image_root: folder the image file names are relative to.
        spec: the keypoint layout (a built-in name or a `KeypointDatasetSpec`); K must match the annotations.
        strict: raise on boxes that are empty after sanitising instead of skipping them.
        verify_images: open every referenced image header with PIL so that unreadable files fail here, naming the
            file and the annotation ids, rather than inside a DataLoader worker.
        return_stats: also return the `KeypointLoadStats`.

    Returns:
        The dataset (and its load statistics when `return_stats`).
    """
    spec = get_dataset_spec(spec)
    path = os.fspath(annotation_json)
    root = os.fspath(image_root)
    data = read_json_file(path)
    if isinstance(data, list):
        rows, stats = _mpii_rows(data, path, root, spec)
    elif isinstance(data, dict):
        rows, stats = _coco_rows(data, path, root, spec, strict)
    else:
        raise ValueError(f"Annotation file {path!r} must hold a COCO dict or an MPII list, got {type(data).__name__}.")

    by_file: dict[str, list[int]] = {}
    for image_path, ann_id in zip(rows["image"], rows["annotation_id"]):
        by_file.setdefault(image_path, []).append(ann_id)
    for image_path, ann_ids in by_file.items():
        _check_image_file(image_path, ann_ids, path, verify_images)

    if stats.num_skipped:
        logger.warning(stats.summary())
    else:
        logger.info(stats.summary())
    features = keypoint_features(spec.num_keypoints, with_center_scale="center" in rows)
    dataset = Dataset.from_dict(rows, features=features)
    return (dataset, stats) if return_stats else dataset


def _coco_rows(
    data: dict[str, Any], path: str, root: str, spec: KeypointDatasetSpec, strict: bool
) -> tuple[dict[str, list], KeypointLoadStats]:
    k = spec.num_keypoints
    for key in ("images", "annotations"):
        if key not in data or not isinstance(data[key], list):
            raise ValueError(f"COCO annotation file {path!r} needs a list under '{key}'; found keys {sorted(data)}.")
    images: dict[int, dict[str, Any]] = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
            raise ValueError(f"{path}: image entry #{i} needs 'id' and 'file_name', got {img!r}.")
        images[int(img["id"])] = img

    stats = KeypointLoadStats(annotation_file=path, num_annotations=len(data["annotations"]))
    rows: dict[str, list] = {name: [] for name in ("image", "image_id", "annotation_id", "bbox", "keypoints", "area",
                                                   "dataset")}
    sizes: dict[int, tuple[int, int]] = {}
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise ValueError(f"{path}: annotation #{i} must be a dict, got {type(ann).__name__}.")
        ann_id = int(ann["id"]) if "id" in ann else i
        where = f"{path}: annotation id {ann_id}"
        for key in ("image_id", "bbox"):
            if key not in ann:
                raise ValueError(f"{where} has no '{key}' (keys: {sorted(ann)}).")
        image_id = int(ann["image_id"])
        if image_id not in images:
            raise ValueError(f"{where} refers to image_id {image_id}, which is not in 'images'.")
        if "keypoints" not in ann:  # e.g. a non-keypoint category; the original skips these
            stats.skipped_without_keypoints += 1
            stats.skipped_annotation_ids.append(ann_id)
            continue
        keypoints = _numbers(ann["keypoints"], 3 * k, "keypoints", where + f" (dataset {spec.name!r}, K={k})")
        box = _numbers(ann["bbox"], 4, "bbox", where)
        if keypoints.max(initial=0.0) == 0 or ann.get("num_keypoints", 1) == 0:
            stats.skipped_without_keypoints += 1
            stats.skipped_annotation_ids.append(ann_id)
            continue
        img = images[image_id]
        file_path = os.path.join(root, img["file_name"])
        if image_id not in sizes:
            sizes[image_id] = _image_size(img, file_path, where)
        width, height = sizes[image_id]
        clean = sanitize_box(box, width, height)
        area = float(ann.get("area", box[2] * box[3]))
        if clean is None or ("area" in ann and area <= 0):
            if strict:
                raise ValueError(
                    f"{where}: bbox {box.tolist()} (area {area}) is empty after clipping to the "
                    f"{width}x{height} image {img['file_name']!r}."
                )
            stats.skipped_invalid_box += 1
            stats.skipped_annotation_ids.append(ann_id)
            continue
        rows["image"].append(file_path)
        rows["image_id"].append(image_id)
        rows["annotation_id"].append(ann_id)
        rows["bbox"].append(clean)
        rows["keypoints"].append(keypoints.reshape(k, 3).astype(np.float32))
        rows["area"].append(area)
        rows["dataset"].append(spec.name)
    stats.num_instances = len(rows["image"])
    return rows, stats


def _image_size(img: dict[str, Any], file_path: str, where: str) -> tuple[int, int]:
    if "width" in img and "height" in img:
        return int(img["width"]), int(img["height"])
    from PIL import Image as PILImage

    try:
        with PILImage.open(file_path) as handle:
            return handle.size
    except Exception as err:
        raise ValueError(f"{where}: cannot read the size of image {file_path!r}: {err}") from err


def _mpii_rows(
    data: list[Any], path: str, root: str, spec: KeypointDatasetSpec
) -> tuple[dict[str, list], KeypointLoadStats]:
    k = spec.num_keypoints
    stats = KeypointLoadStats(annotation_file=path, num_annotations=len(data))
    rows: dict[str, list] = {name: [] for name in ("image", "image_id", "annotation_id", "bbox", "keypoints", "area",
                                                   "dataset", "center", "scale")}
    image_ids: dict[str, int] = {}
    for i, ann in enumerate(data):
        where = f"{path}: annotation id {i}"
        if not isinstance(ann, dict):
            raise ValueError(f"{where} must be a dict, got {type(ann).__name__}.")
        for key in ("image", "center", "scale", "joints", "joints_vis"):
            if key not in ann:
                raise ValueError(f"{where} (MPII format) has no '{key}' (keys: {sorted(ann)}).")
        joints = _numbers(ann["joints"], 2 * k, "joints", where + f" (dataset {spec.name!r}, K={k})").reshape(k, 2)
        vis = _numbers(ann["joints_vis"], k, "joints_vis", where)
        center_raw = _numbers(ann["center"], 2, "center", where)
        scale_raw = float(_numbers(ann["scale"], 1, "scale", where)[0])
        if scale_raw <= 0:
            raise ValueError(f"{where}: 'scale' must be positive, got {scale_raw}.")
        if vis.max(initial=0.0) == 0:
            stats.skipped_without_keypoints += 1
            stats.skipped_annotation_ids.append(i)
            continue
        center, scale = mpii_center_scale(center_raw, scale_raw)
        side = 200.0 * scale_raw
        keypoints = np.concatenate([joints - 1.0, vis[:, None]], axis=1)  # MATLAB 1-based -> 0-based
        image_ids.setdefault(ann["image"], len(image_ids))
        rows["image"].append(os.path.join(root, ann["image"]))
        rows["image_id"].append(image_ids[ann["image"]])
        rows["annotation_id"].append(i)
        rows["bbox"].append([center[0] - side / 2, center[1] - side / 2, side, side])
        rows["keypoints"].append(keypoints.astype(np.float32))
        rows["area"].append(side * side)
        rows["dataset"].append(spec.name)
        rows["center"].append(center.tolist())
        rows["scale"].append(scale.tolist())
    stats.num_instances = len(rows["image"])
    return rows, stats




__all__ = ["KeypointLoadStats", "keypoint_features", "load_keypoint_dataset"]
