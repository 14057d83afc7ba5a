"""Image processor for ViTPose / ViTPose+ (top-down): person crops in, keypoints in image coordinates out.

`VitPosePlusImageProcessor` crops one input per instance with the dataset's codec geometry (UDP for COCO/MPII, the
3-point similarity for the other datasets), normalises with ImageNet statistics, and decodes the model's heatmaps
batched (DARK-UDP or the quarter-pixel shift) back to the image. The geometry and decoding live in `keypoint_codecs`;
the decoding settings (blur kernel, target sigma, heatmap size) and the model's dataset specs are saved in
`preprocessor_config.json`, so a model is decoded the same way wherever it is loaded. This is also the one
crop-and-normalise implementation: training's transform calls `crop_instances`.

Crop backends: `cv2.warpAffine` when OpenCV is installed (identical to the original) and an equivalent torch
`grid_sample` otherwise. On uint8 images the two agree to one grey level (OpenCV quantises its interpolation weights to
1/32), which moves keypoints of a trained model by a few hundredths of a pixel; set `crop_backend="torch"` or `"cv2"`
to pin one. Only torch, numpy, transformers and this folder are imported, so the processor loads with
`trust_remote_code` anywhere.
"""

from __future__ import annotations

import copy
import logging
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
    DEFAULT_SIGMA,
    PIXEL_STD,
    HeatmapCodec,
    box_to_center_scale,
    codec_for,
    warp_image,
    warp_images_torch,
)
from .keypoint_codecs import cv2 as _cv2
from .person_detection import normalise_boxes

logger = logging.getLogger(__name__)

DatasetLike = int | str | dict | KeypointDatasetSpec | Any | None


class VitPosePlusImageProcessorKwargs(ImagesKwargs, total=False):
    r"""
    do_affine_transform (`bool`): crop one input per box (otherwise the images are only rescaled/normalised).
    padding_factor (`float`): context around each box, 1.25 as in the original.
    normalize_factor (`float`): the original pixel_std, 200.
    datasets (`list[dict]`): the model's dataset specs, in dataset-index order.
    dataset (`int` or `str`): default dataset (index or name) of calls that name none.
    heatmap_size (`dict`): heatmap `{"height", "width"}` the codecs are built for (a quarter of `size` by default).
    sigma (`float`): Gaussian sigma of the training targets.
    blur_kernel_size (`int`): DARK-UDP blur kernel used when decoding (11 for 64x48 heatmaps, as the original).
    crop_backend (`str`): `"auto"`, `"cv2"` or `"torch"`.
    """

    do_affine_transform: bool | None
    padding_factor: float | None
    normalize_factor: float | None
    datasets: list[dict] | None
    dataset: int | str | dict | None
    heatmap_size: dict | None
    sigma: float | None
    blur_kernel_size: int | None
    crop_backend: str | None


def spec_dict(spec: Any) -> dict[str, Any]:
    """A dataset spec as a plain dict, whatever module copy it comes from (duck typing: `to_dict()` or a mapping)."""
    if isinstance(spec, dict):
        return KeypointDatasetSpec.from_dict({k: v for k, v in spec.items() if k != "expert_index"}).to_dict()
    if callable(getattr(spec, "to_dict", None)):
        return KeypointDatasetSpec.from_dict(spec.to_dict()).to_dict()
    raise ValueError(f"Expected a dataset spec (a KeypointDatasetSpec or a dict), got {type(spec).__name__}.")


