"""Initialise a ViTPose / ViTPose+ model from MAE pre-training weights (VITPOSE_REFERENCE.md section 2.7).

Sources: (a) original MAE `.pth` checkpoints (timm layout, usually under `model`), (b) transformers `ViTMAEModel` /
`ViTMAEForPreTraining` folders, (c) this repository's own MAE folders (`VitPosePlusForMaskedImageModeling`, see
`init_from_vitpose_mae_state_dict` at the end). What the original ViTPose initialisation does, made explicit:

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

import argparse
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..modeling import VitPosePlusConfig, VitPosePlusForPoseEstimation
from ..modeling.configuration_vitpose_plus import PRESETS
from .checkpoint_io import CheckpointConversionError, load_state_dict_file

logger = logging.getLogger(__name__)

_IGNORE_RULES: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(r"^cls_token$"), "ViTPose has no cls token (its position slot is kept and added to every token)"),
    (re.compile(r"^(decoder\.)?mask_token$"), "MAE mask token: pre-training only"),
    (re.compile(r"^decoder[._]"), "MAE decoder: pre-training only"),
    (re.compile(r"^(head|fc_norm)\."), "classification fine-tuning layer: not part of ViTPose"),
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
        out[f"blocks.{layer}.attn.qkv.{param}"] = torch.cat([parts["query"], parts["key"], parts["value"]], 0)
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


def pad_patch_kernel(weight: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a `(D, C, k, k)` patch kernel around the centre to `(D, C, size, size)` (`patch_padding='pad'`)."""
    k = weight.shape[-1]
    if k == size:
        return weight
    if k > size:
        raise CheckpointConversionError(f"patch kernel {k}x{k} is larger than the model's {size}x{size}")
    before = (size - k) // 2
    after = size - k - before
    return F.pad(weight, (before, after, before, after))


def resize_position_table(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """`(1, extra + g*g, D)` MAE table -> `(1, 1 + grid_h * grid_w, D)`: bicubic (align_corners=False) resize of the
    square grid, the cls slot kept in front (a zero slot when the source has none)."""
    num = pos.shape[1]
    side = int(round((num - 1) ** 0.5)) if num > 1 else 0
    if side * side + 1 == num:
        extra, tokens = pos[:, :1], pos[:, 1:]
    elif int(round(num**0.5)) ** 2 == num:
        side = int(round(num**0.5))
        extra, tokens = pos.new_zeros(1, 1, pos.shape[2]), pos
    else:
        raise CheckpointConversionError(f"pos_embed has {num} slots: neither g*g nor 1 + g*g")
    dim = pos.shape[2]
    tokens = tokens.reshape(1, side, side, dim).permute(0, 3, 1, 2).float()
    if (side, side) != tuple(grid):
        tokens = F.interpolate(tokens, size=tuple(grid), mode="bicubic", align_corners=False)
    tokens = tokens.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], dim).to(pos.dtype)
    return torch.cat([extra, tokens], dim=1)


# ---------------------------------------------------------------------------------------------------------- init


@dataclass
class MaeInitResult:
    """A model initialised from MAE and the key accounting.

    Attributes:
        model: the model (train mode, ready for fine-tuning).
        mapped: `{MAE key: our key(s)}` (fc2 maps to fc2 and every expert).
        ignored: `{MAE key: reason}`.
        initialised: `{our key prefix: reason}` for tensors that keep the model's own initialisation.
    """

    model: VitPosePlusForPoseEstimation
    mapped: dict[str, str]
    ignored: dict[str, str]
    initialised: dict[str, str]

    def summary(self) -> str:
        lines = [f"mapped {len(self.mapped)} MAE tensors, ignored {len(self.ignored)}"]
        lines += [f"  ignored {k}: {v}" for k, v in sorted(self.ignored.items())]
        lines += [f"  kept initialisation {k}: {v}" for k, v in sorted(self.initialised.items())]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"mapped": self.mapped, "ignored": self.ignored, "initialised": self.initialised}


