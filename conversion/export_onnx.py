"""ONNX export of one dataset of a model folder: the merged dense model as `pixel_values -> heatmaps`.

A ViTPose+ model is first merged for the dataset (`merge_experts`: expert folded into fc2, that dataset's head only),
so the graph has no routing and no `dataset_index` input; the graph is the model's own forward (the flip test too,
when baked in). The export uses the TorchScript exporter with a dynamic batch axis (opset 17 by default) and is
checked with onnxruntime against PyTorch: raw heatmaps on batches of 2 and 3, and keypoints through the shared
`TopDownPredictor` (crops, decoding) on a test image.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..modeling import TopDownPredictor, VitPosePlusForPoseEstimation, VitPosePlusImageProcessor

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-4


class HeatmapExportModule(nn.Module):
    """`pixel_values (batch, 3, H, W) -> heatmaps (batch, K, H/4, W/4)` of a single-dataset dense model: its forward,
    with the flip test baked in when asked (a single-dataset model routes nothing, so the graph is static)."""

    def __init__(self, model: VitPosePlusForPoseEstimation, flip_test: bool = False) -> None:
        super().__init__()
        config = model.config
        if config.num_datasets != 1 or config.num_experts != 1:
            raise ValueError(
                f"HeatmapExportModule needs a dense single-dataset model; this one has {config.num_datasets} datasets "
                f"and {config.num_experts} experts: merge it first with model.merge_experts(dataset)."
            )
        self.model = model
        self.flip_test = flip_test

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values, flip_test=self.flip_test).heatmaps


class OnnxHeatmapModel:
    """An onnxruntime session called like the model by `TopDownPredictor` (the flip test, if any, is in the graph)."""

    def __init__(self, path: str, flip_test: bool) -> None:
        _, ort = _require_onnx()
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.flip_test = flip_test

    def __call__(self, pixel_values: torch.Tensor, dataset_index: int | None = None, flip_test: bool = False
                 ) -> torch.Tensor:
        if flip_test != self.flip_test:
            raise ValueError(f"This ONNX graph was exported with flip_test={self.flip_test}.")
        (heatmaps,) = self.session.run(["heatmaps"], {"pixel_values": pixel_values.float().numpy()})
        return torch.from_numpy(heatmaps)


@dataclass
class OnnxExportResult:
    """The exported file, its dataset and keypoint count, and the onnxruntime-vs-PyTorch check per batch size."""

    path: str
    dataset: str
    num_keypoints: int
    opset: int
    max_abs_difference: dict[str, float]

    @property
    def worst(self) -> float:
        return max(self.max_abs_difference.values())


def _require_onnx() -> tuple[object, object]:
    try:
        import onnx
        import onnxruntime
    except ModuleNotFoundError as err:
        raise RuntimeError(
            f"ONNX export needs the onnx and onnxruntime packages ({err.name} is missing): "
            "pip install 'vitpose-plus[onnx]'."
        ) from err
    return onnx, onnxruntime


def verify_onnx(
    path: str, module: HeatmapExportModule, input_size: tuple[int, int], batch_sizes: tuple[int, ...] = (2, 3),
    seed: int = 0,
) -> dict[str, float]:
    """Max abs difference between onnxruntime and PyTorch: heatmaps on random batches (per batch size), and keypoint
    coordinates of the shared `TopDownPredictor` on a random image with two boxes."""
    onnx_model = OnnxHeatmapModel(path, module.flip_test)
    generator = torch.Generator().manual_seed(seed)
    differences = {}
    for batch in batch_sizes:
        x = torch.randn(batch, 3, *input_size, generator=generator)
        with torch.no_grad():
            expected = module(x).float()
        got = onnx_model(x, flip_test=module.flip_test)
        if got.shape != expected.shape:
            raise RuntimeError(f"{path}: onnxruntime gave {tuple(got.shape)} for batch {batch}, expected "
                               f"{tuple(expected.shape)}.")
        differences[f"heatmaps, batch {batch}"] = float((got - expected).abs().max())
    image = np.random.default_rng(seed).integers(0, 256, (2 * input_size[0], 2 * input_size[1], 3), dtype=np.uint8)
    boxes = [[[10.0, 12.0, input_size[1] * 0.8, input_size[0] * 0.9], [30.0, 5.0, input_size[1], input_size[0]]]]
    processor = VitPosePlusImageProcessor.from_model_config(module.model.config)
    ours = TopDownPredictor(module.model, processor, flip_test=module.flip_test).predict([image], boxes)[0]
    theirs = TopDownPredictor(onnx_model, processor, flip_test=module.flip_test).predict([image], boxes)[0]
    differences["keypoints (px)"] = max(float(np.abs(a.keypoints - b.keypoints).max()) for a, b in zip(ours, theirs))
    return differences


def export_onnx(
    model: VitPosePlusForPoseEstimation,
    output: str | os.PathLike,
    dataset: int | str | None = None,
    opset: int = DEFAULT_OPSET,
    flip_test: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    overwrite: bool = False,
) -> OnnxExportResult:
    """Export `dataset` of `model` to ONNX (`pixel_values` -> `heatmaps`, dynamic batch) and check it.

    Args:
        model: any `VitPosePlusForPoseEstimation`; multi-dataset models are merged for `dataset` first.
        output: `.onnx` file to write.
        dataset: dataset name or index (required when the model has several).
        opset: ONNX opset (>= 17).
        flip_test: bake the flip test into the graph.
        tolerance: largest accepted max abs difference to PyTorch (heatmaps; keypoints get 100 x this, in pixels).
        overwrite: replace an existing file at `output`.

    Raises:
        ValueError: for a missing or unknown dataset, or an opset below 17.
        RuntimeError: when onnxruntime disagrees with PyTorch by more than `tolerance`.
    """
    onnx, _ = _require_onnx()
    if opset < 17:
        raise ValueError(f"opset must be >= 17 (LayerNormalization), got {opset}.")
    config = model.config
    if dataset is None:
        if config.num_datasets > 1:
            raise ValueError(f"This model has datasets {config.dataset_names}; choose one with --dataset.")
        dataset = 0
    elif isinstance(dataset, str) and dataset.isdigit():
        dataset = int(dataset)
    dense = model.merge_experts(dataset) if (config.num_datasets > 1 or config.num_experts > 1) else model
    dense = dense.float().eval()
    name = dense.config.dataset_names[0]
    module = HeatmapExportModule(dense, flip_test=flip_test).eval()
    height, width = dense.config.image_size
    output = os.fspath(output)
    if os.path.exists(output) and not overwrite:
        raise FileExistsError(f"{output!r} exists; pass --overwrite (overwrite=True) to replace it.")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    staging = f"{output}.tmp-{os.getpid()}"  # renamed over `output` only once it passed the checks
    example = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        # The legacy exporter announces its deprecation; the traced graph itself has no data-dependent branch.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(
            module,
            (example,),
            staging,
            input_names=["pixel_values"],
            output_names=["heatmaps"],
            dynamic_axes={"pixel_values": {0: "batch"}, "heatmaps": {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    try:
        onnx.checker.check_model(staging)
        differences = verify_onnx(staging, module, (height, width))
        result = OnnxExportResult(output, name, dense.config.dataset_spec(0).num_keypoints, opset, differences)
        logger.info("exported %s (%s, %d keypoints): max abs diff %s", output, name, result.num_keypoints,
                    differences)
        heatmap_worst = max(v for k, v in differences.items() if k.startswith("heatmaps"))
        if heatmap_worst > tolerance or differences["keypoints (px)"] > 100 * tolerance:
            raise RuntimeError(
                f"{output}: onnxruntime differs from PyTorch beyond the tolerance {tolerance:.0e} (heatmaps) / "
                f"{100 * tolerance:.0e} px (keypoints): {differences}."
            )
        os.replace(staging, output)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return result


__all__ = ["DEFAULT_OPSET", "HeatmapExportModule", "OnnxExportResult", "OnnxHeatmapModel", "export_onnx",
           "verify_onnx"]
