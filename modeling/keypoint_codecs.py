"""Top-down keypoint codecs: the one place for heatmap geometry, encoding and decoding.

A codec object owns its parameters and is chosen from the dataset spec (`codec_for(spec, ...)`), so no call site
branches on UDP: `UDPHeatmap` (COCO, MPII: UDP crop, sub-pixel Gaussian targets, DARK-UDP decoding) and `MSRAHeatmap`
(AIC, AP-10K, APT-36K, COCO-WholeBody: 3-point affine crop, integer-centred Gaussian targets, quarter-pixel decoding,
one-pixel shift in the flip test). Each has `crop_matrix` (image -> crop), `encode` (training targets), `decode`
(keypoints and scores, batched in torch) and `flip_back` (flip test). Everything follows the original ViTPose
(mmpose 0.x) top-down pipeline; see the reference, section 3.

Sizes are `(height, width)` everywhere (as `VitPosePlusConfig.image_size` and torch); points are `(..., 2)` in
`(x, y)` order. The module-level functions are the transcribed formulas the codecs use:

* box -> (center, scale): `box_to_center_scale` (padding 1.25, the input's aspect ratio, pixel_std 200) and
  `mpii_center_scale` (MPII's annotated center/scale convention); `sanitize_box` (the original GT box clean-up);
* crop geometry: `get_udp_warp_matrix`, `get_affine_transform`; `transform_points`; `warp_image` crops with
  `cv2.warpAffine` (bilinear, constant-zero border) when OpenCV is installed and with `warp_images_torch` otherwise;
* targets: `gaussian_targets` (the original `TopDownGenerateTarget`, including its window arithmetic for a sigma
  whose 3 sigma is not an integer);
* decoding: `get_max_preds`, `refine_dark_udp` (with OpenCV's exact kernels, fixed binomial ones for sizes 3 to 9),
  `refine_quarter_offset`, `heatmap_to_image_coords`;
* flips: `flip_keypoints` (training-time image flip) and `flip_back_heatmaps` (flip test).

This module imports only numpy, torch and the standard library (OpenCV only inside a `try` block) so that it can
travel with the modeling code to the Hub.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

try:  # optional: exact crops identical to the original; the torch fallback is within about 1 grey level of it
    import cv2
except ImportError:  # pragma: no cover - exercised only without OpenCV
    cv2 = None

PIXEL_STD = 200.0
"""The original normalises box sizes by 200 pixels: `scale = size / 200`."""
DEFAULT_INPUT_SIZE = (256, 192)
"""Model input `(height, width)`."""
DEFAULT_HEATMAP_SIZE = (64, 48)
"""Heatmap `(height, width)`."""
DEFAULT_PADDING = 1.25
DEFAULT_SIGMA = 2.0
DARK_KERNEL_SIZE = 11
"""`modulate_kernel` of the original test config; OpenCV derives sigma = 0.3 * ((11 - 1) / 2 - 1) + 0.8 = 2.0."""
# cv2.getGaussianKernel(k, 0) uses these fixed binomial-like kernels for k <= 9 instead of the sigma formula.
_OPENCV_SMALL_KERNELS = {
    1: (1.0,),
    3: (0.25, 0.5, 0.25),
    5: (0.0625, 0.25, 0.375, 0.25, 0.0625),
    7: (0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125),
    9: tuple(v / 256 for v in (4, 13, 30, 51, 60, 51, 30, 13, 4)),
}


# --------------------------------------------------------------------------------------------- box -> center/scale
def box_to_center_scale(
    boxes: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
    padding: float = DEFAULT_PADDING,
    pixel_std: float = PIXEL_STD,
) -> tuple[np.ndarray, np.ndarray]:
    """COCO `xywh` boxes to the original's `(center, scale)` (`_xywh2cs`), with the aspect fix and padding.

    Args:
        boxes: `(4,)` or `(N, 4)` boxes `(x, y, w, h)`.
        input_size: model input `(height, width)`; width / height is the target aspect ratio (0.75 for 256x192).
        padding: context factor applied to the aspect-fixed box (1.25).
        pixel_std: normaliser of the scale (200).

    Returns:
        `center` `(N, 2)` (or `(2,)`) = box centre (no -1), `scale` `(N, 2)` (or `(2,)`) = padded size / pixel_std.
    """
    arr = np.asarray(boxes, dtype=np.float64)
    single = arr.ndim == 1
    arr = arr.reshape(-1, 4) if arr.size else arr.reshape(0, 4)
    if arr.shape[-1] != 4:
        raise ValueError(f"Boxes must have 4 values (x, y, w, h) each, got shape {np.asarray(boxes).shape}.")
    x, y, w, h = arr[:, 0], arr[:, 1], arr[:, 2].copy(), arr[:, 3].copy()
    center = np.stack([x + w * 0.5, y + h * 0.5], axis=-1)
    aspect = input_size[1] / input_size[0]
    wider = w > aspect * h
    taller = w < aspect * h
    h = np.where(wider, w / aspect, h)
    w = np.where(taller, h * aspect, w)
    scale = np.stack([w, h], axis=-1) / pixel_std * padding
    if single:
        return center[0], scale[0]
    return center, scale


def mpii_center_scale(center: Sequence[float], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """MPII's annotated `(center, scale)` (1-based MATLAB pixels, square scale) to the original's crop parameters.

    As in the original `TopDownMpiiDataset`: `center_y += 15 * s` and `s *= 1.25` (skipped when `center_x == -1`),
    then `center -= 1` (to 0-based pixels). No aspect fix is applied, so the crop is anisotropic.

    Returns:
        `center` `(2,)`, `scale` `(2,)` = `(s, s)`.
    """
    c = np.asarray(center, dtype=np.float64).copy()
    s = np.array([float(scale), float(scale)], dtype=np.float64)
    if c[0] != -1:
        c[1] = c[1] + 15.0 * s[1]
        s = s * 1.25
    return c - 1.0, s


def sanitize_box(box: Sequence[float], image_width: int, image_height: int) -> list[float] | None:
    """The original COCO ground-truth box clean-up; `None` when the cleaned box is empty.

    `x1 = max(0, x)`, `y1 = max(0, y)`, `x2 = min(W - 1, x1 + max(0, w - 1))`, `y2 = min(H - 1, y1 + max(0, h - 1))`;
    the box becomes `(x1, y1, x2 - x1, y2 - y1)` and is kept only when `x2 > x1` and `y2 > y1`.
    """
    x, y, w, h = (float(v) for v in box)
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(image_width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(image_height - 1.0, y1 + max(0.0, h - 1.0))
    if x2 > x1 and y2 > y1:
        return [x1, y1, x2 - x1, y2 - y1]
    return None


# --------------------------------------------------------------------------------------------- affine geometry
def get_udp_warp_matrix(
    center: Sequence[float],
    scale: Sequence[float],
    rotation: float = 0.0,
    output_size: Sequence[int] = DEFAULT_INPUT_SIZE,
    pixel_std: float = PIXEL_STD,
) -> np.ndarray:
    """UDP crop matrix, the original `get_warp_matrix(rotation, 2 * center, output_size - 1, pixel_std * scale)`.

    `x' = s_x (cos t dx - sin t dy) + (W - 1) / 2`, `y' = s_y (sin t dx + cos t dy) + (H - 1) / 2` with
    `s_x = (W - 1) / (pixel_std * scale_x)`, `d = p - center` and `t` = rotation in degrees (counter-clockwise on
    screen for positive t because y points down). With t = 0 the padded box edges map to 0 and `W - 1`.

    Args:
        output_size: crop `(height, width)`.

    Returns:
        `(2, 3)` float64 matrix from image to crop pixels.
    """
    theta = math.radians(float(rotation))
    cos, sin = math.cos(theta), math.sin(theta)
    cx, cy = float(center[0]), float(center[1])
    height, width = float(output_size[0]), float(output_size[1])
    sx = (width - 1.0) / (pixel_std * float(scale[0]))
    sy = (height - 1.0) / (pixel_std * float(scale[1]))
    return np.array(
        [
            [cos * sx, -sin * sx, sx * (-cx * cos + cy * sin) + 0.5 * (width - 1.0)],
            [sin * sy, cos * sy, sy * (-cx * sin - cy * cos) + 0.5 * (height - 1.0)],
        ],
        dtype=np.float64,
    )


def get_affine_transform(
    center: Sequence[float],
    scale: Sequence[float],
    rotation: float = 0.0,
    output_size: Sequence[int] = DEFAULT_INPUT_SIZE,
    inverse: bool = False,
    pixel_std: float = PIXEL_STD,
) -> np.ndarray:
    """Non-UDP crop matrix, the closed form of the original 3-point `get_affine_transform` (`cv2.getAffineTransform`).

    A similarity with the single scale `k = W / (pixel_std * scale_x)` (the height of `scale` is ignored, as in the
    original) and rotation `-rotation` about the centre: `p' = k R(-t) (p - center) + (W / 2, H / 2)`.

    Args:
        output_size: crop `(height, width)`.

    Returns:
        `(2, 3)` float64 matrix from image to crop pixels, or from crop to image pixels when `inverse`.
    """
    theta = math.radians(float(rotation))
    cos, sin = math.cos(theta), math.sin(theta)
    cx, cy = float(center[0]), float(center[1])
    height, width = float(output_size[0]), float(output_size[1])
    k = width / (pixel_std * float(scale[0]))
    ox, oy = width * 0.5, height * 0.5
    if inverse:
        ik = 1.0 / k
        return np.array(
            [
                [ik * cos, -ik * sin, cx - ik * (cos * ox - sin * oy)],
                [ik * sin, ik * cos, cy - ik * (sin * ox + cos * oy)],
            ],
            dtype=np.float64,
        )
    return np.array(
        [[k * cos, k * sin, ox - k * (cos * cx + sin * cy)], [-k * sin, k * cos, oy - k * (-sin * cx + cos * cy)]],
        dtype=np.float64,
    )


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a `(2, 3)` affine matrix, as `(2, 3)`."""
    full = np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a `(2, 3)` affine matrix to `(..., 2)` points; returns float64 `(..., 2)`."""
    pts = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def warp_image(
    image: np.ndarray, matrix: np.ndarray, output_size: Sequence[int] = DEFAULT_INPUT_SIZE, backend: str = "auto"
) -> np.ndarray:
    """Crop `image` with a `(2, 3)` image-to-crop matrix: bilinear, constant-zero border (`cv2.warpAffine`).

    Args:
        image: `(H, W, C)` or `(H, W)` array (uint8 or float).
        matrix: `(2, 3)` image-to-crop matrix.
        output_size: crop `(height, width)`.
        backend: `"cv2"`, `"torch"` or `"auto"` (OpenCV when installed). The torch path samples the same points with
            `grid_sample`; OpenCV quantises the interpolation weights to 1/32 and rounds uint8 output, so the two
            differ by at most one grey level on uint8 images (see the tests).

    Returns:
        `(height, width, C)` (or `(height, width)`) array of the input dtype.
    """
    if backend == "auto":
        backend = "cv2" if cv2 is not None else "torch"
    height, width = int(output_size[0]), int(output_size[1])
    if backend == "cv2":
        if cv2 is None:
            raise ImportError("warp_image(backend='cv2') needs OpenCV (pip install opencv-python-headless).")
        return cv2.warpAffine(
            image, np.asarray(matrix, dtype=np.float64), (width, height), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )
    if backend != "torch":
        raise ValueError(f"Unknown warp backend {backend!r}; use 'cv2', 'torch' or 'auto'.")
    squeeze = image.ndim == 2
    tensor = torch.from_numpy(np.ascontiguousarray(image if not squeeze else image[..., None]))
    out = warp_images_torch(tensor.permute(2, 0, 1)[None].float(), torch.from_numpy(np.asarray(matrix)[None]),
                            (height, width))
    out = out[0].permute(1, 2, 0).numpy()
    if image.dtype == np.uint8:
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    else:
        out = out.astype(image.dtype, copy=False)
    return out[..., 0] if squeeze else out


def warp_images_torch(images: torch.Tensor, matrices: torch.Tensor, output_size: Sequence[int]) -> torch.Tensor:
    """Batched `cv2.warpAffine` equivalent in torch (bilinear, zero border).

    Args:
        images: `(N, C, H, W)` float tensor, or `(1, C, H, W)` shared by all matrices.
        matrices: `(N, 2, 3)` image-to-crop matrices.
        output_size: crop `(height, width)`.

    Returns:
        `(N, C, height, width)` float tensor.
    """
    n = matrices.shape[0]
    out_h, out_w = int(output_size[0]), int(output_size[1])
    in_h, in_w = images.shape[-2:]
    full = torch.zeros(n, 3, 3, dtype=torch.float64)
    full[:, :2] = matrices.to(torch.float64).cpu()
    full[:, 2, 2] = 1.0
    inv = torch.linalg.inv(full)[:, :2].to(images.device)  # crop -> image pixels
    ys, xs = torch.meshgrid(
        torch.arange(out_h, dtype=torch.float64, device=images.device),
        torch.arange(out_w, dtype=torch.float64, device=images.device),
        indexing="ij",
    )
    grid = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(-1, 3)  # (P, 3)
    src = torch.einsum("nij,pj->npi", inv, grid)  # (N, P, 2) source pixel coordinates
    # align_corners=True: -1 and 1 are the centres of the first and last pixels, i.e. pixel index i -> 2i/(size-1)-1.
    norm = torch.stack(
        [src[..., 0] * 2.0 / max(in_w - 1, 1) - 1.0, src[..., 1] * 2.0 / max(in_h - 1, 1) - 1.0], dim=-1
    ).reshape(n, out_h, out_w, 2)
    if images.shape[0] == 1 and n > 1:
        images = images.expand(n, -1, -1, -1)
    return F.grid_sample(
        images.float(), norm.to(images.dtype if images.is_floating_point() else torch.float32),
        mode="bilinear", padding_mode="zeros", align_corners=True,
    )


# --------------------------------------------------------------------------------------------- flips
def flip_keypoints(
    keypoints: np.ndarray, image_width: int, flip_pairs: Sequence[Sequence[int]]
) -> np.ndarray:
    """Mirror keypoints with an image of width `image_width` (the original `fliplr_joints`).

    `x -> image_width - 1 - x`, the left/right channels are swapped by `flip_pairs`, and unlabelled keypoints
    (v = 0) are zeroed as in the original.

    Args:
        keypoints: `(K, 3)` `(x, y, v)` (or `(K, 2)`, then every keypoint counts as labelled).

    Returns:
        `(K, 3)` (or `(K, 2)`) float64 flipped keypoints.
    """
    out = np.array(keypoints, dtype=np.float64, copy=True)
    out[:, 0] = image_width - 1.0 - out[:, 0]
    perm = np.arange(out.shape[0])
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    out = out[perm]
    if out.shape[1] > 2:
        out[:, :2] *= (out[:, 2:3] > 0)
    return out


def flip_back_heatmaps(heatmaps: torch.Tensor, flip_permutation: Sequence[int], shift: bool) -> torch.Tensor:
    """Undo a horizontal flip of the input on predicted heatmaps (the original `flip_back` plus its shift).

    Args:
        heatmaps: `(batch, K, h, w)` heatmaps predicted on mirrored crops.
        flip_permutation: length-K channel permutation swapping left and right keypoints
            (`KeypointDatasetSpec.flip_permutation()`).
        shift: shift the result one column right (`hm[..., 1:] = hm[..., :-1]`, column 0 kept), as the original
            does for non-UDP datasets (`shift_heatmap=True`) to re-align the flipped pixel grid.

    Returns:
        `(batch, K, h, w)` heatmaps in the un-mirrored frame.
    """
    perm = torch.as_tensor(list(flip_permutation), device=heatmaps.device, dtype=torch.long)
    if perm.numel() != heatmaps.shape[1]:
        raise ValueError(
            f"flip_permutation has {perm.numel()} entries but the heatmaps have {heatmaps.shape[1]} channels."
        )
    flipped = heatmaps.index_select(1, perm).flip(-1)
    if shift:
        flipped = torch.cat([flipped[..., :1], flipped[..., :-1]], dim=-1)
    return flipped


# --------------------------------------------------------------------------------------------- heatmap targets
def gaussian_targets(
    keypoints: np.ndarray,
    visibility: np.ndarray | None = None,
    use_udp: bool = True,
    input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
    heatmap_size: Sequence[int] = DEFAULT_HEATMAP_SIZE,
    sigma: float = DEFAULT_SIGMA,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian heatmap targets of the original `TopDownGenerateTarget` (vectorised, same values).

    * UDP: stride `(W_in - 1) / (W_hm - 1)`; Gaussian centred on the sub-pixel `mu = joint / stride`.
    * MSRA: stride `W_in / W_hm`; the same Gaussian centred on the integer pixel `int(joint / stride + 0.5)`.

    The window is the original's arithmetic with `r = 3 sigma` kept as a float: `mu_int = int(mu + 0.5)`, pixels
    `int(mu_int - r) <= p < int(mu_int + r + 1)` (`int` truncates toward zero), value
    `exp(-(p - int(mu_int - r) - floor((2r + 1) / 2) - delta)^2 / (2 sigma^2))` per axis with `delta = mu - mu_int`
    for UDP and 0 for MSRA (for an integer r that is simply a Gaussian at `mu` on a `2r + 1` window). The target
    weight is 1 for `v > 0`, and 0 when the window lies entirely outside the heatmap; the Gaussian is drawn only
    where the weight is 1.

    Args:
        keypoints: `(K, 2)` or `(K, 3)` keypoints in crop pixels (the third column is the visibility when
            `visibility` is not given).
        visibility: `(K,)` visibility flags (v > 0 means labelled).
        input_size, heatmap_size: `(height, width)`.

    Returns:
        `heatmaps` `(K, H_hm, W_hm)` float32 and `weights` `(K,)` float32.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if visibility is None:
        visibility = kp[:, 2] if kp.shape[1] > 2 else np.ones(kp.shape[0])
    vis = np.asarray(visibility, dtype=np.float64).reshape(-1)
    h_hm, w_hm = int(heatmap_size[0]), int(heatmap_size[1])
    size_xy = np.array([input_size[1], input_size[0]], dtype=np.float64)
    heat_xy = np.array([w_hm, h_hm], dtype=np.float64)
    stride = (size_xy - 1.0) / (heat_xy - 1.0) if use_udp else size_xy / heat_xy
    radius = sigma * 3
    mu_exact = kp[:, :2] / stride  # (K, 2)
    mu_int = np.trunc(mu_exact + 0.5)  # Python int() of the original
    upper_left = np.trunc(mu_int - radius)
    bottom_right = np.trunc(mu_int + radius + 1)
    window = math.ceil(2 * radius + 1)  # len(np.arange(0, 2r + 1))
    weights = (vis > 0).astype(np.float32)
    outside = (upper_left[:, 0] >= w_hm) | (upper_left[:, 1] >= h_hm) | (bottom_right[:, 0] < 0) | (
        bottom_right[:, 1] < 0)
    weights[outside] = 0.0
    centre = math.floor((2 * radius + 1) / 2) + ((mu_exact - mu_int) if use_udp else 0.0)  # in window coordinates

    def axis(n: int, dim: int) -> np.ndarray:  # (K, n) Gaussian along one axis, zero outside the window
        pixels = np.arange(n, dtype=np.float64)[None, :]
        offset = pixels - upper_left[:, dim : dim + 1]  # position inside the window array
        values = np.exp(-((offset - np.broadcast_to(centre, mu_int.shape)[:, dim : dim + 1]) ** 2) / (2 * sigma**2))
        inside = (offset >= 0) & (offset < window) & (pixels < bottom_right[:, dim : dim + 1])
        return values * inside

    gx, gy = axis(w_hm, 0), axis(h_hm, 1)
    heatmaps = gy[:, :, None] * gx[:, None, :] * (weights > 0.5)[:, None, None]
    return heatmaps.astype(np.float32), weights


# --------------------------------------------------------------------------------------------- decoding
def opencv_gaussian_kernel(kernel_size: int) -> torch.Tensor:
    """OpenCV's `getGaussianKernel(k, 0)` in float64: the fixed kernels for k <= 9, else the sigma formula
    `0.3 * ((k - 1) / 2 - 1) + 0.8` (what the original's `cv2.GaussianBlur(hm, (k, k), 0)` uses)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"The blur kernel size must be a positive odd number, got {kernel_size}.")
    if kernel_size in _OPENCV_SMALL_KERNELS:
        return torch.tensor(_OPENCV_SMALL_KERNELS[kernel_size], dtype=torch.float64)
    sigma = 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8
    x = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def get_max_preds(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer argmax of each heatmap (`x = idx mod W`, `y = idx div W`); coordinates are -1 where max <= 0.

    Args:
        heatmaps: `(N, K, H, W)`.

    Returns:
        `coords` `(N, K, 2)` float64 and `scores` `(N, K)` (the maxima, in the heatmaps' dtype promoted to float32+).
    """
    n, k, _, w = heatmaps.shape
    scores, idx = heatmaps.reshape(n, k, -1).max(dim=-1)
    coords = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1).to(torch.float64)
    coords = torch.where((scores > 0)[..., None], coords, torch.full_like(coords, -1.0))
    return coords, scores


def refine_dark_udp(coords: torch.Tensor, heatmaps: torch.Tensor, kernel_size: int = DARK_KERNEL_SIZE) -> torch.Tensor:
    """DARK-UDP refinement (the original `post_dark_udp`): blur, clip to [0.001, 50], log, one Newton step.

    The blur is `cv2.GaussianBlur(hm, (k, k), 0)` (BORDER_REFLECT_101, `opencv_gaussian_kernel`), evaluated only at the
    3x3 neighbourhood of the argmax that the step reads. The derivatives use the log-heatmap padded by one pixel with
    edge values; the step `(Hess + eps I)^-1 grad` is not clamped. Keypoints whose argmax is -1 (max <= 0) are left
    unchanged.

    Args:
        coords: `(N, K, 2)` integer argmax coordinates.
        heatmaps: `(N, K, H, W)` unblurred heatmaps.

    Returns:
        `(N, K, 2)` float64 refined coordinates.
    """
    n, k, h, w = heatmaps.shape
    valid = coords[..., 0] >= 0
    px = coords[..., 0].clamp(min=0).long()
    py = coords[..., 1].clamp(min=0).long()
    # For each neighbour (clamped to the map, i.e. the original's edge padding of the log map) gather its k x k
    # window with REFLECT_101 indices.
    kernel = opencv_gaussian_kernel(kernel_size).to(heatmaps.device)
    r = kernel_size // 2
    offs = torch.arange(-r, r + 1, device=heatmaps.device)
    steps = torch.tensor([-1, 0, 1], device=heatmaps.device)

    def window(centre: torch.Tensor, size: int) -> torch.Tensor:  # (N, K) -> (N, K, 3, kernel_size)
        nb = (centre[..., None] + steps).clamp(0, size - 1)
        idx = nb[..., None] + offs
        idx = torch.where(idx < 0, -idx, idx)
        return torch.where(idx > size - 1, 2 * (size - 1) - idx, idx)

    wx, wy = window(px, w), window(py, h)
    flat = heatmaps.reshape(n, k, h * w).to(torch.float32)
    index = (wy[..., :, None, :, None] * w + wx[..., None, :, None, :]).reshape(n, k, -1)  # (N, K, 3*3*ks*ks)
    patches = flat.gather(-1, index).reshape(n, k, 3, 3, kernel_size, kernel_size).to(torch.float64)
    blurred = torch.einsum("nkyxab,a,b->nkyx", patches, kernel, kernel)  # (N, K, 3 (y), 3 (x))
    logs = torch.log(blurred.clamp(0.001, 50.0))

    def at(dx: int, dy: int) -> torch.Tensor:
        return logs[..., dy + 1, dx + 1]

    c = at(0, 0)
    xp, xm, yp, ym = at(1, 0), at(-1, 0), at(0, 1), at(0, -1)
    dx = 0.5 * (xp - xm)
    dy = 0.5 * (yp - ym)
    dxx = xp - 2 * c + xm
    dyy = yp - 2 * c + ym
    dxy = 0.5 * (at(1, 1) - xp - yp + 2 * c - xm - ym + at(-1, -1))
    eps = float(np.finfo(np.float32).eps)
    a, b, d = dxx + eps, dxy, dyy + eps
    det = a * d - b * b
    # Closed-form 2x2 inverse times gradient (the original calls np.linalg.inv on Hess + eps * I).
    step_x = (d * dx - b * dy) / det
    step_y = (-b * dx + a * dy) / det
    refined = coords.clone()
    refined[..., 0] = torch.where(valid, coords[..., 0] - step_x, coords[..., 0])
    refined[..., 1] = torch.where(valid, coords[..., 1] - step_y, coords[..., 1])
    return refined


def refine_quarter_offset(coords: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
    """The original non-UDP `post_process='default'`: move 0.25 px toward the higher neighbour.

    Applied only where `1 < px < W - 1` and `1 < py < H - 1` (strict, as in the original).

    Args:
        coords: `(N, K, 2)` integer argmax coordinates.
        heatmaps: `(N, K, H, W)`.

    Returns:
        `(N, K, 2)` float64 coordinates.
    """
    n, k, h, w = heatmaps.shape
    px = coords[..., 0].long()
    py = coords[..., 1].long()
    inside = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    pxc = px.clamp(1, w - 2)
    pyc = py.clamp(1, h - 2)
    flat = heatmaps.reshape(n, k, -1).to(torch.float64)

    def at(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return flat.gather(-1, (y * w + x)[..., None])[..., 0]

    diff_x = at(pxc + 1, pyc) - at(pxc - 1, pyc)
    diff_y = at(pxc, pyc + 1) - at(pxc, pyc - 1)
    shift = torch.stack([torch.sign(diff_x), torch.sign(diff_y)], dim=-1) * 0.25
    return coords + shift * inside[..., None]


def heatmap_to_image_coords(
    coords: torch.Tensor | np.ndarray,
    center: torch.Tensor | np.ndarray,
    scale: torch.Tensor | np.ndarray,
    heatmap_size: Sequence[int] = DEFAULT_HEATMAP_SIZE,
    use_udp: bool = True,
    pixel_std: float = PIXEL_STD,
) -> torch.Tensor | np.ndarray:
    """Heatmap to image coordinates (the original `transform_preds`, rotation 0).

    `x = x_hm * pixel_std * s_x / D_x + c_x - pixel_std * s_x / 2` with `D = heatmap_size - 1` for UDP and
    `D = heatmap_size` otherwise (same for y).

    Args:
        coords: `(N, K, 2)` heatmap coordinates.
        center: `(N, 2)` crop centres; scale: `(N, 2)` crop scales.
        heatmap_size: `(height, width)` of the heatmaps.

    Returns:
        `(N, K, 2)` image coordinates (same array type as `coords`).
    """
    is_np = isinstance(coords, np.ndarray)
    coords_t = torch.as_tensor(coords, dtype=torch.float64)
    size = torch.as_tensor(scale, dtype=torch.float64, device=coords_t.device) * pixel_std  # (N, 2)
    centre = torch.as_tensor(center, dtype=torch.float64, device=coords_t.device)
    div = torch.tensor([heatmap_size[1], heatmap_size[0]], dtype=torch.float64, device=coords_t.device)
    div = div - (1.0 if use_udp else 0.0)
    out = coords_t * (size / div)[:, None, :] + (centre - size * 0.5)[:, None, :]
    return out.numpy() if is_np else out


# --------------------------------------------------------------------------------------------- codecs
@dataclass(frozen=True)
class HeatmapCodec:
    """A top-down heatmap codec: crop geometry, training targets, decoding and the flip-test flip-back.

    Args:
        input_size: model input `(height, width)`.
        heatmap_size: heatmap `(height, width)` (input / 4 for the published models).
        sigma: Gaussian sigma of the targets, in heatmap pixels.
        blur_kernel_size: DARK-UDP blur kernel (UDP only; the original's `modulate_kernel`, 11 for 64x48 heatmaps).
    """

    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE
    heatmap_size: tuple[int, int] = DEFAULT_HEATMAP_SIZE
    sigma: float = DEFAULT_SIGMA
    blur_kernel_size: int = DARK_KERNEL_SIZE
    use_udp: ClassVar[bool] = True
    name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", (int(self.input_size[0]), int(self.input_size[1])))
        object.__setattr__(self, "heatmap_size", (int(self.heatmap_size[0]), int(self.heatmap_size[1])))
        opencv_gaussian_kernel(int(self.blur_kernel_size))  # validates the size
        if not self.sigma > 0:
            raise ValueError(f"The target sigma must be positive, got {self.sigma}.")

    def crop_matrix(self, center: Sequence[float], scale: Sequence[float], rotation: float = 0.0) -> np.ndarray:
        """`(2, 3)` image-to-crop matrix of the codec's geometry for `input_size` crops."""
        raise NotImplementedError

    def encode(self, keypoints: np.ndarray, visibility: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Training targets from keypoints in crop pixels: `heatmaps (K, h, w)` float32 and `weights (K,)`."""
        return gaussian_targets(keypoints, visibility, self.use_udp, self.input_size, self.heatmap_size, self.sigma)

    def refine(self, coords: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        """Sub-pixel refinement of integer argmax coordinates."""
        raise NotImplementedError

    def decode(
        self,
        heatmaps: torch.Tensor | np.ndarray,
        center: torch.Tensor | np.ndarray | None = None,
        scale: torch.Tensor | np.ndarray | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints from heatmaps, batched (the original `keypoints_from_heatmaps`).

        Args:
            heatmaps: `(N, K, h, w)` (any float dtype, any device; gradients are not tracked). `h, w` may differ from
                `heatmap_size` (e.g. inputs of another size): the maps' own size is used.
            center, scale: `(N, 2)` crop parameters, or `None` to return heatmap coordinates.

        Returns:
            `keypoints (N, K, 2)` float64 and `scores (N, K)` float32 (maxima of the unrefined heatmaps), on the
            heatmaps' device.
        """
        hm = torch.as_tensor(heatmaps).detach()
        hm = hm.to(torch.float32) if hm.dtype != torch.float64 else hm
        if hm.ndim != 4:
            raise ValueError(f"Heatmaps must be (N, K, H, W), got shape {tuple(hm.shape)}.")
        coords, scores = get_max_preds(hm)
        coords = self.refine(coords, hm)
        # A NaN heatmap must not decode to finite, made-up coordinates.
        coords = torch.where(torch.isnan(scores)[..., None], torch.full_like(coords, float("nan")), coords)
        if center is not None and scale is not None:
            coords = heatmap_to_image_coords(
                coords, torch.as_tensor(center, device=hm.device), torch.as_tensor(scale, device=hm.device),
                tuple(hm.shape[-2:]), self.use_udp,
            )
        return coords, scores.to(torch.float32)

    def flip_back(self, heatmaps: torch.Tensor, flip_permutation: Sequence[int]) -> torch.Tensor:
        """Heatmaps predicted on mirrored crops back in the un-mirrored frame (see `flip_back_heatmaps`)."""
        return flip_back_heatmaps(heatmaps, flip_permutation, shift=not self.use_udp)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable parameters (as stored in `preprocessor_config.json`)."""
        return {"type": self.name, "input_size": list(self.input_size), "heatmap_size": list(self.heatmap_size),
                "sigma": float(self.sigma), "blur_kernel_size": int(self.blur_kernel_size)}


@dataclass(frozen=True)
class UDPHeatmap(HeatmapCodec):
    """UDP (COCO, MPII): the UDP crop, sub-pixel Gaussian targets, DARK-UDP decoding, no flip shift."""

    use_udp: ClassVar[bool] = True
    name: ClassVar[str] = "udp"

    def crop_matrix(self, center: Sequence[float], scale: Sequence[float], rotation: float = 0.0) -> np.ndarray:
        return get_udp_warp_matrix(center, scale, rotation, self.input_size)

    def refine(self, coords: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        return refine_dark_udp(coords, heatmaps, int(self.blur_kernel_size))


@dataclass(frozen=True)
class MSRAHeatmap(HeatmapCodec):
    """MSRA (AIC, AP-10K, APT-36K, COCO-WholeBody): the 3-point affine crop, integer-centred Gaussian targets,
    quarter-pixel decoding and a one-pixel shift in the flip test."""

    use_udp: ClassVar[bool] = False
    name: ClassVar[str] = "msra"

    def crop_matrix(self, center: Sequence[float], scale: Sequence[float], rotation: float = 0.0) -> np.ndarray:
        return get_affine_transform(center, scale, rotation, self.input_size)

    def refine(self, coords: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        return refine_quarter_offset(coords, heatmaps)


def codec_for(
    dataset: Any,
    input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
    heatmap_size: Sequence[int] | None = None,
    sigma: float = DEFAULT_SIGMA,
    blur_kernel_size: int = DARK_KERNEL_SIZE,
) -> HeatmapCodec:
    """The codec of a dataset: a spec (any object or dict with `use_udp`, e.g. from another module copy) or a bool.

    `heatmap_size` defaults to a quarter of `input_size`.
    """
    if isinstance(dataset, bool):
        use_udp = dataset
    elif isinstance(dataset, dict):
        use_udp = bool(dataset.get("use_udp", True))
    else:
        use_udp = bool(getattr(dataset, "use_udp", True))
    if heatmap_size is None:
        heatmap_size = (int(input_size[0]) // 4, int(input_size[1]) // 4)
    codec_class = UDPHeatmap if use_udp else MSRAHeatmap
    return codec_class(tuple(input_size), tuple(heatmap_size), float(sigma), int(blur_kernel_size))


__all__ = [
    "DARK_KERNEL_SIZE",
    "DEFAULT_HEATMAP_SIZE",
    "DEFAULT_INPUT_SIZE",
    "DEFAULT_PADDING",
    "DEFAULT_SIGMA",
    "PIXEL_STD",
    "HeatmapCodec",
    "MSRAHeatmap",
    "UDPHeatmap",
    "box_to_center_scale",
    "codec_for",
    "flip_back_heatmaps",
    "flip_keypoints",
    "gaussian_targets",
    "get_affine_transform",
    "get_max_preds",
    "get_udp_warp_matrix",
    "heatmap_to_image_coords",
    "invert_affine",
    "mpii_center_scale",
    "opencv_gaussian_kernel",
    "refine_dark_udp",
    "refine_quarter_offset",
    "sanitize_box",
    "transform_points",
    "warp_image",
    "warp_images_torch",
]
