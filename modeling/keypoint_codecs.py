"""Top-down keypoint codecs: the one place for heatmap geometry, encoding and decoding.

Used by the model (flip test), the image processor and training. Everything follows the original ViTPose
(mmpose 0.x) top-down pipeline; see the reference, section 3:

* box -> (center, scale): `box_to_center_scale` (padding 1.25, aspect ratio 0.75, pixel_std 200) and
  `mpii_center_scale` (MPII's annotated center/scale convention);
* crop geometry: `get_udp_warp_matrix` (UDP, maps the padded box edges to pixels 0 and size - 1) and
  `get_affine_transform` (non-UDP 3-point similarity, box center to size / 2); `warp_matrix` picks one;
* `transform_points` applies a 2x3 matrix to points, `warp_image` crops with `cv2.warpAffine` (bilinear,
  constant-zero border) when OpenCV is installed and with an equivalent torch `grid_sample` otherwise;
* heatmap targets: `encode_heatmaps` (UDP sub-pixel Gaussian or MSRA integer-centred Gaussian, sigma 2, 13x13);
* decoding: `decode_heatmaps` (argmax, then DARK-UDP refinement with an 11x11 sigma-2 blur for UDP datasets or the
  quarter-pixel shift otherwise), batched in torch; `heatmap_to_image_coords` maps heatmap coordinates back to the
  image with the UDP `(size - 1)` or non-UDP `size` divisor;
* flips: `flip_keypoints` (training-time image flip) and `flip_back_heatmaps` (flip test).

Sizes are given as `(width, height)` pairs, like the original configs (`image_size=[192, 256]`); arrays are
`(..., 2)` in `(x, y)` order.

This module imports only numpy, torch and the standard library (OpenCV only inside a `try` block) so that it can
travel with the modeling code to the Hub.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

try:  # optional: exact crops identical to the original; the torch fallback is within about 1 grey level of it
    import cv2
except ImportError:  # pragma: no cover - exercised only without OpenCV
    cv2 = None

PIXEL_STD = 200.0
"""The original normalises box sizes by 200 pixels: `scale = size / 200`."""
DEFAULT_IMAGE_SIZE = (192, 256)
"""Model input `(width, height)`."""
DEFAULT_HEATMAP_SIZE = (48, 64)
"""Heatmap `(width, height)`."""
DEFAULT_PADDING = 1.25
DEFAULT_SIGMA = 2.0
DARK_KERNEL_SIZE = 11
"""`modulate_kernel` of the original test config; OpenCV derives sigma = 0.3 * ((11 - 1) / 2 - 1) + 0.8 = 2.0."""


# --------------------------------------------------------------------------------------------- box -> center/scale
def box_to_center_scale(
    boxes: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
    padding: float = DEFAULT_PADDING,
    pixel_std: float = PIXEL_STD,
) -> tuple[np.ndarray, np.ndarray]:
    """COCO `xywh` boxes to the original's `(center, scale)` (`_xywh2cs`), with the aspect fix and padding.

    Args:
        boxes: `(4,)` or `(N, 4)` boxes `(x, y, w, h)`.
        image_size: model input `(width, height)`; its ratio is the target aspect ratio (0.75 for 192x256).
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
    aspect = image_size[0] / image_size[1]
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
    output_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
    pixel_std: float = PIXEL_STD,
) -> np.ndarray:
    """UDP crop matrix, the original `get_warp_matrix(rotation, 2 * center, output_size - 1, pixel_std * scale)`.

    `x' = s_x (cos t dx - sin t dy) + (W - 1) / 2`, `y' = s_y (sin t dx + cos t dy) + (H - 1) / 2` with
    `s_x = (W - 1) / (pixel_std * scale_x)`, `d = p - center` and `t` = rotation in degrees (counter-clockwise on
    screen for positive t because y points down). With t = 0 the padded box edges map to 0 and `W - 1`.

    Returns:
        `(2, 3)` float64 matrix from image to crop pixels.
    """
    theta = math.radians(float(rotation))
    cos, sin = math.cos(theta), math.sin(theta)
    cx, cy = float(center[0]), float(center[1])
    sx = (output_size[0] - 1.0) / (pixel_std * float(scale[0]))
    sy = (output_size[1] - 1.0) / (pixel_std * float(scale[1]))
    return np.array(
        [
            [cos * sx, -sin * sx, sx * (-cx * cos + cy * sin) + 0.5 * (output_size[0] - 1.0)],
            [sin * sy, cos * sy, sy * (-cx * sin - cy * cos) + 0.5 * (output_size[1] - 1.0)],
        ],
        dtype=np.float64,
    )


