"""Inputs for MAE pre-training on pose images (no labels): person crops or whole-image crops, and their datasets.

Two modes, both ending in a horizontal flip (p 0.5) and the top-down image processor's normalisation, `(3, H, W)`
float32 out. The crop and the normalisation are the processor's (`VitPosePlusImageProcessor.crop_instances`,
`image_mean` / `image_std`): pre-training sees pixels prepared exactly as fine-tuning and inference prepare them.

* `"crop"`: a person box, aspect-fixed to the input's 3:4 and padded by 1.25 (`processor.boxes_to_center_scale`,
  the top-down pipeline's `_xywh2cs`), cut out to the input size with the processor's crop (the dataset's codec
  geometry: UDP for COCO/MPII, the 3-point affine otherwise; bilinear, zero border). An image with several boxes gives
  one of them at random; an image without boxes is treated as one box covering it (so plain image folders work in
  this mode too).
* `"whole"`: torchvision's `RandomResizedCrop` as MAE uses it (area scale (0.2, 1.0), aspect ratio (3/4, 4/3), ten
  tries then a centre crop), resized to the input size. The ratio range is relative to the input's aspect
  (`ratio_relative_to_input=True`): at 256x192 a crop of aspect `0.75 * r` is drawn, so the distortion stays within
  (3/4, 4/3) as MAE's at its square input; with `False` the crop's own aspect is drawn, as torchvision does.
  MAE resizes with PIL bicubic (antialiased when shrinking); here OpenCV's area filter shrinks and bicubic enlarges
  (the processor's affine crop is bilinear without antialiasing, right for boxes near the input size but aliased when
  a whole photo shrinks 3x, so this mode keeps its own resize and only normalises with the processor).

Inputs are `(H, W, 3)` RGB uint8 arrays with optional COCO `(x, y, w, h)` boxes; the randomness comes from a
`numpy.random.Generator` (passed, or the transform's own stream seeded from `seed` and, inside a DataLoader worker,
from `torch.initial_seed()`).

`PretrainingImageDataset` serves one pre-training set (keypoint-dataset rows or an unlabelled image folder) through a
transform, one sample per person (crop mode on annotated rows) or per image, with the MAE masking noise of each sample
drawn from the same per-sample seed as its augmentation, so that masks, like crops, depend only on the position in
training (exact resume, any number of processes). `PretrainingCollator` stacks samples into the keyword arguments of
`VitPosePlusForMaskedImageModeling.forward`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from vitpose_plus.file_io import decode_image
from vitpose_plus.modeling import VitPosePlusImageProcessor
from vitpose_plus.modeling.keypoint_codecs import DEFAULT_PADDING

MODES = ("crop", "whole")
DEFAULT_IMAGE_SIZE = (256, 192)


@functools.lru_cache(maxsize=8)
def _cached_processor(height: int, width: int, padding: float) -> VitPosePlusImageProcessor:
    return VitPosePlusImageProcessor(size={"height": height, "width": width}, padding_factor=padding)


def pretraining_processor(
    image_size: Sequence[int] = DEFAULT_IMAGE_SIZE, padding: float = DEFAULT_PADDING, dataset: Any = None
) -> VitPosePlusImageProcessor:
    """The top-down processor that prepares pre-training inputs: `image_size` `(height, width)` crops, box padding
    `padding`, the default (ImageNet) normalisation, and the crop geometry of `dataset` (a spec or built-in name; COCO's
    UDP crop when `None`)."""
    height, width = int(image_size[0]), int(image_size[1])
    if dataset is None:
        return _cached_processor(height, width, float(padding))
    return VitPosePlusImageProcessor(size={"height": height, "width": width}, padding_factor=float(padding),
                                     datasets=[dataset], dataset=0)


def normalize_image(image: np.ndarray, processor: VitPosePlusImageProcessor | None = None) -> np.ndarray:
    """`(H, W, 3)` uint8 RGB -> `(3, H, W)` float32 with the processor's rescale and normalisation (no crop)."""
    processor = processor if processor is not None else pretraining_processor()
    return processor.preprocess(image, do_affine_transform=False, return_tensors="np")["pixel_values"][0]


def denormalize_image(pixel_values: np.ndarray | torch.Tensor,
                      processor: VitPosePlusImageProcessor | None = None) -> np.ndarray:
    """Inverse of `normalize_image` (the processor's `image_mean`, `image_std`, `rescale_factor`): `(3, H, W)`
    normalised values -> `(H, W, 3)` uint8 (rounded, clipped)."""
    processor = processor if processor is not None else pretraining_processor()
    if isinstance(pixel_values, torch.Tensor):
        pixel_values = pixel_values.detach().float().cpu().numpy()
    mean, std = (np.asarray(processor.image_mean, np.float32), np.asarray(processor.image_std, np.float32))
    factor = processor.rescale_factor if processor.do_rescale else 1.0
    if not processor.do_normalize:
        mean, std = np.zeros(3, np.float32), np.ones(3, np.float32)
    image = (pixel_values.transpose(1, 2, 0) * std + mean) / factor
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _box_parameters(processor: VitPosePlusImageProcessor, box: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    box = np.asarray(box, dtype=np.float64)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"A person box must be finite (x, y, w, h) with w, h > 0, got {box.tolist()}.")
    return processor.boxes_to_center_scale(box[None])


