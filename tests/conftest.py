"""Shared fixtures: tiny random-weight configs; nothing here touches the network."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from vitpose_plus import VitPosePlusConfig, VitPosePlusForPoseEstimation  # noqa: E402

TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": (64, 48),
    "deconv_channels": (16, 16),
}


def tiny_config(**overrides) -> VitPosePlusConfig:
    """A 2-block, width-32 model on 64x48 crops (grid 4x3, heatmaps 16x12)."""
    kwargs = {**TINY, **overrides}
    return VitPosePlusConfig(**kwargs)


def tiny_plus_config(**overrides) -> VitPosePlusConfig:
    """Tiny ViTPose+: three datasets with different keypoint counts (17, 14, 16), one expert each."""
    kwargs = {"num_experts": 3, "part_features": 8, "datasets": ["coco", "aic", "mpii"], **overrides}
    return tiny_config(**kwargs)


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Give BatchNorm layers non-trivial running statistics and affine parameters (eval-mode parity tests)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)


def make_model(config: VitPosePlusConfig, seed: int = 0) -> VitPosePlusForPoseEstimation:
    torch.manual_seed(seed)
    model = VitPosePlusForPoseEstimation(config)
    # Trained weights are far from the init: perturb everything so that parity tests see non-trivial values
    # (the head init std 0.001 and zero biases would hide mistakes).
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    randomize_batchnorm(model, seed)
    return model.eval()


@pytest.fixture
def pixel_values() -> torch.Tensor:
    return torch.randn(6, 3, 64, 48, generator=torch.Generator().manual_seed(123))
