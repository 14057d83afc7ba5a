"""Keypoint data shared by training, evaluation and the tests (`vitpose_plus.data`).

Modules: `formats` (the released annotation formats parsed into one layout), `datasets` (annotation files to HF
`datasets`, one row per image, and the original top-down instance filter), `check` (validating every file of a run
before a model is built), `specs` (`resolve_dataset_spec`: built-in, alias, synthetic and file layouts), `synthetic`
(offline synthetic keypoint images written as COCO files).
"""

from .datasets import (
    KeypointLoadStats,
    TopDownInstance,
    flatten_top_down,
    load_keypoint_dataset,
    top_down_index,
    top_down_instances,
)
from .specs import resolve_dataset_spec

__all__ = [
    "KeypointLoadStats",
    "TopDownInstance",
    "flatten_top_down",
    "load_keypoint_dataset",
    "resolve_dataset_spec",
    "top_down_index",
    "top_down_instances",
]