def init_from_mae_state_dict(
    mae: Mapping[str, torch.Tensor],
    config: VitPosePlusConfig,
    *,
    load_final_norm: bool = False,
    source: str | None = None,
) -> MaeInitResult:
    """Build `VitPosePlusForPoseEstimation(config)` and load the MAE encoder `mae` (timm names) into its backbone.

    Raises:
        CheckpointConversionError: listing every unknown, missing or mis-shaped key.
    """
    if VITPOSE_MAE_PATCH_KEY in mae:  # this repository's own MAE weights (`backbone.*` / `decoder.*` names)
        return init_from_vitpose_mae_state_dict(mae, config, load_final_norm=load_final_norm, source=source)
    model = VitPosePlusForPoseEstimation(config)
    own = model.state_dict()
    dim, pf = config.hidden_size, config.part_features
    new: dict[str, torch.Tensor] = {}
    mapped: dict[str, str] = {}
    ignored: dict[str, str] = {}
    unknown: list[str] = []
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    grid = model.backbone.embeddings.grid_size

    def put(src: str, ours: str, tensor: torch.Tensor, shown_shape: tuple[int, ...] | None = None) -> None:
        if ours not in own:
            unknown.append(f"{src} (no {ours} in a {config.num_hidden_layers}-block model)")
            return
        if tuple(tensor.shape) != tuple(own[ours].shape):
            mismatched.append((src, shown_shape or tuple(tensor.shape), tuple(own[ours].shape)))
            return
        new[ours] = tensor
        mapped[src] = ours if src not in mapped else f"{mapped[src]}, {ours}"

    for key, tensor in mae.items():
        reason = next((why for pattern, why in _IGNORE_RULES if pattern.match(key)), None)
        if key in ("norm.weight", "norm.bias"):
            if load_final_norm:
                put(key, f"backbone.layernorm.{key.split('.')[1]}", tensor)
            else:
                ignored[key] = _FINAL_NORM_REASON
            continue
        if reason is not None:
            ignored[key] = reason
            continue
        if key == "pos_embed":
            if tensor.shape[-1] != dim:
                mismatched.append((key, tuple(tensor.shape), (1, "1 + grid", dim)))
                continue
            put(key, "backbone.embeddings.position_embeddings", resize_position_table(tensor, grid))
            continue
        if key in ("patch_embed.proj.weight", "patch_embed.proj.bias"):
            if key.endswith("weight") and tensor.ndim == 4 and tensor.shape[-1] <= config.patch_size:
                tensor = pad_patch_kernel(tensor, config.patch_size)
            put(key, f"backbone.embeddings.patch_embeddings.{key.rsplit('.', 1)[1]}", tensor)
            continue
        m = re.fullmatch(r"blocks\.(\d+)\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias)", key)
        if not m:
            unknown.append(key)
            continue
        layer, module, param = m.groups()
        ours = f"backbone.layers.{layer}." + {"attn.qkv": "attention.qkv", "attn.proj": "attention.proj"}.get(
            module, module
        )
        if module == "mlp.fc2" and config.num_experts > 1:
            if tensor.shape[0] != dim:
                mismatched.append((key, tuple(tensor.shape), (dim, *own[f"{ours}.{param}"].shape[1:])))
                continue
            put(key, f"{ours}.{param}", tensor[: dim - pf].clone())
            for e in range(config.num_experts):
                put(key, f"backbone.layers.{layer}.mlp.experts.{e}.{param}", tensor[dim - pf :].clone())
            continue
        put(key, f"{ours}.{param}", tensor)

    initialised = {"heads.*": "keypoint heads keep their own (mmpose) initialisation"}
    if not load_final_norm:
        initialised["backbone.layernorm.*"] = "weight 1, bias 0, as in the original (MAE's norm is not loaded)"
    missing = [
        k
        for k in own
        if k.startswith("backbone.")
        and k not in new
        and not (k.startswith("backbone.layernorm.") and not load_final_norm)
    ]
    if unknown or missing or mismatched:
        raise CheckpointConversionError(
            f"the MAE weights do not fit the model (D={dim}, L={config.num_hidden_layers}, "
            f"experts={config.num_experts}, part_features={pf}); nothing was loaded",
            source=source,
            unknown=unknown,
            missing=missing,
            mismatched=mismatched,
        )
    model.load_state_dict(new, strict=False)  # heads / final norm keep their init; coverage checked above
    model.train()
    return MaeInitResult(model, mapped, ignored, initialised)


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
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {list(PRESETS)}.")
    config = VitPosePlusConfig.from_preset(preset, **config_overrides)
    mae = read_mae_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    return init_from_mae_state_dict(mae, config, load_final_norm=load_final_norm, source=os.fspath(path))