def to_rgb_array(image: Any, index: int) -> np.ndarray:
    """One image (PIL, `(H, W[, C])` / `(C, H, W)` numpy or torch) to an `(H, W, 3)` RGB array.

    Grayscale is repeated to 3 channels, alpha is dropped, 16-bit integers are scaled to 0-255 (`/ 257`). uint8 stays
    uint8 (so the crop equals the original's `cv2.warpAffine` on uint8); other dtypes become float32, on the scale
    they came in (the processor checks the range against `do_rescale`).
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


def _nested(values: Any, num_images: int, width: int, what: str) -> list[np.ndarray]:
    """Per-image `(n_i, width)` float64 arrays from a nested list / array (`width` 4 for boxes, 2 for centres)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if isinstance(values, np.ndarray) and values.ndim == 2 and num_images == 1:
        values = [values]
    if len(values) != num_images:
        raise ValueError(f"Got {num_images} images but {len(values)} lists of {what}; give one list per image.")
    out = []
    for i, image_values in enumerate(values):
        arr = np.asarray(image_values, dtype=np.float64)
        if arr.size == 0:
            arr = arr.reshape(0, width)
        if arr.ndim != 2 or arr.shape[1] != width:
            raise ValueError(f"The {what} of image {i} must be a list of {width}-number rows, got shape {arr.shape}.")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"The {what} of image {i} must be finite numbers, got {arr.tolist()}.")
        out.append(arr)
    return out


