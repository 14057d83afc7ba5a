"""The catalog: every published ViTPose / ViTPose+ architecture, its training defaults, its released checkpoints and the
papers' results for them, in one table (VITPOSE_REFERENCE.md sections 1.1, 2.1, 4.3 and 6).

`PRESETS` is the table: one `Preset` per architecture. The configuration imports only its architecture part
(`Preset.config_kwargs`); training reads the recipe part (layer decay, learning rate); conversion, model cards and
`docs/conversion.md` read the released checkpoints and results. Adding a size or a checkpoint is one edit here.

This module imports only the standard library (and the dataset order) so that it travels with the modeling code to
the Hub.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .dataset_specs import VITPOSE_PLUS_DATASETS

#: How each dataset is scored in the papers: (display name, metric type, metric name).
DATASET_METRICS: dict[str, tuple[str, str, str]] = {
    "coco": ("COCO val2017", "AP", "COCO AP (OKS, 56-AP detector boxes)"),
    "aic": ("AI Challenger", "AP", "AIC AP (OKS, GT boxes)"),
    "mpii": ("MPII", "PCKh@0.5", "MPII PCKh@0.5"),
    "ap10k": ("AP-10K", "AP", "AP-10K AP (OKS, GT boxes)"),
    "apt36k": ("APT-36K", "AP", "APT-36K AP (OKS, GT boxes)"),
    "coco_wholebody": ("COCO-WholeBody", "AP", "WholeBody AP"),
}

#: Hub-style dataset identifiers for model cards.
HUB_DATASET_IDS: dict[str, str] = {
    "coco": "coco",
    "aic": "ai_challenger",
    "mpii": "mpii",
    "ap10k": "ap-10k",
    "apt36k": "apt-36k",
    "coco_wholebody": "coco_wholebody",
}


@dataclass(frozen=True)
class ReleasedCheckpoint:
    """An original checkpoint of a preset and the paper's results for it.

    Attributes:
        name: the model's name in the papers.
        file_names: the released file(s) (empty where the release names none).
        datasets: dataset of every head, in head order.
        heads: the original head keys and their keypoint counts.
        results: `{dataset: value}` with the metric of `DATASET_METRICS`.
    """

    name: str
    file_names: tuple[str, ...]
    datasets: tuple[str, ...]
    heads: str
    results: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Preset:
    """One published architecture with its recipe and releases.

    Attributes:
        name: preset name, e.g. `"vitpose-plus-base"`.
        size: `"small"`, `"base"`, `"large"` or `"huge"`.
        letter: the paper's size letter (S, B, L, H).
        decoder_type: `"classic"` or `"simple"`.
        num_experts: 1 (ViTPose) or 6 (ViTPose+, one per dataset of `VITPOSE_PLUS_DATASETS`).
        hidden_size, num_hidden_layers, num_attention_heads: the ViT size (heads are in no tensor shape).
        part_features: expert width of the released weights (D / 4; 0 for dense models).
        drop_path_rate: stochastic depth of the recipe.
        layer_decay: layer-wise lr decay of the recipe.
        learning_rate: base learning rate of the recipe.
        mae_base_model: Hub id of the MAE encoder the recipe starts from (none is public for ViT-S).
        checkpoints: the released original checkpoints of this architecture.
    """

    name: str
    size: str
    letter: str
    decoder_type: str
    num_experts: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    part_features: int
    drop_path_rate: float
    layer_decay: float
    learning_rate: float
    mae_base_model: str | None
    checkpoints: tuple[ReleasedCheckpoint, ...] = ()

    @property
    def is_plus(self) -> bool:
        return self.num_experts > 1

    @property
    def datasets(self) -> tuple[str, ...]:
        return VITPOSE_PLUS_DATASETS if self.is_plus else ("coco",)

    @property
    def display_name(self) -> str:
        suffix = " simple" if self.decoder_type == "simple" else ""
        return f"ViTPose{'+' if self.is_plus else ''}-{self.letter}{suffix}"

    def config_kwargs(self) -> dict[str, Any]:
        """The architecture part: `VitPosePlusConfig` keyword arguments (datasets by name)."""
        kwargs: dict[str, Any] = {
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "drop_path_rate": self.drop_path_rate,
            "decoder_type": self.decoder_type,
            "datasets": list(self.datasets),
        }
        if self.is_plus:
            kwargs.update(num_experts=self.num_experts, part_features=self.part_features)
        return kwargs


# (letter, D, L, heads, drop path, layer decay ViTPose, layer decay ViTPose+, MAE base) per size; ViT-S uses 12 heads of
# dim 32 and the released ViTPose+ weights use pf = D / 4 at every size (reference 1.1).
_SIZES: dict[str, tuple[str, int, int, int, float, float, float, str | None]] = {
    "small": ("S", 384, 12, 12, 0.1, 0.8, 0.8, None),
    "base": ("B", 768, 12, 12, 0.3, 0.75, 0.75, "facebook/vit-mae-base"),
    "large": ("L", 1024, 24, 16, 0.5, 0.8, 0.8, "facebook/vit-mae-large"),
    "huge": ("H", 1280, 32, 16, 0.55, 0.85, 0.8, "facebook/vit-mae-huge"),
}
# Paper results (reference section 6): single-task COCO AP by (size, decoder), COCO AP of the dense COCO+AIC+MPII
# models, and the ViTPose+ results on the six datasets.
_COCO_AP = {
    ("small", "classic"): 73.8, ("base", "classic"): 75.8, ("large", "classic"): 78.3, ("huge", "classic"): 79.1,
    ("small", "simple"): 73.5, ("base", "simple"): 75.5, ("large", "simple"): 78.2, ("huge", "simple"): 78.9,
}  # fmt: skip
_MULTI_TASK_COCO_AP = {"base": 77.1, "large": 78.7, "huge": 79.5}
_PLUS_RESULTS: dict[str, dict[str, float]] = {
    "small": {"coco": 75.8, "aic": 29.7, "mpii": 92.7, "ap10k": 71.4, "apt36k": 74.2, "coco_wholebody": 54.4},
    "base": {"coco": 77.0, "aic": 31.8, "mpii": 92.8, "ap10k": 74.5, "apt36k": 75.9, "coco_wholebody": 57.4},
    "large": {"coco": 78.6, "aic": 34.3, "mpii": 94.0, "ap10k": 80.4, "apt36k": 80.8, "coco_wholebody": 60.6},
    "huge": {"coco": 79.4, "aic": 34.8, "mpii": 94.2, "ap10k": 82.4, "apt36k": 82.3, "coco_wholebody": 61.2},
}
# Released file names (reference 2.1); the release names no file for S classic/simple and L/H simple.
_COCO_FILES = {("base", "classic"): ("vitpose-b.pth",), ("large", "classic"): ("vitpose-l.pth",),
               ("huge", "classic"): ("vitpose-h.pth",), ("base", "simple"): ("vitpose-b-simple.pth",)}
_MULTI_TASK_FILES = {
    "base": ("vitpose_base_coco_aic_mpii.pth", "vitpose-b-multi-coco.pth"),
    "large": ("vitpose-l-multi-coco.pth",),
    "huge": ("vitpose-h-multi-coco.pth",),
}
_ONE_HEAD = "`keypoint_head` (17)"
_THREE_HEADS = "`keypoint_head` (17), `associate_keypoint_heads.0` (14), `.1` (16)"
_SIX_HEADS = "`keypoint_head` + `associate_keypoint_heads.0-4` (17, 14, 16, 17, 17, 133)"


def _build_presets() -> dict[str, Preset]:
    presets: dict[str, Preset] = {}
    for size, (letter, dim, depth, heads, drop_path, decay, _, mae) in _SIZES.items():
        for decoder in ("classic", "simple"):
            name = f"vitpose-{size}" + ("-simple" if decoder == "simple" else "")
            model = f"ViTPose-{letter}" + (" simple" if decoder == "simple" else " classic")
            checkpoints = [ReleasedCheckpoint(model, _COCO_FILES.get((size, decoder), ()), ("coco",), _ONE_HEAD,
                                              {"coco": _COCO_AP[(size, decoder)]})]
            if decoder == "classic" and size in _MULTI_TASK_FILES:
                checkpoints.append(ReleasedCheckpoint(f"ViTPose-{letter} COCO+AIC+MPII", _MULTI_TASK_FILES[size],
                                                      ("coco", "aic", "mpii"), _THREE_HEADS,
                                                      {"coco": _MULTI_TASK_COCO_AP[size]}))
            presets[name] = Preset(name, size, letter, decoder, 1, dim, depth, heads, 0, drop_path, decay, 5e-4, mae,
                                   tuple(checkpoints))
    for size, (letter, dim, depth, heads, drop_path, _, plus_decay, mae) in _SIZES.items():
        name = f"vitpose-plus-{size}"
        checkpoint = ReleasedCheckpoint(f"ViTPose+-{letter}", (f"vitpose+_{size}.pth",), VITPOSE_PLUS_DATASETS,
                                        _SIX_HEADS, _PLUS_RESULTS[size])
        presets[name] = Preset(name, size, letter, "classic", len(VITPOSE_PLUS_DATASETS), dim, depth, heads, dim // 4,
                               drop_path, plus_decay, 1e-3, mae, (checkpoint,))
    return presets


#: The catalog, by preset name: `vitpose-{small,base,large,huge}` (classic decoder),
#: `vitpose-{small,base,large,huge}-simple` and `vitpose-plus-{small,base,large,huge}` (six experts and heads).
PRESETS: dict[str, Preset] = _build_presets()


def get_preset(name: str) -> Preset:
    """The catalog entry of a preset; `ValueError` listing the presets for an unknown name."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {list(PRESETS)}.")
    return PRESETS[name]


