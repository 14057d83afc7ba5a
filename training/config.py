"""Training run configuration: a YAML file mapped onto dataclasses, validated before anything runs.

See `training/configs/*.yaml` for complete examples. Unknown keys, missing files and datasets whose keypoint count
does not match the model fail here, at start, with a message naming the key or file.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
DEFAULT_CONFIG = os.path.join(CONFIG_DIR, "synthetic.yaml")


@dataclass
class SplitConfig:
    """A COCO-format annotation file and the folder its `file_name`s are relative to."""

    annotations: str
    images: str
    detections: str | None = None  # evaluation only: COCO detection results instead of ground-truth boxes


@dataclass
class SyntheticConfig:
    """Data rendered on the fly by `training.synthetic` into `<output_dir>/data/<name>/`."""

    train_images: int = 400
    val_images: int = 60
    seed: int = 0
    image_size: list[int] = field(default_factory=lambda: [256, 256])
    max_instances: int = 3


@dataclass
class DatasetConfig:
    """One dataset of the run; its position in `datasets` is its dataset index (expert and head)."""

    name: str
    spec: str | None = None  # built-in name, "synthetic_hand", or a JSON/YAML spec file; defaults to `name`
    train: SplitConfig | None = None
    val: SplitConfig | None = None
    synthetic: SyntheticConfig | None = None
    ratio: float | None = None


@dataclass
class AugmentationConfig:
    """`TopDownTransform` settings; the defaults are the original recipe's."""

    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    scale_factor: float = 0.5
    rotation_factor: float = 40.0
    rotation_prob: float = 0.6
    center_jitter_prob: float = 0.3
    sigma: float = 2.0


@dataclass
class ModelConfig:
    preset: str | None = None  # e.g. vitpose-plus-base; None: VitPosePlusConfig defaults + overrides
    overrides: dict[str, Any] = field(default_factory=dict)  # any VitPosePlusConfig field
    init_from: str | None = None  # a saved model folder (e.g. a converted checkpoint) to start from
    mae_checkpoint: str | None = None  # MAE weights (original .pth or a transformers ViTMAE folder)


@dataclass
class OptimizationConfig:
    batch_size: int = 32  # per process
    gradient_accumulation_steps: int = 1
    max_steps: int = 1000  # optimizer steps
    max_epochs: int | None = None  # when set, replaces max_steps (and milestone_epochs the milestones)
    milestone_epochs: list[int] = field(default_factory=list)
    learning_rate: float = 5e-4
    weight_decay: float = 0.1
    layer_decay: float | None = None  # None: the preset's published rate, else 0.75
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 500
    warmup_ratio: float = 0.001
    schedule: str = "step"  # "step" or "cosine"
    milestones: list[int] = field(default_factory=list)  # step schedule: steps at which lr *= gamma
    gamma: float = 0.1
    min_lr_ratio: float = 0.0  # cosine floor
    max_grad_norm: float = 1.0


@dataclass
class RuntimeConfig:
    output_dir: str = "runs/synthetic"
    seed: int = 0
    mixed_precision: str = "no"  # "no", "bf16" or "fp16" (Accelerate)
    gradient_checkpointing: bool = False
    num_workers: int = 0
    log_every: int = 10
    save_every: int = 250
    keep_checkpoints: int = 2
    eval_every: int = 0  # 0: only at the end
    eval_batch_size: int = 64
    flip_test: bool = True
    eval_dark_kernel: int = 11  # DARK-UDP blur kernel at evaluation (original: 11 for 64x48 heatmaps)
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])  # used when installed
    find_unused_parameters: bool = True  # DDP: experts/heads absent from a batch get no gradient


