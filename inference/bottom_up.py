"""`BottomUpPipeline`: every person of whole images with a bottom-up (associative embedding) model, no detector.

    pipe = BottomUpPipeline.from_pretrained("runs/synthetic-bottom-up/model", flip_test=True)
    persons = pipe("street.jpg")  # list[BottomUpPrediction]
    picture = pipe.draw("street.jpg", persons)

The resize, the model call, flip test, test scales and the grouping are the shared `BottomUpPredictor` (also behind
`vitpose-plus evaluate --task bottom-up`); this module adds image loading and drawing. It has the interface of
`PosePipeline` that `predict_inputs` uses (`predict(images, boxes)`, `spec`), so `vitpose-plus predict --task
bottom-up` writes the same `keypoints.json` and pictures.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..file_io import check_local_path, load_model_folder
from ..modeling import KeypointDatasetSpec, VitPosePlusBottomUpImageProcessor, VitPosePlusForBottomUpPoseEstimation
from ..modeling.bottom_up_predictor import BottomUpPrediction, BottomUpPredictor
from .drawing import draw_pose
from .pipeline import as_rgb

logger = logging.getLogger(__name__)


class BottomUpPipeline:
    """Bottom-up pose estimation on whole images: `BottomUpPredictor` -> `BottomUpPrediction`s.

    Args:
        model: a `VitPosePlusForBottomUpPoseEstimation` (any number of datasets).
        image_processor: its `VitPosePlusBottomUpImageProcessor` (built from the model config when `None`).
        dataset: which of the model's datasets (name or index) to predict: its expert, head and keypoint layout.
            Defaults to the processor's default dataset (the model's first).
        batch_size: images per forward pass.
        flip_test: also run the mirrored images (slower, usually more accurate).
        scale_factors: test scales (multi-scale test; must include 1).
        device: torch device; the model's device when `None`.
    """

    def __init__(
        self,
        model: VitPosePlusForBottomUpPoseEstimation,
        image_processor: VitPosePlusBottomUpImageProcessor | None = None,
        dataset: int | str | None = None,
        batch_size: int = 1,
        flip_test: bool = False,
        scale_factors: Sequence[float] = (1.0,),
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(model, VitPosePlusForBottomUpPoseEstimation):
            raise ValueError(f"BottomUpPipeline needs a bottom-up model (VitPosePlusForBottomUpPoseEstimation), got "
                             f"{type(model).__name__}; use PosePipeline (top-down, with boxes) for it.")
        config = model.config
        if isinstance(dataset, str) and dataset.isdigit():
            dataset = int(dataset)
        if isinstance(dataset, str) and dataset not in config.dataset_names:
            raise ValueError(f"The model has no dataset {dataset!r}; its datasets are {config.dataset_names} (pass "
                             "one of these names or an index).")
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.image_processor = image_processor or VitPosePlusBottomUpImageProcessor.from_model_config(config)
        self.predictor = BottomUpPredictor(self.model, self.image_processor, batch_size=batch_size,
                                           flip_test=flip_test, scale_factors=scale_factors)
        self.dataset_id = self.predictor.dataset_index(dataset)
        self.spec: KeypointDatasetSpec = config.dataset_spec(self.dataset_id)

    @classmethod
    def from_pretrained(cls, model_id: str | os.PathLike, **kwargs: Any) -> BottomUpPipeline:
        """Load a bottom-up model folder or Hub id with its `preprocessor_config.json` (the grouping settings), or
        the default processor of its config when the folder has none."""
        model_id = check_local_path(model_id)
        model = load_model_folder(model_id)
        processor = None
        if isinstance(model, VitPosePlusForBottomUpPoseEstimation):
            try:
                processor = VitPosePlusBottomUpImageProcessor.from_pretrained(os.fspath(model_id))
            except OSError:
                logger.warning("no preprocessor_config.json in %s; grouping with the default settings of its config",
                               model_id)
        return cls(model, processor, **kwargs)

    def predict(self, images: Sequence[Any], boxes: Sequence[None] | None = None) -> list[list[BottomUpPrediction]]:
        """Every person in each image (RGB arrays, PIL images or file paths).

        Args:
            boxes: must be `None` (or `None` per image): a bottom-up model finds the persons itself.
        """
        if boxes is not None and any(b is not None for b in boxes):
            raise ValueError("A bottom-up model finds every person itself; it takes no boxes (leave out --boxes and "
                             "--detector).")
        return self.predictor.predict([as_rgb(image) for image in images], self.dataset_id)

    def __call__(self, images: Any) -> list[BottomUpPrediction] | list[list[BottomUpPrediction]]:
        """Persons in one image -> `list[BottomUpPrediction]`; a list of images -> a list of lists."""
        if isinstance(images, (list, tuple)):
            return self.predict(list(images))
        return self.predict([images])[0]

    def draw(self, image: Any, persons: Sequence[BottomUpPrediction], keypoint_threshold: float = 0.3) -> np.ndarray:
        """The skeleton picture of `persons` on `image`: `(H, W, 3)` uint8 RGB."""
        return draw_pose(as_rgb(image), persons, self.spec, keypoint_threshold=keypoint_threshold)


__all__ = ["BottomUpPipeline"]
