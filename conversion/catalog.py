"""The original ViTPose / ViTPose+ checkpoints and the paper's results for them (VITPOSE_REFERENCE.md sections 2.1, 6).

One place for the numbers the model cards (`model-index`) and docs/conversion.md quote. The converter itself never
relies on a file name: architectures are read from tensor shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

#: How each dataset is scored in the paper (metric type for the Hub's model-index, display name).
DATASET_METRICS: dict[str, tuple[str, str, str]] = {
    # dataset name: (display name, metric type, metric name)
    "coco": ("COCO val2017", "AP", "COCO AP (OKS, 56-AP detector boxes)"),
    "aic": ("AI Challenger", "AP", "AIC AP (OKS, GT boxes)"),
    "mpii": ("MPII", "PCKh@0.5", "MPII PCKh@0.5"),
    "ap10k": ("AP-10K", "AP", "AP-10K AP (OKS, GT boxes)"),
    "apt36k": ("APT-36K", "AP", "APT-36K AP (OKS, GT boxes)"),
    "coco_wholebody": ("COCO-WholeBody", "AP", "WholeBody AP"),
}

#: Hub-style dataset identifiers for the model card's `datasets:` field.
HUB_DATASET_IDS: dict[str, str] = {
    "coco": "coco",
    "aic": "ai_challenger",
    "mpii": "mpii",
    "ap10k": "ap-10k",
    "apt36k": "apt-36k",
    "coco_wholebody": "coco_wholebody",
}

_SINGLE_TASK_COCO_AP = {
    ("small", "classic"): 73.8,
    ("base", "classic"): 75.8,
    ("large", "classic"): 78.3,
    ("huge", "classic"): 79.1,
    ("small", "simple"): 73.5,
    ("base", "simple"): 75.5,
    ("large", "simple"): 78.2,
    ("huge", "simple"): 78.9,
}
_MULTI_TASK_COCO_AP = {"base": 77.1, "large": 78.7, "huge": 79.5}
_PLUS_RESULTS: dict[str, dict[str, float]] = {
    "small": {"coco": 75.8, "aic": 29.7, "mpii": 92.7, "ap10k": 71.4, "apt36k": 74.2, "coco_wholebody": 54.4},
    "base": {"coco": 77.0, "aic": 31.8, "mpii": 92.8, "ap10k": 74.5, "apt36k": 75.9, "coco_wholebody": 57.4},
    "large": {"coco": 78.6, "aic": 34.3, "mpii": 94.0, "ap10k": 80.4, "apt36k": 80.8, "coco_wholebody": 60.6},
    "huge": {"coco": 79.4, "aic": 34.8, "mpii": 94.2, "ap10k": 82.4, "apt36k": 82.3, "coco_wholebody": 61.2},
}


def _size_of(preset: str | None) -> str | None:
    if not preset:
        return None
    for size in ("small", "base", "large", "huge"):
        if size in preset.split("-"):
            return size
    return None


def paper_results(
    preset: str | None, datasets: list[str], decoder_type: str, from_vitpose_plus: bool = False
) -> dict[str, float]:
    """Published scores `{dataset: value}` for a model of `preset` holding `datasets` (see `DATASET_METRICS` for
    the metric of each). `from_vitpose_plus` marks a single-dataset model split from a ViTPose+ checkpoint.
    Empty when the paper has no number for this model."""
    size = _size_of(preset)
    if size is None:
        return {}
    if from_vitpose_plus or (preset or "").startswith("vitpose-plus"):
        return {d: _PLUS_RESULTS[size][d] for d in datasets if d in _PLUS_RESULTS[size]}
    if datasets == ["coco"]:
        value = _SINGLE_TASK_COCO_AP.get((size, decoder_type))
        return {} if value is None else {"coco": value}
    if datasets[:1] == ["coco"] and set(datasets) <= {"coco", "aic", "mpii"} and size in _MULTI_TASK_COCO_AP:
        return {"coco": _MULTI_TASK_COCO_AP[size]}
    return {}


@dataclass(frozen=True)
class OriginalCheckpoint:
    """A released original checkpoint (for the docs table)."""

    file_name: str
    preset: str
    datasets: tuple[str, ...]
    heads: str
    coco_ap: float | None


ORIGINAL_CHECKPOINTS: tuple[OriginalCheckpoint, ...] = (
    OriginalCheckpoint("ViTPose-S classic (vitpose-s.pth)", "vitpose-small", ("coco",), "keypoint_head (17)", 73.8),
    OriginalCheckpoint("vitpose-b.pth", "vitpose-base", ("coco",), "keypoint_head (17)", 75.8),
    OriginalCheckpoint("vitpose-l.pth", "vitpose-large", ("coco",), "keypoint_head (17)", 78.3),
    OriginalCheckpoint("vitpose-h.pth", "vitpose-huge", ("coco",), "keypoint_head (17)", 79.1),
    OriginalCheckpoint(
        "ViTPose-S simple", "vitpose-small + decoder_type=simple", ("coco",), "keypoint_head (17)", 73.5
    ),
    OriginalCheckpoint("vitpose-b-simple.pth", "vitpose-base-simple", ("coco",), "keypoint_head (17)", 75.5),
    OriginalCheckpoint("ViTPose-L simple", "vitpose-large-simple", ("coco",), "keypoint_head (17)", 78.2),
    OriginalCheckpoint("ViTPose-H simple", "vitpose-huge-simple", ("coco",), "keypoint_head (17)", 78.9),
    OriginalCheckpoint(
        "vitpose_base_coco_aic_mpii.pth / vitpose-b-multi-coco.pth",
        "vitpose-base",
        ("coco", "aic", "mpii"),
        "keypoint_head (17) + associate_keypoint_heads.0 (14), .1 (16)",
        77.1,
    ),
    OriginalCheckpoint(
        "vitpose-l-multi-coco.pth",
        "vitpose-large",
        ("coco", "aic", "mpii"),
        "keypoint_head (17) + associate_keypoint_heads.0 (14), .1 (16)",
        78.7,
    ),
    OriginalCheckpoint(
        "vitpose-h-multi-coco.pth",
        "vitpose-huge",
        ("coco", "aic", "mpii"),
        "keypoint_head (17) + associate_keypoint_heads.0 (14), .1 (16)",
        79.5,
    ),
    *(
        OriginalCheckpoint(
            f"vitpose+_{size}.pth",
            f"vitpose-plus-{size}",
            ("coco", "aic", "mpii", "ap10k", "apt36k", "coco_wholebody"),
            "keypoint_head (17) + associate_keypoint_heads.0-4 (14, 16, 17, 17, 133)",
            _PLUS_RESULTS[size]["coco"],
        )
        for size in ("small", "base", "large", "huge")
    ),
)
