"""Interop with transformers' own `VitPoseForPoseEstimation` (the format of the Hub's `usyd-community/vitpose-*`).

Key renaming follows the reference (section 2.6) with anchored per-key rules: our fused `qkv` is split into
`query`/`key`/`value` rows [0:D], [D:2D], [2D:3D] and concatenated back the other way.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .configuration_vitpose_plus import VitPosePlusConfig
from .dataset_specs import get_dataset_spec

if TYPE_CHECKING:
    from .modeling_vitpose_plus import VitPosePlusForPoseEstimation

# (ours, transformers) for per-layer tensors; `{i}` is the block index.
_LAYER_RENAMES: tuple[tuple[str, str], ...] = (
    ("norm1", "layernorm_before"),
    ("norm2", "layernorm_after"),
    ("attention.proj", "attention.output.dense"),
    ("mlp.fc1", "mlp.fc1"),
    ("mlp.fc2", "mlp.fc2"),
)
_CLASSIC_HEAD_RENAMES: tuple[tuple[str, str], ...] = (
    ("deconv_layers.0.deconv", "deconv1"),
    ("deconv_layers.0.batchnorm", "batchnorm1"),
    ("deconv_layers.1.deconv", "deconv2"),
    ("deconv_layers.1.batchnorm", "batchnorm2"),
    ("conv", "conv"),
)
_BN_PARAMS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _ours_to_hf_keys(config: VitPosePlusConfig) -> dict[str, str]:
    """Mapping of every non-qkv tensor name of our single-head model to its transformers name."""
    mapping = {
        "backbone.embeddings.position_embeddings": "backbone.embeddings.position_embeddings",
        "backbone.embeddings.patch_embeddings.weight": "backbone.embeddings.patch_embeddings.projection.weight",
        "backbone.embeddings.patch_embeddings.bias": "backbone.embeddings.patch_embeddings.projection.bias",
        "backbone.layernorm.weight": "backbone.layernorm.weight",
        "backbone.layernorm.bias": "backbone.layernorm.bias",
    }
    for i in range(config.num_hidden_layers):
        ours, theirs = f"backbone.layers.{i}.", f"backbone.encoder.layer.{i}."
        for a, b in _LAYER_RENAMES:
            for param in ("weight", "bias"):
                mapping[f"{ours}{a}.{param}"] = f"{theirs}{b}.{param}"
        if config.num_experts > 1:
            for e in range(config.num_experts):
                for param in ("weight", "bias"):
                    mapping[f"{ours}mlp.experts.{e}.{param}"] = f"{theirs}mlp.experts.{e}.{param}"
    if config.decoder_type == "classic":
        for a, b in _CLASSIC_HEAD_RENAMES:
            params = _BN_PARAMS if "batchnorm" in a else ("weight", "bias")
            for param in params:
                if a.endswith(".deconv") and param == "bias":
                    continue
                mapping[f"heads.0.{a}.{param}"] = f"head.{b}.{param}"
    else:
        for param in ("weight", "bias"):
            mapping[f"heads.0.conv.{param}"] = f"head.conv.{param}"
    return mapping


def _check_transformers_compatible(config: VitPosePlusConfig) -> None:
    problems = []
    if config.patch_padding != 2:
        problems.append(f"patch_padding={config.patch_padding} (transformers hard-codes 2)")
    if config.window_size is not None:
        problems.append("windowed attention (transformers' VitPose has global attention only)")
    if config.decoder_type == "classic" and (
        config.deconv_channels != [256, 256] or config.deconv_kernels != [4, 4] or config.final_conv_kernel != 1
    ):
        problems.append("a classic decoder other than 2 x [deconv 4x4, 256 channels] + 1x1 conv")
    if config.decoder_type == "simple" and config.final_conv_kernel != 3:
        problems.append(f"a simple decoder with final_conv_kernel={config.final_conv_kernel} (transformers uses 3)")
    if problems:
        raise ValueError("This model cannot be expressed as transformers' VitPose: " + "; ".join(problems) + ".")


def to_transformers_vitpose(model: VitPosePlusForPoseEstimation, dataset: int | str | None = None) -> nn.Module:
    """Export to transformers' VitPose; see `VitPosePlusForPoseEstimation.to_transformers_vitpose`."""
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation

    config = model.config
    if config.num_datasets > 1:
        if dataset is None:
            raise ValueError(
                f"This model has {config.num_datasets} datasets {config.dataset_names}; transformers' VitPose holds a "
                "single head, so pass dataset=<name or index> to export that dataset's merged dense model."
            )
        model = model.merge_experts(dataset)
        config = model.config
    elif dataset is not None:
        config.dataset_id(dataset)  # validates the name / index
    _check_transformers_compatible(config)
    spec = config.dataset_spec(0)
    backbone_config = VitPoseBackboneConfig(
        image_size=list(config.image_size),
        patch_size=[config.patch_size, config.patch_size],
        num_channels=config.num_channels,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        mlp_ratio=int(config.mlp_ratio) if float(config.mlp_ratio).is_integer() else config.mlp_ratio,
        num_experts=config.num_experts,
        part_features=config.part_features if config.num_experts > 1 else 256,
        hidden_act=config.hidden_act,
        layer_norm_eps=config.layer_norm_eps,
        qkv_bias=config.qkv_bias,
        out_indices=[config.num_hidden_layers],
    )
    hf_config = VitPoseConfig(
        backbone_config=backbone_config,
        use_simple_decoder=config.decoder_type == "simple",
        scale_factor=config.upsample_factor,
        num_labels=spec.num_keypoints,
        id2label=dict(enumerate(spec.keypoint_names)),
        label2id={name: i for i, name in enumerate(spec.keypoint_names)},
    )
    hf_config.edges = [list(pair) for pair in spec.skeleton]
    hf_model = VitPoseForPoseEstimation(hf_config)

    ours = model.state_dict()
    mapping = _ours_to_hf_keys(config)
    hf_state: dict[str, torch.Tensor] = {}
    dim = config.hidden_size
    for name, tensor in ours.items():
        match = re.fullmatch(r"backbone\.layers\.(\d+)\.attention\.qkv\.(weight|bias)", name)
        if match:
            layer, param = match.groups()
            prefix = f"backbone.encoder.layer.{layer}.attention.attention."
            for j, part in enumerate(("query", "key", "value")):
                hf_state[f"{prefix}{part}.{param}"] = tensor[j * dim : (j + 1) * dim].clone()
            continue
        if name not in mapping:
            raise ValueError(f"Tensor {name!r} has no counterpart in transformers' VitPose.")
        hf_state[mapping[name]] = tensor.clone()
    result = hf_model.load_state_dict(hf_state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"Export to transformers' VitPose failed: missing {missing}, unexpected {result.unexpected_keys}."
        )
    hf_model.to(dtype=next(model.parameters()).dtype)
    hf_model.train(model.training)
    return hf_model


