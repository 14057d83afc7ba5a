"""Prediction records: what a predictor hands to the scoring (`scoring.score_predictions`).

A record is a plain dict, one per crop target:

* `image_id`, `target_id` (the `CropTarget` it was predicted from), `category_id` (the target's);
* `keypoints`: flat `[x, y, score] * K` in image pixels;
* `score`: the instance score after the original's rescoring, `box_score x mean(keypoint scores > 0.2)` (0 when no
  keypoint score exceeds 0.2);
* `area`: the target's padded box area `(200 s_w)(200 s_h)`, the OKS scale of OKS-NMS.

`prediction_record` builds one from decoded keypoints; any predictor (the model loop of `evaluate.predict_keypoints`,
a shared top-down predictor, a test oracle) can produce records this way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ground_truth import CropTarget

KEYPOINT_SCORE_THRESHOLD = 0.2
"""The original's `vis_thr`: keypoints scoring above it count for the instance score."""


def instance_score(keypoint_scores: np.ndarray, threshold: float = KEYPOINT_SCORE_THRESHOLD) -> float:
    """Mean of the keypoint scores above `threshold`, 0 when there are none (the original's rescoring)."""
    scores = np.asarray(keypoint_scores, dtype=np.float64).reshape(-1)
    above = scores[scores > threshold]
    return float(above.mean()) if above.size else 0.0


def prediction_record(
    target: CropTarget, keypoints: np.ndarray, keypoint_scores: np.ndarray,
    threshold: float = KEYPOINT_SCORE_THRESHOLD,
) -> dict[str, Any]:
    """The record of one target.

    Args:
        target: the crop the keypoints were predicted on.
        keypoints: `(K, 2)` image coordinates; keypoint_scores: `(K,)` (heatmap maxima).
    """
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(keypoint_scores, dtype=np.float64).reshape(-1)
    if kp.shape[0] != scores.shape[0]:
        raise ValueError(f"Target {target.target_id}: {kp.shape[0]} keypoints but {scores.shape[0]} scores.")
    return {
        "image_id": target.image_id,
        "target_id": target.target_id,
        "category_id": target.category_id,
        "keypoints": np.concatenate([kp, scores[:, None]], axis=1).reshape(-1).tolist(),
        "score": instance_score(scores, threshold) * target.box_score,
        "area": target.padded_area,
        "bbox": list(target.bbox),
    }


__all__ = ["KEYPOINT_SCORE_THRESHOLD", "instance_score", "prediction_record"]
