"""ONNX export of one dataset of a model folder: the merged dense model as `pixel_values -> heatmaps`.

A ViTPose+ model is first merged for the dataset (`merge_experts`: expert folded into fc2, that dataset's head only),
so the graph has no routing and no `dataset_index` input. The export uses the TorchScript exporter with a dynamic
batch axis (opset 17 by default) and is checked with onnxruntime against PyTorch on batches of 2 and 3.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from ..modeling import VitPosePlusForPoseEstimation
from ..modeling.keypoint_codecs import flip_back_heatmaps

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-4


class HeatmapExportModule(nn.Module):
    """`pixel_values (batch, 3, H, W) -> heatmaps (batch, K, H/4, W/4)` of a single-dataset dense model.

    Calls the backbone and the head directly so that the traced graph holds no dataset-index handling (a dense
    single-dataset model never routes). With `flip_test`, the mirrored batch runs in the same pass and its heatmaps
    are flipped back (one-pixel shift for non-UDP datasets) and averaged, as `forward(..., flip_test=True)` does.
    """

    def __init__(self, model: VitPosePlusForPoseEstimation, flip_test: bool = False) -> None:
        super().__init__()
        config = model.config
        if config.num_datasets != 1 or config.num_experts != 1:
            raise ValueError(
                f"HeatmapExportModule needs a dense single-dataset model; this one has {config.num_datasets} datasets "
                f"and {config.num_experts} experts: merge it first with model.merge_experts(dataset)."
            )
        self.backbone = model.backbone
        self.head = model.heads[0]
        self.flip_test = flip_test
        self.flip_permutation = config.dataset_spec(0).flip_permutation()
        self.shift = not config.datasets[0]["use_udp"]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.flip_test:
            pixel_values = torch.cat([pixel_values, pixel_values.flip(-1)], dim=0)
        encoded = self.backbone.encode(pixel_values)
        heatmaps = self.head(encoded.feature_map())
        if self.flip_test:
            half = heatmaps.shape[0] // 2
            flipped = flip_back_heatmaps(heatmaps[half:], self.flip_permutation, shift=self.shift)
            heatmaps = (heatmaps[:half] + flipped) * 0.5
        return heatmaps


@dataclass
class OnnxExportResult:
    """The exported file, its dataset and keypoint count, and the onnxruntime-vs-PyTorch check per batch size."""

    path: str
    dataset: str
    num_keypoints: int
    opset: int
    max_abs_difference: dict[int, float]

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
    path: str, module: nn.Module, input_size: tuple[int, int], batch_sizes: tuple[int, ...] = (2, 3), seed: int = 0
) -> dict[int, float]:
    """Max abs difference between onnxruntime and PyTorch heatmaps on random batches, per batch size."""
    _, ort = _require_onnx()
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    differences = {}
    for batch in batch_sizes:
        x = torch.randn(batch, 3, *input_size, generator=generator)
        with torch.no_grad():
            expected = module(x).float().numpy()
        (got,) = session.run(["heatmaps"], {"pixel_values": x.numpy()})
        if got.shape != expected.shape:
            raise RuntimeError(f"{path}: onnxruntime gave {got.shape} for batch {batch}, expected {expected.shape}.")
        differences[batch] = float(abs(got - expected).max())
    return differences


def export_onnx(
    model: VitPosePlusForPoseEstimation,
    output: str | os.PathLike,
    dataset: int | str | None = None,
    opset: int = DEFAULT_OPSET,
    flip_test: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
) -> OnnxExportResult:
    """Export `dataset` of `model` to ONNX (`pixel_values` -> `heatmaps`, dynamic batch) and check it.

    Args:
        model: any `VitPosePlusForPoseEstimation`; multi-dataset models are merged for `dataset` first.
        output: `.onnx` file to write.
        dataset: dataset name or index (required when the model has several).
        opset: ONNX opset (>= 17).
        flip_test: bake the flip test into the graph.
        tolerance: largest accepted max abs difference to PyTorch.

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
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    example = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        # The legacy exporter announces its deprecation; the traced graph itself has no data-dependent branch.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(
            module,
            (example,),
            output,
            input_names=["pixel_values"],
            output_names=["heatmaps"],
            dynamic_axes={"pixel_values": {0: "batch"}, "heatmaps": {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx.checker.check_model(output)
    differences = verify_onnx(output, module, (height, width))
    result = OnnxExportResult(output, name, dense.config.dataset_spec(0).num_keypoints, opset, differences)
    logger.info("exported %s (%s, %d keypoints): max abs diff %s", output, name, result.num_keypoints, differences)
    if result.worst > tolerance:
        raise RuntimeError(
            f"{output}: onnxruntime differs from PyTorch by {result.worst:.3e} (> {tolerance:.0e}) "
            f"per batch size {differences}."
        )
    return result


__all__ = ["DEFAULT_OPSET", "HeatmapExportModule", "OnnxExportResult", "export_onnx", "verify_onnx"]
