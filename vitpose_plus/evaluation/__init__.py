"""Evaluation exactly as the original (`vitpose_plus.evaluation`).

Modules: `protocols` (per-dataset protocols), `ground_truth` (evaluation files per protocol and the crop targets),
`records` (prediction records), `scoring` (OKS-NMS and the protocol's metric over records), `metrics` (OKS-NMS,
xtcocotools keypoint AP on pycocotools, MPII PCKh), `evaluate` (a model on a file: targets -> records -> score),
`coco_keypoints_metric` (the same scoring as an `evaluate` module).
"""

import os

#: Path of the `evaluate` metric module: `evaluate.load(COCO_KEYPOINTS_METRIC_PATH)`.
COCO_KEYPOINTS_METRIC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "coco_keypoints_metric.py")

__all__ = ["COCO_KEYPOINTS_METRIC_PATH"]
