"""Annotation files in the released formats of the ViTPose+ datasets, parsed into one in-memory layout.

Both the training loader (`datasets.load_keypoint_dataset`) and the evaluation (`evaluation.ground_truth`) read files
through `parse_annotation_file`, so that both see the same images, instances and top-down filters. Values stay
float64 here (the evaluation scores against them); the `datasets` rows store float32.

Formats (`FORMATS`):

* `coco`: COCO keypoints (`images`, `annotations` with `keypoints`, `bbox`, `area`, `iscrowd`, `num_keypoints`,
  `segmentation`, `category_id`; `categories`). Also synthetic data and user datasets.
* `ochuman`, `ap10k`, `apt36k`: the same layout; AP-10K / APT-36K have one category per species and every instance
  keeps its own `category_id`.
* `aic`: the COCO-style `aic_train.json` / `aic_val.json` the original uses: no `area` (and possibly no `iscrowd`).
  The original evaluates AIC with xtcocotools `use_area=False`, whose OKS scale and area ranges are the box area
  times 0.53 (`AIC_AREA_FACTOR`); the parsed `area` is that value.
* `coco_wholebody`: COCO-WholeBody v1.0: 17 body keypoints in `keypoints`, then `foot_kpts` (6), `face_kpts` (68),
  `lefthand_kpts` (21), `righthand_kpts` (21), with `*_valid` flags and part boxes. The parts are concatenated in
  that order (133 keypoints), as the original.
* `mpii`: the original's JSON list of `{"image", "center", "scale", "joints", "joints_vis"}` in 1-based MATLAB pixels;
  joints are shifted by -1 and `center`/`scale` converted as the original (`keypoint_codecs.mpii_center_scale`).

`ParsedInstance.top_down_skip` is the original top-down loader's verdict on an annotation (`""` when it keeps it,
else one of `SKIP_REASONS`), decided from the raw annotation (`'area' in obj`, `'num_keypoints' in obj`, the raw
keypoint values), which the float32 rows could not reproduce exactly.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vitpose_plus.file_io import read_json_file, read_mat_file
from vitpose_plus.modeling.keypoint_codecs import PIXEL_STD, mpii_center_scale, sanitize_box

FORMATS: tuple[str, ...] = ("coco", "ochuman", "aic", "mpii", "coco_wholebody", "ap10k", "apt36k")
COCO_STYLE_FORMATS = frozenset(FORMATS) - {"mpii"}

# The format each dataset name implies; any other name (synthetic data, user datasets) is COCO format.
DEFAULT_FORMATS = {name: name for name in FORMATS}

AIC_AREA_FACTOR = 0.53
"""xtcocotools' stand-in for a missing (or, with `use_area=False`, ignored) `area`: `bbox_w * bbox_h * 0.53`."""

# COCO-WholeBody v1.0: (part name, keypoint key, keypoints, validity flag key), in the original's concatenation order.
WHOLEBODY_PARTS: tuple[tuple[str, str, int, str | None], ...] = (
    ("body", "keypoints", 17, None),
    ("foot", "foot_kpts", 6, "foot_valid"),
    ("face", "face_kpts", 68, "face_valid"),
    ("lefthand", "lefthand_kpts", 21, "lefthand_valid"),
    ("righthand", "righthand_kpts", 21, "righthand_valid"),
)
WHOLEBODY_NUM_KEYPOINTS = sum(part[2] for part in WHOLEBODY_PARTS)


def wholebody_part_slices() -> dict[str, slice]:
    """Keypoint index range of each COCO-WholeBody part in the 133-keypoint layout."""
    out, start = {}, 0
    for name, _, count, _ in WHOLEBODY_PARTS:
        out[name] = slice(start, start + count)
        start += count
    return out


