"""Keypoint data shared by training, evaluation and the tests (`vitpose_plus.data`).

Modules: `formats` (the released annotation formats parsed into one layout), `datasets` (annotation files to HF
`datasets`, one row per image, and the original top-down instance filter), `check` (validating every file of a run
before a model is built), `specs` (`resolve_dataset_spec`: built-in, alias, synthetic and file layouts), `synthetic`
(offline synthetic keypoint images written as COCO files).
"""

from .specs import resolve_dataset_spec

__all__ = ["resolve_dataset_spec"]