def preset_for_architecture(hidden_size: int, num_experts: int, decoder_type: str) -> Preset | None:
    """The preset of a published width with this FFN and decoder, or `None` for a custom size."""
    for preset in PRESETS.values():
        if (preset.hidden_size, preset.is_plus, preset.decoder_type) == (hidden_size, num_experts > 1, decoder_type):
            return preset
    return None


def heads_for_width(hidden_size: int) -> int | None:
    """Attention heads of the published size with this width (heads appear in no tensor shape)."""
    return next((p.num_attention_heads for p in PRESETS.values() if p.hidden_size == hidden_size), None)


def paper_results(preset: str | None, datasets: list[str], from_vitpose_plus: bool = False) -> dict[str, float]:
    """The papers' scores `{dataset: value}` for a model of `preset` holding `datasets` (empty when none apply).

    The released checkpoint with the model's datasets gives the numbers (a ViTPose+ model keeping some of its
    datasets keeps their numbers). `from_vitpose_plus` marks a dense single-dataset model split from the
    ViTPose+ checkpoint of that size: it keeps that checkpoint's result for its dataset.
    """
    if not preset or preset not in PRESETS:
        return {}
    entry = PRESETS[preset]
    if from_vitpose_plus:
        entry = PRESETS[f"vitpose-plus-{entry.size}"]
    for checkpoint in entry.checkpoints:
        if (set(datasets) <= set(checkpoint.datasets)) if entry.is_plus else tuple(datasets) == checkpoint.datasets:
            return {d: checkpoint.results[d] for d in datasets if d in checkpoint.results}
    return {}