# Why the original top-down loader skips an annotation, in the order it checks: `getAnnIds(iscrowd=False)`, then the
# box sanitising loop, then the keypoint loop.
SKIP_REASONS: tuple[str, ...] = (
    "crowd",  # iscrowd = 1
    "area_not_positive",  # 'area' in the annotation and area <= 0
    "empty_box",  # the sanitised box is empty (x2 <= x1 or y2 <= y1)
    "no_keypoints",  # no 'keypoints' key
    "all_zero_keypoints",  # max(keypoints) == 0 (WholeBody: the 17 body keypoints)
    "num_keypoints_zero",  # 'num_keypoints' in the annotation and it is 0 (not checked for WholeBody)
)


def default_format(dataset_name: str) -> str:
    """The annotation format a dataset name implies (`coco` for names that are not ViTPose+ datasets)."""
    return DEFAULT_FORMATS.get(dataset_name, "coco")


@dataclass
class ParsedInstance:
    """One annotation as the file has it (float64)."""

    annotation_id: int
    image_id: int
    category_id: int
    bbox: np.ndarray  # (4,) xywh as in the file (MPII: the square 200*s box around the adjusted centre)
    keypoints: np.ndarray  # (K, 3) x, y, v as in the file (WholeBody: the parts concatenated; MPII: 0-based)
    area: float  # the area the original's evaluation uses (file value; else / for AIC: bbox_w * bbox_h * 0.53)
    iscrowd: int = 0
    num_keypoints: int = 0  # the file's value when given (WholeBody: labelled count over 133), else labelled count
    segmentation: Any = None
    center: np.ndarray | None = None  # MPII crop centre (2,), 0-based, adjusted as the original
    scale: np.ndarray | None = None  # MPII crop scale (2,)
    invalid_parts: tuple[str, ...] = ()  # WholeBody parts whose `*_valid` flag is false
    top_down_skip: str = ""  # "" when the original top-down loader keeps it, else a SKIP_REASONS entry


@dataclass
class ParsedImage:
    image_id: int
    file_name: str
    width: int
    height: int
    instances: list[ParsedInstance] = field(default_factory=list)


@dataclass
class ParsedAnnotations:
    """A whole annotation file: images in file order, each with its annotations in file order."""

    source: str
    format: str
    num_keypoints: int
    images: list[ParsedImage]
    categories: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)

    def instances(self):
        """All instances, image by image."""
        for image in self.images:
            yield from image.instances

    @property
    def num_annotations(self) -> int:
        return sum(len(image.instances) for image in self.images)


# ----------------------------------------------------------------------------------------------- helpers
def _numbers(value: Any, length: int | None, what: str, where: str, finite: bool = True) -> np.ndarray:
    """`value` as a float64 array of `length` numbers (finite unless `finite=False`), else a ValueError naming
    `where`."""
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: '{what}' must be a list of numbers, got {value!r}.") from err
    if length is not None and arr.size != length:
        raise ValueError(f"{where}: '{what}' has {arr.size} values, expected {length}.")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: '{what}' contains NaN or infinite values: {value!r}.")
    return arr


def top_down_skip_reason(
    fmt: str, ann: dict[str, Any], bbox: np.ndarray, raw_keypoints: np.ndarray | None, width: int, height: int
) -> str:
    """The original top-down loader's verdict on one raw annotation (`""` = kept), see `SKIP_REASONS`.

    Transcribes `_load_coco_keypoint_annotation_kernel` (COCO, AIC, OCHuman, AP-10K/APT-36K) and its WholeBody
    variant, which tests `max` over the 17 body keypoints only and does not test `num_keypoints`.
    """
    if ann.get("iscrowd", 0):
        return "crowd"
    if "area" in ann and not float(ann["area"]) > 0:
        return "area_not_positive"
    if sanitize_box(bbox, width, height) is None:
        return "empty_box"
    if raw_keypoints is None:
        return "no_keypoints"
    checked = raw_keypoints[:17] if fmt == "coco_wholebody" else raw_keypoints
    if checked.size == 0 or checked.max() == 0:  # Python's max over the raw list, x and y included
        return "all_zero_keypoints"
    if fmt != "coco_wholebody" and "num_keypoints" in ann and int(ann["num_keypoints"]) == 0:
        return "num_keypoints_zero"
    return ""