def get_affine_transform(
    center: Sequence[float],
    scale: Sequence[float],
    rotation: float = 0.0,
    output_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
    inverse: bool = False,
    pixel_std: float = PIXEL_STD,
) -> np.ndarray:
    """Non-UDP crop matrix, the closed form of the original 3-point `get_affine_transform` (`cv2.getAffineTransform`).

    A similarity with the single scale `k = W / (pixel_std * scale_x)` (the height of `scale` is ignored, as in the
    original) and rotation `-rotation` about the centre: `p' = k R(-t) (p - center) + (W / 2, H / 2)`.

    Returns:
        `(2, 3)` float64 matrix from image to crop pixels, or from crop to image pixels when `inverse`.
    """
    theta = math.radians(float(rotation))
    cos, sin = math.cos(theta), math.sin(theta)
    cx, cy = float(center[0]), float(center[1])
    k = output_size[0] / (pixel_std * float(scale[0]))
    ox, oy = output_size[0] * 0.5, output_size[1] * 0.5
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


def warp_matrix(
    center: Sequence[float],
    scale: Sequence[float],
    rotation: float = 0.0,
    output_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
    use_udp: bool = True,
) -> np.ndarray:
    """`(2, 3)` image-to-crop matrix in the UDP or the non-UDP form (per `KeypointDatasetSpec.use_udp`)."""
    if use_udp:
        return get_udp_warp_matrix(center, scale, rotation, output_size)
    return get_affine_transform(center, scale, rotation, output_size)


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
    image: np.ndarray, matrix: np.ndarray, output_size: Sequence[int] = DEFAULT_IMAGE_SIZE, backend: str = "auto"
) -> np.ndarray:
    """Crop `image` with a `(2, 3)` image-to-crop matrix: bilinear, constant-zero border (`cv2.warpAffine`).

    Args:
        image: `(H, W, C)` or `(H, W)` array (uint8 or float).
        matrix: `(2, 3)` image-to-crop matrix.
        output_size: crop `(width, height)`.
        backend: `"cv2"`, `"torch"` or `"auto"` (OpenCV when installed). The torch path samples the same points with
            `grid_sample`; OpenCV quantises the interpolation weights to 1/32 and rounds uint8 output, so the two
            differ by about one grey level (see the tests).

    Returns:
        `(height, width, C)` (or `(height, width)`) array of the input dtype.
    """
    if backend == "auto":
        backend = "cv2" if cv2 is not None else "torch"
    size = (int(output_size[0]), int(output_size[1]))
    if backend == "cv2":
        if cv2 is None:
            raise ImportError("warp_image(backend='cv2') needs OpenCV (pip install opencv-python-headless).")
        return cv2.warpAffine(
            image, np.asarray(matrix, dtype=np.float64), size, flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )
    if backend != "torch":
        raise ValueError(f"Unknown warp backend {backend!r}; use 'cv2', 'torch' or 'auto'.")
    squeeze = image.ndim == 2
    tensor = torch.from_numpy(np.ascontiguousarray(image if not squeeze else image[..., None]))
    out = warp_images_torch(tensor.permute(2, 0, 1)[None].float(), torch.from_numpy(np.asarray(matrix)[None]), size)
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
        output_size: crop `(width, height)`.

    Returns:
        `(N, C, height, width)` float tensor.
    """
    n = matrices.shape[0]
    out_w, out_h = int(output_size[0]), int(output_size[1])
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
def encode_heatmaps(
    keypoints: np.ndarray,
    visibility: np.ndarray | None = None,
    use_udp: bool = True,
    image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
    heatmap_size: Sequence[int] = DEFAULT_HEATMAP_SIZE,
    sigma: float = DEFAULT_SIGMA,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian heatmap targets of the original `TopDownGenerateTarget` (vectorised, same values).

    * UDP: stride `(W_in - 1) / (W_hm - 1)`; `mu = joint / stride` kept sub-pixel, window of `2 * 3 sigma + 1`
      pixels around `int(mu + 0.5)`, `g = exp(-|p - mu|^2 / (2 sigma^2))` inside the window.
    * MSRA: stride `W_in / W_hm`; the same Gaussian centred on the integer pixel `int(joint / stride + 0.5)`.

    `int` truncates toward zero as in the original. The target weight is 1 for `v > 0`, and 0 when the window lies
    entirely outside the heatmap; the Gaussian is drawn only where the weight is 1.

    Args:
        keypoints: `(K, 2)` or `(K, 3)` keypoints in crop pixels (the third column is the visibility when
            `visibility` is not given).
        visibility: `(K,)` visibility flags (v > 0 means labelled).

    Returns:
        `heatmaps` `(K, H_hm, W_hm)` float32 and `weights` `(K,)` float32.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if visibility is None:
        visibility = kp[:, 2] if kp.shape[1] > 2 else np.ones(kp.shape[0])
    vis = np.asarray(visibility, dtype=np.float64).reshape(-1)
    w_hm, h_hm = int(heatmap_size[0]), int(heatmap_size[1])
    if use_udp:
        stride = (np.asarray(image_size, dtype=np.float64) - 1.0) / (np.asarray(heatmap_size, dtype=np.float64) - 1.0)
    else:
        stride = np.asarray(image_size, dtype=np.float64) / np.asarray(heatmap_size, dtype=np.float64)
    radius = int(sigma * 3)
    mu_exact = kp[:, :2] / stride  # (K, 2)
    mu_int = np.trunc(mu_exact + 0.5)  # Python int() of the original
    weights = (vis > 0).astype(np.float32)
    outside = (
        (mu_int[:, 0] - radius >= w_hm) | (mu_int[:, 1] - radius >= h_hm)
        | (mu_int[:, 0] + radius + 1 < 0) | (mu_int[:, 1] + radius + 1 < 0)
    )
    weights[outside] = 0.0
    centre = mu_exact if use_udp else mu_int
    xs = np.arange(w_hm, dtype=np.float64)
    ys = np.arange(h_hm, dtype=np.float64)
    gx = np.exp(-((xs[None, :] - centre[:, :1]) ** 2) / (2 * sigma**2))  # (K, W)
    gy = np.exp(-((ys[None, :] - centre[:, 1:2]) ** 2) / (2 * sigma**2))  # (K, H)
    gx *= np.abs(xs[None, :] - mu_int[:, :1]) <= radius
    gy *= np.abs(ys[None, :] - mu_int[:, 1:2]) <= radius
    heatmaps = gy[:, :, None] * gx[:, None, :] * (weights > 0.5)[:, None, None]
    return heatmaps.astype(np.float32), weights


# --------------------------------------------------------------------------------------------- decoding
def _gaussian_kernel1d(kernel_size: int, sigma: float | None = None) -> torch.Tensor:
    """OpenCV's `getGaussianKernel(k, sigma)`; sigma <= 0 or None derives `0.3 * ((k - 1) / 2 - 1) + 0.8`."""
    if sigma is None or sigma <= 0:
        sigma = 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8
    x = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def gaussian_blur_heatmaps(heatmaps: torch.Tensor, kernel_size: int = DARK_KERNEL_SIZE) -> torch.Tensor:
    """`cv2.GaussianBlur(hm, (k, k), 0)` per channel: separable Gaussian, BORDER_REFLECT_101 (torch 'reflect').

    Args:
        heatmaps: `(N, K, H, W)` float tensor.

    Returns:
        `(N, K, H, W)` blurred heatmaps (not renormalised, as in the original).
    """
    n, k, h, w = heatmaps.shape
    kernel = _gaussian_kernel1d(kernel_size).to(heatmaps.device, heatmaps.dtype)
    pad = kernel_size // 2
    x = heatmaps.reshape(n * k, 1, h, w)
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    return x.reshape(n, k, h, w)


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

    The derivatives use the log-heatmap padded by one pixel with edge values; the step `(Hess + eps I)^-1 grad` is
    not clamped. Keypoints whose argmax is -1 (max <= 0) are left unchanged.

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
    # Only the 3x3 neighbourhood of the argmax is used, so blur just there: for each neighbour (clamped to the map,
    # i.e. the original's edge padding of the log map) gather its 11x11 window with REFLECT_101 indices.
    kernel = _gaussian_kernel1d(kernel_size).to(heatmaps.device)
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

    Returns:
        `(N, K, 2)` image coordinates (same array type as `coords`).
    """
    is_np = isinstance(coords, np.ndarray)
    coords_t = torch.as_tensor(coords, dtype=torch.float64)
    size = torch.as_tensor(scale, dtype=torch.float64) * pixel_std  # (N, 2)
    centre = torch.as_tensor(center, dtype=torch.float64)
    div = torch.tensor(heatmap_size, dtype=torch.float64, device=coords_t.device) - (1.0 if use_udp else 0.0)
    out = coords_t * (size / div)[:, None, :] + (centre - size * 0.5)[:, None, :]
    return out.numpy() if is_np else out


def decode_heatmaps(
    heatmaps: torch.Tensor | np.ndarray,
    center: torch.Tensor | np.ndarray | None = None,
    scale: torch.Tensor | np.ndarray | None = None,
    use_udp: bool = True,
    kernel_size: int = DARK_KERNEL_SIZE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode heatmaps to keypoints, batched (the original `keypoints_from_heatmaps`).

    Argmax, then DARK-UDP (`use_udp`, blur kernel 11 -> sigma 2.0) or the quarter-pixel shift, then (when `center`
    and `scale` are given) back to image coordinates with the matching divisor. The scores are the maxima of the
    unblurred heatmaps.

    Args:
        heatmaps: `(N, K, H, W)` (any float dtype, on any device; gradients are not tracked).
        center, scale: `(N, 2)` crop parameters, or `None` to return heatmap coordinates.

    Returns:
        `keypoints` `(N, K, 2)` float64 and `scores` `(N, K)` float32, on the heatmaps' device.
    """
    hm = torch.as_tensor(heatmaps).detach()
    hm = hm.to(torch.float32) if hm.dtype != torch.float64 else hm
    if hm.ndim != 4:
        raise ValueError(f"Heatmaps must be (N, K, H, W), got shape {tuple(hm.shape)}.")
    coords, scores = get_max_preds(hm)
    if use_udp:
        coords = refine_dark_udp(coords, hm, kernel_size)
    else:
        coords = refine_quarter_offset(coords, hm)
    if center is not None and scale is not None:
        hm_size = (hm.shape[-1], hm.shape[-2])
        coords = heatmap_to_image_coords(
            coords, torch.as_tensor(center, device=hm.device), torch.as_tensor(scale, device=hm.device), hm_size,
            use_udp,
        )
    return coords, scores.to(torch.float32)


__all__ = [
    "DARK_KERNEL_SIZE",
    "DEFAULT_HEATMAP_SIZE",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_PADDING",
    "DEFAULT_SIGMA",
    "PIXEL_STD",
    "box_to_center_scale",
    "decode_heatmaps",
    "encode_heatmaps",
    "flip_back_heatmaps",
    "flip_keypoints",
    "gaussian_blur_heatmaps",
    "get_affine_transform",
    "get_max_preds",
    "get_udp_warp_matrix",
    "heatmap_to_image_coords",
    "invert_affine",
    "mpii_center_scale",
    "refine_dark_udp",
    "refine_quarter_offset",
    "sanitize_box",
    "transform_points",
    "warp_image",
    "warp_images_torch",
    "warp_matrix",
]
