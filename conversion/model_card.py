"""Render the README model card of a Hub folder from the templates in `hub_cards/`.

Templates are markdown files with `string.Template` placeholders (`$name`); the YAML front matter is generated with
PyYAML from `ModelCardInfo` so that it is always valid. `ModelCardInfo` is the one structure later issues (training,
publishing) extend to describe a model; `render_model_card` is the one renderer.
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml

from .catalog import DATASET_METRICS, HUB_DATASET_IDS, paper_results

if TYPE_CHECKING:
    from ..modeling import VitPosePlusForPoseEstimation
    from .convert_original import ConversionResult

DEFAULT_TEMPLATE = "model_card.md"
_HUB_CARDS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hub_cards")


@dataclass
class ModelCardInfo:
    """Everything a model card says about one model folder.

    Attributes:
        title: heading of the card.
        description: a paragraph under the heading.
        repo_id: Hub repository id used in the usage snippet.
        datasets: dataset names in dataset-index order.
        num_keypoints: keypoints per dataset (same order).
        architecture: one-line architecture summary.
        input_size: (height, width).
        num_parameters: parameter count (BatchNorm buffers excluded).
        results: `{dataset: value}` published scores, with the metric of `catalog.DATASET_METRICS`.
        results_source: where the scores come from.
        base_model: Hub id of the model this one derives from, if any.
        provenance: markdown lines about where the weights come from.
        tags: extra Hub tags.
        license: SPDX id.
        expert_indices: expert of each dataset (same order) for a mixture-of-experts model, else empty.
        limitations: extra model-specific limitations (markdown lines) after the common ones.
    """

    title: str
    description: str
    repo_id: str = "your-name/your-model"
    datasets: list[str] = field(default_factory=list)
    num_keypoints: list[int] = field(default_factory=list)
    architecture: str = ""
    input_size: tuple[int, int] = (256, 192)
    num_parameters: int | None = None
    results: dict[str, float] = field(default_factory=dict)
    results_source: str = "ViTPose / ViTPose++ papers (Xu et al.), as reported for the original checkpoint"
    base_model: str | None = None
    provenance: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    license: str = "apache-2.0"
    expert_indices: list[int] = field(default_factory=list)
    limitations: list[str] = field(default_factory=list)

    def front_matter(self) -> dict[str, Any]:
        """The YAML metadata block (Hub model-card metadata)."""
        meta: dict[str, Any] = {
            "license": self.license,
            "library_name": "transformers",
            "pipeline_tag": "keypoint-detection",
            "tags": ["vitpose", "vitpose-plus", "pose-estimation", "keypoint-detection", *self.tags],
            "datasets": [HUB_DATASET_IDS.get(d, d) for d in self.datasets],
        }
        if self.base_model:
            meta["base_model"] = self.base_model
        if self.results:
            meta["model-index"] = [
                {
                    "name": self.title,
                    "results": [
                        {
                            "task": {"type": "keypoint-detection", "name": "Keypoint detection"},
                            "dataset": {"name": DATASET_METRICS[d][0], "type": HUB_DATASET_IDS.get(d, d)},
                            "metrics": [{"type": DATASET_METRICS[d][1], "value": value, "name": DATASET_METRICS[d][2]}],
                            "source": {"name": self.results_source, "url": "https://arxiv.org/abs/2204.12484"},
                        }
                        for d, value in self.results.items()
                        if d in DATASET_METRICS
                    ],
                }
            ]
        return meta


def _load_template(name: str) -> str:
    try:  # installed package data (vitpose_plus.hub_cards), when packaged
        return resources.files("vitpose_plus.hub_cards").joinpath(name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, TypeError):
        pass
    path = os.path.join(_HUB_CARDS_DIR, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Model-card template {name!r} not found in {_HUB_CARDS_DIR}.")
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def render_model_card(info: ModelCardInfo, template: str = DEFAULT_TEMPLATE) -> str:
    """Render `info` with the `hub_cards/` template `template` (a file name). Unknown placeholders raise `KeyError`."""
    front = yaml.safe_dump(info.front_matter(), sort_keys=False, allow_unicode=True).rstrip("\n")
    datasets_table = ", ".join(
        f"{i}: {name} ({k})" for i, (name, k) in enumerate(zip(info.datasets, info.num_keypoints))
    )
    if info.results:
        rows = "\n".join(
            f"| {DATASET_METRICS[d][0]} | {DATASET_METRICS[d][2]} | {v} |"
            for d, v in info.results.items()
            if d in DATASET_METRICS
        )
        results = (
            f"## Results\n\nFrom the {info.results_source}:\n\n| dataset | metric | value |\n|---|---|---|\n{rows}"
        )
    else:
        results = "## Results\n\nNo published results for this exact model; evaluate it before use."
    index_help = "; ".join(f"`{i}` = {name}" for i, name in enumerate(info.datasets)) or "`0`"
    if len(info.datasets) > 1:
        experts = info.expert_indices or [None] * len(info.datasets)
        rows = "\n".join(
            f"| {i} | {DATASET_METRICS.get(name, (name,))[0]} (`{name}`) | {k} | {'-' if e is None else e} |"
            for i, (name, k, e) in enumerate(zip(info.datasets, info.num_keypoints, experts))
        )
        index_section = (
            "## Dataset index\n\nPass the index (or the name) as `dataset_index`; it picks the expert of the MoE "
            "feed-forward layers and the keypoint head:\n\n| dataset_index | dataset | keypoints | expert |\n"
            f"|---|---|---|---|\n{rows}"
        )
    else:
        name = info.datasets[0] if info.datasets else "the training dataset"
        k = f" ({info.num_keypoints[0]} keypoints)" if info.num_keypoints else ""
        index_section = f"## Dataset index\n\nA single dataset, `{name}`{k}: `dataset_index` may be omitted."
    values = {
        "front_matter": front,
        "title": info.title,
        "description": info.description,
        "architecture": info.architecture,
        "datasets_table": datasets_table,
        "input_size": f"{info.input_size[0]}x{info.input_size[1]}",
        "input_height": info.input_size[0],
        "input_width": info.input_size[1],
        "num_parameters": f"{info.num_parameters:,}" if info.num_parameters is not None else "n/a",
        "results_section": results,
        "repo_id": info.repo_id,
        "example_dataset": 0,
        "example_dataset_name": info.datasets[0] if info.datasets else "coco",
        "dataset_index_section": index_section,
        "limitations_extra": "".join(f"- {line}\n" for line in info.limitations),
        "dataset_index_help": index_help,
        "provenance": "\n".join(f"- {line}" for line in info.provenance) or "- (not recorded)",
    }
    return string.Template(_load_template(template)).substitute(values)


def describe_architecture(model: VitPosePlusForPoseEstimation) -> str:
    """One-line architecture summary of a model."""
    c = model.config
    text = f"ViT D={c.hidden_size}, {c.num_hidden_layers} blocks, {c.num_attention_heads} heads"
    if c.num_experts > 1:
        text += f", MoE FFN with {c.num_experts} experts of {c.part_features} channels"
    return text + f", {c.decoder_type} decoder"


def card_info_for_model(
    model: VitPosePlusForPoseEstimation,
    *,
    title: str,
    description: str,
    preset: str | None = None,
    from_vitpose_plus: bool = False,
    provenance: list[str] | None = None,
    base_model: str | None = None,
    repo_id: str | None = None,
    tags: list[str] | None = None,
) -> ModelCardInfo:
    """`ModelCardInfo` filled from a model's config, with the paper's results for `preset` when known."""
    from ..modeling.modeling_vitpose_plus import count_parameters

    c = model.config
    names = c.dataset_names
    return ModelCardInfo(
        title=title,
        description=description,
        repo_id=repo_id or f"your-name/{title.lower().replace(' ', '-')}",
        datasets=names,
        num_keypoints=[len(d["keypoint_names"]) for d in c.datasets],
        architecture=describe_architecture(model),
        input_size=tuple(c.image_size),
        num_parameters=count_parameters(model),
        results=paper_results(preset, names, c.decoder_type, from_vitpose_plus),
        base_model=base_model,
        provenance=provenance or [],
        tags=tags or [],
        expert_indices=[c.expert_of(i) for i in range(c.num_datasets)] if c.num_experts > 1 else [],
    )


def card_info_for_conversion(result: ConversionResult) -> ModelCardInfo:
    """Model card of a model converted from an original checkpoint."""
    from .checkpoint_io import sha256_of_file

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


# ---------------------------------------------------------------------------------------------------------- catalog
_SIZE_LETTERS = {"small": "S", "base": "B", "large": "L", "huge": "H"}
#: MAE-pretrained backbones on the Hub that the published models were initialised from (none for ViT-S).
_MAE_BASE_MODELS = {"base": "facebook/vit-mae-base", "large": "facebook/vit-mae-large", "huge": "facebook/vit-mae-huge"}
#: The catalog's model variants: ViTPose S/B/L/H (COCO) and ViTPose+ S/B/L/H (six datasets).
CATALOG_VARIANTS: tuple[str, ...] = tuple(
    f"vitpose-{plus}{size}" for plus in ("", "plus-") for size in ("small", "base", "large", "huge")
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
    size = variant.rsplit("-", 1)[1]
    letter = _SIZE_LETTERS[size]
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
                f"for `dataset_index={VITPOSE_PLUS_INDEX[dataset]}`, at the cost of a plain ViTPose."
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
        base_model=_MAE_BASE_MODELS.get(size),
        repo_id=catalog_repo_id(variant, org=org),
    )
    info.limitations = limitations
    return info


#: Dataset index of each ViTPose+ dataset (reference section 1.5).
VITPOSE_PLUS_INDEX: dict[str, int] = {
    name: i for i, name in enumerate(("coco", "aic", "mpii", "ap10k", "apt36k", "coco_wholebody"))
}


def catalog_cards(org: str = "your-org") -> dict[str, ModelCardInfo]:
    """Every catalog card by repository name: ViTPose S/B/L/H, ViTPose+ S/B/L/H and each ViTPose+ split model."""
    cards: dict[str, ModelCardInfo] = {}
    for variant in CATALOG_VARIANTS:
        cards[variant] = card_info_for_variant(variant, org=org)
        if variant.startswith("vitpose-plus-"):
            for dataset in VITPOSE_PLUS_INDEX:
                cards[catalog_repo_id(variant, dataset, org).split("/", 1)[1]] = card_info_for_variant(
                    variant, dataset, org
                )
    return cards


def write_catalog_cards(output_dir: str | os.PathLike, org: str = "your-org") -> list[str]:
    """Render and validate every catalog card into `output_dir/<repo name>/README.md`; returns the written paths."""
    paths = []
    for name, info in catalog_cards(org).items():
        text = render_model_card(info)
        validate_model_card(text, source=name)
        folder = os.path.join(os.fspath(output_dir), name)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "README.md")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        paths.append(path)
    return paths


_REQUIRED_METADATA = ("license", "library_name", "pipeline_tag", "tags", "datasets")


def validate_model_card(text: str, source: str = "model card", online: bool = False) -> Any:
    """Check a rendered card the way the Hub reads it and return its `huggingface_hub.ModelCardData`.

    Offline (default): the YAML block must parse into `ModelCardData` (which parses `model-index` with
    `model_index_to_eval_results`), carry license / library_name / pipeline_tag / tags / datasets, and its eval results
    must round-trip through `eval_results_to_model_index` with numeric values. `online=True` also runs the Hub's own
    validation (`ModelCard.validate`, a network call).

    Raises:
        ValueError: naming `source` and the problem.
    """
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import eval_results_to_model_index

    if not text.startswith("---\n"):
        raise ValueError(f"{source}: the card does not start with a YAML metadata block ('---').")
    try:
        card = ModelCard(text, ignore_metadata_errors=False)
    except Exception as err:  # yaml / model-index errors come in several types
        raise ValueError(f"{source}: invalid card metadata: {err}") from err
    data = card.data
    meta = data.to_dict()
    missing = [key for key in _REQUIRED_METADATA if not meta.get(key)]
    if missing:
        raise ValueError(f"{source}: metadata lacks {missing}.")
    if meta["pipeline_tag"] != "keypoint-detection":
        raise ValueError(f"{source}: pipeline_tag is {meta['pipeline_tag']!r}, expected 'keypoint-detection'.")
    base_model = meta.get("base_model")
    if base_model is not None and (not isinstance(base_model, str) or base_model.count("/") != 1):
        raise ValueError(f"{source}: base_model must be a Hub repository id 'org/name', got {base_model!r}.")
    if data.eval_results:
        for result in data.eval_results:
            if not isinstance(result.metric_value, (int, float)):
                raise ValueError(f"{source}: metric {result.metric_type!r} has a non-numeric value.")
        index = eval_results_to_model_index(data.model_name, data.eval_results)
        if len(index[0]["results"]) != len(data.eval_results):
            raise ValueError(f"{source}: model-index does not round-trip ({len(data.eval_results)} results).")
    if online:
        card.validate()
    return data