def _first_ids(ids: list[int], limit: int = 20) -> str:
    return ", ".join(str(i) for i in ids[:limit]) + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")


# ----------------------------------------------------------------------------------------------- parsing
SizeReader = Callable[[str], tuple[int, int]]


def parse_annotation_file(
    path: str | os.PathLike,
    format: str,
    num_keypoints: int | None = None,
    image_root: str | os.PathLike | None = None,
    size_reader: SizeReader | None = None,
    layout: str | None = None,
) -> ParsedAnnotations:
    """Read an annotation file of one of the released formats.

    Args:
        path: the annotation JSON.
        format: one of `FORMATS`; checked against the file content (a clear `ValueError` when they disagree).
        num_keypoints: K of the keypoint layout the file must have (checked per annotation); inferred from the first
            annotation when `None`.
        image_root: folder the file names are relative to (used to read missing image sizes).
        size_reader: `full image path -> (width, height)` for images whose size the file does not give (MPII
            always); without it such images get size 0 x 0.
        layout: name of the keypoint layout, for error messages.

    Returns:
        The `ParsedAnnotations`.
    """
    path = os.fspath(path)
    data = read_json_file(path, "annotation")
    return parse_annotation_data(data, path, format, num_keypoints, image_root, size_reader, layout)


def parse_annotation_data(
    data: Any,
    source: str,
    format: str,
    num_keypoints: int | None = None,
    image_root: str | os.PathLike | None = None,
    size_reader: SizeReader | None = None,
    layout: str | None = None,
) -> ParsedAnnotations:
    """`parse_annotation_file` on already-loaded JSON content; `source` names it in error messages."""
    if format not in FORMATS:
        raise ValueError(f"Unknown annotation format {format!r}; the supported formats are {list(FORMATS)}.")
    root = os.fspath(image_root) if image_root is not None else ""
    if format == "mpii":
        if not isinstance(data, list):
            raise ValueError(
                f"{source}: format 'mpii' expects the original's JSON list of {{image, center, scale, joints, "
                f"joints_vis}} entries, got a {type(data).__name__}"
                + (" (a COCO-style file: use its dataset's format, e.g. 'coco')." if isinstance(data, dict) else ".")
            )
        return _parse_mpii(data, source, num_keypoints, root, size_reader, layout)
    if isinstance(data, list):
        looks_mpii = bool(data) and isinstance(data[0], dict) and "joints" in data[0]
        raise ValueError(
            f"{source}: format {format!r} expects a COCO-style dict with 'images' and 'annotations', got a list"
            + (" of MPII entries (use format 'mpii')." if looks_mpii else ".")
        )
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a COCO-style dict, got {type(data).__name__}.")
    return _parse_coco_style(data, source, format, num_keypoints, root, size_reader, layout)