def _spec_from_transformers_config(hf_config: Any) -> dict[str, Any]:
    """Dataset spec for the single head of a transformers VitPose config (COCO when it has the COCO layout)."""
    num_labels = hf_config.num_labels
    if num_labels == 17:
        return get_dataset_spec("coco").to_dict()
    names = [str(hf_config.id2label[i]) for i in range(num_labels)] if hf_config.id2label else None
    if not names or len(names) != num_labels:
        names = [f"keypoint_{i}" for i in range(num_labels)]
    edges = getattr(hf_config, "edges", None) or []
    skeleton = [list(e) for e in edges if len(e) == 2 and all(0 <= int(v) < num_labels for v in e)]
    return {"name": f"keypoints_{num_labels}", "keypoint_names": names, "skeleton": skeleton, "use_udp": True}


def from_transformers_vitpose(
    cls: type[VitPosePlusForPoseEstimation], model_or_folder: nn.Module | str | os.PathLike, **from_pretrained_kwargs
) -> VitPosePlusForPoseEstimation:
    """Import transformers' `VitPoseForPoseEstimation` (see `VitPosePlusForPoseEstimation.from_transformers_vitpose`).

    A ViTPose+ checkpoint of transformers keeps all its experts; since it holds only the COCO head, the result has
    one dataset (COCO, routed to expert 0) and every expert's weights.
    """
    from transformers import VitPoseForPoseEstimation

    hf_model = model_or_folder
    if not isinstance(hf_model, nn.Module):
        hf_model = VitPoseForPoseEstimation.from_pretrained(model_or_folder, **from_pretrained_kwargs)
    hf_config = hf_model.config
    backbone = hf_config.backbone_config
    num_layers = backbone.num_hidden_layers
    out_indices = list(getattr(backbone, "out_indices", None) or [num_layers])
    if out_indices[-1] not in (num_layers, -1):
        raise ValueError(
            f"The transformers model reads its head from layer {out_indices[-1]} (out_indices={out_indices}), not the "
            f"last layer {num_layers}; only last-layer models (all published checkpoints) can be imported."
        )
    image_size = backbone.image_size if isinstance(backbone.image_size, (list, tuple)) else [backbone.image_size] * 2
    patch = backbone.patch_size[0] if isinstance(backbone.patch_size, (list, tuple)) else backbone.patch_size
    num_experts = backbone.num_experts
    spec = _spec_from_transformers_config(hf_config)
    config = VitPosePlusConfig(
        image_size=list(image_size),
        patch_size=int(patch),
        num_channels=backbone.num_channels,
        hidden_size=backbone.hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=backbone.num_attention_heads,
        mlp_ratio=backbone.mlp_ratio,
        qkv_bias=backbone.qkv_bias,
        layer_norm_eps=backbone.layer_norm_eps,
        hidden_act=backbone.hidden_act,
        num_experts=num_experts,
        part_features=backbone.part_features if num_experts > 1 else 0,
        decoder_type="simple" if hf_config.use_simple_decoder else "classic",
        upsample_factor=hf_config.scale_factor,
        datasets=[{**spec, "expert_index": 0} if num_experts > 1 else spec],
    )
    model = cls(config)
    mapping = {theirs: ours for ours, theirs in _ours_to_hf_keys(config).items()}
    hf_state = hf_model.state_dict()
    state: dict[str, torch.Tensor] = {}
    qkv_parts: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    unknown = []
    for name, tensor in hf_state.items():
        match = re.fullmatch(r"backbone\.encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)",
                             name)
        if match:
            layer, part, param = match.groups()
            qkv_parts.setdefault((layer, param), {})[part] = tensor
        elif name in mapping:
            state[mapping[name]] = tensor.clone()
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(f"Tensors of the transformers model with no counterpart here: {unknown}.")
    for (layer, param), parts in qkv_parts.items():
        state[f"backbone.layers.{layer}.attention.qkv.{param}"] = torch.cat(
            [parts["query"], parts["key"], parts["value"]], dim=0
        )
    own = model.state_dict()
    for name, tensor in own.items():  # transformers may omit BN counters; keep ours (they do not affect outputs)
        if name.endswith("num_batches_tracked") and name not in state:
            state[name] = tensor
    model.load_state_dict(state, strict=True)
    model.to(dtype=next(hf_model.parameters()).dtype)
    model.train(hf_model.training)
    return model
