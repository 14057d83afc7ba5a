"""Bottom-up (associative embedding) training transform: one whole image and its annotations to model inputs.

The original mmpose 0.x AE training pipeline (`BottomUpCocoDataset._get_single` + the HigherHRNet/AE config), in its
order, for any keypoint layout (`KeypointDatasetSpec`):

1. ignore mask (`_get_mask`): the union of the crowd regions and of the persons without labelled keypoints
   (`num_keypoints == 0`), rasterised from their COCO segmentation (polygons or RLE) with pycocotools; the loss counts
   where the union is 0. Instances that are crowds without keypoints are then dropped.
2. `BottomUpRandomAffine(rot_factor=30, scale_factor=[0.75, 1.5], scale_type='short', trans_factor=40)`, non-UDP:
   scale `U(0.75, 1.5)` of the image, rotation `U(-30, 30)` degrees, a translation of the centre by integers drawn in
   `[-40 s / 200, 40 s / 200)` per axis (`s` the scaled image side); the square crop covers the short side. The image is
   warped to 512x512, the mask (through uint8, threshold 0.5) and the joints to the 128x128 heatmap grid, with the
   original 3-point affine matrices (`bottom_up_codec.three_point_affine_transform`).
3. `BottomUpRandomFlip(0.5)`: image and mask mirrored, joints swapped by the spec's flip pairs and mapped
   `x -> 127 - x` on the heatmap grid (the original flips after the affine, in each map's own pixels).
4. ImageNet normalisation and `BottomUpGenerateTarget(sigma=2, max_num_people=30)`: target heatmaps and encoded
   joints (`bottom_up_codec.BottomUpTargetEncoder`).

Random numbers come from a `numpy.random.Generator` (one draw each for scale, rotation, x shift, y shift, then flip,
in the original's order), so a seeded generator reproduces a sample exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from vitpose_plus.modeling.bottom_up_codec import (
    DEFAULT_MAX_NUM_PEOPLE,
    DEFAULT_SIGMA,
    BottomUpTargetEncoder,
    three_point_affine_transform,
    transform_joints,
)
from vitpose_plus.modeling.dataset_specs import KeypointDatasetSpec, get_dataset_spec

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


# --------------------------------------------------------------------------------------------- annotations
def _segmentation_mask(segmentation: Any, height: int, width: int, context: str) -> np.ndarray:
    """Sum of the decoded masks of one COCO segmentation (polygon list, uncompressed or compressed RLE), `(H, W)`."""
    from pycocotools import mask as mask_utils

    try:
        if isinstance(segmentation, Mapping):
            rle = dict(segmentation)
            if isinstance(rle.get("counts"), list):  # uncompressed RLE (COCO crowds)
                rle = mask_utils.frPyObjects(rle, height, width)
            decoded = mask_utils.decode(rle)
        elif isinstance(segmentation, Sequence) and not isinstance(segmentation, (str, bytes)):
            polygons = [list(map(float, p)) for p in segmentation if len(p) >= 6]
            if not polygons:
                return np.zeros((height, width), dtype=np.float32)
            decoded = mask_utils.decode(mask_utils.frPyObjects(polygons, height, width))
        else:
            raise TypeError(f"unsupported type {type(segmentation).__name__}")
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(
            f"{context}: 'segmentation' must be a list of polygons or an RLE dict with 'counts' and 'size' for a "
            f"{height}x{width} image ({err})."
        ) from err
    decoded = decoded.astype(np.float32)
    if decoded.shape[:2] != (height, width):
        raise ValueError(f"{context}: the RLE 'size' {list(decoded.shape[:2])} is not the image's [{height}, {width}].")
    return decoded.sum(axis=2) if decoded.ndim == 3 else decoded


def ignore_mask(instances: Sequence[Mapping[str, Any]], height: int, width: int) -> np.ndarray:
    """The original `_get_mask`: `True` where the loss counts (outside crowds and persons without keypoints).

    Args:
        instances: COCO annotations of the image; `segmentation` may be absent (nothing is masked for it).

    Returns:
        `(height, width)` bool.
    """
    total = np.zeros((height, width), dtype=np.float32)
    for i, obj in enumerate(instances):
        segmentation = obj.get("segmentation")
        if segmentation is None:
            continue
        if _is_crowd(obj) or _num_keypoints(obj) == 0:
            total += _segmentation_mask(segmentation, height, width, f"instance {i}")
    return total < 0.5


def _is_crowd(obj: Mapping[str, Any]) -> bool:
    return bool(obj.get("iscrowd", 0))


def _num_keypoints(obj: Mapping[str, Any]) -> int:
    if obj.get("num_keypoints") is not None:
        return int(obj["num_keypoints"])
    keypoints = obj.get("keypoints") or []
    return int(sum(1 for v in list(keypoints)[2::3] if v > 0))


def instance_joints(instances: Sequence[Mapping[str, Any]], num_keypoints: int) -> np.ndarray:
    """`(P, K, 3)` float32 joints of the kept instances (the original `_get_joints`; crowds without keypoints are
    dropped first). Instances without `keypoints` get all-zero joints."""
    kept = [obj for obj in instances if not _is_crowd(obj) or _num_keypoints(obj) > 0]
    joints = np.zeros((len(kept), num_keypoints, 3), dtype=np.float32)
    for i, obj in enumerate(kept):
        keypoints = obj.get("keypoints")
        if keypoints is None:
            continue
        values = np.asarray(keypoints, dtype=np.float32).reshape(-1)
        if values.size != 3 * num_keypoints:
            raise ValueError(
                f"instance {i}: 'keypoints' has {values.size} values, expected {3 * num_keypoints} "
                f"(x, y, v for each of the {num_keypoints} keypoints)."
            )
        joints[i] = values.reshape(num_keypoints, 3)
    return joints


def square_crop_scale(image_size: np.ndarray, output_size: Sequence[int], scale_type: str = "short") -> np.ndarray:
    """The original `BottomUpRandomAffine._get_scale`: `(w, h)` of the image region mapped to `output_size`."""
    w, h = image_size
    w_out, h_out = output_size
    if scale_type not in ("short", "long"):
        raise ValueError(f"scale_type must be 'short' or 'long', got {scale_type!r}.")
    if w / w_out < h / h_out:
        w_pad, h_pad = (h / h_out * w_out, h) if scale_type == "long" else (w, w / w_out * h_out)
    else:
        w_pad, h_pad = (w, w / w_out * h_out) if scale_type == "long" else (h / h_out * w_out, h)
    return np.array([w_pad, h_pad], dtype=np.float32)


# --------------------------------------------------------------------------------------------- transform
class BottomUpTrainTransform:
    """Per-image bottom-up training pipeline for one keypoint layout; see the module docstring.

    Args:
        spec: the dataset's keypoint layout (name or `KeypointDatasetSpec`); its flip pairs drive the flip.
        dataset_index: the model's dataset index for these images (returned as `dataset_index`).
        input_size: side of the square input (512); heatmap_size: side of the square maps (128).
        rotation_factor, scale_range, scale_type, translation_factor, flip_prob: augmentation (original defaults).
        sigma, max_num_people: target settings.
        seed: seed of the transform's own random stream, used when `__call__` gets no `rng`.
        pad_to: zero-pad `labels` and `label_joints` to this many keypoints (or use `BottomUpCollator`).
    """

    def __init__(
        self,
        spec: str | KeypointDatasetSpec,
        dataset_index: int = 0,
        input_size: int = 512,
        heatmap_size: int = 128,
        rotation_factor: float = 30.0,
        scale_range: Sequence[float] = (0.75, 1.5),
        scale_type: str = "short",
        translation_factor: float = 40.0,
        flip_prob: float = 0.5,
        sigma: float = DEFAULT_SIGMA,
        max_num_people: int = DEFAULT_MAX_NUM_PEOPLE,
        seed: int | None = None,
        pad_to: int | None = None,
    ) -> None:
        self.spec = get_dataset_spec(spec)
        self.dataset_index = int(dataset_index)
        self.input_size = (int(input_size), int(input_size))
        self.heatmap_size = (int(heatmap_size), int(heatmap_size))
        if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range must be (min, max) with 0 < min <= max, got {scale_range}.")
        if scale_type not in ("short", "long"):
            raise ValueError(f"scale_type must be 'short' or 'long', got {scale_type!r}.")
        if pad_to is not None and pad_to < self.spec.num_keypoints:
            raise ValueError(
                f"pad_to={pad_to} is smaller than the {self.spec.num_keypoints} keypoints of {self.spec.name!r}."
            )
        self.rotation_factor = float(rotation_factor)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.scale_type = scale_type
        self.translation_factor = float(translation_factor)
        self.flip_prob = float(flip_prob)
        self.pad_to = pad_to
        self.flip_index = self.spec.flip_permutation()
        self.encoder = BottomUpTargetEncoder(self.spec.num_keypoints, self.heatmap_size, sigma, max_num_people)
        self._rng = np.random.default_rng(seed)

    def __call__(
        self,
        image: np.ndarray,
        instances: Sequence[Mapping[str, Any]],
        rng: np.random.Generator | None = None,
    ) -> dict[str, Any]:
        """Augment one image and encode its targets.

        Args:
            image: `(H, W, 3)` RGB uint8 image.
            instances: its COCO annotations: `keypoints` (flat `[x, y, v] * K`), `iscrowd`, `num_keypoints`,
                `segmentation` (polygons or RLE, may be absent), `bbox` and `area` (unused, as in the original).
            rng: random generator (defaults to the transform's own stream).

        Returns:
            `pixel_values` `(3, 512, 512)` float32 (ImageNet-normalised), `labels` `(K, 128, 128)` float32 target
            heatmaps, `label_mask` `(128, 128)` float32, `label_joints` `(max_num_people, K, 2)` int64,
            `dataset_index` (int), and for inspection `joints` `(P, K, 3)` float32 (heatmap pixels), `rotation`,
            `scale` (the drawn factor) and `flipped`.
        """
        rng = self._rng if rng is None else rng
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be (H, W, 3) RGB, got shape {image.shape}.")
        height, width = image.shape[:2]
        mask = ignore_mask(instances, height, width)
        joints = instance_joints(instances, self.spec.num_keypoints)

        # BottomUpRandomAffine (non-UDP)
        center = np.array((width / 2, height / 2))
        image_scale = np.array([width, height], dtype=np.float32)
        aug_scale = rng.random() * (self.scale_range[1] - self.scale_range[0]) + self.scale_range[0]
        image_scale *= aug_scale
        rotation = (rng.random() * 2 - 1) * self.rotation_factor
        if self.translation_factor > 0:
            for axis in range(2):
                bound = self.translation_factor * image_scale[axis] / 200.0
                low, high = int(-bound), int(bound)  # numpy's legacy randint truncates float bounds
                center[axis] += rng.integers(low, high) if high > low else 0
        out_scale = square_crop_scale(image_scale, self.heatmap_size, self.scale_type)
        mat_output = three_point_affine_transform(center, out_scale / 200.0, rotation, self.heatmap_size)
        warped_mask = cv2.warpAffine((mask * 255).astype(np.uint8), mat_output, self.heatmap_size) / 255
        label_mask = (warped_mask > 0.5).astype(np.float32)
        joints[:, :, 0:2] = transform_joints(joints[:, :, 0:2], mat_output)  # stored as float32, as the original
        in_scale = square_crop_scale(image_scale, self.input_size, self.scale_type)
        mat_input = three_point_affine_transform(center, in_scale / 200.0, rotation, self.input_size)
        crop = cv2.warpAffine(np.ascontiguousarray(image), mat_input, self.input_size)

        # BottomUpRandomFlip
        flipped = bool(rng.random() < self.flip_prob)
        if flipped:
            crop = crop[:, ::-1]
            label_mask = np.ascontiguousarray(label_mask[:, ::-1])
            joints = joints[:, self.flip_index]
            joints[:, :, 0] = self.heatmap_size[0] - joints[:, :, 0] - 1

        pixel_values = ((crop.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
        targets = self.encoder.encode(joints)
        labels, label_joints = targets["heatmaps"], targets["joints"]
        if self.pad_to is not None and self.pad_to > labels.shape[0]:
            extra = self.pad_to - labels.shape[0]
            labels = np.concatenate([labels, np.zeros((extra, *labels.shape[1:]), np.float32)])
            label_joints = np.concatenate(
                [label_joints, np.zeros((label_joints.shape[0], extra, 2), label_joints.dtype)], axis=1
            )
        return {
            "pixel_values": np.ascontiguousarray(pixel_values, dtype=np.float32),
            "labels": labels,
            "label_mask": label_mask,
            "label_joints": label_joints,
            "dataset_index": self.dataset_index,
            "joints": joints,
            "rotation": float(rotation),
            "scale": float(aug_scale),
            "flipped": flipped,
        }


class BottomUpCollator:
    """Stack bottom-up samples, zero-padding `labels` `(K, h, w)` and `label_joints` `(M, K, 2)` to `max_keypoints`.

    Returns `pixel_values` `(B, 3, H, W)`, `labels` `(B, K_max, h, w)`, `label_mask` `(B, h, w)`, `label_joints`
    `(B, M, K_max, 2)` int64 and `dataset_index` `(B,)`: the keyword arguments of
    `VitPosePlusForBottomUpPoseEstimation.forward`.
    """

    def __init__(self, max_keypoints: int):
        self.max_keypoints = int(max_keypoints)

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not samples:
            raise ValueError("Cannot collate an empty list of samples.")
        first_labels = np.asarray(samples[0]["labels"])
        first_joints = np.asarray(samples[0]["label_joints"])
        batch = len(samples)
        labels = np.zeros((batch, self.max_keypoints, *first_labels.shape[1:]), dtype=np.float32)
        joints = np.zeros((batch, first_joints.shape[0], self.max_keypoints, 2), dtype=np.int64)
        for i, sample in enumerate(samples):
            k = np.asarray(sample["labels"]).shape[0]
            if k > self.max_keypoints:
                raise ValueError(f"A sample has {k} keypoint channels, more than the model's {self.max_keypoints}.")
            sample_joints = np.asarray(sample["label_joints"])
            if sample_joints.shape[0] != joints.shape[1]:
                raise ValueError(
                    f"Samples disagree on max_num_people: {sample_joints.shape[0]} vs {joints.shape[1]}."
                )
            labels[i, :k] = sample["labels"]
            joints[i, :, : sample_joints.shape[1]] = sample_joints
        return {
            "pixel_values": torch.from_numpy(np.stack([np.asarray(s["pixel_values"]) for s in samples])),
            "labels": torch.from_numpy(labels),
            "label_mask": torch.from_numpy(np.stack([np.asarray(s["label_mask"], dtype=np.float32) for s in samples])),
            "label_joints": torch.from_numpy(joints),
            "dataset_index": torch.tensor([int(s["dataset_index"]) for s in samples], dtype=torch.long),
        }


__all__ = [
    "BottomUpCollator",
    "BottomUpTrainTransform",
    "ignore_mask",
    "instance_joints",
    "square_crop_scale",
]