def _parse_coco_style(
    data: dict[str, Any], source: str, fmt: str, k: int | None, root: str, size_reader: SizeReader | None,
    layout: str | None = None,
) -> ParsedAnnotations:
    for key in ("images", "annotations"):
        if key not in data or not isinstance(data[key], list):
            raise ValueError(f"COCO annotation file {source!r} needs a list under '{key}'; found keys {sorted(data)}.")
    wholebody = fmt == "coco_wholebody"
    if wholebody and k is not None and k != WHOLEBODY_NUM_KEYPOINTS:
        raise ValueError(f"{source}: format 'coco_wholebody' has {WHOLEBODY_NUM_KEYPOINTS} keypoints, but the "
                         f"dataset layout has {k}.")
    warnings: list[str] = []
    images: dict[int, ParsedImage] = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
            raise ValueError(f"{source}: image entry #{i} needs 'id' and 'file_name', got {img!r}.")
        image_id = int(img["id"])
        if image_id in images:
            raise ValueError(f"{source}: image id {image_id} appears twice in 'images'.")
        if "width" in img and "height" in img:
            width, height = int(img["width"]), int(img["height"])
        elif size_reader is not None:
            width, height = size_reader(os.path.join(root, img["file_name"]))
        else:
            width, height = 0, 0
        images[image_id] = ParsedImage(image_id, str(img["file_name"]), width, height)

    categories = data.get("categories") or [{"id": 1, "name": "person"}]
    wholebody_keys_seen = False
    non_finite: list[int] = []  # annotation ids with a NaN or infinite bbox
    keypointless: list[int] = []  # annotation ids without a 'keypoints' key
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise ValueError(f"{source}: annotation #{i} must be a dict, got {type(ann).__name__}.")
        ann_id = int(ann["id"]) if "id" in ann else i
        where = f"{source}: annotation id {ann_id}"
        for key in ("image_id", "bbox"):
            if key not in ann:
                raise ValueError(f"{where} has no '{key}' (keys: {sorted(ann)}).")
        image_id = int(ann["image_id"])
        if image_id not in images:
            raise ValueError(f"{where} refers to image_id {image_id}, which is not in 'images'.")
        # A NaN or infinite box is not an error: the original's box clean-up (`sanitize_box`, Python max/min) decides,
        # e.g. a NaN width empties the box (skipped); the annotation stays in the scored ground truth. Reported below.
        bbox = _numbers(ann["bbox"], 4, "bbox", where, finite=False)
        if not np.all(np.isfinite(bbox)):
            non_finite.append(ann_id)
        invalid: list[str] = []
        if wholebody:
            parts = []
            for name, key, count, valid_key in WHOLEBODY_PARTS:
                if key == "keypoints" and key not in ann:
                    parts = None
                    break
                if key not in ann:
                    raise ValueError(f"{where} has no '{key}': not a COCO-WholeBody v1.0 annotation (keys: "
                                     f"{sorted(ann)}); use the dataset's own format (e.g. 'coco').")
                part_where = f"{where} (COCO-WholeBody {name}, {count} keypoints)"
                parts.append(_numbers(ann[key], 3 * count, key, part_where))
                if valid_key is not None and not ann.get(valid_key, True):
                    invalid.append(name)
            raw = None if parts is None else np.concatenate(parts).reshape(-1, 3)
        else:
            if not wholebody_keys_seen and "foot_kpts" in ann:
                wholebody_keys_seen = True
                warnings.append(f"{source}: annotations carry COCO-WholeBody parts ('foot_kpts', ...); format {fmt!r} "
                                "reads only the 17 body keypoints (use format 'coco_wholebody' for all 133).")
            raw = None
            if "keypoints" in ann:
                values = _numbers(ann["keypoints"], None, "keypoints", where)
                if k is None:
                    k = values.size // 3
                if values.size != 3 * k:
                    named = f" (dataset {layout!r}, K={k})" if layout else ""
                    raise ValueError(f"{where}{named}: 'keypoints' has {values.size} values, expected {3 * k} "
                                     f"({k} keypoints x (x, y, v)) for format {fmt!r}.")
                raw = values.reshape(k, 3)
        if k is None:
            k = WHOLEBODY_NUM_KEYPOINTS if wholebody else None
        image = images[image_id]
        skip = top_down_skip_reason(fmt, ann, bbox, raw, image.width, image.height)
        if raw is None:
            keypointless.append(ann_id)
        keypoints = raw if raw is not None else np.zeros((k or 0, 3))
        if "area" in ann and fmt != "aic":
            area = float(ann["area"])
        else:  # xtcocotools' area when the file has none (AIC) or when use_area=False (AIC)
            area = float(bbox[2] * bbox[3] * AIC_AREA_FACTOR)
        if "num_keypoints" in ann and not wholebody:
            num_labelled = int(ann["num_keypoints"])
        else:
            num_labelled = int(np.count_nonzero(keypoints[:, 2] > 0)) if keypoints.size else 0
        image.instances.append(ParsedInstance(
            annotation_id=ann_id,
            image_id=image_id,
            category_id=int(ann.get("category_id", categories[0]["id"])),
            bbox=bbox,
            keypoints=keypoints,
            area=area,
            iscrowd=int(ann.get("iscrowd", 0) or 0),
            num_keypoints=num_labelled,
            segmentation=ann.get("segmentation"),
            invalid_parts=tuple(invalid),
            top_down_skip=skip,
        ))
    if non_finite:
        warnings.append(f"{source}: {len(non_finite)} annotation(s) have a NaN or infinite 'bbox' (ids "
                        f"{_first_ids(non_finite)}); handled as the original's box clean-up (max(0, x), ...): "
                        "skipped when the cleaned box is empty, and kept in the scored ground truth.")
    degenerate = [inst.annotation_id for image in images.values() for inst in image.instances
                  if inst.top_down_skip in ("area_not_positive", "empty_box") and inst.annotation_id not in non_finite]
    if degenerate:
        warnings.append(f"{source}: {len(degenerate)} annotation(s) have a zero or negative 'area' or a box that is "
                        f"empty once clipped to the image (ids {_first_ids(degenerate)}); skipped for top-down crops "
                        "as the original, and kept in the scored ground truth.")
    if keypointless:
        warnings.append(f"{source}: {len(keypointless)} annotation(s) have no 'keypoints' (ids "
                        f"{_first_ids(keypointless)}); skipped for top-down crops as the original, and scored as "
                        "unlabelled (ignored) ground truth.")
    if k is None:
        k = WHOLEBODY_NUM_KEYPOINTS if wholebody else 0
    for image in images.values():  # annotations without keypoints: zeros of the layout's K
        for inst in image.instances:
            if inst.keypoints.shape[0] != k:
                inst.keypoints = np.zeros((k, 3))
    return ParsedAnnotations(source, fmt, k, list(images.values()), categories, warnings)