class VitPosePlusImageProcessor(BaseImageProcessor):
    r"""Top-down image processor for ViTPose / ViTPose+.

    `processor(images, boxes)` returns `pixel_values` `(total_boxes, 3, height, width)`: one normalised crop per COCO
    `(x, y, w, h)` box, in image-then-box order. `post_process_pose_estimation(outputs, boxes)` turns the model's
    heatmaps into keypoints in image coordinates, in transformers' VitPose format.

    Datasets are given by index, by name, or as a spec (from any module copy): the processor holds the model's dataset
    specs (`from_model_config`), so `dataset=1`, `dataset="aic"` and `dataset=model.config.dataset_spec(1)` all work.

    Args:
        do_affine_transform (`bool`, defaults to `True`): crop one input per box.
        size (`dict`, defaults to `{"height": 256, "width": 192}`): model input size.
        do_rescale (`bool`, defaults to `True`), rescale_factor (`float`, defaults to `1/255`): scale pixel values.
        do_normalize (`bool`, defaults to `True`), image_mean, image_std: ImageNet statistics by default.
        padding_factor (`float`, defaults to 1.25), normalize_factor (`float`, defaults to 200): box to center/scale.
        datasets (`list[dict]`, *optional*): the model's dataset specs (COCO alone when unset).
        dataset (`int` or `str`, defaults to 0): the dataset of calls that name none.
        heatmap_size (`dict`, *optional*): heatmap size of the codecs (a quarter of `size` by default).
        sigma (`float`, defaults to 2.0): target sigma. blur_kernel_size (`int`, defaults to 11): DARK-UDP blur.
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
        datasets: Sequence[Any] | None = None,
        dataset: int | str | dict | None = None,
        heatmap_size: dict[str, int] | None = None,
        sigma: float = DEFAULT_SIGMA,
        blur_kernel_size: int = DARK_KERNEL_SIZE,
        crop_backend: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.size = self._size_dict(size if size is not None else {"height": 256, "width": 192}, "size")
        if crop_backend not in ("auto", "cv2", "torch"):
            raise ValueError(f"`crop_backend` must be 'auto', 'cv2' or 'torch', got {crop_backend!r}.")
        if isinstance(dataset, dict) or (dataset is not None and not isinstance(dataset, (int, str))):
            datasets, dataset = [dataset], 0  # a single spec (the layout of older preprocessor configs)
        elif isinstance(dataset, str) and not datasets:
            datasets, dataset = [dataset], 0  # a built-in dataset by name
        specs = [spec_dict(d) if not isinstance(d, str) else get_dataset_spec(d).to_dict() for d in datasets or []]
        # Store the full specs so that a saved preprocessor_config.json is self-contained (no package data needed
        # when loaded with trust_remote_code).
        self.datasets = specs or [get_dataset_spec("coco").to_dict()]
        self.dataset = 0 if dataset is None else dataset
        self.do_affine_transform = do_affine_transform
        self.do_rescale = do_rescale
        self.rescale_factor = rescale_factor
        self.do_normalize = do_normalize
        self.image_mean = list(image_mean) if image_mean is not None else list(IMAGENET_DEFAULT_MEAN)
        self.image_std = list(image_std) if image_std is not None else list(IMAGENET_DEFAULT_STD)
        self.padding_factor = float(padding_factor)
        self.normalize_factor = float(normalize_factor)
        default_heatmap = {"height": self.size["height"] // 4, "width": self.size["width"] // 4}
        self.heatmap_size = self._size_dict(heatmap_size if heatmap_size is not None else default_heatmap,
                                            "heatmap_size")
        self.sigma = float(sigma)
        self.blur_kernel_size = int(blur_kernel_size)
        self.crop_backend = crop_backend
        self.dataset_index(self.dataset)  # validates the default dataset
        self.codec(self.dataset)  # validates the codec parameters

    @staticmethod
    def _size_dict(size: Any, name: str) -> dict[str, int]:
        if not isinstance(size, dict) or set(size) != {"height", "width"}:
            raise ValueError(f"`{name}` must be a dict with 'height' and 'width', got {size!r}.")
        return {"height": int(size["height"]), "width": int(size["width"])}

    @classmethod
    def from_model_config(cls, config: Any, dataset: int | str = 0, **kwargs: Any) -> VitPosePlusImageProcessor:
        """The processor of a `VitPosePlusConfig`: its input and heatmap sizes and all its dataset specs, `dataset`
        (the first by default) being the default one. `kwargs` (e.g. `blur_kernel_size`) override the rest."""
        height, width = config.image_size
        heat_h, heat_w = config.heatmap_size
        datasets = [{k: v for k, v in entry.items() if k != "expert_index"} for entry in config.datasets]
        return cls(size={"height": height, "width": width}, heatmap_size={"height": heat_h, "width": heat_w},
                   datasets=datasets, dataset=config.dataset_id(dataset), **kwargs)

    # ------------------------------------------------------------------ datasets and codecs
    @property
    def input_size(self) -> tuple[int, int]:
        """Model input `(height, width)`."""
        return self.size["height"], self.size["width"]

    def dataset_index(self, dataset: DatasetLike = None) -> int:
        """Index into `datasets` of a dataset given by index, name or spec; `ValueError` listing the datasets."""
        dataset = self.dataset if dataset is None else dataset
        names = [d["name"] for d in self.datasets]
        if isinstance(dataset, (int, np.integer)) and not isinstance(dataset, bool):
            if not 0 <= int(dataset) < len(names):
                raise ValueError(f"Dataset index {dataset} is out of range; the datasets are {names}.")
            return int(dataset)
        name = dataset if isinstance(dataset, str) else spec_dict(dataset)["name"]
        if name not in names:
            raise ValueError(f"Unknown dataset {name!r}; this processor (model) has the datasets {names}.")
        return names.index(name)

    def dataset_spec(self, dataset: DatasetLike = None) -> KeypointDatasetSpec:
        """The spec of a dataset: one of `datasets` (by index, name or spec), else the given spec itself or the
        built-in dataset of that name (e.g. a bare processor asked for `"ap10k"`)."""
        if not self._is_foreign(dataset):
            return KeypointDatasetSpec.from_dict(self.datasets[self.dataset_index(dataset)])
        if isinstance(dataset, str):
            return get_dataset_spec(dataset)
        return KeypointDatasetSpec.from_dict(spec_dict(dataset))

    def _is_foreign(self, dataset: DatasetLike) -> bool:
        """A name or spec that is not one of the processor's datasets (decoded with its own layout)."""
        if dataset is None or isinstance(dataset, (int, np.integer)):
            return False
        name = dataset if isinstance(dataset, str) else spec_dict(dataset)["name"]
        return name not in [d["name"] for d in self.datasets]

    def codec(self, dataset: DatasetLike = None) -> HeatmapCodec:
        """The heatmap codec of a dataset with this processor's sizes and decoding settings."""
        return codec_for(self.dataset_spec(dataset), self.input_size,
                         (self.heatmap_size["height"], self.heatmap_size["width"]), self.sigma, self.blur_kernel_size)

    def boxes_to_center_scale(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(N, 4)` xywh boxes to `(N, 2)` centres and `(N, 2)` scales with this processor's padding."""
        return box_to_center_scale(boxes, self.input_size, self.padding_factor, self.normalize_factor)

    # ------------------------------------------------------------------ cropping
    def crop_instances(
        self,
        image: np.ndarray,
        centers: np.ndarray,
        scales: np.ndarray,
        rotations: Sequence[float] | None = None,
        dataset: DatasetLike = None,
        do_rescale: bool | None = None,
        do_normalize: bool | None = None,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Crop and normalise instances of one `(H, W, 3)` RGB image (uint8, or float on the 0-255 scale).

        Args:
            centers, scales: `(N, 2)` crop parameters (`boxes_to_center_scale`, MPII's annotated ones, or augmented).
            rotations: `(N,)` rotations in degrees (0 by default).

        Returns:
            `pixel_values (N, 3, height, width)` float32 and the `(N, 2, 3)` image-to-crop matrices.
        """
        codec = self.codec(dataset)
        centers, scales = np.asarray(centers, np.float64).reshape(-1, 2), np.asarray(scales, np.float64).reshape(-1, 2)
        rotations = np.zeros(len(centers)) if rotations is None else np.asarray(rotations, np.float64).reshape(-1)
        matrices = np.stack([codec.crop_matrix(c, s, r) for c, s, r in zip(centers, scales, rotations)]) \
            if len(centers) else np.zeros((0, 2, 3))
        crops = self._warp(image, matrices)
        return self._normalise(crops, do_rescale, do_normalize, image_mean, image_std), matrices

    def _backend(self) -> str:
        if self.crop_backend != "auto":
            return self.crop_backend
        if _cv2 is None and not getattr(type(self), "_warned_torch_backend", False):
            type(self)._warned_torch_backend = True
            logger.warning("OpenCV is not installed: cropping with torch grid_sample, which agrees with the original's "
                           "cv2.warpAffine crops to one grey level.")
        return "cv2" if _cv2 is not None else "torch"

    def _warp(self, image: np.ndarray, matrices: np.ndarray) -> np.ndarray:
        """`(N, height, width, 3)` crops (uint8 for uint8 images)."""
        height, width = self.input_size
        if len(matrices) == 0:
            return np.zeros((0, height, width, 3), dtype=image.dtype)
        if self._backend() == "cv2":
            return np.stack([warp_image(image, m, (height, width), "cv2") for m in matrices])
        src = torch.from_numpy(image).permute(2, 0, 1)[None].to(torch.float32)
        out = warp_images_torch(src, torch.from_numpy(matrices), (height, width)).permute(0, 2, 3, 1)
        if image.dtype == np.uint8:  # match the original uint8 crop (rounded)
            out = out.round().clamp(0, 255).to(torch.uint8)
        return out.numpy()

    def _normalise(self, crops: np.ndarray, do_rescale: bool | None, do_normalize: bool | None,
                   image_mean: Sequence[float] | None, image_std: Sequence[float] | None) -> torch.Tensor:
        """`(N, H, W, 3)` crops to `(N, 3, H, W)` float32, rescaled and normalised in one fused step.

        uint8 crops go through a 256-entry lookup table per channel (the fastest exact way on CPU)."""
        do_rescale = self.do_rescale if do_rescale is None else do_rescale
        do_normalize = self.do_normalize if do_normalize is None else do_normalize
        factor = self.rescale_factor if do_rescale else 1.0
        mean = np.asarray(image_mean if image_mean is not None else self.image_mean, dtype=np.float64)
        std = np.asarray(image_std if image_std is not None else self.image_std, dtype=np.float64)
        if not do_normalize:
            mean, std = np.zeros(3), np.ones(3)
        mean, std = np.broadcast_to(mean, (3,)), np.broadcast_to(std, (3,))
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
        centers: Any = None,
        scales: Any = None,
        do_affine_transform: bool | None = None,
        do_rescale: bool | None = None,
        rescale_factor: float | None = None,
        do_normalize: bool | None = None,
        image_mean: Sequence[float] | float | None = None,
        image_std: Sequence[float] | float | None = None,
        size: dict[str, int] | None = None,
        input_data_format: str | None = None,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Crop and normalise one input per box.

        Args:
            images: one image or a list of images (PIL, numpy `(H, W, C)` / `(C, H, W)`, torch `(C, H, W)`); uint8 or
                float on the 0-255 scale (float images in [0, 1] need `do_rescale=False`).
            boxes: per image, a list of COCO `(x, y, w, h)` boxes; for a single image a plain list of boxes works.
            dataset: dataset whose geometry (UDP or not) is used (index, name or spec); the processor's default.
            centers, scales: instead of boxes, per image the crop centres and scales (e.g. MPII's annotations).
            do_affine_transform, do_rescale, rescale_factor, do_normalize, image_mean, image_std, size: override the
                processor's settings for this call (transformers' standard arguments).
            input_data_format: `"channels_first"` or `"channels_last"` for ambiguous arrays (guessed otherwise).
            return_tensors: `"pt"` (default), `"np"` or `None` (numpy).

        Returns:
            `BatchFeature` with `pixel_values` `(total_boxes, 3, height, width)` float32.
        """
        if kwargs:
            raise ValueError(f"Unknown arguments {sorted(kwargs)} for VitPosePlusImageProcessor.preprocess; the "
                             f"accepted ones are {sorted(VitPosePlusImageProcessorKwargs.__annotations__)} and boxes, "
                             "centers, scales, return_tensors.")
        processor = self
        if size is not None or rescale_factor is not None:
            processor = copy.copy(self)
            if size is not None:
                processor.size = self._size_dict(size, "size")
            if rescale_factor is not None:
                processor.rescale_factor = float(rescale_factor)
        do_affine_transform = processor.do_affine_transform if do_affine_transform is None else do_affine_transform
        do_rescale = processor.do_rescale if do_rescale is None else do_rescale
        single = not isinstance(images, (list, tuple))
        image_list = [images] if single else list(images)
        if single and boxes is not None and len(boxes) > 0 and np.asarray(boxes[0], dtype=object).ndim == 1:
            boxes = [boxes]  # a single image with a plain list of boxes
        arrays = [self._check_pixels(to_rgb_array(_channels_last(im, input_data_format), i), i, do_rescale)
                  for i, im in enumerate(image_list)]
        if do_affine_transform:
            targets = processor.crop_parameters(arrays, boxes, centers, scales)
            chunks = [processor.crop_instances(a, c, s, None, dataset, do_rescale, do_normalize, image_mean,
                                               image_std)[0] for a, (c, s) in zip(arrays, targets)]
            height, width = processor.input_size
            pixel_values = torch.cat(chunks) if chunks else torch.zeros(0, 3, height, width)
        else:
            shapes = {a.shape for a in arrays}
            if len(shapes) != 1:
                raise ValueError(f"Without the affine transform all images must have the same shape, got {shapes}.")
            pixel_values = processor._normalise(np.stack(arrays), do_rescale, do_normalize, image_mean, image_std)
        if return_tensors in ("np", None):
            return BatchFeature(data={"pixel_values": pixel_values.numpy()}, tensor_type=None)
        return BatchFeature(data={"pixel_values": pixel_values}, tensor_type=None)

    @staticmethod
    def _check_pixels(array: np.ndarray, index: int, do_rescale: bool) -> np.ndarray:
        if array.dtype == np.uint8:
            return array
        if not np.all(np.isfinite(array)):
            raise ValueError(f"Image {index} has NaN or infinite pixel values.")
        high = float(array.max(initial=0.0))
        if do_rescale and 0.0 < high <= 1.0:
            raise ValueError(
                f"Image {index} is a float image with values in [0, 1], but do_rescale=True expects 0-255 values: "
                "pass do_rescale=False for an already rescaled image, or give 0-255 (or uint8) pixels."
            )
        return array

    def crop_parameters(self, arrays: Sequence[np.ndarray], boxes: Any = None, centers: Any = None,
                        scales: Any = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per image `(centers (n, 2), scales (n, 2))` from boxes (xywh, validated against the image) or given
        centres and scales."""
        if centers is not None or scales is not None:
            if centers is None or scales is None:
                raise ValueError("Give both `centers` and `scales` (per image), or `boxes`.")
            per_c, per_s = _nested(centers, len(arrays), 2, "centers"), _nested(scales, len(arrays), 2, "scales")
            for i, (c, s) in enumerate(zip(per_c, per_s)):
                if len(c) != len(s) or np.any(s <= 0):
                    raise ValueError(f"Image {i}: {len(c)} centres but {len(s)} scales, or non-positive scales.")
            return list(zip(per_c, per_s))
        if boxes is None:
            raise ValueError("`boxes` is required: one list of COCO (x, y, w, h) boxes per image.")
        out = []
        for i, (array, image_boxes) in enumerate(zip(arrays, _nested(boxes, len(arrays), 4, "boxes"))):
            image_boxes, _ = normalise_boxes(image_boxes, f"Boxes of image {i}")
            height, width = array.shape[:2]
            outside = (image_boxes[:, 0] >= width) | (image_boxes[:, 1] >= height) | (
                image_boxes[:, 0] + image_boxes[:, 2] <= 0) | (image_boxes[:, 1] + image_boxes[:, 3] <= 0)
            if outside.any():
                j = int(np.flatnonzero(outside)[0])
                raise ValueError(f"Box {j} of image {i}, {image_boxes[j].tolist()} (x, y, w, h), lies entirely outside "
                                 f"the {width}x{height} image.")
            out.append(self.boxes_to_center_scale(image_boxes))
        return out

    # ------------------------------------------------------------------ post-processing
    def post_process_pose_estimation(
        self,
        outputs: Any,
        boxes: Any = None,
        dataset: DatasetLike | Sequence[DatasetLike] = None,
        centers: Any = None,
        scales: Any = None,
        threshold: float | None = None,
        kernel_size: int | None = None,
        keypoint_score_threshold: float = 0.2,
    ) -> list[list[dict[str, Any]]]:
        """Heatmaps to keypoints in image coordinates, batched over all boxes (transformers' VitPose format).

        Args:
            outputs: model output with `heatmaps` `(total_boxes, K_max, h, w)` (or the heatmaps tensor itself).
            boxes: the boxes given to the preprocessing, per image (COCO xywh); or `centers` and `scales` per image.
            dataset: the dataset of these heatmaps (index, name or spec; the processor's default when `None`), or one
                per box (e.g. the `dataset_index` of a mixed batch): decides K, the keypoint names and the decoding.
            threshold: when set, keypoints with a score <= threshold are dropped from each result.
            kernel_size: DARK-UDP blur kernel (the processor's `blur_kernel_size` by default).
            keypoint_score_threshold: keypoints above it count for the instance `score` (original `vis_thr` 0.2).

        Returns:
            Per image, per box, a dict: `keypoints` `(K, 2)` float32 `(x, y)` image coordinates, `scores` `(K,)`,
            `labels` `(K,)` keypoint indices (`model.config.id2label` names those of the first dataset), `bbox`
            `(4,)` the box as corners `(x1, y1, x2, y2)` with transformers' convention `x2 = x + w - 1`,
            `score` (mean keypoint score above `keypoint_score_threshold`, 0 when none), `keypoint_names` and
            `dataset` (name).
        """
        heatmaps = outputs.heatmaps if hasattr(outputs, "heatmaps") else outputs
        heatmaps = torch.as_tensor(heatmaps)
        if heatmaps.ndim != 4:
            raise ValueError(f"Expected heatmaps (N, K, h, w), got shape {tuple(heatmaps.shape)}.")
        sizes = None
        if centers is None and scales is None:
            if boxes is None:
                raise ValueError("`boxes` (or `centers` and `scales`) is required to map keypoints to the image.")
            per_image = _nested(boxes, len(boxes) if not isinstance(boxes, np.ndarray) else boxes.shape[0], 4, "boxes")
            flat = np.concatenate(per_image) if per_image else np.zeros((0, 4))
            flat_c, flat_s = self.boxes_to_center_scale(flat)
            sizes = [len(b) for b in per_image]
        else:
            per_c = _nested(centers, len(centers), 2, "centers")
            per_s = _nested(scales, len(scales), 2, "scales")
            flat_c, flat_s = np.concatenate(per_c), np.concatenate(per_s)
            flat = np.concatenate([flat_c - flat_s * self.normalize_factor / (2 * self.padding_factor),
                                   flat_s * self.normalize_factor / self.padding_factor], axis=1)
            sizes = [len(c) for c in per_c]
        total = len(flat)
        if total != heatmaps.shape[0]:
            raise ValueError(f"Got {heatmaps.shape[0]} heatmaps but {total} boxes; they must match.")
        if isinstance(dataset, torch.Tensor):
            dataset = dataset.tolist()
        per_box = list(dataset) if isinstance(dataset, (list, tuple)) else [dataset] * total
        if len(per_box) != total:
            raise ValueError(f"Got {len(per_box)} datasets for {total} boxes; give one dataset or one per box.")
        groups: dict[tuple[str, Any], list[int]] = {}
        resolved: dict[tuple[str, Any], tuple[KeypointDatasetSpec, HeatmapCodec]] = {}
        for j, d in enumerate(per_box):
            foreign = self._is_foreign(d)
            name = d if isinstance(d, str) else spec_dict(d)["name"] if foreign else None
            key = ("spec", name) if foreign else ("index", self.dataset_index(d))
            if key not in resolved:
                resolved[key] = (self.dataset_spec(d if key[0] == "spec" else key[1]),
                                 self.codec(d if key[0] == "spec" else key[1]))
            groups.setdefault(key, []).append(j)
        decoded: list[dict[str, Any] | None] = [None] * total
        for key, rows in groups.items():
            spec, codec = resolved[key]
            if kernel_size is not None:
                codec = type(codec)(codec.input_size, codec.heatmap_size, codec.sigma, int(kernel_size))
            k = spec.num_keypoints
            if heatmaps.shape[1] < k:
                raise ValueError(f"Heatmaps have {heatmaps.shape[1]} channels but dataset {spec.name!r} has {k} "
                                 "keypoints.")
            rows_t = torch.as_tensor(rows, device=heatmaps.device)
            coords, scores = codec.decode(heatmaps.index_select(0, rows_t)[:, :k], flat_c[rows], flat_s[rows])
            coords, scores = coords.to(torch.float32).cpu(), scores.cpu()
            above = scores > keypoint_score_threshold
            instance = torch.where(above.any(-1), (scores * above).sum(-1) / above.sum(-1).clamp(min=1),
                                   torch.zeros_like(scores[:, 0]))
            for n, j in enumerate(rows):
                kp, sc, lab, names = coords[n], scores[n], torch.arange(k), list(spec.keypoint_names)
                if threshold is not None:
                    keep = sc > threshold
                    kp, sc, lab = kp[keep], sc[keep], lab[keep]
                    names = [name for name, flag in zip(names, keep.tolist()) if flag]
                x, y, w, h = flat[j]
                decoded[j] = {"keypoints": kp, "scores": sc, "labels": lab,
                              "bbox": torch.tensor([x, y, x + w - 1, y + h - 1], dtype=torch.float32),
                              "score": float(instance[n]), "keypoint_names": names, "dataset": spec.name}
        results, row = [], 0
        for size_i in sizes:
            results.append(decoded[row : row + size_i])
            row += size_i
        return results


def _channels_last(image: Any, input_data_format: str | None) -> Any:
    if input_data_format in (None, "channels_last") or not hasattr(image, "ndim") or image.ndim != 3:
        return image
    if input_data_format != "channels_first":
        raise ValueError(f"input_data_format must be 'channels_first' or 'channels_last', got {input_data_format!r}.")
    return image.permute(1, 2, 0) if isinstance(image, torch.Tensor) else np.transpose(image, (1, 2, 0))


VitPosePlusImageProcessor.register_for_auto_class("AutoImageProcessor")
AutoImageProcessor.register(
    VitPosePlusConfig, image_processor_classes={"pil": VitPosePlusImageProcessor}, exist_ok=True
)

__all__ = ["VitPosePlusImageProcessor", "spec_dict", "to_rgb_array"]