@dataclass
class TrainingConfig:
    datasets: list[DatasetConfig]
    model: ModelConfig = field(default_factory=ModelConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    optimization: OptimizationConfig = field(default_factory=OptimizationConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    source: str = ""


def _build(cls: type, data: Any, where: str) -> Any:
    """Instantiate a (nested) dataclass from a mapping, rejecting unknown keys with their path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__} ({data!r}).")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(fields)}.")
    kwargs = {}
    nested = {"train": SplitConfig, "val": SplitConfig, "synthetic": SyntheticConfig, "model": ModelConfig,
              "optimization": OptimizationConfig, "runtime": RuntimeConfig, "augmentation": AugmentationConfig}
    for key, value in data.items():
        if key in nested and value is not None:
            value = _build(nested[key], value, f"{where}.{key}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"{where}: {err}") from err


def load_training_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None
                         ) -> TrainingConfig:
    """Read and validate a YAML run config (the default synthetic run when `path` is None).

    Relative file paths in the config are resolved against the config file's folder. `overrides` maps dotted keys
    (`"optimization.max_steps"`) to values, applied before validation.
    """
    path = os.fspath(path) if path is not None else DEFAULT_CONFIG
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except OSError as err:
        raise ValueError(f"Cannot read training config {path!r}: {err}") from err
    except yaml.YAMLError as err:
        raise ValueError(f"Training config {path!r} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ValueError(f"Training config {path!r} must be a mapping with 'datasets', 'model', ...")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    if "datasets" not in raw or not raw["datasets"]:
        raise ValueError(f"Training config {path!r}: 'datasets' must list at least one dataset.")
    raw = dict(raw)
    datasets = [_build(DatasetConfig, d, f"{path}: datasets[{i}]") for i, d in enumerate(raw.pop("datasets"))]
    config = _build(TrainingConfig, {**raw, "datasets": []}, path)
    config.datasets = datasets
    config.source = path
    _resolve_paths(config, os.path.dirname(os.path.abspath(path)))
    validate_training_config(config)
    return config


def _resolve_paths(config: TrainingConfig, base: str) -> None:
    def fix(value: str | None) -> str | None:
        if value is None or os.path.isabs(value):
            return value
        return os.path.normpath(os.path.join(base, value))

    for dataset in config.datasets:
        for split in (dataset.train, dataset.val):
            if split is not None:
                split.annotations, split.images, split.detections = (
                    fix(split.annotations), fix(split.images), fix(split.detections))
        if dataset.spec is not None and dataset.spec.endswith((".json", ".yaml", ".yml")):
            dataset.spec = fix(dataset.spec)
    config.model.init_from = fix(config.model.init_from)
    config.model.mae_checkpoint = fix(config.model.mae_checkpoint)


def validate_training_config(config: TrainingConfig) -> None:
    """Checks that need no data loading: files exist, values are in range, names are unique."""
    where = config.source or "training config"
    names = [d.name for d in config.datasets]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: dataset names must be unique, got {names}.")
    for i, dataset in enumerate(config.datasets):
        if dataset.synthetic is None and dataset.train is None:
            raise ValueError(f"{where}: datasets[{i}] ({dataset.name!r}) needs 'train' files or 'synthetic'.")
        for split_name in ("train", "val"):
            split = getattr(dataset, split_name)
            if split is None:
                continue
            for key in ("annotations", "images", "detections"):
                value = getattr(split, key)
                if value is not None and not os.path.exists(value):
                    raise ValueError(f"{where}: datasets[{i}].{split_name}.{key} = {value!r} does not exist.")
        if dataset.ratio is not None and dataset.ratio < 0:
            raise ValueError(f"{where}: datasets[{i}].ratio must be >= 0, got {dataset.ratio}.")
    ratios = [d.ratio for d in config.datasets]
    if any(r is not None for r in ratios) and any(r is None for r in ratios):
        raise ValueError(f"{where}: give 'ratio' for every dataset or for none, got {ratios}.")
    for key in ("init_from", "mae_checkpoint"):
        value = getattr(config.model, key)
        if value is not None and not os.path.exists(value):
            raise ValueError(f"{where}: model.{key} = {value!r} does not exist.")
    opt, run = config.optimization, config.runtime
    if opt.schedule not in ("step", "cosine"):
        raise ValueError(f"{where}: optimization.schedule must be 'step' or 'cosine', got {opt.schedule!r}.")
    if opt.max_steps < 1 or opt.batch_size < 1 or opt.gradient_accumulation_steps < 1:
        raise ValueError(f"{where}: max_steps, batch_size and gradient_accumulation_steps must be positive.")
    if run.mixed_precision not in ("no", "bf16", "fp16"):
        raise ValueError(f"{where}: runtime.mixed_precision must be 'no', 'bf16' or 'fp16', got "
                         f"{run.mixed_precision!r}.")
