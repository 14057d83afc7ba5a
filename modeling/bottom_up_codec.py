"""Bottom-up (associative embedding) geometry and training targets, as in mmpose 0.x (the ViTPose fork).

Everything a whole-image pipeline needs besides grouping (`bottom_up_grouping`):

* `three_point_affine_transform`: the original `get_affine_transform` built from three float32 points exactly as
  mmpose does (then solved in float64, as `cv2.getAffineTransform` does), for the training augmentation and the test
  resize;
* `multi_scale_size`: the original `_get_multi_scale_size` (non-UDP): the test resize to short side `input_size`
  with the long side rounded up to a multiple of 64, and the `center` / `scale` that map predictions back;
* `generate_heatmaps`: the original `HeatmapGenerator` (non-UDP): one Gaussian per visible joint on the *truncated*
  integer joint position, a `6 sigma + 3` window, the maximum over persons;
* `encode_joints`: the original `JointsEncoder` with `tag_per_joint=True`: per person the visible joints packed
  in order as `(k * W * H + y * W + x, 1)`;
* `BottomUpTargetEncoder`: both of them behind one `encode` call.

Sizes are `(width, height)` pairs like the original configs; joints are `(num_people, K, 3)` `(x, y, v)` arrays.

Only numpy and the standard library are imported (OpenCV optionally) so that this file can travel with the modeling
code to the Hub.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

try:  # optional: cv2.getAffineTransform gives bit-identical matrices (cv2.warpAffine's fixed-point sampling is
    import cv2  # sensitive to the last bits); the numpy solve is used without OpenCV
except ImportError:  # pragma: no cover - exercised only without OpenCV
    cv2 = None

PIXEL_STD = 200.0
"""The original normalises sizes by 200 pixels: `scale = size / 200`."""
DEFAULT_INPUT_SIZE = 512
"""Training input side and the test short side (`data_cfg.image_size` of the AE configs)."""
SIZE_DIVISOR = 64
"""The test resize rounds the long side up to a multiple of this."""
DEFAULT_SIGMA = 2.0
DEFAULT_MAX_NUM_PEOPLE = 30


# --------------------------------------------------------------------------------------------- affine geometry
def three_point_affine_transform(
    center: Sequence[float],
    scale: Sequence[float],
    rotation: float,
    output_size: Sequence[int],
    inverse: bool = False,
) -> np.ndarray:
    """The original `get_affine_transform(center, scale, rot, output_size)` (mmpose 0.x `post_transforms`).

    The three anchor points are built in float32 as the original does (box centre, a point half the box width above
    it rotated by `rotation` degrees, and the point at a right angle) and the affine map between them comes from
    `cv2.getAffineTransform`, so that the matrix is bit-identical to the original's (`cv2.warpAffine`'s fixed-point
    sampling can change a grey level for a last-bit difference); without OpenCV it is solved in float64. The result
    is a similarity: the box centre goes to the output centre, with the single scale `output_width / (200 scale_x)`
    (`scale_y` is ignored, as in the original).

    Args:
        center: `(x, y)` centre in the source image.
        scale: `(w, h)` box size divided by 200.
        rotation: degrees (counter-clockwise in the image).
        output_size: `(width, height)` of the destination.
        inverse: return the destination-to-source matrix instead.

    Returns:
        `(2, 3)` float64 matrix.
    """
    scale_px = np.asarray(scale) * PIXEL_STD
    src_w = scale_px[0]
    dst_w, dst_h = output_size[0], output_size[1]
    rot_rad = np.pi * rotation / 180
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    src_dir = (0.0 * cs - src_w * -0.5 * sn, 0.0 * sn + src_w * -0.5 * cs)
    src = np.zeros((3, 2), dtype=np.float32)
    src[0] = np.asarray(center)
    src[1] = np.asarray(center) + np.asarray(src_dir)
    src[2] = _third_point(src[0], src[1])
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + np.array([0.0, dst_w * -0.5])
    dst[2] = _third_point(dst[0], dst[1])
    if inverse:
        src, dst = dst, src
    if cv2 is not None:
        return cv2.getAffineTransform(src, dst)
    # Solve [x y 1] M^T = [x' y'] for the three point pairs (what cv2.getAffineTransform computes, in float64).
    system = np.concatenate([src.astype(np.float64), np.ones((3, 1))], axis=1)
    return np.linalg.solve(system, dst.astype(np.float64)).T


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a - b` rotated by 90 degrees about `b` (the original `_get_3rd_point`), in float32."""
    direction = a - b
    return b + np.array([-direction[1], direction[0]], dtype=np.float32)


