"""Training, data and evaluation for ViTPose / ViTPose+ (`vitpose_plus.training`).

Modules: `datasets` (COCO-format files to HF `datasets`), `synthetic` (offline synthetic keypoint data),
`transforms` (the original top-down augmentation and targets), `data_pipeline` (mixed sampler, collator),
`train` (the Accelerate loop and `vitpose-plus train`), `evaluation` (top-down COCO evaluation), `metrics`
(OKS-NMS, pycocotools AP, PCKh), `trainer_utils` (transformers.Trainer integration), `plots`.
"""

import os

#: Path of the `evaluate` metric module: `evaluate.load(COCO_KEYPOINTS_METRIC_PATH)`.
COCO_KEYPOINTS_METRIC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "coco_keypoints_metric.py")

__all__ = ["COCO_KEYPOINTS_METRIC_PATH"]
