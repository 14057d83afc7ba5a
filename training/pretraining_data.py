"""Input transforms for MAE pre-training on pose images (no labels): person crops or whole-image crops.

Two modes, both ending in a horizontal flip (p 0.5) and ImageNet normalisation, `(3, H, W)` float32 out:

* `"crop"`: a person box, aspect-fixed to the input's 3:4 and padded by 1.25 (`keypoint_codecs.box_to_center_scale`,
  the top-down pipeline's `_xywh2cs`), cut out to the input size with the top-down crop (`warp_matrix` in the UDP
  form + `warp_image`: bilinear, zero border). An image with several boxes gives one of them at random; an image
  without boxes is treated as one box covering it (so plain image folders work in this mode too).
* `"whole"`: torchvision's `RandomResizedCrop` as MAE uses it (area scale (0.2, 1.0), aspect ratio (3/4, 4/3), ten
  tries then a centre crop), resized to the input size. The ratio range is relative to the input's aspect
  (`ratio_relative_to_input=True`): at 256x192 a crop of aspect `0.75 * r` is drawn, so the distortion stays within
  (3/4, 4/3) as MAE's at its square input; with `False` the crop's own aspect is drawn, as torchvision does.
  MAE resizes with PIL bicubic (antialiased when shrinking); here OpenCV's area filter shrinks and bicubic enlarges.

Inputs are `(H, W, 3)` RGB uint8 arrays with optional COCO `(x, y, w, h)` boxes; the randomness comes from a
`numpy.random.Generator` (passed, or the transform's own stream seeded from `seed` and, inside a DataLoader worker,
from `torch.initial_seed()`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
from transformers.image_utils import IMAGENET_DEFAULT_MEAN as IMAGENET_MEAN
from transformers.image_utils import IMAGENET_DEFAULT_STD as IMAGENET_STD

from vitpose_plus.file_io import decode_image
from vitpose_plus.modeling.keypoint_codecs import DEFAULT_PADDING, UDPHeatmap, box_to_center_scale, warp_image

MODES = ("crop", "whole")


def normalize_image(image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """`(H, W, 3)` uint8 RGB -> `(3, H, W)` float32 `(x / 255 - mean) / std`."""
    mean = np.asarray(mean, dtype=np.float32)
    std = np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(((image.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1))


def denormalize_image(pixel_values: np.ndarray | torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                      std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """Inverse of `normalize_image`: `(3, H, W)` normalised values -> `(H, W, 3)` uint8 (rounded, clipped)."""
    if isinstance(pixel_values, torch.Tensor):
        pixel_values = pixel_values.detach().float().cpu().numpy()
    image = pixel_values.transpose(1, 2, 0) * np.asarray(std, np.float32) + np.asarray(mean, np.float32)
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def crop_person(
    image: np.ndarray, box: Sequence[float], image_size: Sequence[int], padding: float = DEFAULT_PADDING
) -> np.ndarray:
    """Cut a person box out as the top-down pipeline does (aspect fix, padding, UDP affine crop, zero border).

    Args:
        image: `(H, W, 3)` RGB image.
        box: COCO `(x, y, w, h)` in image pixels.
        image_size: model input `(height, width)`.
        padding: context factor on the aspect-fixed box (1.25).

    Returns:
        `(height, width, 3)` crop of the input dtype.
    """
    height, width = int(image_size[0]), int(image_size[1])
    box = np.asarray(box, dtype=np.float64)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"A person box must be finite (x, y, w, h) with w, h > 0, got {box.tolist()}.")
    center, scale = box_to_center_scale(box, (height, width), padding=padding)
    matrix = UDPHeatmap(input_size=(height, width)).crop_matrix(center, scale)
    return warp_image(np.ascontiguousarray(image), matrix, (height, width))


def random_resized_crop_box(
    image_height: int,
    image_width: int,
    rng: np.random.Generator,
    scale: Sequence[float] = (0.2, 1.0),
    ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
) -> tuple[int, int, int, int]:
    """torchvision's `RandomResizedCrop.get_params`: `(top, left, height, width)` of a crop with area fraction in
    `scale` and aspect (width / height) log-uniform in `ratio`; after ten failed tries, the largest centre crop with
    the aspect clamped into `ratio`."""
    area = image_height * image_width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= image_width and 0 < h <= image_height:
            top = int(rng.integers(0, image_height - h + 1))
            left = int(rng.integers(0, image_width - w + 1))
            return top, left, h, w
    in_ratio = image_width / image_height
    if in_ratio < min(ratio):
        w = image_width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = image_height
        w = int(round(h * max(ratio)))
    else:
        w, h = image_width, image_height
    return (image_height - h) // 2, (image_width - w) // 2, h, w


def resize_image(image: np.ndarray, image_size: Sequence[int]) -> np.ndarray:
    """Resize to `(height, width)`: OpenCV area filter when shrinking both ways, bicubic otherwise."""
    height, width = int(image_size[0]), int(image_size[1])
    shrink = image.shape[0] >= height and image.shape[1] >= width
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


class MAEPretrainingTransform:
    """One MAE pre-training input from an image (and optional person boxes); see the module docstring.

    Args:
        image_size: model input `(height, width)` (256x192 for the pose models).
        mode: `"crop"` (person boxes) or `"whole"` (random resized crops of the image).
        padding: box padding of the crop mode (1.25).
        flip_prob: horizontal flip probability (0.5).
        scale, ratio: `RandomResizedCrop` area-fraction and aspect ranges of the whole-image mode.
        ratio_relative_to_input: draw the crop aspect as `input aspect * r` (see the module docstring).
        mean, std: normalisation (ImageNet).
        seed: seed of the transform's own random stream (`None`: non-deterministic).
    """

    def __init__(
        self,
        image_size: Sequence[int] = (256, 192),
        mode: str = "crop",
        padding: float = DEFAULT_PADDING,
        flip_prob: float = 0.5,
        scale: Sequence[float] = (0.2, 1.0),
        ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
        ratio_relative_to_input: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        seed: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
        if len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(f"image_size must be (height, width) > 0, got {tuple(image_size)}.")
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {tuple(scale)}.")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {tuple(ratio)}.")
        if not 0 <= flip_prob <= 1:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}.")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.mode = mode
        self.padding = float(padding)
        self.flip_prob = float(flip_prob)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.ratio_relative_to_input = ratio_relative_to_input
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self._rng_key: tuple | None = None

    def _generator(self) -> np.random.Generator:
        """This process's random stream, re-seeded inside each DataLoader worker (and epoch)."""
        info = torch.utils.data.get_worker_info()
        key = ("worker", torch.initial_seed()) if info is not None else ("main",)
        if self._rng is None or key != self._rng_key:
            entropy = [self.seed if self.seed is not None else np.random.SeedSequence().entropy]
            if info is not None:
                entropy.append(torch.initial_seed() % (2**63))
            self._rng = np.random.default_rng(entropy)
            self._rng_key = key
        return self._rng

    def crop(self, image: np.ndarray, boxes: np.ndarray | Sequence | None, rng: np.random.Generator) -> np.ndarray:
        """The un-normalised, un-flipped `(height, width, 3)` crop of the mode."""
        if self.mode == "whole":
            ratio = self.ratio
            if self.ratio_relative_to_input:
                aspect = self.image_size[1] / self.image_size[0]
                ratio = (ratio[0] * aspect, ratio[1] * aspect)
            top, left, h, w = random_resized_crop_box(image.shape[0], image.shape[1], rng, self.scale, ratio)
            return resize_image(np.ascontiguousarray(image[top : top + h, left : left + w]), self.image_size)
        boxes = np.zeros((0, 4)) if boxes is None else np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            box = np.array([0.0, 0.0, image.shape[1], image.shape[0]])
        else:
            box = boxes[int(rng.integers(len(boxes)))] if len(boxes) > 1 else boxes[0]
        return crop_person(image, box, self.image_size, self.padding)

    def __call__(
        self, image: np.ndarray, boxes: np.ndarray | Sequence | None = None, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """
        Args:
            image: `(H, W, 3)` RGB uint8 image.
            boxes: `(K, 4)` (or `(4,)`) COCO `(x, y, w, h)` person boxes for the crop mode (ignored by `"whole"`).
            rng: random generator (defaults to the transform's own stream).

        Returns:
            `(3, height, width)` float32 ImageNet-normalised pixel values.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
            raise ValueError(f"Expected an (H, W, 3) RGB image, got shape {image.shape}.")
        rng = rng if rng is not None else self._generator()
        crop = self.crop(image, boxes, rng)
        if self.flip_prob > 0 and rng.random() < self.flip_prob:
            crop = crop[:, ::-1]
        return normalize_image(crop, self.mean, self.std)

    def transform_batch(self, batch: dict[str, list]) -> dict[str, list]:
        """Batched rows (as `Dataset.with_transform` gives them) -> `{"pixel_values": [...]}`.

        Rows carry `image` (anything `training.datasets.decode_image` reads: path, `{"path", "bytes"}`, PIL image,
        array) and, for the crop mode, optionally `bbox` (one `(x, y, w, h)` box: one sample per person) or `boxes`
        (all the boxes of the image: one picked per call).
        """
        key = "bbox" if "bbox" in batch else "boxes" if "boxes" in batch else None
        out: list[np.ndarray] = []
        for i, value in enumerate(batch["image"]):
            context = f"row {i}" + (f", image_id {batch['image_id'][i]}" if "image_id" in batch else "")
            image = decode_image(value, context)
            boxes: Any = batch[key][i] if key is not None else None
            out.append(self(image, boxes))
        return {"pixel_values": out}


__all__ = [
    "MAEPretrainingTransform",
    "MODES",
    "crop_person",
    "denormalize_image",
    "normalize_image",
    "random_resized_crop_box",
    "resize_image",
]
