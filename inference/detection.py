"""Boxes for top-down inference from a JSON file (the detector and the box checks are `modeling.person_detection`,
shared with the transformers pipeline of saved folders)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..modeling.person_detection import Boxes, ObjectDetector, normalise_boxes


def _parse_box_list(entries: Any, where: str, box_format: str) -> Boxes:
    if not isinstance(entries, list):
        raise ValueError(f"{where}: expected a list of boxes, got {type(entries).__name__}.")
    boxes, scores = [], []
    for i, entry in enumerate(entries):
        here = f"{where}, box #{i}"
        if isinstance(entry, dict):
            if "bbox" not in entry:
                raise ValueError(f"{here}: a box object needs a 'bbox' key (x, y, w, h); got keys {sorted(entry)}.")
            box, score = entry["bbox"], entry.get("score", 1.0)
            if not isinstance(score, (int, float)) or isinstance(score, bool):
                raise ValueError(f"{here}: 'score' must be a number, got {score!r}.")
        else:
            box, score = entry, 1.0
        (box,), _ = normalise_boxes([box], here, box_format)
        boxes.append(box)
        scores.append(float(score))
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(scores, dtype=np.float64)


def load_boxes_file(path: str | os.PathLike, box_format: str = "xywh") -> dict[str | None, Boxes]:
    """Read person boxes from a JSON file.

    Accepted layouts (boxes are `[x, y, w, h]` in pixels, or `[x1, y1, x2, y2]` with `box_format="xyxy"`):

    * a list of boxes, or of `{"bbox": [...], "score": s}` objects (COCO detection results): the same boxes for
      every image (usually a single image); returned under the key `None`;
    * an object mapping image file names (base name or path) to such lists.

    Returns:
        `{image name or None: (boxes (n, 4) xywh float64, scores (n,) float64)}`.

    Raises:
        ValueError: naming the file and the entry when the file is not JSON or not in one of these layouts.
    """
    from ..file_io import read_json_file

    if box_format not in ("xywh", "xyxy"):
        raise ValueError(f"box_format must be 'xywh' or 'xyxy', got {box_format!r}.")
    path = os.fspath(path)
    data = read_json_file(path, what="boxes")
    if isinstance(data, list):
        return {None: _parse_box_list(data, f"boxes file {path!r}", box_format)}
    if isinstance(data, dict):
        if "bbox" in data:
            raise ValueError(f"boxes file {path!r}: got a single box object; wrap it in a list: [{{\"bbox\": ...}}].")
        return {str(k): _parse_box_list(v, f"boxes file {path!r}, image {k!r}", box_format) for k, v in data.items()}
    raise ValueError(
        f"boxes file {path!r}: expected a list of [x, y, w, h] boxes (or {{'bbox', 'score'}} objects) or an object "
        f"mapping image file names to such lists, got {type(data).__name__}."
    )


def boxes_for_image(table: dict[str | None, Boxes], image_path: str) -> Boxes | None:
    """The boxes of `image_path` in a `load_boxes_file` table: by path, base name or stem; `None` when absent."""
    if None in table:
        return table[None]
    base = os.path.basename(image_path)
    for key in (image_path, base, os.path.splitext(base)[0]):
        if key in table:
            return table[key]
    return None


__all__ = ["Boxes", "ObjectDetector", "boxes_for_image", "load_boxes_file"]
