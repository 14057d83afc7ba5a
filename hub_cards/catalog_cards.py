"""Model cards of the catalog: ViTPose S/B/L/H, ViTPose+ S/B/L/H and every dense split of a ViTPose+ model, built from
`vitpose_plus.modeling.catalog` (architecture, parameter count on the meta device, paper results, MAE base)."""

from __future__ import annotations

import os

from ..file_io import write_text
from ..modeling.catalog import DATASET_METRICS, PRESETS, get_preset
from ..modeling.dataset_specs import VITPOSE_PLUS_DATASETS
from .cards import ModelCardInfo, card_info_for_model, render_model_card, validate_model_card

#: The catalog's model variants: ViTPose S/B/L/H (COCO, classic decoder) and ViTPose+ S/B/L/H (six datasets).
CATALOG_VARIANTS: tuple[str, ...] = tuple(
    name for name, preset in PRESETS.items() if preset.decoder_type == "classic"
)


def catalog_repo_id(variant: str, dataset: str | None = None, org: str = "your-org") -> str:
    """Hub repository id of a catalog card: `{org}/{variant}` or `{org}/{variant}-{dataset}` for a split model."""
    return f"{org}/{variant}" + (f"-{dataset.replace('_', '-')}" if dataset else "")


def card_info_for_variant(variant: str, dataset: str | None = None, org: str = "your-org") -> ModelCardInfo:
    """`ModelCardInfo` of a catalog variant (`CATALOG_VARIANTS`), or of the dense single-dataset model split from a
    ViTPose+ variant for `dataset`; the architecture and parameter count come from the preset, built on the meta
    device (no weights), and the results from `catalog.paper_results`.

    Raises:
        ValueError: for an unknown variant, or a `dataset` on a ViTPose (not ViTPose+) variant or not in it.
    """
    import torch

    from ..modeling import VitPosePlusConfig, VitPosePlusForPoseEstimation

    if variant not in CATALOG_VARIANTS:
        raise ValueError(f"Unknown catalog variant {variant!r}; choose one of {list(CATALOG_VARIANTS)}.")
    plus = variant.startswith("vitpose-plus-")
    preset = get_preset(variant)
    letter = preset.letter
    config = VitPosePlusConfig.from_preset(variant)
    with torch.device("meta"):
        model = VitPosePlusForPoseEstimation(config)
    if dataset is not None:
        if not plus:
            raise ValueError(f"{variant} has a single dataset (coco); split models exist for ViTPose+ variants only.")
        if dataset not in config.dataset_names:
            raise ValueError(f"{variant} has no dataset {dataset!r}; its datasets are {config.dataset_names}.")
        with torch.device("meta"):
            model = VitPosePlusForPoseEstimation(
                VitPosePlusConfig.from_preset(variant, num_experts=1, part_features=0, datasets=[dataset])
            )
        display = DATASET_METRICS.get(dataset, (dataset,))[0]
        return card_info_for_model(
            model,
            title=f"ViTPose+-{letter} {display}",
            description=(
                f"The {display} model of ViTPose+-{letter}: the dense single-dataset model split from the "
                f"six-dataset mixture-of-experts checkpoint (the {display} expert folded into the shared "
                "feed-forward layer, the {display} keypoint head kept). It computes exactly what ViTPose+ computes "
                f"for `dataset_index={VITPOSE_PLUS_DATASETS.index(dataset)}`, at the cost of a plain ViTPose."
            ).replace("{display}", display),
            preset=variant,
            from_vitpose_plus=True,
            provenance=[
                f"Split from `{catalog_repo_id(variant, org=org)}` with `vitpose-plus convert split --dataset "
                f"{dataset}` (exact fold of the expert into fc2)."
            ],
            base_model=catalog_repo_id(variant, org=org),
            repo_id=catalog_repo_id(variant, dataset, org),
            tags=["vitpose-plus-split"],
        )
    if plus:
        title = f"ViTPose+-{letter}"
        description = (
            f"ViTPose+-{letter} (ViTPose++, Xu et al. 2023): a plain vision transformer with a mixture-of-experts "
            "feed-forward layer (a shared part plus one expert per dataset) and one keypoint head per dataset, "
            "trained jointly on COCO, AI Challenger, MPII, AP-10K, APT-36K and COCO-WholeBody. Every head is kept."
        )
        limitations = [
            "Every expert runs only on its own dataset's samples; for one dataset, a split model "
            "(`vitpose-plus convert split`) is as fast as a plain ViTPose of the same size."
        ]
    else:
        title = f"ViTPose-{letter}"
        description = (
            f"ViTPose-{letter} (Xu et al. 2022): a plain vision transformer backbone with the classic deconvolution "
            "decoder, trained on COCO for 17-keypoint human body pose estimation."
        )
        limitations = []
    info = card_info_for_model(
        model,
        title=title,
        description=description,
        preset=variant,
        provenance=[f"The released original checkpoint of {title}, converted with `vitpose-plus convert original`."],
        base_model=preset.mae_base_model,
        repo_id=catalog_repo_id(variant, org=org),
    )
    info.limitations = limitations
    return info


def catalog_cards(org: str = "your-org") -> dict[str, ModelCardInfo]:
    """Every catalog card by repository name: ViTPose S/B/L/H, ViTPose+ S/B/L/H and each ViTPose+ split model."""
    cards: dict[str, ModelCardInfo] = {}
    for variant in CATALOG_VARIANTS:
        cards[variant] = card_info_for_variant(variant, org=org)
        if variant.startswith("vitpose-plus-"):
            for dataset in VITPOSE_PLUS_DATASETS:
                cards[catalog_repo_id(variant, dataset, org).split("/", 1)[1]] = card_info_for_variant(
                    variant, dataset, org
                )
    return cards


def write_catalog_cards(output_dir: str | os.PathLike, org: str = "your-org", progress: bool = False) -> list[str]:
    """Render and validate every catalog card into `output_dir/<repo name>/README.md`; returns the written paths."""
    from tqdm.auto import tqdm

    paths = []
    for name, info in tqdm(catalog_cards(org).items(), desc="cards", unit="card", disable=not progress):
        text = render_model_card(info)
        validate_model_card(text, source=name)
        folder = os.path.join(os.fspath(output_dir), name)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "README.md")
        write_text(path, text)
        paths.append(path)
    return paths
