"""The one top-down predictor: instances (boxes or crop centres/scales) -> crops -> model (flip test) -> decoded
keypoints, batched across images.

`evaluate`, `predict`, `PosePipeline`, the transformers pipeline and the ONNX check all run `TopDownPredictor`, so
every path crops, runs and decodes the same way, with the decoding settings saved in the model's
`preprocessor_config.json` (the processor).

This module imports only torch, numpy, the standard library and its own folder so that it travels with the modeling
code to the Hub.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .image_processing_vitpose_plus import VitPosePlusImageProcessor, to_rgb_array

#: Keypoints above this score count for the instance score (the original's `vis_thr`).
KEYPOINT_SCORE_THRESHOLD = 0.2


@dataclass
class ImageInstances:
    """One image and the instances to estimate in it.

    Attributes:
        key: anything identifying the image (an image id, a file name), returned with its results.
        image: `(H, W, 3)` RGB array (uint8 or 0-255 float), a PIL image, or a zero-argument callable returning one
            (decoded only when its batch runs).
        boxes: `(n, 4)` COCO xywh boxes, or `None` when `centers`/`scales` are given.
        box_scores: `(n,)` detector scores (1 when absent).
        centers, scales: `(n, 2)` crop parameters used instead of boxes (e.g. MPII's annotated ones).
        extra: per instance, anything to carry through to the results (e.g. the ground-truth category and id).
    """

    key: Any
    image: Any
    boxes: np.ndarray | None = None
    box_scores: np.ndarray | None = None
    centers: np.ndarray | None = None
    scales: np.ndarray | None = None
    extra: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self.boxes) if self.boxes is not None else len(self.centers)


def coco_keypoint_record(prediction: Any, image_id: int, category_id: int = 1) -> dict[str, Any]:
    """The COCO keypoint result record of a prediction with `keypoints` `(K, 2)`, `keypoint_scores` `(K,)`, `score`
    and an xywh `bbox` (top-down and bottom-up alike): `keypoints` `[x, y, score] * K`."""
    flat = np.concatenate([prediction.keypoints, prediction.keypoint_scores[:, None]], axis=1).reshape(-1)
    return {"image_id": image_id, "category_id": int(category_id), "keypoints": [float(v) for v in flat],
            "score": float(prediction.score), "bbox": [float(v) for v in prediction.bbox]}


@dataclass
class PosePrediction:
    """One predicted instance.

    Attributes:
        keypoints: `(K, 2)` float64 `(x, y)` image coordinates.
        keypoint_scores: `(K,)` float32 heatmap maxima.
        keypoint_names: the dataset's K keypoint names.
        bbox: `(4,)` xywh box of the instance (for centre/scale inputs: the unpadded box they describe).
        box_score: the box's score (1 for given boxes).
        score: instance score = box score x mean keypoint score above 0.2 (the original's rescoring).
        center, scale: the crop parameters; area: the padded box area `(200 s_w)(200 s_h)` used by OKS-NMS.
        dataset: the dataset name; extra: what the input carried for this instance.
    """

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    keypoint_names: list[str]
    bbox: np.ndarray
    box_score: float
    score: float
    center: np.ndarray
    scale: np.ndarray
    area: float
    dataset: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_coco(self, image_id: int, category_id: int = 1) -> dict[str, Any]:
        """A COCO keypoint result record: `keypoints` `[x, y, score] * K`, `score`, `bbox` (xywh)."""
        return coco_keypoint_record(self, image_id, category_id)


class TopDownPredictor:
    """Top-down pose estimation of given instances, batched across images.

    Args:
        model: a `VitPosePlusForPoseEstimation` (any number of datasets), or any callable
            `model(pixel_values, dataset_index=..., flip_test=...)` returning heatmaps or an object with `.heatmaps`
            (e.g. an ONNX session adapter).
        processor: the model's `VitPosePlusImageProcessor` (built from `model.config` when `None`).
        batch_size: crops per forward pass.
        flip_test: average with the mirrored crops (done by the model's forward).
    """

    def __init__(self, model: Any, processor: VitPosePlusImageProcessor | None = None, batch_size: int = 32,
                 flip_test: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if processor is None:
            processor = VitPosePlusImageProcessor.from_model_config(model.config)
        self.model = model
        self.processor = processor
        self.batch_size = int(batch_size)
        self.flip_test = bool(flip_test)

    @property
    def device(self) -> torch.device:
        return getattr(self.model, "device", torch.device("cpu"))

    @property
    def dtype(self) -> torch.dtype:
        return getattr(self.model, "dtype", torch.float32)

    def predict(
        self,
        images: Sequence[Any],
        boxes: Sequence[Any] | None = None,
        dataset: Any = None,
        box_scores: Sequence[Any] | None = None,
        centers: Sequence[Any] | None = None,
        scales: Sequence[Any] | None = None,
    ) -> list[list[PosePrediction]]:
        """Poses of the given instances in a list of images (per image: boxes, or centres and scales)."""
        items = []
        for i, image in enumerate(images):
            items.append(ImageInstances(
                key=i, image=image,
                boxes=None if boxes is None else np.asarray(boxes[i], dtype=np.float64).reshape(-1, 4),
                box_scores=None if box_scores is None else np.asarray(box_scores[i], dtype=np.float64).reshape(-1),
                centers=None if centers is None else np.asarray(centers[i], dtype=np.float64).reshape(-1, 2),
                scales=None if scales is None else np.asarray(scales[i], dtype=np.float64).reshape(-1, 2),
            ))
        results = dict(self.predict_iter(items, dataset))
        return [results[i] for i in range(len(items))]

    def predict_iter(self, items: Iterable[ImageInstances], dataset: Any = None
                     ) -> Iterator[tuple[Any, list[PosePrediction]]]:
        """Yield `(key, predictions)` per image, in input order; crops of consecutive images share forward passes."""
        index = self.processor.dataset_index(dataset)
        pending: list[tuple[ImageInstances, torch.Tensor, np.ndarray, np.ndarray]] = []
        count = 0
        for item in items:
            if item.boxes is None and (item.centers is None or item.scales is None):
                raise ValueError(f"Image {item.key!r}: give boxes, or centers and scales.")
            image = to_rgb_array(item.image() if callable(item.image) else item.image, 0)
            if item.boxes is not None:
                (centers, scales), = self.processor.crop_parameters([image], [item.boxes])
            else:
                (centers, scales), = self.processor.crop_parameters([image], None, [item.centers], [item.scales])
            pixels, _ = self.processor.crop_instances(image, centers, scales, dataset=index)
            pending.append((item, pixels, centers, scales))
            count += len(pixels)
            if count >= self.batch_size:
                yield from self._flush(pending, index)
                pending, count = [], 0
        yield from self._flush(pending, index)

    @torch.no_grad()
    def _flush(self, pending: list, index: int) -> Iterator[tuple[Any, list[PosePrediction]]]:
        if not pending:
            return
        pixel_values = torch.cat([pixels for _, pixels, _, _ in pending])
        heatmaps = self._heatmaps(pixel_values, index) if len(pixel_values) else None
        centers = [c for _, _, c, _ in pending]
        scales = [s for _, _, _, s in pending]
        if heatmaps is None:
            decoded = [[] for _ in pending]
        else:
            decoded = self.processor.post_process_pose_estimation(
                heatmaps, centers=centers, scales=scales, dataset=index,
                keypoint_score_threshold=KEYPOINT_SCORE_THRESHOLD)
        for (item, _, c, s), results in zip(pending, decoded):
            box_scores = np.ones(len(c)) if item.box_scores is None else np.asarray(item.box_scores, np.float64)
            boxes = item.boxes
            predictions = []
            for j, result in enumerate(results):
                box = boxes[j] if boxes is not None else _box_of(result["bbox"])
                predictions.append(PosePrediction(
                    keypoints=result["keypoints"].double().numpy(),
                    keypoint_scores=result["scores"].float().numpy(),
                    keypoint_names=result["keypoint_names"],
                    bbox=np.asarray(box, np.float64),
                    box_score=float(box_scores[j]),
                    score=float(result["score"]) * float(box_scores[j]),
                    center=c[j], scale=s[j],
                    area=float(np.prod(s[j] * self.processor.normalize_factor)),
                    dataset=result["dataset"],
                    extra=dict(item.extra[j]) if item.extra else {},
                ))
            yield item.key, predictions

    def _heatmaps(self, pixel_values: torch.Tensor, index: int) -> torch.Tensor:
        if isinstance(self.model, torch.nn.Module):
            self.model.eval()
        outputs = self.model(pixel_values.to(self.device, self.dtype), dataset_index=index, flip_test=self.flip_test)
        heatmaps = outputs.heatmaps if hasattr(outputs, "heatmaps") else outputs
        return torch.as_tensor(heatmaps).float()


def _box_of(corners: torch.Tensor) -> np.ndarray:
    """The xywh box of `post_process_pose_estimation`'s corner box (`x2 = x + w - 1`)."""
    x1, y1, x2, y2 = (float(v) for v in corners)
    return np.array([x1, y1, x2 - x1 + 1, y2 - y1 + 1])


__all__ = ["KEYPOINT_SCORE_THRESHOLD", "ImageInstances", "PosePrediction", "TopDownPredictor", "coco_keypoint_record"]
