"""Top-down pose inference: boxes (given, detected, or the whole image) -> batched crops -> keypoints per instance.

`PosePipeline` is the Python entry point:

    pipe = PosePipeline.from_pretrained("models/vitpose-plus-base", dataset="coco", detector="PekingU/rtdetr_r50vd")
    instances = pipe("street.jpg")  # list[PoseInstance]
    picture = pipe.draw("street.jpg", instances)

`predict_inputs` runs it over an image, a directory of images or a video and writes COCO keypoint results plus skeleton
pictures (the `vitpose-plus predict` command).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..file_io import read_image
from ..modeling import VitPosePlusForPoseEstimation, VitPosePlusImageProcessor
from ..modeling.dataset_specs import KeypointDatasetSpec
from .detection import Boxes, ObjectDetector, boxes_for_image, load_boxes_file
from .drawing import draw_pose

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


@dataclass
class PoseInstance:
    """One detected pose.

    Attributes:
        keypoints: `(K, 2)` float32 `(x, y)` in image pixels.
        keypoint_scores: `(K,)` float32 heatmap maxima.
        keypoint_names: the K keypoint names of the dataset.
        bbox: `(4,)` the `(x, y, w, h)` box the crop was taken from.
        box_score: score of the box (1.0 for given boxes and the whole image).
        score: instance score = box score x mean keypoint score above 0.2 (as in the original evaluation).
        dataset: name of the dataset (keypoint layout) of the prediction.
    """

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    keypoint_names: list[str]
    bbox: np.ndarray
    box_score: float
    score: float
    dataset: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_coco(self, image_id: int, category_id: int = 1) -> dict[str, Any]:
        """A COCO keypoint result record: `keypoints` `[x, y, score] * K`, `score`, `bbox` (xywh)."""
        flat = np.concatenate([self.keypoints, self.keypoint_scores[:, None]], axis=1).reshape(-1)
        return {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "keypoints": [round(float(v), 4) for v in flat],
            "score": round(float(self.score), 6),
            "bbox": [round(float(v), 3) for v in self.bbox],
        }




def _as_rgb(image: np.ndarray | str | os.PathLike | Any) -> np.ndarray:
    from ..modeling.image_processing_vitpose_plus import to_rgb_array

    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    array = to_rgb_array(image, 0)
    if array.dtype != np.uint8:
        array = np.clip(np.round(array), 0, 255).astype(np.uint8)
    return array


class PosePipeline:
    """Top-down pose estimation on whole images: boxes -> crops -> ViTPose / ViTPose+ -> keypoints.

    Args:
        model: a `VitPosePlusForPoseEstimation` (any number of datasets).
        image_processor: its `VitPosePlusImageProcessor` (one is built from the model config when `None`).
        dataset: which of the model's datasets (name or index) to predict: its expert, head, keypoint layout and
            decoding. Defaults to the model's first dataset.
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
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        config = model.config
        if dataset is None:
            dataset = 0
        elif isinstance(dataset, str) and dataset.isdigit():
            dataset = int(dataset)
        if isinstance(dataset, str) and dataset not in config.dataset_names:
            raise ValueError(
                f"The model has no dataset {dataset!r}; its datasets are {config.dataset_names} "
                "(pass one of these names or an index)."
            )
        self.dataset_id = config.dataset_id(dataset)
        self.spec: KeypointDatasetSpec = config.dataset_spec(self.dataset_id)
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        if image_processor is None:
            image_processor = VitPosePlusImageProcessor.from_model_config(config, self.dataset_id)
        self.image_processor = image_processor
        if isinstance(detector, str):
            detector = ObjectDetector(detector, detector_labels, detector_threshold, self.device)
        self.detector = detector
        self.batch_size = int(batch_size)
        self.flip_test = bool(flip_test)

    @classmethod
    def from_pretrained(cls, model_id: str | os.PathLike, **kwargs: Any) -> PosePipeline:
        """Load a vitpose-plus model folder or Hub id (and its `preprocessor_config.json` when present)."""
        from ..file_io import load_model_folder

        model = load_model_folder(model_id)
        processor = None
        try:
            processor = VitPosePlusImageProcessor.from_pretrained(os.fspath(model_id))
        except OSError:
            logger.info("no preprocessor_config.json in %s; using the default image processor", model_id)
        return cls(model, processor, **kwargs)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(
        self, images: Sequence[np.ndarray], boxes: Sequence[Boxes | np.ndarray | Sequence | None] | None = None
    ) -> list[list[PoseInstance]]:
        """Poses in RGB images, batched across images.

        Args:
            images: `(H, W, 3)` uint8 RGB arrays.
            boxes: per image, `(boxes (n, 4) xywh, scores (n,))`, a list/array of xywh boxes, or `None`: the detector's
                boxes when the pipeline has one, else the whole image.

        Returns:
            Per image, one `PoseInstance` per box (box order).
        """
        images = [_as_rgb(image) for image in images]
        if boxes is None:
            boxes = [None] * len(images)
        if len(boxes) != len(images):
            raise ValueError(f"Got {len(images)} images but {len(boxes)} box lists.")
        resolved: list[Boxes | None] = [self._normalise_boxes(b, i) for i, b in enumerate(boxes)]
        missing = [i for i, b in enumerate(resolved) if b is None]
        if missing and self.detector is not None:
            for i, found in zip(missing, self.detector([images[i] for i in missing])):
                resolved[i] = found
        for i in missing:
            if resolved[i] is None:  # no detector: the whole image is one instance
                height, width = images[i].shape[:2]
                resolved[i] = (np.array([[0.0, 0.0, float(width), float(height)]]), np.ones(1))
        results: list[list[PoseInstance]] = [[] for _ in images]
        jobs = [(i, j) for i, (b, _) in enumerate(resolved) for j in range(len(b))]
        for start in range(0, len(jobs), self.batch_size):
            chunk = jobs[start : start + self.batch_size]
            order = sorted({i for i, _ in chunk})
            per_image = [[resolved[i][0][j].tolist() for (ii, j) in chunk if ii == i] for i in order]
            pixel_values = self.image_processor([images[i] for i in order], boxes=per_image, dataset=self.spec)[
                "pixel_values"
            ].to(self.device, next(self.model.parameters()).dtype)
            heatmaps = self.model(pixel_values, dataset_index=self.dataset_id, flip_test=self.flip_test).heatmaps
            decoded = self.image_processor.post_process_pose_estimation(heatmaps.float(), per_image, dataset=self.spec)
            rows = iter(chunk)
            for image_results in decoded:
                for result in image_results:
                    i, j = next(rows)
                    box_score = float(resolved[i][1][j])
                    results[i].append(
                        PoseInstance(
                            keypoints=result["keypoints"].numpy().astype(np.float32),
                            keypoint_scores=result["scores"].float().numpy(),
                            keypoint_names=list(result["keypoint_names"]),
                            bbox=resolved[i][0][j].astype(np.float32),
                            box_score=box_score,
                            score=float(result["score"]) * box_score,
                            dataset=self.spec.name,
                        )
                    )
        return results

    def __call__(self, images: Any, boxes: Any = None) -> list[PoseInstance] | list[list[PoseInstance]]:
        """Poses in one image (path, PIL image or array) -> `list[PoseInstance]`; a list of images -> a list of lists.

        `boxes` as in `predict` (for one image: its xywh boxes or `(boxes, scores)`).
        """
        if isinstance(images, (list, tuple)):
            return self.predict(list(images), boxes)
        return self.predict([images], None if boxes is None else [boxes])[0]

    def draw(self, image: Any, instances: Sequence[PoseInstance], keypoint_threshold: float = 0.3) -> np.ndarray:
        """The skeleton picture of `instances` on `image`: `(H, W, 3)` uint8 RGB."""
        return draw_pose(_as_rgb(image), instances, self.spec, keypoint_threshold=keypoint_threshold)

    @staticmethod
    def _normalise_boxes(value: Any, index: int) -> Boxes | None:
        if value is None:
            return None
        if isinstance(value, tuple) and len(value) == 2 and np.ndim(value[1]) == 1:
            boxes, scores = np.asarray(value[0], dtype=np.float64), np.asarray(value[1], dtype=np.float64)
        else:
            boxes = np.asarray(value, dtype=np.float64)
            scores = np.ones(boxes.reshape(-1, 4).shape[0] if boxes.size else 0)
        boxes = boxes.reshape(-1, 4) if boxes.size else np.zeros((0, 4))
        if boxes.shape[0] != scores.shape[0]:
            raise ValueError(f"Image {index}: {boxes.shape[0]} boxes but {scores.shape[0]} box scores.")
        if not np.all(np.isfinite(boxes)) or np.any(boxes[:, 2:] <= 0):
            raise ValueError(f"Image {index}: boxes must be finite (x, y, w, h) with w, h > 0, got {boxes.tolist()}.")
        return boxes, scores


