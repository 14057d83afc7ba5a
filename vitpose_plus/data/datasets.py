"""Keypoint datasets on Hugging Face `datasets`: annotation files in their released formats, one row per image.

`load_keypoint_dataset(annotation_file, image_root, dataset)` returns a `datasets.Dataset` with one row per image
(an image's bytes are stored once when saved or pushed; bottom-up training sees all persons of an image):

* `image` (`datasets.Image`, the file path, decoded lazily), `image_id` (int64), `file_name` (string),
  `width` / `height` (int32, from the file, else read from the image header), `dataset` (string, the spec name),
  `format` (string, the annotation format the row was read from);
* `instances` (`datasets.Sequence` of a dict, i.e. a dict of lists), per annotation of the image, in file order:
  `annotation_id` (int64), `category_id` (int64), `bbox` (4 float32, xywh as in the file), `keypoints` (3K float32,
  x, y, v; COCO-WholeBody: body, foot, face, left hand, right hand = 133, parts flagged invalid with v = 0),
  `num_keypoints` (int32), `area` (float32, the area the original evaluation uses: the file's, else, and always for
  AIC, `bbox_w * bbox_h * 0.53` as xtcocotools), `iscrowd` (int8), `center` / `scale` (2 float32 each for MPII, the
  original's crop parameters; empty lists otherwise), `segmentation` (string: the polygons/RLE as JSON, "" when
  absent), `top_down_skip` (string: "" when the original top-down loader keeps the annotation, else why it skips it,
  one of `formats.SKIP_REASONS`).

Annotations the top-down loader skips (crowd, no keypoints, empty boxes) are kept in `instances` for bottom-up use;
`top_down_instances(row)` applies the original top-down selection and box sanitising and returns what a top-down
crop needs, without decoding the image. `top_down_index(dataset)` lists (row, instance) pairs for a sampler and
`flatten_top_down(dataset)` builds a per-instance dataset in the earlier one-row-per-instance layout.

Bad input: malformed files raise `ValueError` naming the file and the annotation id; every skip is counted per
reason, with annotation ids, in `KeypointLoadStats` and logged.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from datasets import Array2D, Dataset, Features, Image, Sequence, Value

from vitpose_plus.file_io import inspect_image_file
from vitpose_plus.modeling.dataset_specs import KeypointDatasetSpec
from vitpose_plus.modeling.keypoint_codecs import sanitize_box

from .formats import (
    FORMATS,
    SKIP_REASONS,
    ParsedAnnotations,
    default_format,
    parse_annotation_file,
    wholebody_part_slices,
)
from .specs import resolve_dataset_spec

logger = logging.getLogger(__name__)

IMAGE_CHECK_WORKERS = 8
"""Threads used to check image files (I/O bound)."""


@dataclass
class KeypointLoadStats:
    """What `load_keypoint_dataset` read, and what the original top-down loader keeps and skips (with ids)."""

    annotation_file: str
    dataset: str
    format: str
    num_images: int = 0
    num_annotations: int = 0
    num_top_down: int = 0
    skipped: dict[str, list[int]] = field(default_factory=dict)  # reason -> annotation ids
    invalid_parts: dict[str, int] = field(default_factory=dict)  # COCO-WholeBody part -> annotations flagged invalid

    @property
    def num_skipped(self) -> int:
        return sum(len(ids) for ids in self.skipped.values())

    def skipped_counts(self) -> dict[str, int]:
        """Skips per reason, in `SKIP_REASONS` order, zeros included."""
        return {reason: len(self.skipped.get(reason, [])) for reason in SKIP_REASONS}

    def summary(self) -> str:
        reasons = ", ".join(f"{count} {reason}" for reason, count in self.skipped_counts().items() if count)
        text = (f"{self.annotation_file} ({self.dataset}, format {self.format}): {self.num_images} images, "
                f"{self.num_annotations} annotations, {self.num_top_down} top-down instances")
        if reasons:
            text += f"; top-down skips: {reasons}"
        if self.invalid_parts:
            text += "; parts flagged invalid: " + ", ".join(f"{n} {p}" for p, n in self.invalid_parts.items())
        return text


def instance_features() -> dict[str, Any]:
    """Feature dict of one entry of the `instances` column."""
    return {
        "annotation_id": Value("int64"),
        "category_id": Value("int64"),
        "bbox": Sequence(Value("float32"), length=4),
        "keypoints": Sequence(Value("float32")),
        "num_keypoints": Value("int32"),
        "area": Value("float32"),
        "iscrowd": Value("int8"),
        "center": Sequence(Value("float32")),
        "scale": Sequence(Value("float32")),
        "segmentation": Value("string"),
        "top_down_skip": Value("string"),
    }


def keypoint_features() -> Features:
    """The `datasets.Features` of a keypoint dataset (one row per image)."""
    return Features({
        "image": Image(),
        "image_id": Value("int64"),
        "file_name": Value("string"),
        "width": Value("int32"),
        "height": Value("int32"),
        "dataset": Value("string"),
        "format": Value("string"),
        "instances": Sequence(instance_features()),
    })


def check_image_files(paths: Iterable[str], depth: str, source: str) -> dict[str, tuple[int, int] | None]:
    """Check image files in parallel; `ValueError` listing (up to 10) broken files of annotation file `source`."""
    paths = list(dict.fromkeys(paths))
    results: dict[str, tuple[int, int] | None] = {}
    problems: list[str] = []

    def check(path: str) -> tuple[str, tuple[int, int] | None, str]:
        try:
            return path, inspect_image_file(path, depth), ""
        except ValueError as err:
            return path, None, str(err)

    with ThreadPoolExecutor(max_workers=IMAGE_CHECK_WORKERS) as pool:
        for path, size, problem in pool.map(check, paths):
            results[path] = size
            if problem:
                problems.append(problem)
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise ValueError(f"{source}: {len(problems)} of {len(paths)} images are missing or unreadable{more}:\n  "
                         + "\n  ".join(problems[:10]))
    return results


def read_annotations(
    annotation_file: str | os.PathLike,
    image_root: str | os.PathLike,
    spec: KeypointDatasetSpec,
    format: str | None = None,
) -> ParsedAnnotations:
    """Parse a file in `format` (default: the spec name's format) with K checked against `spec`.

    Image sizes the file lacks (MPII always) are read from the image headers.
    """
    fmt = format or default_format(spec.name)
    if fmt not in FORMATS:
        raise ValueError(f"Unknown annotation format {fmt!r}; the supported formats are {list(FORMATS)}.")

    def size_reader(path: str) -> tuple[int, int]:
        try:
            size = inspect_image_file(path, "header")
        except ValueError as err:
            raise ValueError(f"{os.fspath(annotation_file)}: cannot read the size of an image: {err}") from err
        assert size is not None
        return size

    parsed = parse_annotation_file(annotation_file, fmt, spec.num_keypoints, image_root, size_reader, spec.name)
    for message in parsed.warnings:
        logger.warning(message)
    return parsed


def load_keypoint_dataset(
    annotation_file: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset: str | os.PathLike | KeypointDatasetSpec,
    *,
    format: str | None = None,
    verify_images: bool = True,
    return_stats: bool = False,
) -> Dataset | tuple[Dataset, KeypointLoadStats]:
    """Read an annotation file in its released format into a `datasets.Dataset`, one row per image.

    Args:
        annotation_file: the annotation file (COCO-style JSON, or the original's MPII JSON list).
        image_root: folder the image file names are relative to.
        dataset: the keypoint layout: a dataset name (`resolve_dataset_spec`: the ViTPose+ datasets, `ochuman`,
            `synthetic_hand`), a spec file or a `KeypointDatasetSpec`. K must match the file.
        format: one of `formats.FORMATS`; defaults from the dataset name (`coco` for other names) and is checked
            against the file content.
        verify_images: check every listed image file (present, non-empty, header readable, not truncated) so that
            broken files fail here, named, rather than inside a DataLoader worker.
        return_stats: also return the `KeypointLoadStats`.

    Returns:
        The dataset (and its load statistics when `return_stats`). See the module docstring for the columns.
    """
    spec = resolve_dataset_spec(dataset)
    path = os.fspath(annotation_file)
    root = os.fspath(image_root)
    parsed = read_annotations(path, root, spec, format)
    if verify_images:
        check_image_files((os.path.join(root, image.file_name) for image in parsed.images), "header", path)
    rows, stats = build_rows(parsed, root, spec.name)
    (logger.warning if stats.num_skipped else logger.info)(stats.summary())
    ds = Dataset.from_dict(rows, features=keypoint_features())
    return (ds, stats) if return_stats else ds


def build_rows(
    parsed: ParsedAnnotations, image_root: str, dataset_name: str
) -> tuple[dict[str, list], KeypointLoadStats]:
    """Columns of the per-image dataset from parsed annotations, and the load statistics."""
    stats = KeypointLoadStats(parsed.source, dataset_name, parsed.format, num_images=len(parsed.images))
    parts = wholebody_part_slices() if parsed.format == "coco_wholebody" else {}
    rows: dict[str, list] = {name: [] for name in keypoint_features()}
    for image in parsed.images:
        inst: dict[str, list] = {name: [] for name in instance_features()}
        for ann in image.instances:
            keypoints = ann.keypoints.copy()
            for part in ann.invalid_parts:  # the contract: parts flagged invalid are unlabelled
                keypoints[parts[part], 2] = 0
                stats.invalid_parts[part] = stats.invalid_parts.get(part, 0) + 1
            inst["annotation_id"].append(ann.annotation_id)
            inst["category_id"].append(ann.category_id)
            inst["bbox"].append(ann.bbox.tolist())
            inst["keypoints"].append(keypoints.reshape(-1).tolist())
            inst["num_keypoints"].append(ann.num_keypoints)
            inst["area"].append(ann.area)
            inst["iscrowd"].append(ann.iscrowd)
            inst["center"].append([] if ann.center is None else ann.center.tolist())
            inst["scale"].append([] if ann.scale is None else ann.scale.tolist())
            inst["segmentation"].append("" if ann.segmentation is None else json.dumps(ann.segmentation))
            inst["top_down_skip"].append(ann.top_down_skip)
            stats.num_annotations += 1
            if ann.top_down_skip:
                stats.skipped.setdefault(ann.top_down_skip, []).append(ann.annotation_id)
            else:
                stats.num_top_down += 1
        rows["image"].append(os.path.join(image_root, image.file_name))
        rows["image_id"].append(image.image_id)
        rows["file_name"].append(image.file_name)
        rows["width"].append(image.width)
        rows["height"].append(image.height)
        rows["dataset"].append(dataset_name)
        rows["format"].append(parsed.format)
        rows["instances"].append(inst)
    return rows, stats


# ----------------------------------------------------------------------------------------------- top-down view
@dataclass(frozen=True)
class TopDownInstance:
    """One instance the original top-down loader keeps, ready to crop.

    `bbox` is the sanitised box (`keypoint_codecs.sanitize_box`; MPII: the square box of the annotated scale);
    `keypoints` is `(K, 3)` float32 `x, y, v`; `center` / `scale` are the annotated crop parameters (MPII), else
    `None` (the crop comes from `bbox` via `box_to_center_scale`).
    """

    index: int  # position in row["instances"]
    annotation_id: int
    category_id: int
    bbox: list[float]
    keypoints: np.ndarray
    area: float
    center: np.ndarray | None = None
    scale: np.ndarray | None = None


def top_down_instances(row: Mapping[str, Any], spec: KeypointDatasetSpec | str | None = None) -> list[TopDownInstance]:
    """The instances of one row that the original top-down loader keeps, with their cleaned boxes.

    Uses only the row's metadata columns (`width`, `height`, `instances`); the image is not decoded, so a row of
    `dataset.select_columns([...])` or of `dataset.cast_column("image", Image(decode=False))` lists its instances
    without touching the image file.

    Args:
        row: a row of `load_keypoint_dataset`.
        spec: when given, K is checked against it.
    Returns:
        `TopDownInstance`s in annotation order.
    """
    inst = row["instances"]
    width, height = int(row["width"]), int(row["height"])
    k = resolve_dataset_spec(spec).num_keypoints if spec is not None else None
    out: list[TopDownInstance] = []
    for i, skip in enumerate(inst["top_down_skip"]):
        if skip:
            continue
        keypoints = np.asarray(inst["keypoints"][i], dtype=np.float32).reshape(-1, 3)
        if k is not None and keypoints.shape[0] != k:
            raise ValueError(f"Row image_id {row.get('image_id')}: annotation {inst['annotation_id'][i]} has "
                             f"{keypoints.shape[0]} keypoints, but the layout has {k}.")
        has_cs = len(inst["center"][i]) == 2
        box = [float(v) for v in inst["bbox"][i]]
        if not has_cs:
            clean = sanitize_box(box, width, height)
            if clean is None:  # cannot happen for rows of load_keypoint_dataset (the skip says so)
                continue
            box = clean
        out.append(TopDownInstance(
            index=i,
            annotation_id=int(inst["annotation_id"][i]),
            category_id=int(inst["category_id"][i]),
            bbox=box,
            keypoints=keypoints,
            area=float(inst["area"][i]),
            center=np.asarray(inst["center"][i], dtype=np.float64) if has_cs else None,
            scale=np.asarray(inst["scale"][i], dtype=np.float64) if has_cs else None,
        ))
    return out


def top_down_index(dataset: Dataset, batch_size: int = 10_000) -> np.ndarray:
    """`(N, 2)` int64 pairs (row, instance index) of every top-down instance, read without the image column."""
    pairs: list[tuple[int, int]] = []
    meta = dataset.select_columns(["instances"])
    for start in range(0, len(meta), batch_size):
        batch = meta[start:start + batch_size]["instances"]
        for offset, inst in enumerate(batch):
            pairs.extend((start + offset, i) for i, skip in enumerate(inst["top_down_skip"]) if not skip)
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def flatten_top_down(dataset: Dataset) -> Dataset:
    """A per-instance dataset of the top-down instances (the earlier one-row-per-instance layout).

    Columns: `image` (path, or the embedded bytes), `image_id`, `annotation_id`, `bbox` (sanitised), `keypoints`
    (`K x 3`), `area`, `dataset`, and for MPII rows `center` / `scale`. For consumers that crop per instance with
    `Dataset.with_transform`; the image is not decoded here.
    """
    raw = dataset.cast_column("image", Image(decode=False))
    out: dict[str, list] = {key: [] for key in ("image", "image_id", "annotation_id", "bbox", "keypoints", "area",
                                                "dataset", "center", "scale")}
    k = None
    for row in raw:
        for inst in top_down_instances(row):
            k = inst.keypoints.shape[0] if k is None else k
            out["image"].append(row["image"])
            out["image_id"].append(row["image_id"])
            out["annotation_id"].append(inst.annotation_id)
            out["bbox"].append(inst.bbox)
            out["keypoints"].append(inst.keypoints)
            out["area"].append(inst.area)
            out["dataset"].append(row["dataset"])
            out["center"].append(None if inst.center is None else inst.center.tolist())
            out["scale"].append(None if inst.scale is None else inst.scale.tolist())
    k = k or 0
    feats = {
        "image": Image(),
        "image_id": Value("int64"),
        "annotation_id": Value("int64"),
        "bbox": Sequence(Value("float32"), length=4),
        "keypoints": Array2D(shape=(k, 3), dtype="float32"),
        "area": Value("float32"),
        "dataset": Value("string"),
    }
    if any(c is not None for c in out["center"]):
        feats["center"] = Sequence(Value("float32"), length=2)
        feats["scale"] = Sequence(Value("float32"), length=2)
    else:
        del out["center"], out["scale"]
    return Dataset.from_dict(out, features=Features(feats))


__all__ = [
    "KeypointLoadStats",
    "TopDownInstance",
    "build_rows",
    "flatten_top_down",
    "instance_features",
    "keypoint_features",
    "load_keypoint_dataset",
    "read_annotations",
    "top_down_index",
    "top_down_instances",
]