def _parse_mpii(
    data: list[Any], source: str, k: int | None, root: str, size_reader: SizeReader | None, layout: str | None = None
) -> ParsedAnnotations:
    k = 16 if k is None else k
    images: dict[str, ParsedImage] = {}
    for i, entry in enumerate(data):
        where = f"{source}: MPII entry #{i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be a dict, got {type(entry).__name__}.")
        for key in ("image", "center", "scale"):
            if key not in entry:
                raise ValueError(f"{where} (MPII format) has no '{key}' (keys: {sorted(entry)}).")
        center_raw = _numbers(entry["center"], 2, "center", where)
        scale_raw = float(_numbers(entry["scale"], 1, "scale", where)[0])
        if scale_raw <= 0:
            raise ValueError(f"{where}: 'scale' must be positive, got {scale_raw}.")
        keypoints = np.zeros((k, 3))
        if "joints" in entry:  # the test split has no joints
            named = f" (dataset {layout!r}, K={k})" if layout else f" (K={k})"
            joints = _numbers(entry["joints"], 2 * k, "joints", where + named).reshape(k, 2)
            if "joints_vis" not in entry:
                raise ValueError(f"{where} has 'joints' but no 'joints_vis' (keys: {sorted(entry)}).")
            vis = _numbers(entry["joints_vis"], k, "joints_vis", where)
            keypoints = np.concatenate([joints - 1.0, vis[:, None]], axis=1)  # MATLAB 1-based -> 0-based
        center, scale = mpii_center_scale(center_raw, scale_raw)
        side = PIXEL_STD * scale_raw
        name = str(entry["image"])
        if name not in images:
            width, height = size_reader(os.path.join(root, name)) if size_reader is not None else (0, 0)
            images[name] = ParsedImage(len(images), name, width, height)
        image = images[name]
        image.instances.append(ParsedInstance(
            annotation_id=i,
            image_id=image.image_id,
            category_id=1,
            bbox=np.array([center[0] - side / 2, center[1] - side / 2, side, side]),
            keypoints=keypoints,
            area=side * side,
            num_keypoints=int(np.count_nonzero(keypoints[:, 2] > 0)),
            center=center,
            scale=scale,
        ))
    return ParsedAnnotations(source, "mpii", k, list(images.values()), [{"id": 1, "name": "person"}])


