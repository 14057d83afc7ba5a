"""`pipeline("keypoint-detection", model=folder, trust_remote_code=True)`: top-down pose estimation on whole images.

transformers 5.x has no keypoint-detection task, so saved folders register this pipeline as a custom one
(`config.custom_pipelines`, written by `save_pretrained`) and ship this file with the modeling code. Importing
`vitpose_plus` registers it locally too, so `pipeline("keypoint-detection", model=folder)` also works without remote
code. The crops, the model call, the flip test and the decoding are the shared `TopDownPredictor`.

    pose = pipeline("keypoint-detection", model="org/vitpose-plus-base", trust_remote_code=True, dataset="coco")
    people = pose("people.jpg", boxes=[[50, 30, 120, 300]])      # or detector="PekingU/rtdetr_r50vd" at creation
    people[0]["keypoints"], people[0]["scores"], people[0]["labels"], people[0]["bbox"]

Each person is a dict in the format of transformers' `VitPoseImageProcessor.post_process_pose_estimation`:
`keypoints` `(K, 2)` image coordinates, `scores` `(K,)`, `labels` `(K,)` keypoint indices (`model.config.id2label`
names them for the first dataset; `keypoint_names` for any dataset), `bbox` `(4,)` corners `(x1, y1, x2, y2)` with
`x2 = x + w - 1` as transformers, plus `score` (the instance score) and `dataset`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers import Pipeline

from .person_detection import ObjectDetector, normalise_boxes, whole_image_box
from .top_down import TopDownPredictor

TASK = "keypoint-detection"


class VitPosePlusKeypointDetectionPipeline(Pipeline):
    """Keypoints of every instance in an image: boxes given (COCO `(x, y, w, h)`), found by a detector, or the whole
    image as one instance.

    Creation arguments (also accepted per call): `dataset` (name or index of the model's dataset: its expert, head and
    keypoint layout; default the processor's), `flip_test` (average with mirrored crops), `crop_batch_size` (crops per
    forward pass), `box_format` (`"xywh"` default, or `"xyxy"`). Creation only: `detector` (an object-detection
    model id or folder, or an `ObjectDetector`), `detector_labels` (default `("person",)`), `detector_threshold`
    (0.5).

    Call: `pipe(image)` or `pipe(image, boxes=[[x, y, w, h], ...])` -> list of persons; `pipe([images],
    boxes=[boxes per image])` -> one list per image. Images are paths, URLs, PIL images or `(H, W, 3)` RGB arrays.
    """

    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args: Any, detector: Any = None, detector_labels: Any = ("person",),
                 detector_threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(detector, str):
            detector = ObjectDetector(detector, tuple(detector_labels), detector_threshold, self.device)
        self.detector = detector

    def _sanitize_parameters(self, dataset: Any = None, flip_test: bool | None = None,
                             crop_batch_size: int | None = None, box_format: str | None = None,
                             timeout: float | None = None, **unknown: Any) -> tuple[dict, dict, dict]:
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown arguments {sorted(unknown)}; it takes dataset, "
                            "flip_test, crop_batch_size, box_format, timeout (and boxes per call; detector, "
                            "detector_labels, detector_threshold at creation).")
        preprocess: dict[str, Any] = {}
        forward: dict[str, Any] = {}
        if box_format is not None:
            preprocess["box_format"] = box_format
        if timeout is not None:
            preprocess["timeout"] = timeout
        if dataset is not None:
            forward["dataset"] = dataset
        if flip_test is not None:
            forward["flip_test"] = bool(flip_test)
        if crop_batch_size is not None:
            forward["crop_batch_size"] = int(crop_batch_size)
        return preprocess, forward, {}

    def __call__(self, inputs: Any, boxes: Any = None, **kwargs: Any) -> Any:
        if boxes is not None:
            if isinstance(inputs, (list, tuple)):
                if len(boxes) != len(inputs):
                    raise ValueError(f"Got {len(inputs)} images but {len(boxes)} box lists; give one list per image.")
                inputs = [{"image": image, "boxes": image_boxes} for image, image_boxes in zip(inputs, boxes)]
            else:
                inputs = {"image": inputs, "boxes": boxes}
        elif isinstance(inputs, tuple):
            inputs = list(inputs)
        return super().__call__(inputs, **kwargs)

    def preprocess(self, inputs: Any, box_format: str = "xywh", timeout: float | None = None) -> dict[str, Any]:
        from transformers.image_utils import load_image

        if isinstance(inputs, dict):
            image, boxes = inputs.get("image"), inputs.get("boxes")
        else:
            image, boxes = inputs, None
        if isinstance(image, np.ndarray):
            array = image
        else:
            array = np.asarray(load_image(image, timeout=timeout).convert("RGB"))
        if boxes is not None:
            boxes, scores = normalise_boxes(boxes, "pipeline boxes", box_format)
        elif self.detector is not None:
            (boxes, scores), = self.detector([array.astype(np.uint8) if array.dtype != np.uint8 else array])
        else:
            boxes, scores = whole_image_box(*array.shape[:2])
        return {"image": array, "boxes": boxes, "box_scores": scores}

    def _forward(self, model_inputs: dict[str, Any], dataset: Any = None, flip_test: bool = False,
                 crop_batch_size: int = 32) -> dict[str, Any]:
        predictor = TopDownPredictor(self.model, self.image_processor, batch_size=crop_batch_size, flip_test=flip_test)
        (predictions,) = predictor.predict([model_inputs["image"]], [model_inputs["boxes"]], dataset=dataset,
                                           box_scores=[model_inputs["box_scores"]])
        return {"predictions": predictions}

    def postprocess(self, model_outputs: dict[str, Any]) -> list[dict[str, Any]]:
        people = []
        for prediction in model_outputs["predictions"]:
            x, y, w, h = (float(v) for v in prediction.bbox)
            people.append({
                "keypoints": torch.from_numpy(prediction.keypoints).float(),
                "scores": torch.from_numpy(prediction.keypoint_scores),
                "labels": torch.arange(len(prediction.keypoint_names)),
                "bbox": torch.tensor([x, y, x + w - 1.0, y + h - 1.0]),
                "score": prediction.score,
                "keypoint_names": prediction.keypoint_names,
                "dataset": prediction.dataset,
            })
        return people


def custom_pipelines_entry() -> dict[str, dict[str, Any]]:
    """The `config.custom_pipelines` value that makes `pipeline(TASK, model=folder, trust_remote_code=True)` load
    this class from a saved folder."""
    return {TASK: {"impl": f"{__name__.rsplit('.', 1)[-1]}.{VitPosePlusKeypointDetectionPipeline.__name__}",
                   "pt": ["AutoModelForPoseEstimation"], "tf": [], "type": "image"}}


def register_pipeline() -> None:
    """Register the task with transformers in this process (done on `import vitpose_plus`)."""
    from transformers import AutoModelForPoseEstimation
    from transformers.pipelines import PIPELINE_REGISTRY

    if TASK not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=VitPosePlusKeypointDetectionPipeline,
                                            pt_model=AutoModelForPoseEstimation, type="image")


__all__ = ["TASK", "VitPosePlusKeypointDetectionPipeline", "custom_pipelines_entry", "register_pipeline"]
