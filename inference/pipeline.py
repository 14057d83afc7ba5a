"""`PosePipeline`: top-down pose estimation on whole images (boxes given, from a detector, or the whole image).

    pipe = PosePipeline.from_pretrained("models/vitpose-plus-base", dataset="coco", detector="PekingU/rtdetr_r50vd")
    instances = pipe("street.jpg")  # list[PosePrediction]
    picture = pipe.draw("street.jpg", instances)

The crops, the model call, the flip test and the decoding are the shared `TopDownPredictor` (also behind
`vitpose-plus evaluate`); this module adds the box sources and drawing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..file_io import check_local_path, load_model_folder, read_image
from ..modeling import (
    ImageInstances,
    KeypointDatasetSpec,
    PosePrediction,
    TopDownPredictor,
    VitPosePlusForPoseEstimation,
    VitPosePlusImageProcessor,
)
from ..modeling.image_processing_vitpose_plus import to_rgb_array
from ..modeling.person_detection import Boxes, ObjectDetector, normalise_boxes, whole_image_box
from .drawing import draw_pose

logger = logging.getLogger(__name__)


def as_rgb(image: np.ndarray | str | os.PathLike | Any) -> np.ndarray:
    """A path, PIL image or array as an `(H, W, 3)` uint8 RGB array."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    array = to_rgb_array(image, 0)
    if array.dtype != np.uint8:
        array = np.clip(np.round(array), 0, 255).astype(np.uint8)
    return array


class PosePipeline:
    """Top-down pose estimation on whole images: boxes -> `TopDownPredictor` -> `PosePrediction`s.

    Args:
        model: a `VitPosePlusForPoseEstimation` (any number of datasets).
        image_processor: its `VitPosePlusImageProcessor` (one is built from the model config when `None`).
        dataset: which of the model's datasets (name or index) to predict: its expert, head, keypoint layout and
            decoding. Defaults to the processor's default dataset (the model's first).
        detector: an `ObjectDetector`, a detector Hub id / folder, or `None` (boxes must then be given, or the whole
            image is used).
        detector_labels: detector classes to keep when `detector` is an id.
        detector_threshold: detector score threshold when `detector` is an id.
        batch_size: crops per forward pass.
        flip_test: average with the mirrored crops (slower, slightly more accurate).
        device: torch device; the model's device when `None`.
    """

    def __init__(
        self,
        model: VitPosePlusForPoseEstimation,
        image_processor: VitPosePlusImageProcessor | None = None,
        dataset: int | str | None = None,
        detector: ObjectDetector | str | None = None,
        detector_labels: Sequence[str] = ("person",),
        detector_threshold: float = 0.5,
        batch_size: int = 32,
        flip_test: bool = False,
        device: str | torch.device | None = None,
    ) -> None:
        config = model.config
        if isinstance(dataset, str) and dataset.isdigit():
            dataset = int(dataset)
        if isinstance(dataset, str) and dataset not in config.dataset_names:
            raise ValueError(
                f"The model has no dataset {dataset!r}; its datasets are {config.dataset_names} "
                "(pass one of these names or an index)."
            )
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        if image_processor is None:
            image_processor = VitPosePlusImageProcessor.from_model_config(config)
        self.image_processor = image_processor
        self.dataset_id = config.dataset_id(image_processor.dataset if dataset is None else dataset)
        self.spec: KeypointDatasetSpec = config.dataset_spec(self.dataset_id)
        if isinstance(detector, str):
            detector = ObjectDetector(detector, detector_labels, detector_threshold, self.device)
        self.detector = detector
        self.predictor = TopDownPredictor(self.model, image_processor, batch_size=batch_size, flip_test=flip_test)

    @classmethod
    def from_pretrained(cls, model_id: str | os.PathLike, **kwargs: Any) -> PosePipeline:
        """Load a vitpose-plus model folder or Hub id with its `preprocessor_config.json` (the decoding settings the
        model was evaluated with), or the default processor of its config when the folder has none."""
        model_id = check_local_path(model_id)
        model = load_model_folder(model_id)
        processor = None
        try:
            processor = VitPosePlusImageProcessor.from_pretrained(os.fspath(model_id))
        except OSError:
            logger.warning("no preprocessor_config.json in %s; decoding with the default settings of its config",
                           model_id)
        return cls(model, processor, **kwargs)

    # ------------------------------------------------------------------ inference
    def predict(
        self, images: Sequence[Any], boxes: Sequence[Boxes | np.ndarray | Sequence | None] | None = None
    ) -> list[list[PosePrediction]]:
        """Poses in images, batched across images.

        Args:
            images: RGB arrays, PIL images or file paths.
            boxes: per image, `(boxes (n, 4) xywh, scores (n,))`, a list/array of xywh boxes, or `None`: the detector's
                boxes when the pipeline has one, else the whole image.

        Returns:
            Per image, one `PosePrediction` per box (box order).
        """
        images = [as_rgb(image) for image in images]
        if boxes is None:
            boxes = [None] * len(images)
        if len(boxes) != len(images):
            raise ValueError(f"Got {len(images)} images but {len(boxes)} box lists.")
        resolved: list[Boxes | None] = [None if b is None else normalise_boxes(b, f"image {i}")
                                        for i, b in enumerate(boxes)]
        missing = [i for i, b in enumerate(resolved) if b is None]
        if missing and self.detector is not None:
            for i, found in zip(missing, self.detector([images[i] for i in missing])):
                resolved[i] = found
        for i in missing:
            if resolved[i] is None:  # no detector: the whole image is one instance
                resolved[i] = whole_image_box(*images[i].shape[:2])
        items = [ImageInstances(i, image, boxes=b, box_scores=s) for i, (image, (b, s)) in
                 enumerate(zip(images, resolved))]
        results = dict(self.predictor.predict_iter(items, self.dataset_id))
        return [results[i] for i in range(len(images))]

    def __call__(self, images: Any, boxes: Any = None) -> list[PosePrediction] | list[list[PosePrediction]]:
        """Poses in one image (path, PIL image or array) -> `list[PosePrediction]`; a list of images -> a list of
        lists. `boxes` as in `predict` (for one image: its xywh boxes or `(boxes, scores)`)."""
        if isinstance(images, (list, tuple)):
            return self.predict(list(images), boxes)
        return self.predict([images], None if boxes is None else [boxes])[0]

    def draw(self, image: Any, instances: Sequence[PosePrediction], keypoint_threshold: float = 0.3) -> np.ndarray:
        """The skeleton picture of `instances` on `image`: `(H, W, 3)` uint8 RGB."""
        return draw_pose(as_rgb(image), instances, self.spec, keypoint_threshold=keypoint_threshold)


__all__ = ["PosePipeline", "as_rgb"]
