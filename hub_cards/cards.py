"""Model cards: `ModelCardInfo` (what a card says about one model folder), `render_model_card` (the one renderer, over
the templates in this folder) and `validate_model_card` (the Hub's metadata checks).

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

from ..modeling.catalog import DATASET_METRICS, HUB_DATASET_IDS, paper_results

if TYPE_CHECKING:
    from ..modeling import VitPosePlusForPoseEstimation

DEFAULT_TEMPLATE = "model_card.md"
_HUB_CARDS_DIR = os.path.dirname(os.path.abspath(__file__))


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
        measured_results: `{dataset: {metric: value}}` measured on this model's own validation data (training runs,
            `vitpose-plus evaluate`); shown and put in `model-index` beside any published ones.
        measured_source: how they were measured.
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
    measured_results: dict[str, dict[str, float]] = field(default_factory=dict)
    measured_source: str = "vitpose-plus evaluation of this model on its validation split"

    def render(self, template: str | None = None) -> str:
        """The card's markdown (`render_model_card`); `file_io.save_model_folder` calls this, so the low-level folder
        writer needs no import of this module."""
        return render_model_card(self) if template is None else render_model_card(self, template)

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
        results = [
            {
                "task": {"type": "keypoint-detection", "name": "Keypoint detection"},
                "dataset": {"name": DATASET_METRICS[d][0], "type": HUB_DATASET_IDS.get(d, d)},
                "metrics": [{"type": DATASET_METRICS[d][1], "value": value, "name": DATASET_METRICS[d][2]}],
                "source": {"name": self.results_source, "url": "https://arxiv.org/abs/2204.12484"},
            }
            for d, value in self.results.items()
            if d in DATASET_METRICS
        ]
        results += [
            {
                "task": {"type": "keypoint-detection", "name": "Keypoint detection"},
                "dataset": {"name": f"{d} (validation split of the run)", "type": HUB_DATASET_IDS.get(d, d)},
                "metrics": [{"type": name, "value": round(float(value), 4), "name": f"{d} {name}"}
                            for name, value in metrics.items()],
                "source": {"name": self.measured_source},
            }
            for d, metrics in self.measured_results.items()
            if metrics
        ]
        if results:
            meta["model-index"] = [{"name": self.title, "results": results}]
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
    if info.measured_results:
        names = sorted({name for metrics in info.measured_results.values() for name in metrics},
                       key=lambda n: (len(n) > 4, n))[:10]
        header = "| dataset | " + " | ".join(names) + " |\n|---|" + "---|" * len(names)
        body = "\n".join(f"| {d} | " + " | ".join(f"{m[n]:.4f}" if n in m else "" for n in names) + " |"
                         for d, m in info.measured_results.items())
        results += f"\n\nMeasured ({info.measured_source}):\n\n{header}\n{body}"
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
    measured_results: dict[str, dict[str, float]] | None = None,
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
        results=paper_results(preset, names, from_vitpose_plus),
        base_model=base_model,
        provenance=provenance or [],
        tags=tags or [],
        expert_indices=[c.expert_of(i) for i in range(c.num_datasets)] if c.num_experts > 1 else [],
        measured_results=dict(measured_results or {}),
    )


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

