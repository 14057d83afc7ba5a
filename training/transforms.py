"""Top-down training and evaluation transforms (the original ViTPose / ViTPose+ recipe), per dataset spec.

`TopDownTransform(spec, dataset_index, train=True)` turns rows of a keypoint dataset (`training.datasets`) into model
inputs. In training mode, in the original order (reference section 3.5):

1. random flip (p 0.5) with the spec's flip pairs (`x -> W - 1 - x`, `center_x -> W - 1 - center_x`);
2. half-body (p 0.3, only when more than 8 keypoints are labelled, as the original `> num_joints_half_body`);
   upper body chosen when `randn() < 0.5` (about 69 %) and more than 2 upper joints are labelled;
3. scale `*= clip(1 + 0.5 N(0, 1), 0.5, 1.5)`, rotation `clip(40 N(0, 1), -80, 80)` with p 0.6;
4. affine crop (UDP for COCO/MPII, the 3-point similarity otherwise) and heatmap targets (UDP or MSRA, sigma 2).

The original's center jitter (p 0.3, `0.4 (U - 0.5) (w, h)`) is drawn per sample here (`center_jitter_prob`), where the
original froze it once when the dataset was built.

Each output sample holds `pixel_values` `(3, 256, 192)` float32 (ImageNet-normalised), `labels` `(K, 64, 48)`
float32, `label_weights` `(K,)` float32, `dataset_index` (int), plus `center`, `scale`, `rotation`, `flipped`,
`image_id`, `annotation_id`, `bbox` and `keypoints` (`(K, 3)` in crop pixels) for evaluation. `pad_to=K_max` zero-pads
`labels`/`label_weights` to K_max channels (the multi-dataset collator may do this instead).

Works with `Dataset.with_transform` (batched dict in, batched dict out) and inside DataLoader workers: the random
stream is seeded from `seed` and, in a worker, from `torch.initial_seed()` (different per worker and per epoch, yet
reproducible under `torch.manual_seed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vitpose_plus.file_io import decode_image
from vitpose_plus.modeling.dataset_specs import KeypointDatasetSpec, get_dataset_spec
from vitpose_plus.modeling.keypoint_codecs import (
    DEFAULT_HEATMAP_SIZE,
    DEFAULT_IMAGE_SIZE,
    PIXEL_STD,
    box_to_center_scale,
    encode_heatmaps,
    flip_keypoints,
    transform_points,
    warp_image,
    warp_matrix,
)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def half_body_center_scale(
    keypoints: np.ndarray,
    upper_or_lower: Sequence[str],
    rng: np.random.Generator,
    image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The original `half_body_transform`: centre and scale of the upper or lower body, or `None`.

    Labelled joints marked `"upper"` form the upper body; all other labelled joints the lower body (as the original,
    which tests membership of `upper_body_ids`). Upper is chosen when `randn() < 0.5` and it has more than 2 joints,
    else lower when it has more than 2, else upper; fewer than 2 selected joints gives `None`.

    Args:
        keypoints: `(K, 3)` keypoints in image pixels.

    Returns:
        `center` `(2,)`, `scale` `(2,)` (min/max extent, aspect-fixed, times 1.5, / 200) or `None`.
    """
    labelled = keypoints[:, 2] > 0
    is_upper = np.array([t == "upper" for t in upper_or_lower], dtype=bool)
    upper = keypoints[labelled & is_upper, :2]
    lower = keypoints[labelled & ~is_upper, :2]
    if rng.standard_normal() < 0.5 and len(upper) > 2:
        selected = upper
    elif len(lower) > 2:
        selected = lower
    else:
        selected = upper
    if len(selected) < 2:
        return None
    center = selected.mean(axis=0)
    w, h = selected.max(axis=0) - selected.min(axis=0)
    aspect = image_size[0] / image_size[1]
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    return center, np.array([w, h], dtype=np.float64) / PIXEL_STD * 1.5


