"""Interop with transformers' own `VitPoseForPoseEstimation` (the format of the Hub's `usyd-community/vitpose-*`).

Key renaming follows the reference (section 2.6) with anchored per-key rules, run in both directions by the shared
remapping toolkit: our fused `qkv` is split into `query`/`key`/`value` rows [0:D], [D:2D], [2D:3D] and fused back
the other way. Heatmaps agree to float precision; transformers' `layer_norm_eps` (1e-12 on the Hub) is kept.
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from ..modeling import VitPosePlusConfig, VitPosePlusForPoseEstimation
from ..modeling.dataset_specs import get_dataset_spec
from .state_dict_tools import Source, fuse_qkv, remap, split_qkv

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
    if getattr(config, "num_knowledge_tokens", 0):
        problems.append("a knowledge token (transformers' VitPose has patch tokens only)")
    if config.decoder_type == "classic" and (
        config.deconv_channels != [256, 256] or config.deconv_kernels != [4, 4] or config.final_conv_kernel != 1
    ):
        problems.append("a classic decoder other than 2 x [deconv 4x4, 256 channels] + 1x1 conv")
    if config.decoder_type == "simple" and config.final_conv_kernel != 3:
        problems.append(f"a simple decoder with final_conv_kernel={config.final_conv_kernel} (transformers uses 3)")
    if problems:
        raise ValueError("This model cannot be expressed as transformers' VitPose: " + "; ".join(problems) + ".")


def to_transformers_vitpose(model: VitPosePlusForPoseEstimation, dataset: int | str | None = None) -> nn.Module:
    """An equivalent transformers `VitPoseForPoseEstimation`. A multi-dataset model is first merged for `dataset`
    (required then), since transformers' VitPose holds a single head."""
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

    dim = config.hidden_size
    plan = {theirs: Source.of(ours) for ours, theirs in _ours_to_hf_keys(config).items()}
    for i in range(config.num_hidden_layers):
        for param in ("weight", "bias") if config.qkv_bias else ("weight",):
            fused = f"backbone.layers.{i}.attention.qkv.{param}"
            for j, part in enumerate(("query", "key", "value")):
                plan[f"backbone.encoder.layer.{i}.attention.attention.{part}.{param}"] = Source.of(
                    fused, lambda t, j=j: split_qkv(t)[j], f"rows {j * dim}:{(j + 1) * dim}")
    target = hf_model.state_dict()
    result = remap(
        model.state_dict(), plan, target,
        keep_initialised=lambda key: "BatchNorm step counter" if key.endswith("num_batches_tracked") else None,
        message="this model cannot be exported to transformers' VitPose",
    )
    hf_model.load_state_dict({**target, **result.state}, strict=True)
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
    model_or_folder: nn.Module | str | os.PathLike, **from_pretrained_kwargs
) -> VitPosePlusForPoseEstimation:
    """Build `VitPosePlusForPoseEstimation` from transformers' `VitPoseForPoseEstimation` (an instance or a saved
    folder / Hub id in the `usyd-community/vitpose-*` format).

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
    model = VitPosePlusForPoseEstimation(config)
    plan = {ours: Source.of(theirs) for ours, theirs in _ours_to_hf_keys(config).items()}
    for i in range(num_layers):
        for param in ("weight", "bias") if config.qkv_bias else ("weight",):
            prefix = f"backbone.encoder.layer.{i}.attention.attention"
            parts = tuple(f"{prefix}.{p}.{param}" for p in ("query", "key", "value"))
            plan[f"backbone.layers.{i}.attention.qkv.{param}"] = Source(parts, fuse_qkv)
    hf_state = hf_model.state_dict()
    plan = {k: v for k, v in plan.items() if not k.endswith("num_batches_tracked") or v.keys[0] in hf_state}
    target = model.state_dict()
    result = remap(
        hf_state, plan, target,
        # transformers may omit BatchNorm counters; ours are kept (they do not affect outputs)
        keep_initialised=lambda key: "BatchNorm step counter" if key.endswith("num_batches_tracked") else None,
        source_name=str(model_or_folder) if not isinstance(model_or_folder, nn.Module) else None,
        message="the transformers VitPose model has tensors with no counterpart here",
    )
    model.load_state_dict({**target, **result.state}, strict=True)
    model.to(dtype=next(hf_model.parameters()).dtype)
    model.train(hf_model.training)
    return model
