"""Image processor for ViTPose / ViTPose+ (top-down): person crops in, keypoints in image coordinates out.

`VitPosePlusImageProcessor` crops one 256x192 input per box with the original affine geometry (UDP for COCO/MPII,
the 3-point similarity for the other datasets), normalises with ImageNet statistics, and decodes the model's
heatmaps batched (DARK-UDP with the original 11x11 sigma-2 blur, or the quarter-pixel shift) back to the image.
All geometry lives in `keypoint_codecs`; this file only batches it.

Crops use `cv2.warpAffine` when OpenCV is installed (identical to the original) and an equivalent torch
`grid_sample` otherwise; scipy is not needed. Only torch, numpy, transformers and this folder are imported so that
the processor can be loaded with `trust_remote_code`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoImageProcessor
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers.processing_utils import ImagesKwargs

from .configuration_vitpose_plus import VitPosePlusConfig
from .dataset_specs import KeypointDatasetSpec, get_dataset_spec
from .keypoint_codecs import (
    DARK_KERNEL_SIZE,
    PIXEL_STD,
    box_to_center_scale,
    decode_heatmaps,
    warp_image,
    warp_images_torch,
    warp_matrix,
)
from .keypoint_codecs import cv2 as _cv2

DatasetLike = str | dict | KeypointDatasetSpec | None


class VitPosePlusImageProcessorKwargs(ImagesKwargs, total=False):
    r"""
    do_affine_transform (`bool`): crop one input per box (otherwise the images are only rescaled/normalised).
    padding_factor (`float`): context around each box, 1.25 as in the original.
    normalize_factor (`float`): the original pixel_std, 200.
    dataset (`str` or `dict`): default dataset (name or spec dict) whose geometry (UDP or not) is used; stored as the
        full spec dict.
    crop_backend (`str`): `"auto"`, `"cv2"` or `"torch"`.
    """

    do_affine_transform: bool | None
    padding_factor: float | None
    normalize_factor: float | None
    dataset: str | dict | None
    crop_backend: str | None


def to_rgb_array(image: Any, index: int) -> np.ndarray:
    """One image (PIL, `(H, W[, C])` / `(C, H, W)` numpy or torch) to an `(H, W, 3)` RGB array.

    Grayscale is repeated to 3 channels, alpha is dropped, 16-bit integers are scaled to 0-255 (`/ 257`). uint8 stays
    uint8 (so the crop equals the original's `cv2.warpAffine` on uint8); other dtypes become float32 on the 0-255
    scale.
    """
    if hasattr(image, "mode") and hasattr(image, "convert"):  # PIL without importing PIL
        if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
            image = np.asarray(image).astype(np.float32) / 257.0
        elif image.mode in ("I", "F"):
            arr = np.asarray(image).astype(np.float32)
            image = arr / 257.0 if arr.max(initial=0) > 255 else arr
        else:
            image = np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise ValueError(
            f"Image {index}: expected a PIL image, numpy array or torch tensor, got {type(image).__name__}."
        )
    arr = image
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.transpose(arr, (1, 2, 0))  # channels-first input
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"Image {index}: expected (H, W), (H, W, 3/4) or (3/4, H, W), got shape {image.shape}.")
    arr = arr[..., :3]
    if arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 257.0
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        arr = arr.astype(np.float32)
    return np.ascontiguousarray(arr)


def _resolve_dataset(dataset: DatasetLike) -> KeypointDatasetSpec:
    if dataset is None:
        try:
            return get_dataset_spec("coco")
        except OSError as err:  # remote-code folder without the package's keypoint_specs.json
            raise ValueError(
                "No dataset given and the built-in COCO spec is not available here; pass "
                "`dataset=model.config.dataset_spec(index)` or create the processor with `dataset=`."
            ) from err
    if isinstance(dataset, int):
        raise ValueError(
            "`dataset` must be a dataset name, a spec dict or a KeypointDatasetSpec; for a dataset index of a "
            "model use `dataset=model.config.dataset_spec(index)`."
        )
    return get_dataset_spec(dataset)


def _nested_boxes(boxes: Any, num_images: int) -> list[np.ndarray]:
    """Boxes as one `(n_i, 4)` float64 array per image."""
    if boxes is None:
        raise ValueError("`boxes` is required: one list of COCO (x, y, w, h) boxes per image.")
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    if isinstance(boxes, np.ndarray) and boxes.ndim == 2 and num_images == 1:
        boxes = [boxes]
    if len(boxes) != num_images:
        raise ValueError(f"Got {num_images} images but {len(boxes)} lists of boxes; give one list of boxes per image.")
    out = []
    for i, image_boxes in enumerate(boxes):
        arr = np.asarray(image_boxes, dtype=np.float64)
        if arr.size == 0:
            arr = arr.reshape(0, 4)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(f"Boxes of image {i} must be a list of (x, y, w, h) boxes, got shape {arr.shape}.")
        if not np.all(np.isfinite(arr)) or np.any(arr[:, 2:] <= 0):
            raise ValueError(f"Boxes of image {i} must be finite with positive width and height, got {arr.tolist()}.")
        out.append(arr)
    return out


class VitPosePlusImageProcessor(BaseImageProcessor):
    r"""Top-down image processor for ViTPose / ViTPose+.

    `processor(images, boxes)` returns `pixel_values` `(total_boxes, 3, 256, 192)`: one normalised crop per COCO
    `(x, y, w, h)` box, in image-then-box order. `post_process_pose_estimation(outputs, boxes, dataset=...)` turns the
    model's heatmaps into keypoints in image coordinates.

    Args:
        do_affine_transform (`bool`, defaults to `True`): crop one input per box.
        size (`dict`, defaults to `{"height": 256, "width": 192}`): model input size.
        do_rescale (`bool`, defaults to `True`), rescale_factor (`float`, defaults to `1/255`): scale pixel values.
        do_normalize (`bool`, defaults to `True`), image_mean, image_std: ImageNet statistics by default.
        padding_factor (`float`, defaults to 1.25), normalize_factor (`float`, defaults to 200): box to center/scale.
        dataset (`str` or `dict`, *optional*): default dataset (a built-in name or a spec dict); decides UDP or not
            for cropping and decoding. COCO when unset.
        crop_backend (`str`, defaults to `"auto"`): `"cv2"` (needs OpenCV), `"torch"`, or `"auto"`.
    """

    model_input_names = ["pixel_values"]
    valid_kwargs = VitPosePlusImageProcessorKwargs

    def __init__(
        self,
        do_affine_transform: bool = True,
        size: dict[str, int] | None = None,
        do_rescale: bool = True,
        rescale_factor: float = 1 / 255,
        do_normalize: bool = True,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        padding_factor: float = 1.25,
        normalize_factor: float = PIXEL_STD,
        dataset: str | dict | None = None,
        crop_backend: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        size = dict(size) if size is not None else {"height": 256, "width": 192}
        if set(size) != {"height", "width"}:
            raise ValueError(f"`size` must be a dict with 'height' and 'width', got {size}.")
        if crop_backend not in ("auto", "cv2", "torch"):
            raise ValueError(f"`crop_backend` must be 'auto', 'cv2' or 'torch', got {crop_backend!r}.")
        if dataset is not None:
            # Store the full spec so that a saved preprocessor_config.json is self-contained (no package data needed
            # when loaded with trust_remote_code).
            dataset = _resolve_dataset(dataset).to_dict()
        self.do_affine_transform = do_affine_transform
        self.size = {"height": int(size["height"]), "width": int(size["width"])}
        self.do_rescale = do_rescale
        self.rescale_factor = rescale_factor
        self.do_normalize = do_normalize
        self.image_mean = list(image_mean) if image_mean is not None else list(IMAGENET_DEFAULT_MEAN)
        self.image_std = list(image_std) if image_std is not None else list(IMAGENET_DEFAULT_STD)
        self.padding_factor = float(padding_factor)
        self.normalize_factor = float(normalize_factor)
        self.dataset = dataset
        self.crop_backend = crop_backend

    @classmethod
    def from_model_config(cls, config: Any, dataset: int | str = 0, **kwargs: Any) -> VitPosePlusImageProcessor:
        """The processor matching a `VitPosePlusConfig`: its input size, and `dataset` (the first by default) as the
        default dataset, which decides the crop geometry (UDP or not) and the decoding."""
        height, width = config.image_size
        spec = config.dataset_spec(dataset).to_dict()
        return cls(size={"height": height, "width": width}, dataset=spec, **kwargs)

    # ------------------------------------------------------------------ helpers
    @property
    def input_size(self) -> tuple[int, int]:
        """Model input `(width, height)`."""
        return self.size["width"], self.size["height"]

    def boxes_to_center_scale(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(N, 4)` xywh boxes to `(N, 2)` centres and `(N, 2)` scales with this processor's padding."""
        return box_to_center_scale(boxes, self.input_size, self.padding_factor, self.normalize_factor)

    def _normalise(self, crops: np.ndarray | torch.Tensor, do_rescale: bool, do_normalize: bool) -> torch.Tensor:
        """`(N, H, W, 3)` crops (0-255) to `(N, 3, H, W)` float32, rescaled and normalised in one fused step.

        uint8 crops go through a 256-entry lookup table per channel (the fastest exact way on CPU)."""
        factor = self.rescale_factor if do_rescale else 1.0
        mean = np.asarray(self.image_mean if do_normalize else [0.0] * 3, dtype=np.float64)
        std = np.asarray(self.image_std if do_normalize else [1.0] * 3, dtype=np.float64)
        if isinstance(crops, torch.Tensor):
            crops = crops.numpy()
        n, h, w, _ = crops.shape
        out = np.empty((n, 3, h, w), dtype=np.float32)
        if crops.dtype == np.uint8:
            levels = np.arange(256, dtype=np.float64)
            for c in range(3):
                lut = ((levels * factor - mean[c]) / std[c]).astype(np.float32)
                np.take(lut, crops[..., c], out=out[:, c])
        else:
            for c in range(3):
                out[:, c] = (crops[..., c].astype(np.float32) * factor - mean[c]) / std[c]
        return torch.from_numpy(out)

    # ------------------------------------------------------------------ preprocessing
    def __call__(self, images: Any, boxes: Any = None, **kwargs: Any) -> BatchFeature:
        return self.preprocess(images, boxes, **kwargs)

    def preprocess(
        self,
        images: Any,
        boxes: Any = None,
        dataset: DatasetLike = None,
        do_affine_transform: bool | None = None,
        do_rescale: bool | None = None,
        do_normalize: bool | None = None,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Crop and normalise one input per box.

        Args:
            images: one image or a list of images (PIL, numpy `(H, W, C)`/`(C, H, W)`, torch `(C, H, W)`; 0-255).
            boxes: per image, a list of COCO `(x, y, w, h)` boxes (`list[list[list[float]]]`); for a single image a
                plain list of boxes is accepted.
            dataset: dataset whose geometry (UDP or not) is used; defaults to the processor's `dataset`.
            return_tensors: `"pt"` (default), `"np"` or `None` (numpy).

        Returns:
            `BatchFeature` with `pixel_values` `(total_boxes, 3, height, width)` float32.
        """
        if kwargs:
            unknown = sorted(kwargs)
            raise ValueError(f"Unknown arguments {unknown} for VitPosePlusImageProcessor.preprocess.")
        do_affine_transform = self.do_affine_transform if do_affine_transform is None else do_affine_transform
        do_rescale = self.do_rescale if do_rescale is None else do_rescale
        do_normalize = self.do_normalize if do_normalize is None else do_normalize
        single = not isinstance(images, (list, tuple))
        image_list = [images] if single else list(images)
        if single and boxes is not None and len(boxes) > 0 and np.asarray(boxes[0], dtype=object).ndim == 1:
            boxes = [boxes]  # a single image with a plain list of boxes
        arrays = [to_rgb_array(image, i) for i, image in enumerate(image_list)]
        width, height = self.input_size
        if do_affine_transform:
            spec = _resolve_dataset(self.dataset if dataset is None else dataset)
            per_image = _nested_boxes(boxes, len(arrays))
            crops = self._crop(arrays, per_image, spec.use_udp)
        else:
            shapes = {a.shape for a in arrays}
            if len(shapes) != 1:
                raise ValueError(f"Without the affine transform all images must have the same shape, got {shapes}.")
            crops = np.stack(arrays)
        pixel_values = self._normalise(crops, do_rescale, do_normalize)
        if return_tensors in ("np", None):
            return BatchFeature(data={"pixel_values": pixel_values.numpy()}, tensor_type=None)
        return BatchFeature(data={"pixel_values": pixel_values}, tensor_type=None)

    def _crop(self, arrays: list[np.ndarray], boxes: list[np.ndarray], use_udp: bool) -> np.ndarray:
        """`(total_boxes, height, width, 3)` crops (uint8 for uint8 images), image-then-box order."""
        width, height = self.input_size
        backend = self.crop_backend
        if backend == "auto":
            backend = "cv2" if _cv2 is not None else "torch"
        crops: list[np.ndarray] = []
        for image, image_boxes in zip(arrays, boxes):
            if len(image_boxes) == 0:
                continue
            centers, scales = self.boxes_to_center_scale(image_boxes)
            matrices = np.stack([warp_matrix(c, s, 0.0, (width, height), use_udp) for c, s in zip(centers, scales)])
            if backend == "cv2":
                crops.extend(warp_image(image, m, (width, height), "cv2") for m in matrices)
            else:
                src = torch.from_numpy(image).permute(2, 0, 1)[None].to(torch.float32)
                out = warp_images_torch(src, torch.from_numpy(matrices), (width, height)).permute(0, 2, 3, 1)
                if image.dtype == np.uint8:  # match the original uint8 crop (rounded)
                    out = out.round().clamp(0, 255).to(torch.uint8)
                crops.extend(out.numpy())
        if not crops:
            return np.zeros((0, height, width, 3), dtype=np.uint8)
        dtypes = {c.dtype for c in crops}
        return np.stack(crops) if len(dtypes) == 1 else np.stack([c.astype(np.float32) for c in crops])

    # ------------------------------------------------------------------ post-processing
    def post_process_pose_estimation(
        self,
        outputs: Any,
        boxes: Any,
        dataset: DatasetLike = None,
        threshold: float | None = None,
        kernel_size: int = DARK_KERNEL_SIZE,
        keypoint_score_threshold: float = 0.2,
    ) -> list[list[dict[str, Any]]]:
        """Heatmaps to keypoints in image coordinates, batched over all boxes.

        Args:
            outputs: model output with `heatmaps` `(total_boxes, K_max, h, w)` (or the heatmaps tensor itself).
            boxes: the boxes given to the preprocessing, per image (COCO xywh).
            dataset: dataset of these heatmaps (name, spec dict or `KeypointDatasetSpec`, e.g.
                `model.config.dataset_spec(i)`); decides K, the keypoint names and DARK-UDP vs quarter-pixel decoding.
                Defaults to the processor's `dataset` (COCO when unset).
            threshold: when set, keypoints with a score <= threshold are dropped from each result.
            kernel_size: DARK-UDP blur kernel (11 as in the original; sigma = 0.3 * ((k - 1) / 2 - 1) + 0.8).
            keypoint_score_threshold: keypoints above it count for the instance `score` (original `vis_thr` 0.2).

        Returns:
            Per image, per box, a dict: `keypoints` `(K, 2)` float32 `(x, y)` image coordinates, `scores` `(K,)`,
            `labels` `(K,)` keypoint indices, `keypoint_names` (K names), `bbox` `(4,)` the input xywh box and
            `score` (mean keypoint score above `keypoint_score_threshold`, 0 when none).
        """
        spec = _resolve_dataset(self.dataset if dataset is None else dataset)
        heatmaps = outputs.heatmaps if hasattr(outputs, "heatmaps") else outputs
        heatmaps = torch.as_tensor(heatmaps)
        k = spec.num_keypoints
        if heatmaps.ndim != 4 or heatmaps.shape[1] < k:
            raise ValueError(
                f"Expected heatmaps (N, >= {k}, h, w) for dataset {spec.name!r}, got shape {tuple(heatmaps.shape)}."
            )
        heatmaps = heatmaps[:, :k]
        per_image = _nested_boxes(boxes, len(boxes) if not isinstance(boxes, np.ndarray) else boxes.shape[0])
        flat = np.concatenate(per_image) if per_image else np.zeros((0, 4))
        if flat.shape[0] != heatmaps.shape[0]:
            raise ValueError(f"Got {heatmaps.shape[0]} heatmaps but {flat.shape[0]} boxes; they must match.")
        centers, scales = self.boxes_to_center_scale(flat)
        coords, scores = decode_heatmaps(heatmaps, centers, scales, use_udp=spec.use_udp, kernel_size=kernel_size)
        coords = coords.to(torch.float32).cpu()
        scores = scores.cpu()
        above = scores > keypoint_score_threshold
        instance = torch.where(
            above.any(-1), (scores * above).sum(-1) / above.sum(-1).clamp(min=1), torch.zeros_like(scores[:, 0])
        )
        labels = torch.arange(k)
        names = list(spec.keypoint_names)
        results: list[list[dict[str, Any]]] = []
        row = 0
        for image_boxes in per_image:
            image_results = []
            for box in image_boxes:
                kp, sc, lab, nm = coords[row], scores[row], labels, names
                if threshold is not None:
                    keep = sc > threshold
                    kp, sc, lab = kp[keep], sc[keep], lab[keep]
                    nm = [n for n, flag in zip(names, keep.tolist()) if flag]
                image_results.append(
                    {
                        "keypoints": kp,
                        "scores": sc,
                        "labels": lab,
                        "keypoint_names": nm,
                        "bbox": torch.tensor(box, dtype=torch.float32),
                        "score": float(instance[row]),
                    }
                )
                row += 1
            results.append(image_results)
        return results


VitPosePlusImageProcessor.register_for_auto_class("AutoImageProcessor")
AutoImageProcessor.register(
    VitPosePlusConfig, image_processor_classes={"pil": VitPosePlusImageProcessor}, exist_ok=True
)

__all__ = ["VitPosePlusImageProcessor", "to_rgb_array"]