def checkpoint_table_markdown() -> str:
    """The supported-checkpoints table of `docs/conversion.md`, generated from `PRESETS` (a test keeps them equal)."""
    rows = ["| original checkpoint | preset | datasets (dataset index = head) | heads in the file | COCO AP (paper) |",
            "|---|---|---|---|---|"]
    for preset in PRESETS.values():
        for checkpoint in preset.checkpoints:
            files = " / ".join(f"`{name}`" for name in checkpoint.file_names)
            shown = f"{checkpoint.name} ({files})" if files else checkpoint.name
            target = f"`{preset.name}`" + (f" (pf {preset.part_features} from the weights)" if preset.is_plus else "")
            datasets = ", ".join(checkpoint.datasets)
            rows.append(f"| {shown} | {target} | {datasets} | {checkpoint.heads} | {checkpoint.results['coco']} |")
    rows.append("| `coco.pth`, `aic.pth`, `mpii.pth`, `ap10k.pth`, `apt36k.pth`, `wholebody.pth` (original "
                "`tools/model_split.py`) | dense preset of the size | the one dataset | `keypoint_head` "
                "(+ leftovers) | ViTPose+ column of that size |")
    return "\n".join(rows)


def plus_results_table_markdown() -> str:
    """The ViTPose+ results on the other datasets, per size (for `docs/conversion.md`)."""
    rows = ["| size | MPII PCKh | AIC AP | AP-10K AP | APT-36K AP | WholeBody AP |", "|---|---|---|---|---|---|"]
    for preset in PRESETS.values():
        if preset.is_plus:
            r = preset.checkpoints[0].results
            rows.append(f"| {preset.letter} | {r['mpii']} | {r['aic']} | {r['ap10k']} | {r['apt36k']} | "
                        f"{r['coco_wholebody']} |")
    return "\n".join(rows)


__all__ = [
    "DATASET_METRICS",
    "HUB_DATASET_IDS",
    "PRESETS",
    "Preset",
    "ReleasedCheckpoint",
    "checkpoint_table_markdown",
    "get_preset",
    "heads_for_width",
    "paper_results",
    "plus_results_table_markdown",
    "preset_for_architecture",
]