def _as_keypoints(value: Any, k: int, context: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != 3 * k:
        raise ValueError(f"{context}: keypoints have {arr.size} values, expected {3 * k} (K={k} times x, y, v).")
    return arr.reshape(k, 3)


class TopDownTransform:
    """Per-sample top-down pipeline for one dataset spec; see the module docstring.

    Args:
        spec: the dataset's keypoint layout (name or `KeypointDatasetSpec`); decides UDP vs non-UDP, flip pairs and
            the half-body split.
        dataset_index: the model's dataset index for these samples (returned as `dataset_index`).
        train: apply the random augmentations (otherwise only crop and targets, rotation 0).
        image_size, heatmap_size: `(width, height)` of the input and the heatmaps.
        sigma: target Gaussian sigma.
        flip_prob, half_body_prob, half_body_min_joints, scale_factor, rotation_factor, rotation_prob,
        center_jitter_prob: augmentation settings (original defaults).
        seed: seed of the random stream (`None`: non-deterministic).
        pad_to: zero-pad `labels` and `label_weights` to this many keypoints.
    """

    def __init__(
        self,
        spec: str | KeypointDatasetSpec,
        dataset_index: int = 0,
        train: bool = True,
        image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
        heatmap_size: Sequence[int] = DEFAULT_HEATMAP_SIZE,
        sigma: float = 2.0,
        flip_prob: float = 0.5,
        half_body_prob: float = 0.3,
        half_body_min_joints: int = 8,
        scale_factor: float = 0.5,
        rotation_factor: float = 40.0,
        rotation_prob: float = 0.6,
        center_jitter_prob: float = 0.3,
        seed: int | None = None,
        pad_to: int | None = None,
    ) -> None:
        self.spec = get_dataset_spec(spec)
        self.dataset_index = int(dataset_index)
        self.train = train
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.sigma = float(sigma)
        self.flip_prob = flip_prob
        self.half_body_prob = half_body_prob if self.spec.use_half_body else 0.0
        self.half_body_min_joints = half_body_min_joints
        self.scale_factor = scale_factor
        self.rotation_factor = rotation_factor
        self.rotation_prob = rotation_prob
        self.center_jitter_prob = center_jitter_prob
        self.seed = seed
        if pad_to is not None and pad_to < self.spec.num_keypoints:
            raise ValueError(f"pad_to={pad_to} is smaller than the {self.spec.num_keypoints} keypoints of "
                             f"{self.spec.name!r}.")
        self.pad_to = pad_to
        self._rng: np.random.Generator | None = None
        self._rng_key: tuple | None = None

    # ------------------------------------------------------------------ randomness
    def _generator(self) -> np.random.Generator:
        """The random stream of this process: re-seeded inside each DataLoader worker (and epoch)."""
        info = torch.utils.data.get_worker_info()
        key = ("worker", torch.initial_seed()) if info is not None else ("main",)
        if self._rng is None or key != self._rng_key:
            entropy = [self.seed if self.seed is not None else np.random.SeedSequence().entropy]
            if info is not None:
                entropy.append(torch.initial_seed() % (2**63))
            self._rng = np.random.default_rng(entropy)
            self._rng_key = key
        return self._rng

    # ------------------------------------------------------------------ one sample
    def transform_example(
        self,
        image: np.ndarray,
        bbox: Sequence[float],
        keypoints: np.ndarray,
        rng: np.random.Generator | None = None,
        center: Sequence[float] | None = None,
        scale: Sequence[float] | None = None,
    ) -> dict[str, Any]:
        """Augment, crop and encode one instance.

        Args:
            image: `(H, W, 3)` RGB uint8 image.
            bbox: COCO `(x, y, w, h)` box (used when `center`/`scale` are not given).
            keypoints: `(K, 3)` `(x, y, v)` in image pixels.
            rng: random generator (defaults to the transform's stream).
            center, scale: crop parameters given by the dataset (MPII), overriding the box.

        Returns:
            The sample dict described in the module docstring.
        """
        rng = rng if rng is not None else self._generator()
        kp = np.asarray(keypoints, dtype=np.float64).copy()
        if center is None or scale is None:
            c, s = box_to_center_scale(bbox, self.image_size)
            if self.train and self.center_jitter_prob > 0 and rng.random() < self.center_jitter_prob:
                c = c + 0.4 * (rng.random(2) - 0.5) * np.asarray(bbox[2:4], dtype=np.float64)
        else:
            c, s = np.asarray(center, dtype=np.float64).copy(), np.asarray(scale, dtype=np.float64).copy()
        rotation = 0.0
        flipped = False
        if self.train:
            if self.flip_prob > 0 and rng.random() <= self.flip_prob:
                flipped = True
                image = image[:, ::-1]
                kp = flip_keypoints(kp, image.shape[1], self.spec.flip_pairs)
                c[0] = image.shape[1] - c[0] - 1
            if (self.half_body_prob > 0 and (kp[:, 2] > 0).sum() > self.half_body_min_joints
                    and rng.random() < self.half_body_prob):
                half = half_body_center_scale(kp, self.spec.upper_or_lower, rng, self.image_size)
                if half is not None:
                    c, s = half
            sf, rf = self.scale_factor, self.rotation_factor
            s = s * np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf)
            if rng.random() <= self.rotation_prob:
                rotation = float(np.clip(rng.standard_normal() * rf, -rf * 2, rf * 2))
        matrix = warp_matrix(c, s, rotation, self.image_size, self.spec.use_udp)
        crop = warp_image(np.ascontiguousarray(image), matrix, self.image_size)
        crop_kp = kp.copy()
        crop_kp[:, :2] = transform_points(kp[:, :2], matrix)
        heatmaps, weights = encode_heatmaps(
            crop_kp, use_udp=self.spec.use_udp, image_size=self.image_size, heatmap_size=self.heatmap_size,
            sigma=self.sigma,
        )
        pixel_values = ((crop.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
        if self.pad_to is not None and self.pad_to > heatmaps.shape[0]:
            extra = self.pad_to - heatmaps.shape[0]
            heatmaps = np.concatenate([heatmaps, np.zeros((extra, *heatmaps.shape[1:]), np.float32)])
            weights = np.concatenate([weights, np.zeros(extra, np.float32)])
        return {
            "pixel_values": np.ascontiguousarray(pixel_values, dtype=np.float32),
            "labels": heatmaps,
            "label_weights": weights,
            "dataset_index": self.dataset_index,
            "center": c.astype(np.float32),
            "scale": np.asarray(s, dtype=np.float32),
            "rotation": np.float32(rotation),
            "flipped": flipped,
            "keypoints": crop_kp.astype(np.float32),
        }

    # ------------------------------------------------------------------ dataset rows
    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        """Batched rows (as given by `Dataset.with_transform`) to batched samples."""
        n = len(batch["bbox"])
        out: dict[str, list] = {}
        for i in range(n):
            context = f"dataset {self.spec.name!r}, image_id {batch['image_id'][i] if 'image_id' in batch else '?'}, " \
                      f"annotation_id {batch['annotation_id'][i] if 'annotation_id' in batch else '?'}"
            image = decode_image(batch["image"][i], context)
            kp = _as_keypoints(batch["keypoints"][i], self.spec.num_keypoints, context)
            has_cs = "center" in batch and batch["center"][i] is not None and batch["scale"][i] is not None
            sample = self.transform_example(
                image, np.asarray(batch["bbox"][i], dtype=np.float64), kp,
                center=batch["center"][i] if has_cs else None, scale=batch["scale"][i] if has_cs else None,
            )
            sample["bbox"] = np.asarray(batch["bbox"][i], dtype=np.float32)
            for key in ("image_id", "annotation_id", "area"):
                if key in batch:
                    sample[key] = batch[key][i]
            for key, value in sample.items():
                out.setdefault(key, []).append(value)
        return out


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "TopDownTransform", "half_body_center_scale"]
