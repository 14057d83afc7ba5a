"""Boxes for top-down inference: from a JSON file or from any transformers object-detection model."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

#: Box sets keyed by image: `(n, 4)` float64 xywh boxes and `(n,)` scores (1.0 when the file gives none).
Boxes = tuple[np.ndarray, np.ndarray]


def _box_array(value: Any, where: str, box_format: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: a box must be 4 numbers, got {value!r}.") from err
    if arr.shape != (4,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: a box must be 4 finite numbers ({box_format}), got {value!r}.")
    if box_format == "xyxy":
        arr = np.array([arr[0], arr[1], arr[2] - arr[0], arr[3] - arr[1]])
    if arr[2] <= 0 or arr[3] <= 0:
        raise ValueError(f"{where}: box {value!r} ({box_format}) has a non-positive width or height.")
    return arr


def _parse_box_list(entries: Any, where: str, box_format: str) -> Boxes:
    if not isinstance(entries, list):
        raise ValueError(f"{where}: expected a list of boxes, got {type(entries).__name__}.")
    boxes, scores = [], []
    for i, entry in enumerate(entries):
        here = f"{where}, box #{i}"
        if isinstance(entry, dict):
            if "bbox" not in entry:
                raise ValueError(f"{here}: a box object needs a 'bbox' key (x, y, w, h); got keys {sorted(entry)}.")
            boxes.append(_box_array(entry["bbox"], here, box_format))
            score = entry.get("score", 1.0)
            if not isinstance(score, (int, float)):
                raise ValueError(f"{here}: 'score' must be a number, got {score!r}.")
            scores.append(float(score))
        else:
            boxes.append(_box_array(entry, here, box_format))
            scores.append(1.0)
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


class ObjectDetector:
    """Any transformers object-detection model (`AutoModelForObjectDetection`) as a box source.

    Args:
        model_id: Hub id or folder of an object-detection model (DETR, RT-DETR, YOLOS, ...).
        labels: class names to keep (matched case-insensitively against the model's `id2label`), e.g. `("person",)`
            or animal names for AP-10K models.
        threshold: detection score threshold.
        device: torch device.

    Raises:
        ValueError: when `model_id` is not an object-detection model, or has none of `labels`.
    """

    def __init__(
        self,
        model_id: str,
        labels: Sequence[str] = ("person",),
        threshold: float = 0.5,
        device: str | torch.device = "cpu",
    ) -> None:
        from transformers import AutoConfig, AutoImageProcessor, AutoModelForObjectDetection
        from transformers.models.auto.modeling_auto import MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES

        try:
            config = AutoConfig.from_pretrained(model_id)
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"Cannot load detector {model_id!r}: {err}") from err
        if config.model_type not in MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES:
            raise ValueError(
                f"Detector {model_id!r} is a {config.model_type!r} model, not an object detector: "
                "AutoModelForObjectDetection supports "
                f"{sorted(MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES)}."
            )
        id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
        wanted = {label.lower() for label in labels}
        self.label_ids = sorted(i for i, name in id2label.items() if name.lower() in wanted)
        if not self.label_ids:
            raise ValueError(
                f"Detector {model_id!r} has no class named {sorted(wanted)}; its classes are "
                f"{sorted(set(id2label.values()))}. Pass --detector-labels with some of them."
            )
        self.model_id = model_id
        self.id2label = id2label
        self.threshold = float(threshold)
        self.device = torch.device(device)
        self.processor = AutoImageProcessor.from_pretrained(model_id)
        self.model = AutoModelForObjectDetection.from_pretrained(model_id).to(self.device).eval()

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray]) -> list[Boxes]:
        """Detect in `(H, W, 3)` uint8 RGB images; per image, xywh boxes `(n, 4)` clipped to it and scores `(n,)`."""
        if not images:
            return []
        inputs = self.processor(images=list(images), return_tensors="pt").to(self.device)
        outputs = self.model(**inputs)
        sizes = [image.shape[:2] for image in images]
        detections = self.processor.post_process_object_detection(
            outputs, threshold=self.threshold, target_sizes=sizes
        )
        keep_ids = torch.tensor(self.label_ids)
        results: list[Boxes] = []
        for det, (height, width) in zip(detections, sizes):
            keep = torch.isin(det["labels"].cpu(), keep_ids)
            xyxy = det["boxes"][keep].detach().cpu().double().numpy().reshape(-1, 4)
            xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
            xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
            xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
            valid = (xywh[:, 2] > 1) & (xywh[:, 3] > 1)
            scores = det["scores"][keep].detach().cpu().double().numpy()
            results.append((xywh[valid], scores[valid]))
        return results


__all__ = ["Boxes", "ObjectDetector", "boxes_for_image", "load_boxes_file"]