# ----------------------------------------------------------------------------------------------- mpii_gt_val.mat
# Joint names of `mpii_gt_val.mat` ('dataset_joints') used by the original's PCKh summary.
MPII_MAT_JOINTS = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head", "rwri", "relb",
                   "rsho", "lsho", "lelb", "lwri")


@dataclass
class MpiiReference:
    """The arrays of `mpii_gt_val.mat` the original's PCKh uses (N = validation entries, in annotation order)."""

    dataset_joints: list[str]  # 16 names
    jnt_missing: np.ndarray  # (16, N)
    pos_gt_src: np.ndarray  # (16, 2, N), 1-based pixels
    headboxes_src: np.ndarray  # (2, 2, N): top-left and bottom-right corner of each head box

    @property
    def num_entries(self) -> int:
        return int(self.jnt_missing.shape[1])


def read_mpii_reference(path: str | os.PathLike) -> MpiiReference:
    """Read `mpii_gt_val.mat` (the original's layout); `ValueError` naming the file and the variable when wrong."""
    path = os.fspath(path)
    data = read_mat_file(path, "MPII ground-truth")
    for key in ("dataset_joints", "jnt_missing", "pos_gt_src", "headboxes_src"):
        if key not in data:
            raise ValueError(f"MPII ground-truth file {path!r} has no variable {key!r} (variables: "
                             f"{sorted(k for k in data if not k.startswith('__'))}); expected mpii_gt_val.mat.")
    names = [str(np.asarray(v).reshape(-1)[0]) for v in np.asarray(data["dataset_joints"], dtype=object).reshape(-1)]
    missing = np.asarray(data["jnt_missing"], dtype=np.float64)
    positions = np.asarray(data["pos_gt_src"], dtype=np.float64)
    heads = np.asarray(data["headboxes_src"], dtype=np.float64)
    n = missing.shape[-1] if missing.ndim == 2 else -1
    if missing.shape != (16, n) or positions.shape != (16, 2, n) or heads.shape != (2, 2, n) or len(names) != 16:
        raise ValueError(f"MPII ground-truth file {path!r}: expected dataset_joints (16 names), jnt_missing (16, N), "
                         f"pos_gt_src (16, 2, N), headboxes_src (2, 2, N); got {len(names)} names, {missing.shape}, "
                         f"{positions.shape}, {heads.shape}.")
    absent = sorted(set(MPII_MAT_JOINTS) - set(names))
    if absent:
        raise ValueError(f"MPII ground-truth file {path!r}: dataset_joints lacks {absent}.")
    return MpiiReference(names, missing, positions, heads)



__all__ = [
    "AIC_AREA_FACTOR",
    "MPII_MAT_JOINTS",
    "MpiiReference",
    "read_mpii_reference",
    "COCO_STYLE_FORMATS",
    "DEFAULT_FORMATS",
    "FORMATS",
    "SKIP_REASONS",
    "WHOLEBODY_NUM_KEYPOINTS",
    "WHOLEBODY_PARTS",
    "ParsedAnnotations",
    "ParsedImage",
    "ParsedInstance",
    "default_format",
    "parse_annotation_data",
    "parse_annotation_file",
    "top_down_skip_reason",
    "wholebody_part_slices",
]
