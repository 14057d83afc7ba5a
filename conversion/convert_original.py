"""Convert original ViTPose / ViTPose+ checkpoints (mmpose 0.x `.pth` files) into `VitPosePlusForPoseEstimation`.

Supported: ViTPose S/B/L/H (classic and simple decoders), the dense multi-task COCO+AIC+MPII files, ViTPose+ S/B/L/H
with their six heads, and the per-dataset files written by the original `tools/model_split.py` (with the expert and
head leftovers that script leaves behind). The architecture is read from tensor shapes (VITPOSE_REFERENCE.md 2.1, 2.6);
only the number of attention heads needs a size preset or `--variant`.

Every source tensor is either mapped or listed as ignored with a reason; an unknown, missing or mis-shaped key stops
the conversion with the whole list.

The conversion itself is a plan run by the shared remapping toolkit (`state_dict_tools.remap`), which does the
strict accounting. Command line: `vitpose-plus convert original --checkpoint vitpose+_base.pth --output DIR --verify`.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..hub_cards.cards import ModelCardInfo, card_info_for_model
from ..modeling import VitPosePlusConfig, VitPosePlusForPoseEstimation
from ..modeling.catalog import PRESETS, get_preset, heads_for_width, preset_for_architecture
from ..modeling.configuration_vitpose_plus import patch_grid
from ..modeling.dataset_specs import VITPOSE_PLUS_DATASETS, get_dataset_spec, load_dataset_spec_file
from .checkpoint_io import load_state_dict_file, sha256_of_file
from .state_dict_tools import CheckpointConversionError, Source, remap

logger = logging.getLogger(__name__)

PATCH_PADDING = 2

IGNORE_NUM_BATCHES_TRACKED = (
    "BatchNorm step counter: only used when momentum is None (mmpose uses 0.1); "
    "the converted model's counter starts at 0"
)
IGNORE_CLS_TOKEN = "the original ViT never puts a cls token in the sequence (ViTPose issue #34)"
IGNORE_SPLIT_EXPERT = (
    "tools/model_split.py leftover: fc2 already holds this dataset's expert (fc2 has D rows), "
    "the other experts are unused"
)
IGNORE_SPLIT_HEAD = (
    "tools/model_split.py leftover: head of another dataset, whose expert is not part of this single-dataset model"
)

_BLOCK_RE = re.compile(r"^backbone\.blocks\.(\d+)\.")
_EXPERT_RE = re.compile(r"^backbone\.blocks\.(\d+)\.mlp\.experts\.(\d+)\.(weight|bias)$")
_HEAD_RE = re.compile(r"^(keypoint_head|associate_keypoint_heads\.(\d+))\.")


# ---------------------------------------------------------------------------------------------------------- layout


@dataclass
class HeadLayout:
    """One mmpose keypoint head found in an original checkpoint."""

    source_prefix: str
    num_keypoints: int
    decoder_type: str
    deconv_channels: list[int] = field(default_factory=list)
    deconv_kernels: list[int] = field(default_factory=list)
    final_conv_kernel: int = 1


@dataclass
class OriginalLayout:
    """Architecture of an original checkpoint, read from its tensor shapes."""

    hidden_size: int
    num_hidden_layers: int
    patch_size: int
    num_channels: int
    num_patches: int
    mlp_hidden_size: int
    qkv_bias: bool
    num_experts: int
    part_features: int
    heads: list[HeadLayout]
    #: True for `tools/model_split.py` outputs: fc2 is D wide although experts are present.
    is_split_output: bool = False
    leftover_head_prefixes: list[str] = field(default_factory=list)

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 1


def _shape(state: Mapping[str, torch.Tensor], key: str, source: str | None, ndim: int | None = None) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointConversionError(
            "cannot infer the architecture: a required tensor is absent", source=source, missing=[key]
        )
    shape = tuple(state[key].shape)
    if ndim is not None and len(shape) != ndim:
        raise CheckpointConversionError(
            f"cannot infer the architecture: {key} has {len(shape)} dimensions, expected {ndim}",
            source=source,
            mismatched=[(key, shape, ("?",) * ndim)],
        )
    return shape


def _head_prefixes(state: Mapping[str, torch.Tensor]) -> list[str]:
    prefixes: dict[str, int] = {}
    for key in state:
        match = _HEAD_RE.match(key)
        if match:
            prefixes[match.group(1)] = -1 if match.group(2) is None else int(match.group(2))
    return sorted(prefixes, key=lambda p: prefixes[p])


def _infer_head(state: Mapping[str, torch.Tensor], prefix: str, hidden_size: int, source: str | None) -> HeadLayout:
    final = _shape(state, f"{prefix}.final_layer.weight", source, ndim=4)
    deconv_indices = sorted(
        int(m.group(1))
        for key in state
        if (m := re.match(rf"^{re.escape(prefix)}\.deconv_layers\.(\d+)\.weight$", key)) and state[key].ndim == 4
    )
    if not deconv_indices:
        return HeadLayout(prefix, final[0], "simple", final_conv_kernel=final[-1])
    channels, kernels = [], []
    for block, index in enumerate(deconv_indices):
        if index != 3 * block:
            raise CheckpointConversionError(
                f"head {prefix!r}: deconvolution weights at indices {deconv_indices}, expected 0, 3, 6, ... "
                "(mmpose's [deconv, BatchNorm, ReLU] blocks)",
                source=source,
            )
        shape = tuple(state[f"{prefix}.deconv_layers.{index}.weight"].shape)
        channels.append(shape[1])
        kernels.append(shape[-1])
    return HeadLayout(prefix, final[0], "classic", channels, kernels, final[-1])


def infer_original_layout(state: Mapping[str, torch.Tensor], source: str | None = None) -> OriginalLayout:
    """Read the architecture of an original-layout state dict from its shapes (reference 2.6).

    Raises:
        CheckpointConversionError: when a tensor the inference needs is absent or malformed.
    """
    pos = _shape(state, "backbone.pos_embed", source, ndim=3)
    hidden = pos[2]
    patch = _shape(state, "backbone.patch_embed.proj.weight", source, ndim=4)
    blocks = {int(m.group(1)) for key in state if (m := _BLOCK_RE.match(key))}
    if not blocks:
        raise CheckpointConversionError(
            "no transformer blocks (backbone.blocks.{i}.*) found; is this an original ViTPose checkpoint?",
            source=source,
            missing=["backbone.blocks.0.attn.qkv.weight"],
        )
    depth = max(blocks) + 1
    fc1 = _shape(state, "backbone.blocks.0.mlp.fc1.weight", source, ndim=2)
    fc2 = _shape(state, "backbone.blocks.0.mlp.fc2.weight", source, ndim=2)
    experts = {int(m.group(2)) for key in state if (m := _EXPERT_RE.match(key))}
    num_experts = max(experts) + 1 if experts else 0
    is_split_output = False
    if fc2[0] == hidden:  # dense FFN; experts next to a dense fc2 are model_split.py leftovers
        is_split_output = num_experts > 0
        num_experts, part_features = 1, 0
    else:
        if num_experts == 0:
            raise CheckpointConversionError(
                f"backbone.blocks.0.mlp.fc2.weight has {fc2[0]} output rows (< hidden size {hidden}), which means a "
                "ViTPose+ mixture-of-experts FFN, but no backbone.blocks.{i}.mlp.experts.{e}.* tensors are present",
                source=source,
                missing=["backbone.blocks.0.mlp.experts.0.weight"],
            )
        part_features = _shape(state, "backbone.blocks.0.mlp.experts.0.weight", source, ndim=2)[0]

    prefixes = _head_prefixes(state)
    if not prefixes:
        raise CheckpointConversionError(
            "no keypoint head (keypoint_head.* or associate_keypoint_heads.{j}.*) found",
            source=source,
            missing=["keypoint_head.final_layer.weight"],
        )
    leftovers: list[str] = []
    if is_split_output:
        # model_split.py's coco.pth keeps every associate head; the other outputs copy theirs over keypoint_head.
        leftovers = [p for p in prefixes if p != "keypoint_head"]
        prefixes = [p for p in prefixes if p == "keypoint_head"]
        if not prefixes:
            raise CheckpointConversionError(
                "fc2 is dense and experts are present (a model_split.py output) but there is no keypoint_head",
                source=source,
                missing=["keypoint_head.final_layer.weight"],
            )
    heads = [_infer_head(state, prefix, hidden, source) for prefix in prefixes]
    kinds = {(h.decoder_type, tuple(h.deconv_channels), tuple(h.deconv_kernels), h.final_conv_kernel) for h in heads}
    if len(kinds) > 1:
        raise CheckpointConversionError(
            "the heads use different decoders, which one model cannot hold: "
            + "; ".join(
                f"{h.source_prefix}: {h.decoder_type} {h.deconv_channels} k{h.final_conv_kernel}" for h in heads
            ),
            source=source,
        )
    return OriginalLayout(
        hidden_size=hidden,
        num_hidden_layers=depth,
        patch_size=patch[-1],
        num_channels=patch[1],
        num_patches=pos[1] - 1,
        mlp_hidden_size=fc1[0],
        qkv_bias="backbone.blocks.0.attn.qkv.bias" in state,
        num_experts=num_experts,
        part_features=part_features,
        heads=heads,
        is_split_output=is_split_output,
        leftover_head_prefixes=leftovers,
    )


# ---------------------------------------------------------------------------------------------------------- config


def infer_image_size(num_patches: int, patch_size: int, image_size: Sequence[int] | None = None) -> list[int]:
    """Input (height, width) whose patch grid has `num_patches` tokens: `image_size` when given (checked), 256x192 for
    192 tokens, otherwise the 4:3 grid with that many tokens."""
    if image_size is not None:
        height, width = (int(v) for v in image_size)
        rows, columns = patch_grid(height, width, patch_size, PATCH_PADDING)
        if rows * columns != num_patches:
            raise CheckpointConversionError(
                f"image size {height}x{width} gives a {rows}x{columns} patch grid, but backbone.pos_embed has "
                f"{num_patches} patch slots"
            )
        return [height, width]
    grid_h = round(math.sqrt(num_patches * 4 / 3))
    if grid_h > 0 and num_patches % grid_h == 0 and 3 * grid_h == 4 * (num_patches // grid_h):
        return [grid_h * patch_size, num_patches // grid_h * patch_size]
    raise CheckpointConversionError(
        f"backbone.pos_embed has {num_patches} patch slots, which is not a 4:3 grid; pass --image-size HEIGHT WIDTH"
    )


def _dataset_hint(source: str | None) -> str | None:
    """A dataset name in a file name such as `ap10k.pth` or `vitpose_wholebody.pth` (model_split.py names)."""
    if not source:
        return None
    stem = os.path.basename(source).lower()
    for hint, name in (
        ("wholebody", "coco_wholebody"),
        ("apt36k", "apt36k"),
        ("ap10k", "ap10k"),
        ("aic", "aic"),
        ("mpii", "mpii"),
        ("coco", "coco"),
    ):
        if hint in stem:
            return name
    return None


def infer_datasets(
    heads: list[HeadLayout], datasets: Sequence[Any] | None = None, source: str | None = None
) -> list[dict[str, Any]]:
    """Dataset spec of every head, in head order.

    Several heads follow the ViTPose+ index order (COCO, AIC, MPII, AP-10K, APT-36K, COCO-WholeBody; reference 1.5).
    A single head is named from its keypoint count (14 AIC, 16 MPII, 133 COCO-WholeBody, 17 COCO) unless the file name
    names a dataset with that count (e.g. `ap10k.pth`). `datasets` (names, spec dicts or spec file paths) overrides.
    """
    if datasets is not None:
        specs = []
        for entry in datasets:
            if isinstance(entry, str) and os.path.isfile(entry):
                specs.append(load_dataset_spec_file(entry))
            else:
                specs.append(get_dataset_spec(entry))
        if len(specs) != len(heads):
            raise CheckpointConversionError(
                f"{len(specs)} dataset(s) given ({[s.name for s in specs]}) but the checkpoint has {len(heads)} "
                f"head(s) ({[h.source_prefix for h in heads]})",
                source=source,
            )
    elif len(heads) > 1:
        if len(heads) > len(VITPOSE_PLUS_DATASETS):
            raise CheckpointConversionError(
                f"{len(heads)} heads but only {len(VITPOSE_PLUS_DATASETS)} ViTPose+ datasets are known; "
                "pass --datasets",
                source=source,
            )
        specs = [get_dataset_spec(name) for name in VITPOSE_PLUS_DATASETS[: len(heads)]]
    else:
        k = heads[0].num_keypoints
        hint = _dataset_hint(source)
        by_count = {14: "aic", 16: "mpii", 17: "coco", 133: "coco_wholebody"}
        if hint is not None and get_dataset_spec(hint).num_keypoints == k:
            name = hint
        elif k in by_count:
            name = by_count[k]
        else:
            raise CheckpointConversionError(
                f"the head has {k} keypoints, which matches no built-in dataset; pass --datasets with a spec file",
                source=source,
            )
        specs = [get_dataset_spec(name)]
    bad = [
        f"{h.source_prefix} has {h.num_keypoints} keypoints but dataset {s.name!r} has {s.num_keypoints}"
        for h, s in zip(heads, specs)
        if h.num_keypoints != s.num_keypoints
    ]
    if bad:
        raise CheckpointConversionError(
            "heads and datasets disagree: " + "; ".join(bad) + ". Pass --datasets NAME [NAME ...] in head order "
            "(keypoint_head first, then associate_keypoint_heads.0, .1, ...).",
            source=source,
        )
    return [s.to_dict() for s in specs]


def _default_preset(layout: OriginalLayout) -> str | None:
    preset = preset_for_architecture(layout.hidden_size, layout.num_experts, layout.heads[0].decoder_type)
    return preset.name if preset is not None else None


def build_config(
    layout: OriginalLayout,
    *,
    variant: str | None = None,
    num_attention_heads: int | None = None,
    datasets: Sequence[Any] | None = None,
    image_size: Sequence[int] | None = None,
    source: str | None = None,
) -> tuple[VitPosePlusConfig, str | None]:
    """The `VitPosePlusConfig` of an original checkpoint and the preset it corresponds to (or `None`).

    Shapes give everything but the number of attention heads, which comes from `num_attention_heads`, `variant` (a
    preset name) or the size preset of the embedding width, in that order. `variant` must agree with the shapes.
    """
    preset = variant
    if variant is not None:
        if variant not in PRESETS:
            raise CheckpointConversionError(
                f"unknown --variant {variant!r}; choose one of {list(PRESETS)}", source=source
            )
        reference = get_preset(variant)
        conflicts = []
        if reference.hidden_size != layout.hidden_size:
            conflicts.append(f"hidden size {layout.hidden_size} vs {reference.hidden_size}")
        if reference.num_hidden_layers != layout.num_hidden_layers:
            conflicts.append(f"depth {layout.num_hidden_layers} vs {reference.num_hidden_layers}")
        if reference.is_plus != layout.is_moe:
            conflicts.append(f"{'MoE' if layout.is_moe else 'dense'} FFN vs {reference.num_experts} experts")
        if reference.decoder_type != layout.heads[0].decoder_type:
            conflicts.append(f"{layout.heads[0].decoder_type} decoder vs {reference.decoder_type}")
        if conflicts:
            raise CheckpointConversionError(
                f"--variant {variant} does not match the checkpoint (checkpoint vs variant): " + "; ".join(conflicts),
                source=source,
            )
    else:
        preset = _default_preset(layout)
    if num_attention_heads is None:
        num_attention_heads = get_preset(variant).num_attention_heads if variant else heads_for_width(
            layout.hidden_size)
        if num_attention_heads is None:
            widths = sorted({p.hidden_size for p in PRESETS.values()})
            raise CheckpointConversionError(
                f"the number of attention heads cannot be read from tensor shapes and hidden size {layout.hidden_size} "
                f"is not a published size ({widths}): pass --variant NAME (one of {list(PRESETS)}) or "
                "--num-attention-heads N",
                source=source,
            )
    if layout.hidden_size % num_attention_heads:
        raise CheckpointConversionError(
            f"hidden size {layout.hidden_size} is not divisible by {num_attention_heads} attention heads", source=source
        )
    if layout.mlp_hidden_size % layout.hidden_size:
        raise CheckpointConversionError(
            f"fc1 has {layout.mlp_hidden_size} rows, not a multiple of the hidden size {layout.hidden_size}",
            source=source,
        )
    head = layout.heads[0]
    kwargs: dict[str, Any] = {
        "image_size": infer_image_size(layout.num_patches, layout.patch_size, image_size),
        "patch_size": layout.patch_size,
        "patch_padding": PATCH_PADDING,
        "num_channels": layout.num_channels,
        "hidden_size": layout.hidden_size,
        "num_hidden_layers": layout.num_hidden_layers,
        "num_attention_heads": num_attention_heads,
        "mlp_ratio": layout.mlp_hidden_size / layout.hidden_size,
        "qkv_bias": layout.qkv_bias,
        "layer_norm_eps": 1e-6,
        "num_experts": max(layout.num_experts, 1),
        "part_features": layout.part_features,
        "decoder_type": head.decoder_type,
        "final_conv_kernel": head.final_conv_kernel,
        "datasets": infer_datasets(layout.heads, datasets, source),
    }
    if head.decoder_type == "classic":
        kwargs["deconv_channels"] = head.deconv_channels
        kwargs["deconv_kernels"] = head.deconv_kernels
    if preset is not None:
        kwargs["drop_path_rate"] = get_preset(preset).drop_path_rate
    return VitPosePlusConfig(**kwargs), preset


# ---------------------------------------------------------------------------------------------------------- mapping


def original_plan(config: VitPosePlusConfig, head_prefixes: Sequence[str]) -> dict[str, Source]:
    """The conversion plan `{our key: Source(original key)}` for every tensor of our model except BatchNorm
    `num_batches_tracked` (the original's counters are ignored; ours start at 0).

    `head_prefixes[d]` is the original prefix of dataset d's head (`keypoint_head`, `associate_keypoint_heads.{j}`).
    """
    names = {
        "backbone.embeddings.position_embeddings": "backbone.pos_embed",
        "backbone.embeddings.patch_embeddings.weight": "backbone.patch_embed.proj.weight",
        "backbone.embeddings.patch_embeddings.bias": "backbone.patch_embed.proj.bias",
        "backbone.layernorm.weight": "backbone.last_norm.weight",
        "backbone.layernorm.bias": "backbone.last_norm.bias",
    }
    linear_names = [
        ("attention.qkv", "attn.qkv"),
        ("attention.proj", "attn.proj"),
        ("mlp.fc1", "mlp.fc1"),
        ("mlp.fc2", "mlp.fc2"),
    ]
    if config.num_experts > 1:
        linear_names += [(f"mlp.experts.{e}", f"mlp.experts.{e}") for e in range(config.num_experts)]
    for i in range(config.num_hidden_layers):
        ours, theirs = f"backbone.layers.{i}", f"backbone.blocks.{i}"
        for a, b in [("norm1", "norm1"), ("norm2", "norm2"), *linear_names]:
            for param in ("weight", "bias"):
                if a == "attention.qkv" and param == "bias" and not config.qkv_bias:
                    continue
                names[f"{ours}.{a}.{param}"] = f"{theirs}.{b}.{param}"
    for d, prefix in enumerate(head_prefixes):
        if config.decoder_type == "classic":
            for block in range(len(config.deconv_channels)):
                names[f"heads.{d}.deconv_layers.{block}.deconv.weight"] = f"{prefix}.deconv_layers.{3 * block}.weight"
                for param in ("weight", "bias", "running_mean", "running_var"):
                    names[f"heads.{d}.deconv_layers.{block}.batchnorm.{param}"] = (
                        f"{prefix}.deconv_layers.{3 * block + 1}.{param}"
                    )
        for param in ("weight", "bias"):
            names[f"heads.{d}.conv.{param}"] = f"{prefix}.final_layer.{param}"
    return {ours: Source.of(theirs) for ours, theirs in names.items()}


def _ignore_reason(key: str, layout: OriginalLayout) -> str | None:
    for prefix in layout.leftover_head_prefixes:
        if key.startswith(prefix + "."):
            return IGNORE_SPLIT_HEAD
    if layout.is_split_output and _EXPERT_RE.match(key):
        return IGNORE_SPLIT_EXPERT
    if key.endswith(".num_batches_tracked"):
        return IGNORE_NUM_BATCHES_TRACKED
    if key == "backbone.cls_token":
        return IGNORE_CLS_TOKEN
    return None


@dataclass
class ConversionResult:
    """A converted model and the full key accounting.

    Attributes:
        model: the converted model (eval mode).
        preset: the preset the checkpoint corresponds to, or `None` for a non-published size.
        layout: the architecture read from shapes.
        mapped: `{original key: our key}`.
        ignored: `{original key: reason}`.
        head_prefixes: original head prefix of every dataset (dataset order).
        source: the checkpoint path (or `None` for an in-memory state dict).
    """

    model: VitPosePlusForPoseEstimation
    preset: str | None
    layout: OriginalLayout
    mapped: dict[str, str]
    ignored: dict[str, str]
    head_prefixes: list[str]
    source: str | None = None
    verification: dict[str, float] | None = None

    def summary(self) -> str:
        """Human-readable accounting: counts, heads and every ignored key with its reason."""
        config = self.model.config
        lines = [
            f"source: {self.source or '<state dict>'}",
            f"preset: {self.preset or '(custom size)'}; D={config.hidden_size} L={config.num_hidden_layers} "
            f"heads={config.num_attention_heads} experts={config.num_experts} part_features={config.part_features} "
            f"decoder={config.decoder_type}",
            f"mapped {len(self.mapped)} tensors, ignored {len(self.ignored)}",
        ]
        for d, prefix in enumerate(self.head_prefixes):
            entry = config.datasets[d]
            lines.append(
                f"  dataset {d} {entry['name']!r} ({len(entry['keypoint_names'])} keypoints): head {prefix}"
                + (f", expert {config.expert_of(d)}" if config.num_experts > 1 else "")
            )
        for key, reason in sorted(self.ignored.items()):
            lines.append(f"  ignored {key}: {reason}")
        if self.verification is not None:
            lines.append(
                "verified against the reference forward, max abs difference: "
                + ", ".join(f"{k} {v:.2e}" for k, v in self.verification.items())
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable report (written as `conversion_report.json`)."""
        return {
            "source": os.path.basename(self.source) if self.source else None,
            "preset": self.preset,
            "head_prefixes": self.head_prefixes,
            "mapped": self.mapped,
            "ignored": self.ignored,
            "verification_max_abs_diff": self.verification,
        }

    def card_info(self) -> ModelCardInfo:
        """Model card contents of the converted model (provenance with the file's sha256 and the accounting)."""
        result = self
        model = result.model
        preset = result.preset
        name = preset or "vitpose-custom"
        if result.layout.is_split_output:
            name = f"{name}-{model.config.dataset_names[0]}"
        provenance = []
        if result.source and os.path.isfile(result.source):
            provenance.append(
                f"Converted from the original checkpoint `{os.path.basename(result.source)}` "
                f"(sha256 `{sha256_of_file(result.source)}`) with `vitpose-plus convert original`."
            )
        provenance.append(f"{len(result.mapped)} tensors mapped; {len(result.ignored)} ignored:")
        reasons: dict[str, int] = {}
        for reason in result.ignored.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        provenance.extend(f"  {count} x {reason}" for reason, count in reasons.items())
        if result.verification is not None:
            worst = max(result.verification.values()) if result.verification else 0.0
            provenance.append(f"Verified against an independent reference forward: max abs difference {worst:.2e}.")
        kind = "ViTPose+" if model.config.num_experts > 1 else "ViTPose"
        return card_info_for_model(
            model,
            title=name,
            description=(
                f"{kind} pose estimation model converted exactly from the original ViTPose release, keeping every "
                "keypoint head of the checkpoint (one per dataset)."
            ),
            preset=preset,
            from_vitpose_plus=result.layout.is_split_output,
            provenance=provenance,
        )


def convert_original_state_dict(
    state: Mapping[str, torch.Tensor],
    *,
    variant: str | None = None,
    num_attention_heads: int | None = None,
    datasets: Sequence[Any] | None = None,
    image_size: Sequence[int] | None = None,
    source: str | None = None,
) -> ConversionResult:
    """Convert an original-layout state dict (already unwrapped, `module.` stripped) strictly.

    Raises:
        CheckpointConversionError: listing every unknown, missing and mis-shaped key.
    """
    layout = infer_original_layout(state, source)
    config, preset = build_config(
        layout,
        variant=variant,
        num_attention_heads=num_attention_heads,
        datasets=datasets,
        image_size=image_size,
        source=source,
    )
    head_prefixes = [h.source_prefix for h in layout.heads]
    model = VitPosePlusForPoseEstimation(config)
    target = model.state_dict()
    result = remap(
        state,
        original_plan(config, head_prefixes),
        target,
        ignore=lambda key: _ignore_reason(key, layout),
        keep_initialised=lambda key: "BatchNorm step counter" if key.endswith(".num_batches_tracked") else None,
        source_name=source,
        message=(
            "the checkpoint does not match the inferred architecture "
            f"(D={config.hidden_size}, L={config.num_hidden_layers}, experts={config.num_experts}, "
            f"part_features={config.part_features}, decoder={config.decoder_type}, heads={head_prefixes}); "
            "nothing was converted"
        ),
    )
    model.load_state_dict({**target, **result.state}, strict=True)
    model.eval()
    logger.info("converted %s: %d tensors mapped, %d ignored", source or "state dict", len(result.mapped),
                len(result.ignored))
    return ConversionResult(model, preset, layout, result.mapped, result.ignored, head_prefixes, source)


def convert_original(
    path: str | os.PathLike,
    variant: str | None = None,
    *,
    num_attention_heads: int | None = None,
    datasets: Sequence[Any] | None = None,
    image_size: Sequence[int] | None = None,
    allow_unsafe_pickle: bool = False,
    verify: bool = False,
    atol: float = 1e-4,
) -> ConversionResult:
    """Convert an original ViTPose / ViTPose+ `.pth` file (all heads kept); `result.model` is the model.

    Args:
        path: the original checkpoint (`state_dict`/`model`/`module` dict or a bare state dict).
        variant: a preset name (e.g. `"vitpose-plus-small"`) to take the number of attention heads from; must agree
            with the shapes. Optional for the published sizes.
        num_attention_heads: explicit number of attention heads (overrides `variant`).
        datasets: dataset of every head (names or spec files), in head order, to override the inference.
        image_size: input (height, width), when the position table is not the 256x192 one.
        allow_unsafe_pickle: fully unpickle the file (only for trusted files).
        verify: compare with the independent reference forward (`VerificationError` above `atol`).

    Returns:
        The `ConversionResult` with the key accounting.
    """
    from .reference_forward import verify_against_reference

    path = os.fspath(path)
    state = load_state_dict_file(path, allow_unsafe_pickle=allow_unsafe_pickle)
    result = convert_original_state_dict(
        state,
        variant=variant,
        num_attention_heads=num_attention_heads,
        datasets=datasets,
        image_size=image_size,
        source=path,
    )
    if verify:
        result.verification = verify_against_reference(result.model, state, result.head_prefixes, atol=atol)
    return result
