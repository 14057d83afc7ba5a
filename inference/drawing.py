"""Skeleton pictures: each instance's limbs and keypoints drawn in its dataset spec's colours with OpenCV.

Lines are anti-aliased (`cv2.LINE_AA`) and every size (line thickness, keypoint radius, font) scales with the image.
A keypoint's score sets its opacity and radius; keypoints and limbs under `keypoint_threshold` are not drawn. Images
are RGB arrays in and out (convert with `cv2.cvtColor(..., cv2.COLOR_RGB2BGR)` before `cv2.imwrite`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from ..modeling.dataset_specs import KeypointDatasetSpec

#: Fallback RGB palette for specs without colours (e.g. a custom dataset): ten well-separated hues.
_PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
)  # fmt: skip
_BOX_COLOR = (255, 255, 255)


def drawing_scale(height: int, width: int) -> float:
    """Size unit of the drawing: 1.0 for a 640-pixel long side, proportional otherwise (at least 0.35)."""
    return max(0.35, max(height, width) / 640.0)


def _keypoint_colors(spec: KeypointDatasetSpec) -> list[tuple[int, int, int]]:
    if spec.keypoint_colors:
        return [tuple(c) for c in spec.keypoint_colors]
    return [_PALETTE[i % len(_PALETTE)] for i in range(spec.num_keypoints)]


def _limb_colors(spec: KeypointDatasetSpec, keypoint_colors: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    if spec.skeleton_colors:
        return [tuple(c) for c in spec.skeleton_colors]
    return [keypoint_colors[b] for _, b in spec.skeleton]  # the colour of the limb's distal keypoint


def draw_pose(
    image: np.ndarray,
    instances: Sequence[Any],
    spec: KeypointDatasetSpec,
    keypoint_threshold: float = 0.3,
    draw_boxes: bool = True,
    show_scores: bool = True,
) -> np.ndarray:
    """Draw every instance's skeleton on a copy of `image`.

    Args:
        image: `(H, W, 3)` uint8 RGB image.
        instances: objects or dicts with `keypoints` `(K, 2)` image coordinates, `keypoint_scores` (or `scores`)
            `(K,)`, `bbox` `(4,)` xywh and `score` (the instance score), e.g. `PoseInstance`s.
        spec: the instances' dataset spec: its `skeleton`, `keypoint_colors` and `skeleton_colors` are used.
        keypoint_threshold: keypoints (and limbs touching them) with a score below it are not drawn.
        draw_boxes: draw each instance's box.
        show_scores: write each instance's score above its box.

    Returns:
        `(H, W, 3)` uint8 RGB image with the drawing.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"draw_pose expects an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}.")
    canvas = np.ascontiguousarray(image).copy()
    height, width = canvas.shape[:2]
    unit = drawing_scale(height, width)
    thickness = max(1, round(3 * unit))
    radius = max(2, round(4 * unit))
    font_scale = 0.5 * unit
    font_thickness = max(1, round(unit))
    kp_colors = _keypoint_colors(spec)
    limb_colors = _limb_colors(spec, kp_colors)
    shift = 4  # sub-pixel precision of cv2 drawing: coordinates in 1/16 pixel
    factor = 1 << shift

    def get(instance: Any, *names: str) -> Any:
        for name in names:
            value = instance.get(name) if isinstance(instance, dict) else getattr(instance, name, None)
            if value is not None:
                return value
        return None

    for instance in instances:
        keypoints = np.asarray(get(instance, "keypoints"), dtype=np.float64).reshape(-1, 2)
        scores = np.asarray(get(instance, "keypoint_scores", "scores"), dtype=np.float64).reshape(-1)
        if keypoints.shape[0] != spec.num_keypoints or scores.shape[0] != spec.num_keypoints:
            raise ValueError(
                f"An instance has {keypoints.shape[0]} keypoints and {scores.shape[0]} scores but dataset "
                f"{spec.name!r} has {spec.num_keypoints} keypoints."
            )
        box = get(instance, "bbox")
        if draw_boxes and box is not None:
            x, y, w, h = (float(v) for v in box)
            p1, p2 = (round(x * factor), round(y * factor)), (round((x + w) * factor), round((y + h) * factor))
            cv2.rectangle(canvas, p1, p2, _BOX_COLOR, max(1, thickness // 2), cv2.LINE_AA, shift)
            score = get(instance, "score")
            if show_scores and score is not None:
                label = f"{float(score):.2f}"
                (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, font_thickness)
                tx, ty = int(max(0, x)), int(max(th + base, y - base))
                cv2.rectangle(canvas, (tx, ty - th - base), (tx + tw + 2, ty + base // 2), (0, 0, 0), -1)
                cv2.putText(canvas, label, (tx + 1, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                            _BOX_COLOR, font_thickness, cv2.LINE_AA)
        visible = scores >= keypoint_threshold
        points = np.round(keypoints * factor).astype(np.int64)
        # Limbs on a layer blended at 75% so that crossings stay readable.
        layer = canvas.copy()
        for (a, b), color in zip(spec.skeleton, limb_colors):
            if visible[a] and visible[b]:
                cv2.line(layer, tuple(points[a].tolist()), tuple(points[b].tolist()), color, thickness, cv2.LINE_AA,
                         shift)
        cv2.addWeighted(layer, 0.75, canvas, 0.25, 0.0, dst=canvas)
        # Keypoints: radius and opacity grow with the score; a dark outline keeps them visible on any background.
        for k in np.argsort(scores):  # most confident on top
            if not visible[k]:
                continue
            score = float(np.clip(scores[k], 0.0, 1.0))
            r = max(1, round(radius * (0.6 + 0.6 * score)))
            alpha = 0.45 + 0.55 * score
            x0, y0 = int(keypoints[k, 0]) - r - 2, int(keypoints[k, 1]) - r - 2
            x1, y1 = x0 + 2 * r + 5, y0 + 2 * r + 5
            if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
                continue
            cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
            patch = canvas[cy0:cy1, cx0:cx1]
            drawn = patch.copy()
            center = tuple(points[k].tolist())
            offset = (cx0 * factor, cy0 * factor)
            center = (center[0] - offset[0], center[1] - offset[1])
            cv2.circle(drawn, center, (r + 1) * factor, (20, 20, 20), -1, cv2.LINE_AA, shift)
            cv2.circle(drawn, center, r * factor, kp_colors[k], -1, cv2.LINE_AA, shift)
            cv2.addWeighted(drawn, alpha, patch, 1.0 - alpha, 0.0, dst=patch)
    return canvas


__all__ = ["draw_pose", "drawing_scale"]