def crop_person(
    image: np.ndarray, box: Sequence[float], processor: VitPosePlusImageProcessor | None = None
) -> np.ndarray:
    """The processor's top-down crop of one person box (aspect fix, padding, affine crop, zero border), neither
    rescaled nor normalised.

    Args:
        image: `(H, W, 3)` RGB image.
        box: COCO `(x, y, w, h)` in image pixels.
        processor: gives the input size, the padding and the crop geometry (`pretraining_processor()` by default).

    Returns:
        `(height, width, 3)` float32 crop on the image's scale.
    """
    processor = processor if processor is not None else pretraining_processor()
    centers, scales = _box_parameters(processor, box)
    values, _ = processor.crop_instances(np.ascontiguousarray(image), centers, scales, do_rescale=False,
                                         do_normalize=False)
    return values[0].numpy().transpose(1, 2, 0)


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
        image_size: model input `(height, width)` (256x192 for the pose models); ignored when `processor` is given.
        mode: `"crop"` (person boxes) or `"whole"` (random resized crops of the image).
        padding: box padding of the crop mode (1.25); ignored when `processor` is given.
        flip_prob: horizontal flip probability (0.5).
        scale, ratio: `RandomResizedCrop` area-fraction and aspect ranges of the whole-image mode.
        ratio_relative_to_input: draw the crop aspect as `input aspect * r` (see the module docstring).
        processor: the top-down processor whose crop, input size, padding and normalisation are used
            (`pretraining_processor(image_size, padding)` by default).
        seed: seed of the transform's own random stream (`None`: non-deterministic).
    """

    def __init__(
        self,
        image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
        mode: str = "crop",
        padding: float = DEFAULT_PADDING,
        flip_prob: float = 0.5,
        scale: Sequence[float] = (0.2, 1.0),
        ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
        ratio_relative_to_input: bool = True,
        processor: VitPosePlusImageProcessor | None = None,
        seed: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
        if processor is None:
            if len(image_size) != 2 or min(image_size) < 1:
                raise ValueError(f"image_size must be (height, width) > 0, got {tuple(image_size)}.")
            processor = pretraining_processor(image_size, padding)
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {tuple(scale)}.")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {tuple(ratio)}.")
        if not 0 <= flip_prob <= 1:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}.")
        self.processor = processor
        self.image_size = processor.input_size
        self.mode = mode
        self.flip_prob = float(flip_prob)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.ratio_relative_to_input = ratio_relative_to_input
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

    def whole_image_crop(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The whole-image mode's random resized crop, `(height, width, 3)` in the image's dtype."""
        ratio = self.ratio
        if self.ratio_relative_to_input:
            aspect = self.image_size[1] / self.image_size[0]
            ratio = (ratio[0] * aspect, ratio[1] * aspect)
        top, left, h, w = random_resized_crop_box(image.shape[0], image.shape[1], rng, self.scale, ratio)
        return resize_image(np.ascontiguousarray(image[top : top + h, left : left + w]), self.image_size)

    def pick_box(self, image: np.ndarray, boxes: np.ndarray | Sequence | None, rng: np.random.Generator) -> np.ndarray:
        """The crop mode's box: one of `boxes` at random, or the whole image when there is none."""
        boxes = np.zeros((0, 4)) if boxes is None else np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return np.array([0.0, 0.0, image.shape[1], image.shape[0]])
        return boxes[int(rng.integers(len(boxes)))] if len(boxes) > 1 else boxes[0]

    def __call__(
        self, image: np.ndarray, boxes: np.ndarray | Sequence | None = None, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """
        Args:
            image: `(H, W, 3)` RGB uint8 image.
            boxes: `(K, 4)` (or `(4,)`) COCO `(x, y, w, h)` person boxes for the crop mode (ignored by `"whole"`).
            rng: random generator (defaults to the transform's own stream).

        Returns:
            `(3, height, width)` float32 pixel values, normalised as the processor does.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
            raise ValueError(f"Expected an (H, W, 3) RGB image, got shape {image.shape}.")
        rng = rng if rng is not None else self._generator()
        if self.mode == "whole":
            crop = self.whole_image_crop(image, rng)
            if self.flip_prob > 0 and rng.random() < self.flip_prob:
                crop = crop[:, ::-1]
            return normalize_image(np.ascontiguousarray(crop), self.processor)
        centers, scales = _box_parameters(self.processor, self.pick_box(image, boxes, rng))
        pixel_values = self.processor.crop_instances(np.ascontiguousarray(image), centers, scales)[0][0].numpy()
        if self.flip_prob > 0 and rng.random() < self.flip_prob:
            pixel_values = pixel_values[:, :, ::-1]  # the normalisation is per pixel, so flipping after it is exact
        return np.ascontiguousarray(pixel_values)

    def transform_batch(self, batch: dict[str, list]) -> dict[str, list]:
        """Batched rows (as `Dataset.with_transform` gives them) -> `{"pixel_values": [...]}`.

        Rows carry `image` (anything `vitpose_plus.file_io.decode_image` reads: path, `{"path", "bytes"}`, PIL image,
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


# ------------------------------------------------------------------------------------------------------ datasets
class PretrainingImageDataset(torch.utils.data.Dataset):
    """One pre-training set through its `MAEPretrainingTransform`: one sample per top-down person instance (crop mode
    on keypoint-dataset rows, `vitpose_plus.data.top_down_index`: the persons fine-tuning crops) or one per image
    (whole-image mode, and rows without annotations such as a `datasets` image folder, cropped around the whole
    image in crop mode).

    Samples are addressed like `TopDownTrainingDataset` (`sample(index, epoch)`, or codes `epoch * len + index`), so
    `MixedDataset` and `MixedSampler` mix several sets. Each sample's randomness (crop, flip and the `(num_patches,)`
    masking noise) comes from a generator seeded by `(seed, dataset_index, epoch, index)`.

    Args:
        rows: a `datasets.Dataset` with an `image` column (decoded lazily here) and optionally `instances` (the
            keypoint loader's layout).
        transform: the set's transform (its mode decides per-person or per-image samples).
        num_patches: patches of the model's grid (the length of the masking noise).
        dataset_index: position of the set in the mixture (part of the seed).
        name: the set's name, for error messages.
    """

    def __init__(self, rows: Any, transform: MAEPretrainingTransform, num_patches: int, dataset_index: int = 0,
                 seed: int = 0, name: str = "") -> None:
        from datasets import Image

        from vitpose_plus.data import top_down_index

        if "image" not in rows.column_names:
            raise ValueError(f"Pre-training set {name!r} has no 'image' column (columns: {rows.column_names}).")
        self.rows = rows.cast_column("image", Image(decode=False))
        self.transform = transform
        self.num_patches = int(num_patches)
        self.dataset_index = int(dataset_index)
        self.seed = int(seed)
        self.name = name
        self.per_person = transform.mode == "crop" and "instances" in rows.column_names
        if self.per_person:
            self.index = top_down_index(rows)
        else:
            self.index = np.stack([np.arange(len(rows)), np.full(len(rows), -1)], axis=1).astype(np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def sample(self, index: int, epoch: int) -> dict[str, np.ndarray]:
        """`{"pixel_values": (3, H, W) float32, "noise": (num_patches,) float32}` of sample `index` in `epoch`."""
        from vitpose_plus.data import top_down_instances

        row_id, instance_id = (int(v) for v in self.index[index])
        row = self.rows[row_id]
        context = f"pre-training set {self.name!r}, row {row_id}"
        if "image_id" in row:
            context += f", image_id {row['image_id']}"
        boxes = None
        if instance_id >= 0:
            instance = next(i for i in top_down_instances(row) if i.index == instance_id)
            boxes = np.asarray(instance.bbox, dtype=np.float64)
            context += f", annotation_id {instance.annotation_id}"
        rng = np.random.default_rng([self.seed, self.dataset_index, epoch, index])
        pixel_values = self.transform(decode_image(row["image"], context), boxes, rng=rng)
        noise = rng.random(self.num_patches, dtype=np.float32)
        return {"pixel_values": pixel_values, "noise": noise}

    def __getitem__(self, code: int) -> dict[str, np.ndarray]:
        epoch, index = divmod(int(code), len(self))
        return self.sample(index, epoch)


class PretrainingCollator:
    """Stack samples into `pixel_values` `(B, 3, H, W)` and `noise` `(B, num_patches)`: the keyword arguments of
    `VitPosePlusForMaskedImageModeling.forward` (the noise fixes each sample's mask)."""

    def __call__(self, samples: Sequence[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
        return {
            "pixel_values": torch.from_numpy(np.stack([np.asarray(s["pixel_values"]) for s in samples])),
            "noise": torch.from_numpy(np.stack([np.asarray(s["noise"], dtype=np.float32) for s in samples])),
        }


__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "MAEPretrainingTransform",
    "MODES",
    "PretrainingCollator",
    "PretrainingImageDataset",
    "crop_person",
    "denormalize_image",
    "normalize_image",
    "pretraining_processor",
    "random_resized_crop_box",
    "resize_image",
]