def transform_joints(joints: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a `(2, 3)` matrix to `(..., 2)` points (the original `warp_affine_joints`); float64 result."""
    points = np.asarray(joints, dtype=np.float64)
    flat = points.reshape(-1, 2)
    out = flat @ np.asarray(matrix, dtype=np.float64)[:, :2].T + np.asarray(matrix, dtype=np.float64)[:, 2]
    return out.reshape(points.shape)


def _ceil_to_multiple(value: float, base: int = SIZE_DIVISOR) -> int:
    return int(np.ceil(value / base)) * base


def multi_scale_size(
    image_width: int,
    image_height: int,
    input_size: Sequence[int] = (DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE),
    current_scale: float = 1.0,
    min_scale: float = 1.0,
    size_divisor: int = SIZE_DIVISOR,
) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """The original `_get_multi_scale_size` (non-UDP): test-time input size, centre and scale of one image.

    The short side becomes `input_size * current_scale` (computed at `min_scale`, rounded up to a multiple of 64,
    then multiplied by `current_scale / min_scale`); the long side keeps the aspect ratio, rounded up to a multiple
    of 64 at `min_scale`. `center` is the rounded image centre (Python `round`, half to even, as the original) and
    `scale` the size of the image region that fills the resized input, divided by 200.

    Args:
        image_width, image_height: original image size in pixels.
        input_size: `(width, height)` of the square training input (the AE configs use 512).
        current_scale: this test scale; min_scale: the smallest test scale.

    Returns:
        `(resized_width, resized_height)`, `center` `(2,)` (integer-valued float64) and `scale` `(2,)` float64.
    """
    w, h = int(image_width), int(image_height)
    if w <= 0 or h <= 0:
        raise ValueError(f"Image size must be positive, got width {w} and height {h}.")
    min_input_w = _ceil_to_multiple(min_scale * input_size[0], size_divisor)
    min_input_h = _ceil_to_multiple(min_scale * input_size[1], size_divisor)
    if w < h:
        w_resized = int(min_input_w * current_scale / min_scale)
        h_resized = int(_ceil_to_multiple(min_input_w / w * h, size_divisor) * current_scale / min_scale)
        scale_w = w / PIXEL_STD
        scale_h = h_resized / w_resized * w / PIXEL_STD
    else:
        h_resized = int(min_input_h * current_scale / min_scale)
        w_resized = int(_ceil_to_multiple(min_input_h / h * w, size_divisor) * current_scale / min_scale)
        scale_h = h / PIXEL_STD
        scale_w = w_resized / h_resized * h / PIXEL_STD
    center = np.array([round(w / 2.0), round(h / 2.0)], dtype=np.float64)
    return (w_resized, h_resized), center, np.array([scale_w, scale_h], dtype=np.float64)


# --------------------------------------------------------------------------------------------- targets
def generate_heatmaps(
    joints: np.ndarray, num_keypoints: int, output_size: Sequence[int], sigma: float = DEFAULT_SIGMA
) -> np.ndarray:
    """The original bottom-up `HeatmapGenerator` (non-UDP).

    For every joint with `v > 0`: `x, y = int(joint_x), int(joint_y)` (truncation toward zero, as the original);
    joints with `x < 0`, `y < 0`, `x >= W` or `y >= H` are skipped; otherwise a `(6 sigma + 3)`-pixel square
    Gaussian `exp(-d^2 / (2 sigma^2))` with its peak 1 on `(x, y)` is written into the window
    `[round(x - 3 sigma - 1), round(x + 3 sigma + 2))` (clipped to the map), keeping the maximum over persons.

    Args:
        joints: `(num_people, K, >= 3)` `(x, y, v)` in heatmap pixels.
        num_keypoints: K (channels of the result).
        output_size: heatmap `(width, height)`.
        sigma: Gaussian sigma in heatmap pixels.

    Returns:
        `(K, height, width)` float32 heatmaps.
    """
    width, height = int(output_size[0]), int(output_size[1])
    size = 6 * sigma + 3
    grid = np.arange(0, size, 1, np.float32)
    x0 = y0 = 3 * sigma + 1
    gaussian = np.exp(-((grid[None, :] - x0) ** 2 + (grid[:, None] - y0) ** 2) / (2 * sigma**2))
    heatmaps = np.zeros((num_keypoints, height, width), dtype=np.float32)
    # Python scalars: the per-joint loop is the training data's hot path (int() truncates and round() rounds half to
    # even exactly as the original's int() and np.round on these values).
    for person in _joint_rows(joints, num_keypoints):
        for idx, (px, py, visible) in enumerate(person):
            if not visible > 0:
                continue
            x, y = int(px), int(py)
            if x < 0 or y < 0 or x >= width or y >= height:
                continue
            ul = round(x - 3 * sigma - 1), round(y - 3 * sigma - 1)
            br = round(x + 3 * sigma + 2), round(y + 3 * sigma + 2)
            c, d = max(0, -ul[0]), min(br[0], width) - ul[0]
            a, b = max(0, -ul[1]), min(br[1], height) - ul[1]
            cc, dd = max(0, ul[0]), min(br[0], width)
            aa, bb = max(0, ul[1]), min(br[1], height)
            window = heatmaps[idx, aa:bb, cc:dd]
            np.maximum(window, gaussian[a:b, c:d], out=window)
    return heatmaps


def _joint_rows(joints: np.ndarray, num_keypoints: int) -> list[list[list[float]]]:
    """`(num_people, K, >= 3)` joints as nested Python lists of `(x, y, v)` (float32 values widened exactly)."""
    joints = np.asarray(joints)
    if joints.size == 0:
        return []
    return joints[:, :num_keypoints, :3].astype(np.float64).tolist()


def encode_joints(
    joints: np.ndarray,
    num_keypoints: int,
    output_size: Sequence[int],
    max_num_people: int = DEFAULT_MAX_NUM_PEOPLE,
) -> np.ndarray:
    """The original `JointsEncoder` with one tag map per keypoint (`tag_per_joint=True`).

    Person `i`'s visible joints (`v > 0` and `0 <= int(x) < W`, `0 <= int(y) < H`, truncation as the original) are
    written, in keypoint order, to slots `0, 1, ...` of row `i` as `(k * W * H + int(y) * W + int(x), 1)`: the index
    of the joint's pixel in the flattened `(K, H, W)` tag maps and a visible flag. Other slots are `(0, 0)`.

    Persons beyond `max_num_people` are dropped (the original raises an IndexError there).

    Args:
        joints: `(num_people, K, >= 3)` `(x, y, v)` in heatmap pixels.
        output_size: heatmap `(width, height)`.

    Returns:
        `(max_num_people, K, 2)` int64.
    """
    width, height = int(output_size[0]), int(output_size[1])
    encoded = np.zeros((max_num_people, num_keypoints, 2), dtype=np.int64)
    for i, person in enumerate(_joint_rows(joints, num_keypoints)[:max_num_people]):
        slot = 0
        for idx, (px, py, visible) in enumerate(person):
            x, y = int(px), int(py)
            if visible > 0 and 0 <= y < height and 0 <= x < width:
                encoded[i, slot] = (idx * width * height + y * width + x, 1)
                slot += 1
    return encoded


class BottomUpTargetEncoder:
    """Training targets of the AE loss for one keypoint layout (the original `BottomUpGenerateTarget`).

    Args:
        num_keypoints: K.
        heatmap_size: `(width, height)` of the model's heatmaps (128x128 for 512x512 inputs).
        sigma: Gaussian sigma in heatmap pixels (2).
        max_num_people: rows of the encoded joints (30).
    """

    def __init__(
        self,
        num_keypoints: int,
        heatmap_size: Sequence[int] = (128, 128),
        sigma: float = DEFAULT_SIGMA,
        max_num_people: int = DEFAULT_MAX_NUM_PEOPLE,
    ) -> None:
        if num_keypoints < 1:
            raise ValueError(f"num_keypoints must be positive, got {num_keypoints}.")
        if len(heatmap_size) != 2 or min(heatmap_size) < 1:
            raise ValueError(f"heatmap_size must be (width, height) with positive entries, got {heatmap_size}.")
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}.")
        if max_num_people < 1:
            raise ValueError(f"max_num_people must be positive, got {max_num_people}.")
        self.num_keypoints = int(num_keypoints)
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.sigma = sigma
        self.max_num_people = int(max_num_people)

    def encode(self, joints: np.ndarray) -> dict[str, np.ndarray]:
        """Targets from joints in heatmap pixels.

        Args:
            joints: `(num_people, K, 3)` `(x, y, v)` in heatmap pixels (float32 as the original keeps them).

        Returns:
            `heatmaps` `(K, height, width)` float32 and `joints` `(max_num_people, K, 2)` int64 (see `encode_joints`).
        """
        joints = np.asarray(joints)
        if joints.size == 0:
            joints = joints.reshape(0, self.num_keypoints, 3)
        if joints.ndim != 3 or joints.shape[1] != self.num_keypoints or joints.shape[2] < 3:
            raise ValueError(
                f"joints must have shape (num_people, {self.num_keypoints}, 3), got {tuple(joints.shape)}."
            )
        return {
            "heatmaps": generate_heatmaps(joints, self.num_keypoints, self.heatmap_size, self.sigma),
            "joints": encode_joints(joints, self.num_keypoints, self.heatmap_size, self.max_num_people),
        }


__all__ = [
    "BottomUpTargetEncoder",
    "DEFAULT_INPUT_SIZE",
    "DEFAULT_MAX_NUM_PEOPLE",
    "DEFAULT_SIGMA",
    "PIXEL_STD",
    "SIZE_DIVISOR",
    "encode_joints",
    "generate_heatmaps",
    "multi_scale_size",
    "three_point_affine_transform",
    "transform_joints",
]
