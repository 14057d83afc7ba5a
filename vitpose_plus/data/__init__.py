"""Keypoint data shared by training, evaluation and the tests (`vitpose_plus.data`).

Modules: `datasets` (annotation files in their released formats to HF `datasets`), `synthetic` (offline synthetic
keypoint images written as COCO files).
"""
