"""Evaluation exactly as the original (`vitpose_plus.evaluation`).

Modules: `metrics` (OKS-NMS, COCO keypoint AP/AR, PCKh), `evaluate` (top-down evaluation of a model on a keypoint
file), `coco_keypoints_metric` (the same metric as an `evaluate` module).
"""

import os

#: Path of the `evaluate` metric module: `evaluate.load(COCO_KEYPOINTS_METRIC_PATH)`.
COCO_KEYPOINTS_METRIC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "coco_keypoints_metric.py")

__all__ = ["COCO_KEYPOINTS_METRIC_PATH"]
