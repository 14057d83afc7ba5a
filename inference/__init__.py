"""Inference (`vitpose_plus.inference`): the pose pipeline, box sources (JSON files, transformers detectors),
skeleton pictures and prediction over files, folders and videos. `vitpose-plus predict` is registered from `cli.py`.

The crops, the model call and the decoding are `vitpose_plus.modeling.TopDownPredictor`, shared with evaluation."""

from ..modeling import PosePrediction
from .bottom_up import BottomUpPipeline
from .detection import ObjectDetector, boxes_for_image, load_boxes_file
from .drawing import draw_pose, drawing_scale
from .pipeline import PosePipeline, as_rgb
from .predict import PredictionSummary, image_ids, predict_inputs

__all__ = [
    "BottomUpPipeline",
    "ObjectDetector",
    "PosePipeline",
    "PosePrediction",
    "PredictionSummary",
    "as_rgb",
    "boxes_for_image",
    "draw_pose",
    "drawing_scale",
    "image_ids",
    "load_boxes_file",
    "predict_inputs",
]
