"""An independent forward pass over ORIGINAL ViTPose / ViTPose+ state-dict tensors, for `--verify`.

Everything here is written from the documented equations of the original code (VITPOSE_REFERENCE.md sections 1.2-1.4)
in plain `torch.nn.functional` ops, directly over the original key names (`backbone.blocks.{i}.attn.qkv.weight`, ...).
It does not import the package's model classes, so a bug in the model or in the key mapping cannot cancel itself out:

* patch embedding: conv, kernel = stride = patch size, padding 2; tokens row-major;
* position table `(1, N + 1, D)`: tokens + pos[:, 1:] + pos[:, :1] (slot 0 added to every token, no cls token);
* pre-norm blocks, LayerNorm eps 1e-6, fused qkv rows q | k | v split contiguously into heads, softmax attention
  with scale head_dim^-0.5, exact erf GELU;
* ViTPose+ FFN as the original `MoEMlp`: every expert runs on the whole batch and is masked with (index == e), the
  masked outputs summed, then cat([fc2(h), experts(h)]) with the expert channels last;
* final LayerNorm, tokens reshaped to (B, D, grid_h, grid_w);
* mmpose head: [conv_transpose (stride 2, no bias) -> BatchNorm (eval, eps 1e-5) -> ReLU] per deconv block, then the
  final conv; the simple head is ReLU -> bilinear upsampling (align_corners=False) -> conv with padding (k - 1) // 2.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

LAYER_NORM_EPS = 1e-6
BATCH_NORM_EPS = 1e-5
#: mmpose `_get_deconv_cfg`: kernel -> (padding, output_padding).
_DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


class VerificationError(AssertionError):
    """The converted model and the reference forward disagree beyond the tolerance."""


def _linear(x: torch.Tensor, state: Mapping[str, torch.Tensor], prefix: str) -> torch.Tensor:
    return F.linear(x, state[f"{prefix}.weight"], state.get(f"{prefix}.bias"))


def _layer_norm(x: torch.Tensor, state: Mapping[str, torch.Tensor], prefix: str) -> torch.Tensor:
    weight = state[f"{prefix}.weight"]
    return F.layer_norm(x, (weight.shape[0],), weight, state[f"{prefix}.bias"], LAYER_NORM_EPS)


def _num_blocks(state: Mapping[str, torch.Tensor]) -> int:
    indices = {int(m.group(1)) for key in state if (m := re.match(r"backbone\.blocks\.(\d+)\.", key))}
    return max(indices) + 1 if indices else 0


def _num_experts(state: Mapping[str, torch.Tensor], block: int) -> int:
    pattern = re.compile(rf"backbone\.blocks\.{block}\.mlp\.experts\.(\d+)\.weight$")
    indices = {int(m.group(1)) for key in state if (m := pattern.match(key))}
    return max(indices) + 1 if indices else 0


def reference_backbone(
    state: Mapping[str, torch.Tensor],
    pixel_values: torch.Tensor,
    num_heads: int,
    expert_indices: torch.Tensor | None = None,
) -> torch.Tensor:
    """Original ViT / ViTMoE backbone. Returns the feature map `(B, D, grid_h, grid_w)`.

    Args:
        state: original-layout tensors (`backbone.*` keys).
        pixel_values: `(B, 3, H, W)` input at the size the position table was trained for.
        num_heads: number of attention heads (not recoverable from shapes).
        expert_indices: `(B,)` expert of each sample; required when a block's fc2 has fewer than D output rows (a MoE
            block). A block whose fc2 is already D wide is dense (e.g. the output of `model_split.py`, whose leftover
            experts are ignored, as the original dense ViT ignores them).
    """
    pos = state["backbone.pos_embed"]
    dim = pos.shape[-1]
    x = F.conv2d(
        pixel_values,
        state["backbone.patch_embed.proj.weight"],
        state["backbone.patch_embed.proj.bias"],
        stride=state["backbone.patch_embed.proj.weight"].shape[-1],
        padding=2,
    )
    batch, _, grid_h, grid_w = x.shape
    x = x.flatten(2).transpose(1, 2)
    x = x + pos[:, 1:] + pos[:, :1]

    head_dim = dim // num_heads
    for i in range(_num_blocks(state)):
        p = f"backbone.blocks.{i}"
        # attention
        h = _layer_norm(x, state, f"{p}.norm1")
        qkv = _linear(h, state, f"{p}.attn.qkv")  # (B, N, 3D), rows q | k | v
        q, k, v = qkv[..., :dim], qkv[..., dim : 2 * dim], qkv[..., 2 * dim :]
        q, k, v = (t.reshape(batch, -1, num_heads, head_dim).transpose(1, 2) for t in (q, k, v))
        attn = (q @ k.transpose(-2, -1)) * head_dim**-0.5
        attn = attn.softmax(dim=-1)
        ctx = (attn @ v).transpose(1, 2).reshape(batch, -1, dim)
        x = x + _linear(ctx, state, f"{p}.attn.proj")
        # FFN
        h = _layer_norm(x, state, f"{p}.norm2")
        h = F.gelu(_linear(h, state, f"{p}.mlp.fc1"), approximate="none")
        shared = _linear(h, state, f"{p}.mlp.fc2")
        if shared.shape[-1] < dim:  # ViTPose+ MoE block, original masked formulation
            if expert_indices is None:
                raise ValueError(f"Block {i} is a mixture-of-experts block; pass expert_indices.")
            part = dim - shared.shape[-1]
            index = expert_indices.view(-1, 1, 1)
            expert_out = torch.zeros(*shared.shape[:-1], part, dtype=shared.dtype, device=shared.device)
            for e in range(_num_experts(state, i)):
                expert_out = expert_out + _linear(h, state, f"{p}.mlp.experts.{e}") * (index == e)
            out = torch.cat([shared, expert_out], dim=-1)
        else:
            out = shared
        x = x + out
    x = _layer_norm(x, state, "backbone.last_norm")
    return x.transpose(1, 2).reshape(batch, dim, grid_h, grid_w)


def reference_head(
    state: Mapping[str, torch.Tensor], feature_map: torch.Tensor, prefix: str, upsample_factor: int = 4
) -> torch.Tensor:
    """mmpose `TopdownHeatmapSimpleHead` over the tensors under `prefix` (e.g. `keypoint_head`)."""
    x = feature_map
    blocks = sorted(
        {
            int(m.group(1))
            for key in state
            if (m := re.match(rf"{re.escape(prefix)}\.deconv_layers\.(\d+)\.weight$", key)) and state[key].ndim == 4
        }
    )
    if blocks:
        for index in blocks:  # deconv at 3b, BatchNorm at 3b + 1, ReLU at 3b + 2
            weight = state[f"{prefix}.deconv_layers.{index}.weight"]
            padding, output_padding = _DECONV_PADDING[weight.shape[-1]]
            x = F.conv_transpose2d(x, weight, None, stride=2, padding=padding, output_padding=output_padding)
            bn = f"{prefix}.deconv_layers.{index + 1}"
            x = F.batch_norm(
                x,
                state[f"{bn}.running_mean"],
                state[f"{bn}.running_var"],
                state[f"{bn}.weight"],
                state[f"{bn}.bias"],
                training=False,
                eps=BATCH_NORM_EPS,
            )
            x = F.relu(x)
    else:  # simple decoder
        x = F.interpolate(F.relu(x), scale_factor=upsample_factor, mode="bilinear", align_corners=False)
    weight = state[f"{prefix}.final_layer.weight"]
    return F.conv2d(x, weight, state[f"{prefix}.final_layer.bias"], padding=(weight.shape[-1] - 1) // 2)


@torch.no_grad()
def reference_forward(
    state: Mapping[str, torch.Tensor],
    pixel_values: torch.Tensor,
    num_heads: int,
    head_prefix: str = "keypoint_head",
    expert_index: int | torch.Tensor | None = None,
    upsample_factor: int = 4,
) -> torch.Tensor:
    """Heatmaps of the original model for one head: backbone (routed to `expert_index`) then the head at
    `head_prefix`. All arithmetic in float64 to serve as ground truth."""
    state64 = {k: v.double() if v.is_floating_point() else v for k, v in state.items()}
    pixel_values = pixel_values.double()
    indices = None
    if expert_index is not None:
        indices = torch.as_tensor(expert_index).long().reshape(-1).expand(pixel_values.shape[0])
    features = reference_backbone(state64, pixel_values, num_heads, indices)
    return reference_head(state64, features, head_prefix, upsample_factor)


@torch.no_grad()
def verify_against_reference(
    model: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    head_prefixes: list[str],
    atol: float = 1e-4,
    batch_size: int = 2,
    seed: int = 0,
) -> dict[str, float]:
    """Compare a converted `VitPosePlusForPoseEstimation` with `reference_forward` on a fixed random input.

    Every dataset d of the model is run with `dataset_index=d` and compared with the original head
    `head_prefixes[d]` and the expert `model.config.expert_of(d)`.

    Returns:
        `{dataset name: max abs difference}`.

    Raises:
        VerificationError: when any difference exceeds `atol` (all differences are listed).
    """
    config = model.config
    generator = torch.Generator().manual_seed(seed)
    height, width = config.image_size
    pixel_values = torch.randn(batch_size, config.num_channels, height, width, generator=generator)
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    results: dict[str, float] = {}
    try:
        for dataset, prefix in enumerate(head_prefixes):
            ours = model(pixel_values.to(param.device, param.dtype), dataset_index=dataset).heatmaps
            k = len(config.datasets[dataset]["keypoint_names"])
            expert = config.expert_of(dataset) if config.num_experts > 1 else None
            ref = reference_forward(
                state, pixel_values, config.num_attention_heads, prefix, expert, config.upsample_factor
            )
            if ref.shape != ours[:, :k].shape:
                raise VerificationError(
                    f"dataset {config.datasets[dataset]['name']!r}: reference heatmaps {list(ref.shape)} vs converted "
                    f"{list(ours[:, :k].shape)}"
                )
            diff = (ours[:, :k].double().cpu() - ref).abs().max().item()
            results[config.datasets[dataset]["name"]] = diff
            logger.info(
                "verified dataset %d (%s, head %s): max abs difference %.3g",
                dataset,
                config.datasets[dataset]["name"],
                prefix,
                diff,
            )
    finally:
        model.train(was_training)
    bad = {name: diff for name, diff in results.items() if not diff <= atol or math.isnan(diff)}
    if bad:
        raise VerificationError(
            "Converted model differs from the reference forward of the original weights beyond "
            f"{atol:g} (max abs difference per dataset): {bad}"
        )
    return results
