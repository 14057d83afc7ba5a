"""The one bottom-up predictor: whole images -> processor (resize, pad, mask) -> model (flip test, optional test
scales) -> grouping -> every person's keypoints in image coordinates, batched across images.

`vitpose-plus evaluate --task bottom-up`, `vitpose-plus predict --task bottom-up`, the training run's evaluation and
the benchmark all run `BottomUpPredictor`, so every path resizes, runs, groups and scores persons the same way, with
the grouping settings saved in the model's `preprocessor_config.json`.

This module imports only torch, numpy, the standard library and its own folder (like `top_down.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .image_processing_vitpose_plus import to_rgb_array
from .image_processing_vitpose_plus_bottom_up import VitPosePlusBottomUpImageProcessor
from .top_down import coco_keypoint_record


@dataclass
class BottomUpPrediction:
    """One person found in a whole image.

    Attributes:
        keypoints: `(K, 2)` float64 `(x, y)` image coordinates (refined missing keypoints included).
        keypoint_scores: `(K,)` float32 heatmap values at the keypoints.
        keypoint_names: the dataset's K keypoint names.
        score: the person score of the grouping (mean keypoint score before refinement, the original's).
        bbox: `(4,)` xywh box of the keypoints (the original's result box).
        area: `(max x - min x) (max y - min y)` of the keypoints: the original's OKS-NMS area for bottom-up.
        dataset: the dataset name.
        extra: anything the caller attaches.
    """

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    keypoint_names: list[str]
    score: float
    bbox: np.ndarray
    area: float
    dataset: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_coco(self, image_id: int, category_id: int = 1) -> dict[str, Any]:
        """A COCO keypoint result record: `keypoints` `[x, y, score] * K`, `score`, `bbox` (xywh)."""
        return coco_keypoint_record(self, image_id, category_id)


def keypoint_box(keypoints: np.ndarray) -> tuple[np.ndarray, float]:
    """xywh box and area of `(K, 2)` keypoints, as the original bottom-up evaluation computes them."""
    low, high = keypoints.min(axis=0), keypoints.max(axis=0)
    width, height = float(high[0] - low[0]), float(high[1] - low[1])
    return np.array([low[0], low[1], width, height], dtype=np.float64), width * height


class BottomUpPredictor:
    """Bottom-up pose estimation of whole images, batched across images.

    Args:
        model: a `VitPosePlusForBottomUpPoseEstimation`, or any callable `model(pixel_values, pixel_mask=...,
            dataset_index=..., flip_test=...)` returning an object with `heatmaps` and `tags` (and `flipped_tags`
            with flip test) and carrying a bottom-up `config` (e.g. a test oracle).
        processor: the model's `VitPosePlusBottomUpImageProcessor` (built from `model.config` when `None`).
        batch_size: images per forward pass (padded to the largest; each size runs separately inside the model, so
            results do not depend on the batching).
        flip_test: also run the mirrored images (heatmaps averaged, tags concatenated, as the original).
        scale_factors: test scales (the original's multi-scale test; must include 1, where the tags come from).
    """

    def __init__(self, model: Any, processor: VitPosePlusBottomUpImageProcessor | None = None, batch_size: int = 1,
                 flip_test: bool = False, scale_factors: Sequence[float] = (1.0,)) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        scales = [float(s) for s in scale_factors]
        if not scales or any(s <= 0 for s in scales) or 1.0 not in scales:
            raise ValueError(f"scale_factors must be positive and include 1 (the tags come from scale 1), got "
                             f"{scales}.")
        if processor is None:
            processor = VitPosePlusBottomUpImageProcessor.from_model_config(model.config)
        self.model = model
        self.processor = processor
        self.batch_size = int(batch_size)
        self.flip_test = bool(flip_test)
        self.scale_factors = scales

    @property
    def device(self) -> torch.device:
        return getattr(self.model, "device", torch.device("cpu"))

    @property
    def dtype(self) -> torch.dtype:
        return getattr(self.model, "dtype", torch.float32)

    def dataset_index(self, dataset: int | str | None = None) -> int:
        """The model's dataset index for `dataset` (name or index); the processor's default dataset when `None`."""
        config = self.model.config
        if dataset is None:
            default = self.processor.dataset
            if default is None:
                return 0
            dataset = default["name"] if isinstance(default, dict) else default
        return config.dataset_id(dataset)

    def predict(self, images: Sequence[Any], dataset: int | str | None = None) -> list[list[BottomUpPrediction]]:
        """Every person in each image (RGB arrays or PIL images), in the grouping's order."""
        results = dict(self.predict_iter(enumerate(images), dataset))
        return [results[i] for i in range(len(images))]

    def predict_iter(self, items: Iterable[tuple[Any, Any]], dataset: int | str | None = None
                     ) -> Iterator[tuple[Any, list[BottomUpPrediction]]]:
        """Yield `(key, persons)` per `(key, image)` item, in input order; `image` may be a zero-argument callable
        returning the image (decoded only when its batch runs)."""
        index = self.dataset_index(dataset)
        pending: list[tuple[Any, np.ndarray]] = []
        for key, image in items:
            pending.append((key, to_rgb_array(image() if callable(image) else image, 0)))
            if len(pending) >= self.batch_size:
                yield from self._flush(pending, index)
                pending = []
        yield from self._flush(pending, index)

    @torch.no_grad()
    def _flush(self, pending: list[tuple[Any, np.ndarray]], index: int) -> Iterator[tuple[Any, list]]:
        if not pending:
            return
        images = [image for _, image in pending]
        spec = self.model.config.dataset_spec(index)
        if isinstance(self.model, torch.nn.Module):
            self.model.eval()
        low = min(self.scale_factors)
        outputs = []
        for factor in self.scale_factors:
            inputs = self.processor(images, scale_factor=factor, min_scale_factor=low)
            out = self.model(inputs["pixel_values"].to(self.device, self.dtype),
                             pixel_mask=inputs["pixel_mask"].to(self.device), dataset_index=index,
                             flip_test=self.flip_test)
            outputs.append(out)
        sizes = [image.shape[:2] for image in images]
        persons = self.processor.post_process_bottom_up(outputs, sizes, dataset=spec, scale_factors=self.scale_factors,
                                                        min_scale_factor=low)
        for (key, _), found in zip(pending, persons):
            predictions = []
            for person in found:
                keypoints = person["keypoints"].double().numpy()
                box, area = keypoint_box(keypoints)
                predictions.append(BottomUpPrediction(
                    keypoints=keypoints, keypoint_scores=person["scores"].float().numpy(),
                    keypoint_names=list(spec.keypoint_names), score=float(person["score"]), bbox=box, area=area,
                    dataset=spec.name,
                ))
            yield key, predictions


__all__ = ["BottomUpPrediction", "BottomUpPredictor", "keypoint_box"]
