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
