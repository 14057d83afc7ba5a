"""Initialise a ViTPose / ViTPose+ model from MAE pre-training weights (VITPOSE_REFERENCE.md section 2.7).

Sources: (a) original MAE `.pth` checkpoints (timm layout, usually under `model`), (b) transformers `ViTMAEModel` /
`ViTMAEForPreTraining` folders. What the original ViTPose initialisation does, made explicit:

* the patch kernel is zero-padded around the centre when its size differs (MAE ViT-H: 14 -> 16, 1 px per side);
* the position grid (14x14 for patch 16 at 224) is resized with bicubic interpolation (align_corners=False) to the
  model's grid, with the cls slot kept in front (ViTPose adds that slot to every token);
* for MoE configs, shared fc2 takes the first D - part_features rows of the dense fc2 and every expert the last
  part_features rows (all experts start identical);
* MAE's final `norm` does not reach ViTPose's `last_norm` in the original (a name mismatch leaves it at 1 / 0); that
  is kept by default and `load_final_norm=True` copies it instead;
* keys MAE has and ViTPose does not (decoder, mask token, cls token, ...) are listed as ignored with a reason; the
  keypoint heads keep their own initialisation.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..modeling import VitPosePlusConfig, VitPosePlusForPoseEstimation
from .checkpoint_io import load_state_dict_file
from .state_dict_tools import (
    CheckpointConversionError,
    Source,
    fuse_qkv,
    ignore_by_patterns,
    pad_patch_kernel,
    remap,
    resize_position_table,
    rows,
)

logger = logging.getLogger(__name__)

_IGNORE_RULES: tuple[tuple[str, str], ...] = (
    (r"cls_token", "ViTPose has no cls token (its position slot is kept and added to every token)"),
    (r"(decoder\.)?mask_token", "MAE mask token: pre-training only"),
    (r"decoder[._].*", "MAE decoder: pre-training only"),
    (r"(head|fc_norm)\..*", "classification fine-tuning layer: not part of ViTPose"),
)
_FINAL_NORM_REASON = (
    "MAE's final norm; the original ViTPose initialisation does not load it into last_norm (name mismatch), so "
    "backbone.layernorm starts at weight 1, bias 0 (pass --load-final-norm to copy it)"
)
_HF_LAYER_RULES: tuple[tuple[str, str], ...] = (
    ("layernorm_before", "norm1"),
    ("layernorm_after", "norm2"),
    ("attention.output.dense", "attn.proj"),
    ("intermediate.dense", "mlp.fc1"),
    ("output.dense", "mlp.fc2"),
    ("attention.o_proj", "attn.proj"),
    ("mlp.fc1", "mlp.fc1"),
    ("mlp.fc2", "mlp.fc2"),
)


# ---------------------------------------------------------------------------------------------------------- reading


def _hf_to_timm(state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """transformers ViTMAE names -> timm/MAE names (q, k, v fused back into qkv). Unknown names pass through."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for name, tensor in state.items():
        key = name[len("vit.") :] if name.startswith("vit.") else name
        if key == "embeddings.cls_token":
            out["cls_token"] = tensor
        elif key == "embeddings.position_embeddings":
            out["pos_embed"] = tensor
        elif key.startswith("embeddings.patch_embeddings.projection."):
            out["patch_embed.proj." + key.rsplit(".", 1)[1]] = tensor
        elif key.startswith("layernorm."):
            out["norm." + key.rsplit(".", 1)[1]] = tensor
        elif m := re.fullmatch(r"encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)", key):
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = tensor
        elif m := re.fullmatch(r"layers\.(\d+)\.attention\.(q|k|v)_proj\.(weight|bias)", key):  # in-memory v5 names
            part = {"q": "query", "k": "key", "v": "value"}[m.group(2)]
            qkv.setdefault((m.group(1), m.group(3)), {})[part] = tensor
        elif m := re.fullmatch(r"(?:encoder\.layer|layers)\.(\d+)\.(.+)\.(weight|bias)", key):
            layer, module, param = m.groups()
            renamed = dict(_HF_LAYER_RULES).get(module)
            out[f"blocks.{layer}.{renamed}.{param}" if renamed else name] = tensor
        else:
            out[key] = tensor  # decoder.*, mask tokens: handled by the ignore rules; others are reported unknown
    for (layer, param), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise CheckpointConversionError(
                f"layer {layer} {param}: found only {sorted(parts)} of query/key/value", source=source
            )
        out[f"blocks.{layer}.attn.qkv.{param}"] = fuse_qkv(parts["query"], parts["key"], parts["value"])
    return out


