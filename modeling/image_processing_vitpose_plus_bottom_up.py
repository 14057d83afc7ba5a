"""Image processor for bottom-up ViTPose / ViTPose+: whole images in, every person's keypoints out.

`VitPosePlusBottomUpImageProcessor` resizes each image as the original AE test pipeline (`BottomUpGetImgSize` +
`BottomUpResizeAlign`, non-UDP): short side 512, long side rounded up to a multiple of 64, by an affine warp about the
rounded image centre; normalises with ImageNet statistics; and batches images of different sizes by zero-padding them
to the largest one, with a `pixel_mask` marking each image's area (the original runs one image at a time; the model
runs each valid size separately, so the results equal one-by-one processing).

`post_process_bottom_up` groups the model's heatmaps and tags into persons with the original `HeatmapParser`
(`bottom_up_grouping`) and maps them back to image coordinates. Multi-scale testing: preprocess once per scale with
`scale_factor` (and the smallest scale as `min_scale_factor`), run the model per scale, and pass the list of outputs
with `scale_factors`.

Only torch, numpy, transformers and this folder are imported (scipy lazily by the grouping) so that the processor can
be loaded with `trust_remote_code`.
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

from .bottom_up_codec import DEFAULT_INPUT_SIZE, SIZE_DIVISOR, multi_scale_size, three_point_affine_transform
from .bottom_up_grouping import GroupingParams, aggregate_outputs, parse, transform_preds
from .configuration_vitpose_plus_bottom_up import VitPosePlusBottomUpConfig
from .dataset_specs import KeypointDatasetSpec, get_dataset_spec
from .image_processing_vitpose_plus import to_rgb_array
from .keypoint_codecs import cv2 as _cv2
from .keypoint_codecs import warp_image, warp_images_torch

DatasetLike = str | dict | KeypointDatasetSpec | None


class VitPosePlusBottomUpImageProcessorKwargs(ImagesKwargs, total=False):
    r"""
    size_divisor (`int`): the long side is rounded up to a multiple of this (64).
    dataset (`str` or `dict`): default dataset (name or spec dict), stored as the full spec dict.
    max_num_people, nms_kernel, detection_threshold, tag_threshold, use_detection_val, ignore_too_much, adjust,
    refine, project2image, align_corners: grouping settings (see `VitPosePlusBottomUpImageProcessor`).
    patch_size, patch_padding, heatmap_stride: the model's patch geometry and output stride, to find each image's
    valid heatmap area.
    resize_backend (`str`): `"auto"`, `"cv2"` or `"torch"`.
    """

    size_divisor: int | None
    dataset: str | dict | None
    max_num_people: int | None
    nms_kernel: int | None
    detection_threshold: float | None
    tag_threshold: float | None
    use_detection_val: bool | None
    ignore_too_much: bool | None
    adjust: bool | None
    refine: bool | None
    project2image: bool | None
    align_corners: bool | None
    patch_size: int | None
    patch_padding: int | None
    heatmap_stride: int | None
    resize_backend: str | None


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
            "`dataset` must be a dataset name, a spec dict or a KeypointDatasetSpec; for a dataset index of a model "
            "use `dataset=model.config.dataset_spec(index)`."
        )
    return get_dataset_spec(dataset)


class VitPosePlusBottomUpImageProcessor(BaseImageProcessor):
    r"""Bottom-up (whole-image) image processor for ViTPose / ViTPose+ with associative embedding.

    `processor(images)` returns `pixel_values` `(batch, 3, H, W)` (each image resized to short side 512 and long side
    a multiple of 64, zero-padded to the batch's largest size) and `pixel_mask` `(batch, H, W)` (1 on each image's
    area). `post_process_bottom_up(outputs, target_sizes)` returns every image's persons in image coordinates.

    Args:
        size (`dict`, defaults to `{"height": 512, "width": 512}`): the training input; the test short side is
            `width` for portrait and `height` for landscape images (the original `image_size`).
        size_divisor (`int`, defaults to 64): the long side is rounded up to a multiple of this.
        do_rescale, rescale_factor, do_normalize, image_mean, image_std: pixel scaling (ImageNet by default).
        dataset (`str` or `dict`, *optional*): default keypoint layout of the outputs (COCO when unset).
        max_num_people (`int`, defaults to 30), nms_kernel (`int`, defaults to 5), detection_threshold (`float`,
            defaults to 0.1), tag_threshold (`float`, defaults to 1.0), use_detection_val (`bool`, defaults to
            `True`), ignore_too_much (`bool`, defaults to `False`), adjust (`bool`, defaults to `True`), refine
            (`bool`, defaults to `True`): the original `HeatmapParser` settings (see `bottom_up_grouping`).
        project2image (`bool`, defaults to `True`): group on maps resized to the input size (bilinear).
        align_corners (`bool`, defaults to `False`): of those resizes.
        patch_size (`int`, defaults to 16), patch_padding (`int`, defaults to 2), heatmap_stride (`int`, defaults
            to 4): the model's geometry (set by `from_model_config`).
        resize_backend (`str`, defaults to `"auto"`): `"cv2"` (identical to the original), `"torch"` or `"auto"`.
    """

    model_input_names = ["pixel_values", "pixel_mask"]
    valid_kwargs = VitPosePlusBottomUpImageProcessorKwargs

    def __init__(
        self,
        size: dict[str, int] | None = None,
        size_divisor: int = SIZE_DIVISOR,
        do_rescale: bool = True,
        rescale_factor: float = 1 / 255,
        do_normalize: bool = True,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        dataset: str | dict | None = None,
        max_num_people: int = 30,
        nms_kernel: int = 5,
        detection_threshold: float = 0.1,
        tag_threshold: float = 1.0,
        use_detection_val: bool = True,
        ignore_too_much: bool = False,
        adjust: bool = True,
        refine: bool = True,
        project2image: bool = True,
        align_corners: bool = False,
        patch_size: int = 16,
        patch_padding: int = 2,
        heatmap_stride: int = 4,
        resize_backend: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        size = dict(size) if size is not None else {"height": DEFAULT_INPUT_SIZE, "width": DEFAULT_INPUT_SIZE}
        if set(size) != {"height", "width"} or min(size.values()) < 1:
            raise ValueError(f"`size` must be a dict with positive 'height' and 'width', got {size}.")
        if resize_backend not in ("auto", "cv2", "torch"):
            raise ValueError(f"`resize_backend` must be 'auto', 'cv2' or 'torch', got {resize_backend!r}.")
        if nms_kernel < 1 or nms_kernel % 2 == 0:
            raise ValueError(f"`nms_kernel` must be a positive odd number, got {nms_kernel}.")
        if max_num_people < 1:
            raise ValueError(f"`max_num_people` must be positive, got {max_num_people}.")
        if dataset is not None:
            dataset = _resolve_dataset(dataset).to_dict()  # self-contained preprocessor_config.json
        self.size = {"height": int(size["height"]), "width": int(size["width"])}
        self.size_divisor = int(size_divisor)
        self.do_rescale = do_rescale
        self.rescale_factor = rescale_factor
        self.do_normalize = do_normalize
        self.image_mean = list(image_mean) if image_mean is not None else list(IMAGENET_DEFAULT_MEAN)
        self.image_std = list(image_std) if image_std is not None else list(IMAGENET_DEFAULT_STD)
        self.dataset = dataset
        self.max_num_people = int(max_num_people)
        self.nms_kernel = int(nms_kernel)
        self.detection_threshold = float(detection_threshold)
        self.tag_threshold = float(tag_threshold)
        self.use_detection_val = bool(use_detection_val)
        self.ignore_too_much = bool(ignore_too_much)
        self.adjust = bool(adjust)
        self.refine = bool(refine)
        self.project2image = bool(project2image)
        self.align_corners = bool(align_corners)
        self.patch_size = int(patch_size)
        self.patch_padding = int(patch_padding)
        self.heatmap_stride = int(heatmap_stride)
        self.resize_backend = resize_backend

    @classmethod
    def from_model_config(
        cls, config: Any, dataset: int | str = 0, **kwargs: Any
    ) -> VitPosePlusBottomUpImageProcessor:
        """The processor matching a `VitPosePlusBottomUpConfig`: its input size, patch geometry and output stride,
        `max_num_people`, and `dataset` (the first by default) as the default keypoint layout."""
        height, width = config.image_size
        stride = 2 ** len(config.deconv_kernels) if config.decoder_type == "classic" else config.upsample_factor
        settings = {
            "size": {"height": height, "width": width},
            "dataset": config.dataset_spec(dataset).to_dict(),
            "patch_size": config.patch_size,
            "patch_padding": config.patch_padding,
            "heatmap_stride": stride,
            "max_num_people": getattr(config, "max_num_people", 30),
        }
        settings.update(kwargs)
        return cls(**settings)

    # ------------------------------------------------------------------ geometry
    @property
    def input_size(self) -> tuple[int, int]:
        """Training input `(height, width)` (the model config's `image_size`)."""
        return self.size["height"], self.size["width"]

    def resize_geometry(
        self, image_height: int, image_width: int, scale_factor: float = 1.0, min_scale_factor: float | None = None
    ) -> tuple[tuple[int, int], tuple[int, int], np.ndarray, np.ndarray]:
        """Resize of one image at one test scale.

        Returns:
            `(height, width)` of the resized input at `scale_factor`, `(height, width)` at scale 1 (the base size
            the maps are projected to), and the `center` `(2,)` `(x, y)` and `scale` `(2,)` `(w, h) / 200` that map
            back to the image.
        """
        min_scale = self._min_scale(scale_factor, min_scale_factor)
        # the codec follows the original's (width, height) order
        input_wh = (self.size["width"], self.size["height"])
        (width, height), center, scale = multi_scale_size(
            image_width, image_height, input_wh, scale_factor, min_scale, self.size_divisor
        )
        (base_w, base_h), _, _ = multi_scale_size(image_width, image_height, input_wh, 1.0, min_scale,
                                                  self.size_divisor)
        return (height, width), (base_h, base_w), center, scale

    def heatmap_size_for(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of the model's maps for a `height x width` input (input / 4 for multiples of 16)."""
        p, pad = self.patch_size, self.patch_padding
        return tuple(((s + 2 * pad - p) // p + 1) * self.heatmap_stride for s in (height, width))

    @staticmethod
    def _min_scale(scale_factor: float, min_scale_factor: float | None) -> float:
        if scale_factor <= 0 or (min_scale_factor is not None and min_scale_factor <= 0):
            raise ValueError(f"Scale factors must be positive, got {scale_factor} and {min_scale_factor}.")
        return min(scale_factor, 1.0) if min_scale_factor is None else float(min_scale_factor)

    def _normalise(self, image: np.ndarray, do_rescale: bool, do_normalize: bool) -> np.ndarray:
        """`(H, W, 3)` 0-255 image to `(3, H, W)` float32."""
        factor = self.rescale_factor if do_rescale else 1.0
        mean = np.asarray(self.image_mean if do_normalize else [0.0] * 3, dtype=np.float64)
        std = np.asarray(self.image_std if do_normalize else [1.0] * 3, dtype=np.float64)
        out = (image.astype(np.float64) * factor - mean) / std
        return np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32)

    def _resize(self, image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Warp to `size` = `(height, width)`."""
        size = (int(size[0]), int(size[1]))
        backend = self.resize_backend
        if backend == "auto":
            backend = "cv2" if _cv2 is not None else "torch"
        if backend == "cv2":
            return warp_image(image, matrix, size, "cv2")
        src = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(torch.float32)
        out = warp_images_torch(src, torch.from_numpy(matrix[None]), size)[0].permute(1, 2, 0)
        if image.dtype == np.uint8:
            out = out.round().clamp(0, 255).to(torch.uint8)
        return out.numpy()

    # ------------------------------------------------------------------ preprocessing
    def __call__(self, images: Any, **kwargs: Any) -> BatchFeature:
        return self.preprocess(images, **kwargs)

    def preprocess(
        self,
        images: Any,
        scale_factor: float = 1.0,
        min_scale_factor: float | None = None,
        do_rescale: bool | None = None,
        do_normalize: bool | None = None,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Resize, normalise and pad whole images.

        Args:
            images: one image or a list (PIL, numpy `(H, W, C)` / `(C, H, W)`, torch `(C, H, W)`; 0-255, RGB).
            scale_factor: test scale (1 for the standard single-scale test).
            min_scale_factor: the smallest scale of a multi-scale test (decides the rounding of every scale's size,
                as the original); defaults to `min(scale_factor, 1)`.
            return_tensors: `"pt"` (default), `"np"` or `None` (numpy).

        Returns:
            `BatchFeature` with `pixel_values` `(batch, 3, H, W)` float32 (zeros outside each image) and
            `pixel_mask` `(batch, H, W)` int64 (1 on each image's resized area, top-left).
        """
        if kwargs:
            raise ValueError(f"Unknown arguments {sorted(kwargs)} for VitPosePlusBottomUpImageProcessor.preprocess.")
        do_rescale = self.do_rescale if do_rescale is None else do_rescale
        do_normalize = self.do_normalize if do_normalize is None else do_normalize
        image_list = list(images) if isinstance(images, (list, tuple)) else [images]
        if not image_list:
            raise ValueError("No images given.")
        arrays = [to_rgb_array(image, i) for i, image in enumerate(image_list)]
        resized = []
        for image in arrays:
            size, _, center, scale = self.resize_geometry(image.shape[0], image.shape[1], scale_factor,
                                                          min_scale_factor)
            matrix = three_point_affine_transform(center, scale, 0.0, (size[1], size[0]))  # (width, height)
            resized.append(self._normalise(self._resize(image, matrix, size), do_rescale, do_normalize))
        height = max(r.shape[1] for r in resized)
        width = max(r.shape[2] for r in resized)
        pixel_values = np.zeros((len(resized), 3, height, width), dtype=np.float32)
        pixel_mask = np.zeros((len(resized), height, width), dtype=np.int64)
        for i, image in enumerate(resized):
            pixel_values[i, :, : image.shape[1], : image.shape[2]] = image
            pixel_mask[i, : image.shape[1], : image.shape[2]] = 1
        data = {"pixel_values": pixel_values, "pixel_mask": pixel_mask}
        if return_tensors in ("np", None):
            return BatchFeature(data=data, tensor_type=None)
        if return_tensors != "pt":
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}.")
        return BatchFeature(data={k: torch.from_numpy(v) for k, v in data.items()}, tensor_type=None)

    # ------------------------------------------------------------------ post-processing
    def grouping_params(self, num_keypoints: int) -> GroupingParams:
        return GroupingParams(
            num_keypoints=num_keypoints,
            max_num_people=self.max_num_people,
            detection_threshold=self.detection_threshold,
            tag_threshold=self.tag_threshold,
            use_detection_val=self.use_detection_val,
            ignore_too_much=self.ignore_too_much,
            nms_kernel=self.nms_kernel,
        )

    def post_process_bottom_up(
        self,
        outputs: Any,
        target_sizes: Any,
        dataset: DatasetLike | Sequence[DatasetLike] = None,
        scale_factors: Sequence[float] | None = None,
        min_scale_factor: float | None = None,
        adjust: bool | None = None,
        refine: bool | None = None,
    ) -> list[list[dict[str, Any]]]:
        """Group the model's heatmaps and tags into persons, in image coordinates.

        Args:
            outputs: the model output (`heatmaps`, `tags` and, with `flip_test=True`, `flipped_tags`, each
                `(batch, K_max, h, w)`), or a list of outputs, one per test scale.
            target_sizes: `(height, width)` of each original image, `(batch, 2)` (list, numpy or tensor).
            dataset: keypoint layout of the outputs (name, spec dict or `KeypointDatasetSpec`, e.g.
                `model.config.dataset_spec(i)`), or one per image; defaults to the processor's `dataset`.
            scale_factors: the test scale of each output (defaults to `[1]`); min_scale_factor: as in `preprocess`.
            adjust, refine: override the processor's settings.

        Returns:
            Per image, a list of persons in the original's order, each a dict with `keypoints` `(K, 2)` float32
            `(x, y)` image coordinates, `scores` `(K,)` float32 keypoint scores (refined keypoints included) and
            `score` (mean of the K keypoint scores before refinement, missing keypoints counting 0, as the original).
        """
        output_list = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        scale_factors = [1.0] if scale_factors is None else [float(s) for s in scale_factors]
        if len(scale_factors) != len(output_list):
            raise ValueError(f"Got {len(output_list)} outputs but {len(scale_factors)} scale factors.")
        min_scale = min(scale_factors) if min_scale_factor is None else float(min_scale_factor)
        adjust = self.adjust if adjust is None else adjust
        refine = self.refine if refine is None else refine
        sizes = np.asarray(
            target_sizes.detach().cpu().numpy() if isinstance(target_sizes, torch.Tensor) else target_sizes
        ).astype(np.int64)
        batch = output_list[0].heatmaps.shape[0]
        if sizes.shape != (batch, 2):
            raise ValueError(f"target_sizes must be one (height, width) per image, shape ({batch}, 2); got "
                             f"{sizes.shape}.")
        specs = (
            [_resolve_dataset(d) for d in dataset]
            if isinstance(dataset, (list, tuple))
            else [_resolve_dataset(self.dataset if dataset is None else dataset)] * batch
        )
        if len(specs) != batch:
            raise ValueError(f"Got {len(specs)} datasets for {batch} images.")
        for out in output_list:
            if out.heatmaps.shape[0] != batch or out.tags is None or out.tags.shape != out.heatmaps.shape:
                raise ValueError("Every output needs `heatmaps` and `tags` of the same shape and batch size.")
        results = []
        for b in range(batch):
            height, width = int(sizes[b, 0]), int(sizes[b, 1])
            spec = specs[b]
            k = spec.num_keypoints
            heatmaps_per_scale, tags_per_scale = [], []
            base = center = scale = None
            for out, factor in zip(output_list, scale_factors):
                size, base, center, scale = self.resize_geometry(height, width, factor, min_scale)
                hh, ww = self.heatmap_size_for(size[0], size[1])
                if out.heatmaps.shape[1] < k or out.heatmaps.shape[2] < hh or out.heatmaps.shape[3] < ww:
                    raise ValueError(
                        f"Image {b} ({height}x{width}, scale {factor}) needs maps of at least ({k}, {hh}, {ww}), "
                        f"got {tuple(out.heatmaps.shape[1:])}; do target_sizes, dataset and scale_factors match "
                        "the preprocessing?"
                    )
                # contiguous crops: the resize kernels then see the same memory layout as for an unpadded image
                heatmaps_per_scale.append(out.heatmaps[b : b + 1, :k, :hh, :ww].contiguous())
                tags = [out.tags[b : b + 1, :k, :hh, :ww].contiguous()]
                if getattr(out, "flipped_tags", None) is not None:
                    tags.append(out.flipped_tags[b : b + 1, :k, :hh, :ww].contiguous())
                tags_per_scale.append(tags)
            with torch.no_grad():
                heatmaps, tags = aggregate_outputs(
                    [h.detach() for h in heatmaps_per_scale],
                    [[t.detach() for t in ts] for ts in tags_per_scale],
                    scale_factors,
                    (base[1], base[0]),  # the grouping takes (width, height), as the original
                    self.project2image,
                    self.align_corners,
                )
                people, scores = parse(heatmaps[0].cpu(), tags[0].cpu(), self.grouping_params(k), adjust, refine)
            map_size = (heatmaps.shape[3], heatmaps.shape[2])
            persons = []
            for person, person_score in zip(people, scores):
                persons.append(
                    {
                        "keypoints": torch.from_numpy(transform_preds(person, center, scale, map_size)),
                        "scores": torch.from_numpy(person[:, 2].astype(np.float32)),
                        "score": float(person_score),
                    }
                )
            results.append(persons)
        return results


VitPosePlusBottomUpImageProcessor.register_for_auto_class("AutoImageProcessor")
AutoImageProcessor.register(
    VitPosePlusBottomUpConfig, image_processor_classes={"pil": VitPosePlusBottomUpImageProcessor}, exist_ok=True
)

__all__ = ["VitPosePlusBottomUpImageProcessor"]
