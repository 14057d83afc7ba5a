"""Top-down training and evaluation transform (the original ViTPose / ViTPose+ recipe), per dataset.

`TopDownTransform(processor, dataset, train=True)` turns one instance of a keypoint dataset into model inputs. The
crop is the image processor's (`VitPosePlusImageProcessor.crop_instances`, the one crop-and-normalise implementation)
and the targets are the dataset codec's (`processor.codec(dataset).encode`), so training, evaluation and inference
share sizes, geometry and normalisation. In training mode, in the original order (reference section 3.5):

1. random flip (p 0.5) with the spec's flip pairs (`x -> W - 1 - x`, `center_x -> W - 1 - center_x`);
2. half-body (p 0.3, only when more than 8 keypoints are labelled, as the original `> num_joints_half_body`);
   upper body chosen when `randn() < 0.5` (about 69 %) and more than 2 upper joints are labelled;
3. scale `*= clip(1 + 0.5 N(0, 1), 0.5, 1.5)`, rotation `clip(40 N(0, 1), -80, 80)` with p 0.6;
4. affine crop (UDP for COCO/MPII, the 3-point similarity otherwise) and heatmap targets (UDP or MSRA, sigma 2).

The original's center jitter (p 0.3, `0.4 (U - 0.5) (w, h)`) is drawn per sample here (`center_jitter_prob`), where the
original froze it once when the dataset was built.

Each output sample holds `pixel_values` `(3, H, W)` float32 (normalised), `labels` `(K, H/4, W/4)` float32,
`label_weights` `(K,)` float32, `dataset_index` (int), plus `center`, `scale`, `rotation`, `flipped` and `keypoints`
(`(K, 3)` in crop pixels). `pad_to=K_max` zero-pads `labels`/`label_weights` to K_max channels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vitpose_plus.file_io import decode_image
from vitpose_plus.modeling import VitPosePlusImageProcessor
from vitpose_plus.modeling.keypoint_codecs import PIXEL_STD, flip_keypoints, transform_points


def half_body_center_scale(
    keypoints: np.ndarray,
    upper_or_lower: Sequence[str],
    rng: np.random.Generator,
    input_size: Sequence[int] = (256, 192),
) -> tuple[np.ndarray, np.ndarray] | None:
    """The original `half_body_transform`: centre and scale of the upper or lower body, or `None`.

    Labelled joints marked `"upper"` form the upper body; all other labelled joints the lower body (as the original,
    which tests membership of `upper_body_ids`). Upper is chosen when `randn() < 0.5` and it has more than 2 joints,
    else lower when it has more than 2, else upper; fewer than 2 selected joints gives `None`.

    Args:
        keypoints: `(K, 3)` keypoints in image pixels.
        input_size: model input `(height, width)` (its aspect ratio is used).

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
    aspect = input_size[1] / input_size[0]
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


@dataclass
class AugmentationSettings:
    """The top-down augmentation of the original recipe (its defaults; the `augmentation` section of a training
    config is this dataclass).

    Attributes:
        flip_prob: horizontal flip probability; half_body_prob, half_body_min_joints: half-body crop probability and
            the labelled-keypoint count it needs (more than); scale_factor: `s *= clip(1 + f N(0, 1), 1 - f, 1 + f)`;
        rotation_factor, rotation_prob: `clip(f N(0, 1), -2f, 2f)` degrees with that probability;
        center_jitter_prob: per-sample centre jitter probability; sigma: target Gaussian sigma (heatmap pixels).
    """

    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    scale_factor: float = 0.5
    rotation_factor: float = 40.0
    rotation_prob: float = 0.6
    center_jitter_prob: float = 0.3
    sigma: float = 2.0