# ---------------------------------------------------------------------------------------------------------- command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vitpose-plus convert mae`."""
    parser.add_argument("--checkpoint", required=True, help="original MAE .pth file or transformers ViTMAE folder")
    parser.add_argument("--preset", required=True, choices=PRESETS, help="architecture to initialise")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--datasets", nargs="+", help="datasets (one head each), default: the preset's")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config field override (VALUE parsed as JSON when it parses), e.g. image_size=[384,288]; repeatable",
    )
    parser.add_argument("--load-final-norm", action="store_true", help="copy MAE's norm into the final LayerNorm")
    parser.add_argument("--max-shard-size", default="5GB", help="safetensors shard size")
    parser.add_argument("--allow-unsafe-pickle", action="store_true", help="fully unpickle (trusted files only)")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["KEY=VALUE", ...]` -> `{KEY: VALUE}`, each VALUE parsed as JSON when it parses, else kept as a string."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--override expects KEY=VALUE, got {item!r}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def run(args: argparse.Namespace) -> int:
    """Run `convert mae` with parsed arguments; returns the exit status."""
    from .hub_folder import save_hub_folder
    from .model_card import card_info_for_model

    overrides = parse_overrides(args.override)
    if args.datasets:
        overrides["datasets"] = args.datasets
    result = convert_mae_checkpoint(
        args.checkpoint,
        args.preset,
        load_final_norm=args.load_final_norm,
        allow_unsafe_pickle=args.allow_unsafe_pickle,
        **overrides,
    )
    print(result.summary())
    source = os.fspath(args.checkpoint)
    card = card_info_for_model(
        result.model,
        title=f"{args.preset}-mae-init",
        description=(
            f"{args.preset} initialised from MAE pre-training weights, ready for training (heads untrained: do not "
            "use for inference)."
        ),
        preset=None,
        provenance=[
            f"Backbone from MAE weights `{os.path.basename(source.rstrip('/'))}` via `vitpose-plus convert mae`."
        ],
    )
    save_hub_folder(result.model, args.output, card=card, max_shard_size=args.max_shard_size, report=result.to_dict())
    print(f"saved to {args.output}")
    return 0


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


def resize_position_table_2d(
    pos: torch.Tensor, source_grid: tuple[int, int], grid: tuple[int, int]
) -> torch.Tensor:
    """`(1, 1 + rows * cols, D)` table of a `source_grid` -> `(1, 1 + grid_h * grid_w, D)`: bicubic
    (align_corners=False) resize of the 2-D grid as the original does for MAE tables, slot 0 kept in front."""
    rows, cols = int(source_grid[0]), int(source_grid[1])
    if pos.ndim != 3 or pos.shape[0] != 1 or pos.shape[1] != 1 + rows * cols:
        raise CheckpointConversionError(
            f"position table {tuple(pos.shape)} does not fit a {rows}x{cols} grid: expected (1, {1 + rows * cols}, D)"
        )
    if (rows, cols) == tuple(grid):
        return pos
    dim = pos.shape[2]
    tokens = pos[:, 1:].reshape(1, rows, cols, dim).permute(0, 3, 1, 2).float()
    tokens = F.interpolate(tokens, size=tuple(grid), mode="bicubic", align_corners=False)
    tokens = tokens.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], dim).to(pos.dtype)
    return torch.cat([pos[:, :1], tokens], dim=1)


def _source_grid(mae: Mapping[str, torch.Tensor], target: tuple[int, int], given: tuple[int, int] | None,
                 source: str | None) -> tuple[int, int]:
    """The grid of the MAE position table: given, carried by `VitPoseMaeWeights`, the target's when the slot count
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


def init_from_vitpose_mae_state_dict(
    mae: Mapping[str, torch.Tensor],
    config: VitPosePlusConfig,
    *,
    load_final_norm: bool = False,
    source_grid: tuple[int, int] | None = None,
    source: str | None = None,
) -> MaeInitResult:
    """Build `VitPosePlusForPoseEstimation(config)` (dense or ViTPose+) from this repository's MAE weights.

    The MAE encoder is a ViTPose backbone under the same `backbone.*` names, so every backbone tensor is copied
    unchanged, except:

    * ViTPose+ (`num_experts > 1`): each block's dense `mlp.fc2` is split as the original MAE initialisation does,
      the first `D - part_features` rows into the shared `fc2` and the last `part_features` rows into every expert
      (all experts start identical);
    * the position table `(1, 1 + rows * cols, D)` is taken as is for the same grid, and resized (bicubic, slot 0
      kept) from its own 2-D grid to another one;
    * the final norm `backbone.layernorm.*` is not loaded by default, like the original ViTPose initialisation (its
      name mismatch leaves `last_norm` at 1 / 0, the recipe behind the published numbers, and the MAE norm was
      trained to feed the MAE decoder, not a keypoint head); `load_final_norm=True` copies it.

    The `decoder.*` tensors are listed as ignored with the reason, the keypoint heads keep their initialisation.
    MAE's frozen position table becomes a trainable parameter, as in ViTPose fine-tuning.

    Args:
        mae: `VitPosePlusForMaskedImageModeling` state dict (a `VitPoseMaeWeights` from `read_mae_state_dict`
            carries its grid).
        config: the pose model to build.
        source_grid: `(rows, columns)` of the MAE position table when `mae` does not carry it.

    Raises:
        CheckpointConversionError: listing every unknown, missing or mis-shaped key (nothing is loaded then).
    """
    model = VitPosePlusForPoseEstimation(config)
    own = model.state_dict()
    dim, pf = config.hidden_size, config.part_features
    grid = tuple(model.backbone.embeddings.grid_size)
    new: dict[str, torch.Tensor] = {}
    mapped: dict[str, str] = {}
    ignored: dict[str, str] = {}
    unknown: list[str] = []
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []

    def put(src: str, ours: str, tensor: torch.Tensor) -> None:
        if ours not in own:
            unknown.append(f"{src} (no {ours} in a {config.num_hidden_layers}-block model)")
        elif tuple(tensor.shape) != tuple(own[ours].shape):
            mismatched.append((src, tuple(tensor.shape), tuple(own[ours].shape)))
        else:
            new[ours] = tensor
            mapped[src] = ours if src not in mapped else f"{mapped[src]}, {ours}"

    mae_config = getattr(mae, "config", None)
    if mae_config is not None:
        for field in ("patch_padding", "layer_norm_eps", "hidden_act", "qkv_bias"):
            if getattr(mae_config, field) != getattr(config, field):
                logger.warning("MAE weights were pre-trained with %s=%r, the model uses %r", field,
                               getattr(mae_config, field), getattr(config, field))

    for key, tensor in mae.items():
        if key.startswith("decoder."):
            ignored[key] = _VITPOSE_MAE_DECODER_REASON
        elif key.startswith("backbone.layernorm."):
            if load_final_norm:
                put(key, key, tensor)
            else:
                ignored[key] = _FINAL_NORM_REASON
        elif key == _VITPOSE_MAE_POSITION_KEY:
            if tensor.ndim != 3 or tensor.shape[-1] != dim:
                mismatched.append((key, tuple(tensor.shape), (1, 1 + grid[0] * grid[1], dim)))
                continue
            put(key, key, resize_position_table_2d(tensor, _source_grid(mae, grid, source_grid, source), grid))
        elif key == VITPOSE_MAE_PATCH_KEY and tensor.ndim == 4 and tensor.shape[-1] < config.patch_size:
            put(key, key, pad_patch_kernel(tensor, config.patch_size))
        elif m := re.fullmatch(r"backbone\.layers\.(\d+)\.mlp\.fc2\.(weight|bias)", key):
            if config.num_experts == 1:
                put(key, key, tensor)
                continue
            layer, param = m.groups()
            if tensor.shape[0] != dim:
                mismatched.append((key, tuple(tensor.shape), (dim, *tensor.shape[1:])))
                continue
            put(key, key, tensor[: dim - pf].clone())
            for e in range(config.num_experts):
                put(key, f"backbone.layers.{layer}.mlp.experts.{e}.{param}", tensor[dim - pf :].clone())
        elif key.startswith("backbone."):
            put(key, key, tensor)
        else:
            unknown.append(key)

    initialised = {"heads.*": "keypoint heads keep their own (mmpose) initialisation"}
    if not load_final_norm:
        initialised["backbone.layernorm.*"] = "weight 1, bias 0, as in the original (MAE's norm is not loaded)"
    missing = [
        k for k in own
        if k.startswith("backbone.") and k not in new
        and not (k.startswith("backbone.layernorm.") and not load_final_norm)
    ]
    if unknown or missing or mismatched:
        raise CheckpointConversionError(
            f"the MAE weights do not fit the model (D={dim}, L={config.num_hidden_layers}, "
            f"experts={config.num_experts}, part_features={pf}); nothing was loaded",
            source=source,
            unknown=unknown,
            missing=missing,
            mismatched=mismatched,
        )
    model.load_state_dict(new, strict=False)  # heads / final norm keep their init; coverage checked above
    model.train()
    return MaeInitResult(model, mapped, ignored, initialised)