def _read_hf_folder(folder: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    config_file = os.path.join(folder, "config.json")
    if os.path.isfile(config_file):
        with open(config_file, encoding="utf-8") as handle:
            model_type = json.load(handle).get("model_type")
        if model_type not in ("vit_mae", "vit"):
            raise CheckpointConversionError(
                f"config.json has model_type {model_type!r}; expected a transformers ViTMAE folder ('vit_mae')",
                source=folder,
            )
    index = os.path.join(folder, "model.safetensors.index.json")
    single = os.path.join(folder, "model.safetensors")
    if os.path.isfile(single):
        return load_file(single)
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as handle:
            shards = sorted(set(json.load(handle)["weight_map"].values()))
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(load_file(os.path.join(folder, shard)))
        return state
    bin_file = os.path.join(folder, "pytorch_model.bin")
    if os.path.isfile(bin_file):
        return load_state_dict_file(bin_file)
    raise FileNotFoundError(f"{folder!r} has no model.safetensors(.index.json) or pytorch_model.bin.")


def read_mae_state_dict(path: str | os.PathLike, *, allow_unsafe_pickle: bool = False) -> dict[str, torch.Tensor]:
    """MAE encoder weights in timm/MAE names (`pos_embed`, `blocks.{i}.attn.qkv.weight`, `norm.weight`, ...) from an
    original MAE `.pth` file or a transformers ViTMAE folder. A `VitPosePlusForMaskedImageModeling` folder gives its
    weights in this repository's names (`VitPoseMaeWeights`, with the grid of its position table)."""
    path = os.fspath(path)
    if os.path.isdir(path) and is_vitpose_mae_folder(path):  # this repository's own MAE: kept in its own names
        return read_vitpose_mae_folder(path)
    if os.path.isdir(path):
        return _hf_to_timm(_read_hf_folder(path), path)
    state = load_state_dict_file(path, allow_unsafe_pickle=allow_unsafe_pickle)
    for prefix in ("encoder.", "backbone."):  # some re-saved MAE encoders carry a prefix
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    if any(k.startswith(("vit.", "embeddings.", "encoder.layer.")) for k in state):
        return _hf_to_timm(state, path)
    return state


# ---------------------------------------------------------------------------------------------------------- tensors


def mae_position_table(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """`(1, extra + g*g, D)` MAE table -> `(1, 1 + grid_h * grid_w, D)`: the square grid resized (bicubic,
    align_corners=False) with the cls slot kept in front (a zero slot when the source has none)."""
    num = pos.shape[1]
    side = int(round((num - 1) ** 0.5)) if num > 1 else 0
    if side * side + 1 != num:
        side = int(round(num**0.5))
        if side * side != num:
            raise CheckpointConversionError(f"pos_embed has {num} slots: neither g*g nor 1 + g*g")
        pos = torch.cat([pos.new_zeros(1, 1, pos.shape[2]), pos], dim=1)
    return resize_position_table(pos, (side, side), tuple(grid))


# ---------------------------------------------------------------------------------------------------------- init


@dataclass
class MaeInitResult:
    """A model initialised from MAE and the key accounting.

    Attributes:
        model: the model (train mode, ready for fine-tuning).
        mapped: `{MAE key: our key(s)}` (fc2 maps to fc2 and every expert).
        ignored: `{MAE key: reason}`.
        initialised: `{our key: reason}` for tensors that keep the model's own initialisation.
    """

    model: VitPosePlusForPoseEstimation
    mapped: dict[str, str]
    ignored: dict[str, str]
    initialised: dict[str, str]

    def summary(self) -> str:
        lines = [f"mapped {len(self.mapped)} MAE tensors, ignored {len(self.ignored)}"]
        lines += [f"  ignored {k}: {v}" for k, v in sorted(self.ignored.items())]
        reasons: dict[str, int] = {}
        for reason in self.initialised.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        lines += [f"  kept initialisation of {n} tensor(s): {why}" for why, n in reasons.items()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"mapped": self.mapped, "ignored": self.ignored, "initialised": self.initialised}


def mae_plan(mae: Mapping[str, torch.Tensor], config: VitPosePlusConfig, load_final_norm: bool) -> dict[str, Source]:
    """`{our key: Source(MAE key)}` for the backbone of a `config` model from MAE encoder weights (timm names)."""
    dim, pf = config.hidden_size, config.part_features
    grid = config.patch_grid()
    plan: dict[str, Source] = {
        "backbone.embeddings.position_embeddings": Source.of(
            "pos_embed", lambda t: mae_position_table(t, grid), f"resized to {grid[0]}x{grid[1]}"),
        "backbone.embeddings.patch_embeddings.weight": Source.of(
            "patch_embed.proj.weight", lambda t: pad_patch_kernel(t, config.patch_size)
            if t.ndim == 4 and t.shape[-1] <= config.patch_size else t),
        "backbone.embeddings.patch_embeddings.bias": Source.of("patch_embed.proj.bias"),
    }
    if load_final_norm:
        for param in ("weight", "bias"):
            plan[f"backbone.layernorm.{param}"] = Source.of(f"norm.{param}")
    for i in range(config.num_hidden_layers):
        ours, theirs = f"backbone.layers.{i}", f"blocks.{i}"
        for a, b in (("norm1", "norm1"), ("norm2", "norm2"), ("attention.qkv", "attn.qkv"),
                     ("attention.proj", "attn.proj"), ("mlp.fc1", "mlp.fc1")):
            for param in ("weight", "bias"):
                plan[f"{ours}.{a}.{param}"] = Source.of(f"{theirs}.{b}.{param}")
        for param in ("weight", "bias"):
            fc2 = f"{theirs}.mlp.fc2.{param}"
            if config.num_experts == 1:
                plan[f"{ours}.mlp.fc2.{param}"] = Source.of(fc2)
                continue
            if fc2 in mae and mae[fc2].shape[0] != dim:  # reported as a shape mismatch of the shared part
                plan[f"{ours}.mlp.fc2.{param}"] = Source.of(fc2)
                continue
            # The original MAE loader: shared fc2 = the first D - pf output rows, every expert = the last pf rows.
            plan[f"{ours}.mlp.fc2.{param}"] = Source.of(fc2, rows(0, dim - pf), f"rows 0:{dim - pf}")
            for e in range(config.num_experts):
                plan[f"{ours}.mlp.experts.{e}.{param}"] = Source.of(fc2, rows(dim - pf, dim), f"rows {dim - pf}:{dim}")
    return plan


def init_from_mae_state_dict(
    mae: Mapping[str, torch.Tensor],
    config: VitPosePlusConfig,
    *,
    load_final_norm: bool = False,
    source_grid: tuple[int, int] | None = None,
    source: str | None = None,
) -> MaeInitResult:
    """Build `VitPosePlusForPoseEstimation(config)` and load the MAE encoder `mae` into its backbone: timm/MAE names
    (`mae_plan`) or this repository's own MAE weights (`vitpose_mae_plan`; `source_grid` gives the grid of their
    position table when `mae` is a plain state dict of another grid).

    Raises:
        CheckpointConversionError: listing every unknown, missing or mis-shaped key.
    """
    own_layout = VITPOSE_MAE_PATCH_KEY in mae  # this repository's MAE (`backbone.*` / `decoder.*` names)
    model = VitPosePlusForPoseEstimation(config)
    target = model.state_dict()
    ignore_rules = list(_IGNORE_RULES) if not own_layout else [(r"decoder\..*", _VITPOSE_MAE_DECODER_REASON)]
    if not load_final_norm:
        ignore_rules.append((r"(backbone\.layer)?norm\.(weight|bias)", _FINAL_NORM_REASON))

    def keep(key: str) -> str | None:
        if key.startswith("heads."):
            return "keypoint heads keep their own (mmpose) initialisation"
        if key.startswith("backbone.layernorm.") and not load_final_norm:
            return "weight 1, bias 0, as in the original (MAE's norm is not loaded)"
        return None

    if own_layout:
        _warn_on_architecture_differences(getattr(mae, "config", None), config)
        grid = _source_grid(mae, config.patch_grid(), source_grid, source)
        plan = vitpose_mae_plan(mae, config, load_final_norm, grid)
    else:
        plan = mae_plan(mae, config, load_final_norm)
    result = remap(
        mae, plan, target, ignore=ignore_by_patterns(ignore_rules),
        keep_initialised=keep, source_name=source,
        message=(f"the MAE weights do not fit the model (D={config.hidden_size}, L={config.num_hidden_layers}, "
                 f"experts={config.num_experts}, part_features={config.part_features}); nothing was loaded"),
    )
    model.load_state_dict({**target, **result.state}, strict=True)
    model.train()
    return MaeInitResult(model, result.mapped, result.ignored, result.initialised)


def convert_mae_checkpoint(
    path: str | os.PathLike,
    preset: str,
    *,
    load_final_norm: bool = False,
    allow_unsafe_pickle: bool = False,
    **config_overrides: Any,
) -> MaeInitResult:
    """A `preset` model (with `config_overrides`) initialised from MAE weights at `path` (an original MAE `.pth`
    file or a transformers ViTMAE folder)."""
    config = VitPosePlusConfig.from_preset(preset, **config_overrides)
    mae = read_mae_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    return init_from_mae_state_dict(mae, config, load_final_norm=load_final_norm, source=os.fspath(path))


# ---------------------------------------------------------------------------------------------------------- own MAE

#: `model_type` of this repository's MAE folders (`VitPosePlusMAEConfig`).
VITPOSE_MAE_MODEL_TYPE = "vitpose_plus_mae"
#: A key only this repository's layout has (`VitPosePlusForMaskedImageModeling` and the pose models).
VITPOSE_MAE_PATCH_KEY = "backbone.embeddings.patch_embeddings.weight"
_VITPOSE_MAE_POSITION_KEY = "backbone.embeddings.position_embeddings"
_VITPOSE_MAE_DECODER_REASON = "MAE decoder (embedding, mask token, position table, blocks, prediction): pre-training"


class VitPoseMaeWeights(dict):
    """The state dict of a `VitPosePlusForMaskedImageModeling` in its own names (`backbone.*`, `decoder.*`), with the
    patch grid `(rows, columns)` its position table was built for and the model config."""

    def __init__(self, state: Mapping[str, torch.Tensor], grid: tuple[int, int], config: Any = None):
        super().__init__(state)
        self.grid = (int(grid[0]), int(grid[1]))
        self.config = config


def is_vitpose_mae_folder(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder whose `config.json` has `model_type` `"vitpose_plus_mae"`."""
    config_file = os.path.join(os.fspath(path), "config.json")
    if not os.path.isfile(config_file):
        return False
    with open(config_file, encoding="utf-8") as handle:
        try:
            return json.load(handle).get("model_type") == VITPOSE_MAE_MODEL_TYPE
        except json.JSONDecodeError:
            return False


def read_vitpose_mae_folder(path: str | os.PathLike) -> VitPoseMaeWeights:
    """Load a saved `VitPosePlusForMaskedImageModeling` folder (any sharding or dtype `from_pretrained` reads)."""
    from ..modeling import VitPosePlusForMaskedImageModeling

    model = VitPosePlusForMaskedImageModeling.from_pretrained(os.fspath(path))
    return VitPoseMaeWeights(model.state_dict(), model.backbone.embeddings.grid_size, model.config)


def _source_grid(mae: Mapping[str, torch.Tensor], target: tuple[int, int], given: tuple[int, int] | None,
                 source: str | None) -> tuple[int, int]:
    """The grid of our MAE position table: given, carried by `VitPoseMaeWeights`, the target's when the slot count
    matches, or a square one; otherwise an error asking for it."""
    if given is not None:
        return (int(given[0]), int(given[1]))
    if getattr(mae, "grid", None) is not None:
        return mae.grid
    slots = mae[_VITPOSE_MAE_POSITION_KEY].shape[1] - 1
    if slots == target[0] * target[1]:
        return tuple(target)
    side = int(round(slots**0.5))
    if side * side == slots:
        return (side, side)
    raise CheckpointConversionError(
        f"{_VITPOSE_MAE_POSITION_KEY} has {slots} patch slots, which is not the model's {target[0]}x{target[1]} grid "
        "nor a square one; pass source_grid=(rows, columns) or load the MAE folder (its config.json gives the grid)",
        source=source,
    )


def _warn_on_architecture_differences(mae_config: Any, config: VitPosePlusConfig) -> None:
    if mae_config is None:
        return
    for name in ("patch_padding", "layer_norm_eps", "hidden_act", "qkv_bias"):
        if getattr(mae_config, name) != getattr(config, name):
            logger.warning("MAE weights were pre-trained with %s=%r, the model uses %r", name,
                           getattr(mae_config, name), getattr(config, name))


def vitpose_mae_plan(mae: Mapping[str, torch.Tensor], config: VitPosePlusConfig, load_final_norm: bool,
                     source_grid: tuple[int, int]) -> dict[str, Source]:
    """`{our key: Source(MAE key)}` from this repository's MAE weights: the encoder IS a ViTPose backbone under the
    same names, so every tensor is copied unchanged, except the ViTPose+ fc2 split (shared = the first D - pf rows,
    every expert = the last pf rows, as the original MAE initialisation), the position table resized (bicubic, 2-D,
    slot 0 kept) from its own grid to the model's, and a smaller patch kernel zero-padded."""
    dim, pf = config.hidden_size, config.part_features
    grid = config.patch_grid()
    plan: dict[str, Source] = {}
    for key in _backbone_keys(config):
        if key == _VITPOSE_MAE_POSITION_KEY:
            plan[key] = Source.of(key, lambda t: resize_position_table(t, source_grid, grid),
                                  f"resized {source_grid[0]}x{source_grid[1]} -> {grid[0]}x{grid[1]}")
        elif key == VITPOSE_MAE_PATCH_KEY:
            plan[key] = Source.of(key, lambda t: pad_patch_kernel(t, config.patch_size)
                                  if t.ndim == 4 and t.shape[-1] < config.patch_size else t)
        elif key.startswith("backbone.layernorm.") and not load_final_norm:
            continue
        elif (m := re.fullmatch(r"backbone\.layers\.(\d+)\.mlp\.experts\.\d+\.(weight|bias)", key)):
            plan[key] = Source.of(f"backbone.layers.{m.group(1)}.mlp.fc2.{m.group(2)}", rows(dim - pf, dim),
                                  f"rows {dim - pf}:{dim}")
        elif config.num_experts > 1 and re.fullmatch(r"backbone\.layers\.\d+\.mlp\.fc2\.(weight|bias)", key):
            plan[key] = Source.of(key, lambda t: t[: dim - pf].clone() if t.shape[0] == dim else t,
                                  f"rows 0:{dim - pf}")
        else:
            plan[key] = Source.of(key)
    return plan


def _backbone_keys(config: VitPosePlusConfig) -> list[str]:
    with torch.device("meta"):
        model = VitPosePlusForPoseEstimation(config)
    return [key for key in model.state_dict() if key.startswith("backbone.")]