class TopDownTransform:
    """Per-sample top-down pipeline for one dataset; see the module docstring.

    Args:
        processor: the model's `VitPosePlusImageProcessor` (`from_model_config`): input and heatmap sizes, crop,
            normalisation, the dataset specs and codecs.
        dataset: the model's dataset (index or name) of these samples: its flip pairs, half-body split and codec.
        train: apply the random augmentations (otherwise only crop and targets, rotation 0).
        augmentation: `AugmentationSettings` (default: the original recipe's); keyword arguments of the same names
            override single fields (`flip_prob=0.0`).
        seed: seed of the random stream used when no generator is passed (`None`: non-deterministic).
        pad_to: zero-pad `labels` and `label_weights` to this many keypoints.
    """

    def __init__(
        self,
        processor: VitPosePlusImageProcessor,
        dataset: int | str = 0,
        train: bool = True,
        augmentation: AugmentationSettings | None = None,
        seed: int | None = None,
        pad_to: int | None = None,
        **settings: Any,
    ) -> None:
        unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(AugmentationSettings)})
        if unknown:
            raise TypeError(f"TopDownTransform got unknown augmentation settings {unknown}; the settings are "
                            f"{[f.name for f in dataclasses.fields(AugmentationSettings)]}.")
        augmentation = dataclasses.replace(augmentation or AugmentationSettings(), **settings)
        self.augmentation = augmentation
        self.processor = processor
        self.dataset_index = processor.dataset_index(dataset)
        self.spec = processor.dataset_spec(self.dataset_index)
        codec = processor.codec(self.dataset_index)
        self.codec = type(codec)(codec.input_size, codec.heatmap_size, float(augmentation.sigma),
                                 codec.blur_kernel_size)
        self.train = train
        self.flip_prob = augmentation.flip_prob
        self.half_body_prob = augmentation.half_body_prob if self.spec.use_half_body else 0.0
        self.half_body_min_joints = augmentation.half_body_min_joints
        self.scale_factor = augmentation.scale_factor
        self.rotation_factor = augmentation.rotation_factor
        self.rotation_prob = augmentation.rotation_prob
        self.center_jitter_prob = augmentation.center_jitter_prob
        if pad_to is not None and pad_to < self.spec.num_keypoints:
            raise ValueError(f"pad_to={pad_to} is smaller than the {self.spec.num_keypoints} keypoints of "
                             f"{self.spec.name!r}.")
        self.pad_to = pad_to
        self._rng = np.random.default_rng(seed)

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
            rng: random generator (defaults to the transform's own stream).
            center, scale: crop parameters given by the dataset (MPII), overriding the box.

        Returns:
            The sample dict described in the module docstring.
        """
        rng = rng if rng is not None else self._rng
        kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 3).copy()
        if kp.shape[0] != self.spec.num_keypoints:
            raise ValueError(f"{self.spec.name!r}: an instance has {kp.shape[0]} keypoints, expected "
                             f"{self.spec.num_keypoints}.")
        if center is None or scale is None:
            (c,), (s,) = self.processor.boxes_to_center_scale(np.asarray(bbox, dtype=np.float64).reshape(1, 4))
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
                half = half_body_center_scale(kp, self.spec.upper_or_lower, rng, self.processor.input_size)
                if half is not None:
                    c, s = half
            sf, rf = self.scale_factor, self.rotation_factor
            s = s * np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf)
            if rng.random() <= self.rotation_prob:
                rotation = float(np.clip(rng.standard_normal() * rf, -rf * 2, rf * 2))
        pixel_values, matrices = self.processor.crop_instances(np.ascontiguousarray(image), c[None], s[None],
                                                               [rotation], dataset=self.dataset_index)
        crop_kp = kp.copy()
        crop_kp[:, :2] = transform_points(kp[:, :2], matrices[0])
        heatmaps, weights = self.codec.encode(crop_kp)
        if self.pad_to is not None and self.pad_to > heatmaps.shape[0]:
            extra = self.pad_to - heatmaps.shape[0]
            heatmaps = np.concatenate([heatmaps, np.zeros((extra, *heatmaps.shape[1:]), np.float32)])
            weights = np.concatenate([weights, np.zeros(extra, np.float32)])
        return {
            "pixel_values": pixel_values[0].numpy(),
            "labels": heatmaps,
            "label_weights": weights,
            "dataset_index": self.dataset_index,
            "center": c.astype(np.float32),
            "scale": np.asarray(s, dtype=np.float32),
            "rotation": np.float32(rotation),
            "flipped": flipped,
            "keypoints": crop_kp.astype(np.float32),
        }

    def transform_instance(self, image: Any, instance: Any, rng: np.random.Generator | None = None,
                           context: str = "") -> dict[str, Any]:
        """One `vitpose_plus.data.TopDownInstance` of an image row (the image cell is decoded here)."""
        return self.transform_example(decode_image(image, context), instance.bbox, instance.keypoints, rng=rng,
                                      center=instance.center, scale=instance.scale)


__all__ = ["AugmentationSettings", "TopDownTransform", "half_body_center_scale"]
