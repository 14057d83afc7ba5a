"""Inference (`vitpose_plus.inference`): the pose pipeline, box sources (JSON files, transformers detectors) and
skeleton pictures. `vitpose-plus predict` is registered from `cli.py`."""

from .detection import ObjectDetector, boxes_for_image, load_boxes_file
from .drawing import draw_pose, drawing_scale
from .predictor import PoseInstance, PosePipeline, PredictionSummary, predict_inputs, read_image

__all__ = [
    "ObjectDetector",
    "PoseInstance",
    "PosePipeline",
    "PredictionSummary",
    "boxes_for_image",
    "draw_pose",
    "drawing_scale",
    "load_boxes_file",
    "predict_inputs",
    "read_image",
]
