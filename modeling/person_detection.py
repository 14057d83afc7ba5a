"""Box sources for top-down pose estimation: any transformers object-detection model, and the normalisation of
user-given boxes. Shared by `PosePipeline`, `vitpose-plus predict` and the transformers pipeline of saved folders, so
it lives beside the modeling code (torch, numpy, transformers only) and travels to the Hub with it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

#: Boxes of one image: `(n, 4)` float64 COCO xywh boxes and `(n,)` scores.
Boxes = tuple[np.ndarray, np.ndarray]


def normalise_boxes(value: Any, where: str, box_format: str = "xywh") -> Boxes:
    """Boxes given by a user as `(boxes, scores)`, an `(n, 4)` array or a list of 4-number boxes -> `Boxes`.

    Raises:
        ValueError: naming `where` when a box is not 4 finite numbers with a positive width and height, or the scores
            do not match the boxes.
    """
    if box_format not in ("xywh", "xyxy"):
        raise ValueError(f"box_format must be 'xywh' or 'xyxy', got {box_format!r}.")
    if isinstance(value, tuple) and len(value) == 2 and np.ndim(value[1]) == 1:
        boxes, scores = value
        scores = np.asarray(scores, dtype=np.float64)
    else:
        boxes, scores = value, None
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().double().numpy()
    try:
        boxes = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: boxes must be numbers ({box_format}), got {value!r}.") from err
    if boxes.size == 0:
        boxes = np.zeros((0, 4))
    if boxes.ndim == 1:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{where}: expected boxes of 4 numbers ({box_format}), got shape {boxes.shape}.")
    boxes = boxes.copy()
    if box_format == "xyxy":
        boxes[:, 2:] -= boxes[:, :2]
    if scores is None:
        scores = np.ones(len(boxes))
    if scores.shape != (len(boxes),):
        raise ValueError(f"{where}: {len(boxes)} boxes but {scores.shape[0]} box scores.")
    bad = [i for i, box in enumerate(boxes) if not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0]
    if bad:
        which = f"box #{bad[0]} " if len(boxes) > 1 else "box "
        raise ValueError(f"{where}: {which}{boxes[bad[0]].tolist()} (x, y, w, h) must be finite with a positive width "
                         "and height.")
    return boxes, scores


def whole_image_box(height: int, width: int) -> Boxes:
    """The whole image as one instance (inputs without boxes and without a detector)."""
    return np.array([[0.0, 0.0, float(width), float(height)]]), np.ones(1)


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
                f"AutoModelForObjectDetection supports {sorted(MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES)}."
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
        detections = self.processor.post_process_object_detection(outputs, threshold=self.threshold,
                                                                  target_sizes=sizes)
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


__all__ = ["Boxes", "ObjectDetector", "normalise_boxes", "whole_image_box"]