# ---------------------------------------------------------------------------------------------------------- files
@dataclass
class PredictionSummary:
    """What `predict_inputs` wrote: the results JSON, the pictures (or video) and the instance count."""

    results_file: str
    pictures: list[str]
    num_images: int
    num_instances: int


def _image_id(path: str, position: int) -> int:
    stem = os.path.splitext(os.path.basename(path))[0]
    return int(stem) if stem.isdigit() else position


def _iter_frames(path: str) -> Iterator[tuple[int, np.ndarray]]:
    import cv2

    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(f"Cannot open video file {path!r} (unsupported codec or corrupt file).")
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
        if index == 0:
            raise ValueError(f"Video file {path!r} has no readable frame.")
    finally:
        capture.release()


def predict_inputs(
    pipeline: PosePipeline,
    input_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    boxes_file: str | os.PathLike | None = None,
    box_format: str = "xywh",
    category_id: int = 1,
    keypoint_threshold: float = 0.3,
) -> PredictionSummary:
    """Run `pipeline` on an image file, a directory of images or a video; write the results to `output_dir`.

    Writes `keypoints.json` (COCO keypoint results; `image_id` is the file stem when numeric, else the image's
    position, or the frame index for a video; each record also has `file_name`) and one `<stem>.png` skeleton picture
    per image (`<stem>.mp4` for a video).

    Raises:
        FileNotFoundError: when `input_path` does not exist.
        ValueError: for an unreadable image or video, a malformed boxes file, or a boxes file that names no box for
            an image (when it is keyed by file name).
    """
    import cv2

    input_path, output_dir = os.fspath(input_path), os.fspath(output_dir)
    if not os.path.exists(input_path):
        raise FileNotFoundError(f"Input {input_path!r} does not exist (expected an image, a folder or a video).")
    os.makedirs(output_dir, exist_ok=True)
    table = load_boxes_file(boxes_file, box_format) if boxes_file is not None else None
    records: list[dict[str, Any]] = []
    pictures: list[str] = []
    num_images = 0

    def boxes_of(path: str) -> Boxes | None:
        if table is None:
            return None
        found = boxes_for_image(table, path)
        if found is None:
            raise ValueError(
                f"boxes file {os.fspath(boxes_file)!r} has no entry for image {os.path.basename(path)!r}; "
                f"its keys are {sorted(k for k in table if k is not None)[:10]}."
            )
        return found

    if os.path.isfile(input_path) and input_path.lower().endswith(VIDEO_EXTENSIONS):
        stem = os.path.splitext(os.path.basename(input_path))[0]
        video_path = os.path.join(output_dir, f"{stem}.mp4")
        capture = cv2.VideoCapture(input_path)
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        capture.release()
        writer = None
        try:
            for index, frame in _iter_frames(input_path):
                instances = pipeline.predict([frame], [boxes_of(input_path)])[0]
                records.extend(
                    {**inst.to_coco(index, category_id), "file_name": f"{stem}#{index}"} for inst in instances
                )
                picture = draw_pose(frame, instances, pipeline.spec, keypoint_threshold=keypoint_threshold)
                if writer is None:
                    height, width = frame.shape[:2]
                    writer = cv2.VideoWriter(video_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
                writer.write(cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
                num_images += 1
        finally:
            if writer is not None:
                writer.release()
        pictures.append(video_path)
    else:
        if os.path.isdir(input_path):
            files = sorted(
                os.path.join(input_path, name)
                for name in os.listdir(input_path)
                if name.lower().endswith(IMAGE_EXTENSIONS)
            )
            if not files:
                raise ValueError(f"Folder {input_path!r} has no image ({', '.join(IMAGE_EXTENSIONS)}).")
        else:
            files = [input_path]
        for position, path in enumerate(files):
            image = read_image(path)
            instances = pipeline.predict([image], [boxes_of(path)])[0]
            image_id = _image_id(path, position)
            records.extend(
                {**inst.to_coco(image_id, category_id), "file_name": os.path.basename(path)} for inst in instances
            )
            picture = draw_pose(image, instances, pipeline.spec, keypoint_threshold=keypoint_threshold)
            out = os.path.join(output_dir, os.path.splitext(os.path.basename(path))[0] + ".png")
            if not cv2.imwrite(out, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
                raise OSError(f"Cannot write the picture {out!r}.")
            pictures.append(out)
            num_images += 1
    results_file = os.path.join(output_dir, "keypoints.json")
    with open(results_file, "w", encoding="utf-8") as handle:
        json.dump(records, handle)
    return PredictionSummary(results_file, pictures, num_images, len(records))


__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "PosePipeline",
    "PoseInstance",
    "PredictionSummary",
    "predict_inputs",
    "read_image",
]
