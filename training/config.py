"""Training run configuration: a YAML file mapped onto typed dataclasses, validated completely before anything runs.

Every key is checked: unknown keys (anywhere, `model.overrides` included) are errors with a "did you mean"
suggestion; every value is checked for type and range with a message naming the file, the key, the value and what was
expected; numbers written as `1e-3` are numbers; every file the run names must exist. See `training/configs/*.yaml`
for complete examples, and `CONFIG_NAMES` for the configs that can be named instead of given as a path.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from vitpose_plus.file_io import read_yaml_file

from .transforms import AugmentationSettings

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
DEFAULT_CONFIG = os.path.join(CONFIG_DIR, "synthetic.yaml")


def bundled_configs() -> dict[str, str]:
    """The configs shipped with the package, by name (`synthetic`, `vitpose_plus_base_six_datasets`, ...)."""
    return {os.path.splitext(n)[0]: os.path.join(CONFIG_DIR, n) for n in sorted(os.listdir(CONFIG_DIR))
            if n.endswith(".yaml")}


@dataclass
class SplitConfig:
    """The files of one split: an annotation file in its released format and the image folder, or a HF `datasets`
    dataset (a Hub id or a `save_to_disk` folder) with the loader's columns."""

    annotations: str | None = None
    images: str | None = None
    format: str | None = None  # annotation format; defaults from the dataset's layout name
    detections: str | None = None  # evaluation only: COCO detection results instead of ground-truth boxes
    mpii_gt_mat: str | None = None  # evaluation only: MPII's mpii_gt_val.mat (head boxes for PCKh)
    hub_dataset: str | None = None  # instead of annotations/images: a Hub id or a save_to_disk folder
    hub_split: str = "train"


@dataclass
class SyntheticConfig:
    """Data rendered by `vitpose_plus.data.synthetic` into `<output_dir>/data/<name>/` (a cache keyed by these
    values: changing any of them renders the data again)."""

    train_images: int = 400
    val_images: int = 60
    seed: int = 0
    image_size: list[int] = field(default_factory=lambda: [256, 256])
    max_instances: int = 3

    @property
    def split_seeds(self) -> dict[str, int]:
        """The generator seed of each split: the validation images are a stream disjoint from the training ones."""
        return {"train": self.seed, "val": self.seed + 1_000_003}


@dataclass
class DatasetConfig:
    """One dataset of the run; its position in `datasets` is its dataset index (expert and head)."""

    name: str
    spec: str | None = None  # built-in name, a synthetic layout, or a JSON/YAML spec file; defaults to `name`
    train: SplitConfig | None = None
    val: SplitConfig | None = None
    synthetic: SyntheticConfig | None = None
    ratio: float | None = None
    allow_empty: bool = False  # train a dataset with no labelled instance (its head and expert stay untrained)


#: The `augmentation` section: `TopDownTransform`'s settings, defaults the original recipe's (defined once, there).
AugmentationConfig = AugmentationSettings


@dataclass
class BottomUpConfig:
    """`model.task: bottom_up` only: the `BottomUpTrainTransform` augmentation (defaults: the original AE recipe's
    `BottomUpRandomAffine` and `BottomUpRandomFlip`) and the evaluation's settings. The target sigma and the number
    of encoded persons are the model's (`model.overrides.sigma`, `max_num_people`), so training and the saved
    processor agree."""

    flip_prob: float = 0.5
    rotation_factor: float = 30.0
    scale_range: list[float] = field(default_factory=lambda: [0.75, 1.5])
    scale_type: str = "short"  # the square crop covers the image's short ("short") or long ("long") side
    translation_factor: float = 40.0
    position_init: str = "random"  # "sincos": start the (trainable) position table from MAE's 2-D sin-cos table
    eval_nms_threshold: float | None = None  # OKS-NMS on the grouped persons; off, as the original's AE configs
    eval_scales: list[float] = field(default_factory=lambda: [1.0])  # multi-scale test (must include 1)


TASKS = ("top_down", "bottom_up")


@dataclass
class ModelConfig:
    task: str = "top_down"  # "top_down" (boxes, VitPosePlusForPoseEstimation) or "bottom_up" (associative embedding)
    preset: str | None = None  # e.g. vitpose-plus-base; None: VitPosePlusConfig defaults + overrides
    overrides: dict[str, Any] = field(default_factory=dict)  # any VitPosePlusConfig (bottom-up: BottomUpConfig) field
    init_from: str | None = None  # a saved model folder (e.g. a converted checkpoint) to start from
    mae_checkpoint: str | None = None  # MAE weights (original .pth, transformers ViTMAE or a vitpose-plus MAE folder)
    allow_partial_init: bool = False  # init_from may leave backbone tensors (not only new datasets) initialised


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
    eval_dark_kernel: int = 11  # DARK-UDP blur kernel; saved in the model's preprocessor_config.json
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])  # used when installed
    find_unused_parameters: bool = True  # DDP: experts/heads absent from a batch get no gradient
    sync_batchnorm: bool = False  # SyncBatchNorm in the classic heads (single-dataset models)


@dataclass
class TokenLearningConfig:
    """`vitpose-plus distill token`: the knowledge token trained alone on the frozen teacher (training/distillation.py);
    the data, augmentation, batch size and runtime come from the rest of the config."""

    max_epochs: int = 3  # the paper tunes the token "for several epochs"
    learning_rate: float = 1e-3  # AdamW, no weight decay, cosine schedule
    warmup_steps: int = 0
    evaluate: bool = True  # the teacher's AP on the val splits without and with the token, in token.json


@dataclass
class DistillationConfig:
    """Knowledge transfer from a larger model (training/distillation.py, docs/distillation.md)."""

    teacher: str | None = None  # a model folder (any size, dense or ViTPose+); its datasets are matched by name
    heatmap_weight: float = 0.0  # weight of MSE(student, teacher heatmaps), added to the ground-truth loss
    knowledge_token: str | None = None  # a token file from `vitpose-plus distill token`, appended and frozen
    teacher_dtype: str = "fp32"  # "fp32", "bf16" or "fp16": the teacher's weights and forward
    token_learning: TokenLearningConfig = field(default_factory=TokenLearningConfig)


@dataclass
class TrainingConfig:
    datasets: list[DatasetConfig]
    model: ModelConfig = field(default_factory=ModelConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    bottom_up: BottomUpConfig = field(default_factory=BottomUpConfig)
    optimization: OptimizationConfig = field(default_factory=OptimizationConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    distillation: DistillationConfig | None = None
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("source")
        return data


# ------------------------------------------------------------------------------------------------------ building
def _did_you_mean(key: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(key, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}.get(
            annotation.__name__, annotation.__name__)
    return str(annotation).replace("typing.", "")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """`value` checked against a field annotation (ints are accepted where numbers are expected)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ValueError as err:
                errors.append(err)
        raise errors[0]
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, where)
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        if not isinstance(value, list):
            raise ValueError(f"{where} = {value!r}: expected a list of {_type_name(item)}.")
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where} = {value!r}: expected a mapping.")
        return dict(value)
    if annotation is Any:
        return value
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(annotation, True)
    if not ok:
        hint = " (quote-free numbers such as 1e-3 or 0.001 are numbers)" if annotation is float and isinstance(
            value, str) else ""
        raise ValueError(f"{where} = {value!r} ({type(value).__name__}): expected {_type_name(annotation)}{hint}.")
    return float(value) if annotation is float else value


def _build(cls: type, data: Any, where: str, sep: str = ".") -> Any:
    """Instantiate a (nested) dataclass from a mapping, rejecting unknown keys and wrong types with their path
    (`where` + `sep` + key: `file.yaml: optimization.batch_size`)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__} ({data!r}).")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    hints = typing.get_type_hints(cls)
    unknown = [key for key in data if key not in fields]
    if unknown:
        key = unknown[0]
        raise ValueError(f"{where}: unknown key {key!r}{_did_you_mean(str(key), sorted(fields))}; expected some of "
                         f"{sorted(fields)}.")
    kwargs = {key: _coerce(value, hints[key], f"{where}{sep}{key}") for key, value in data.items()}
    missing = [name for name, f in fields.items() if name not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}.")
    return cls(**kwargs)


def read_config_file(path: str | os.PathLike | None, overrides: dict[str, Any] | None, cls: type,
                     bundled: dict[str, str], default: str, what: str) -> Any:
    """A YAML config (a path, a bundled config's name, or `default` when `path` is None) with `overrides` applied,
    built into the dataclass `cls` with every key checked; `config.source` is the file. Relative paths are not yet
    resolved and cross-field checks not yet run (the callers do both)."""
    path = os.fspath(path) if path is not None else default
    if not os.path.exists(path) and path in bundled:
        path = bundled[path]
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such {what} {path!r}: give a YAML file or one of the bundled {what}s "
                                f"({', '.join(bundled)}).")
    raw = read_yaml_file(path, what)
    if not isinstance(raw, dict):
        raise ValueError(f"{what.capitalize()} {path!r} must be a mapping with 'datasets', 'model', ...")
    apply_overrides(raw, overrides)
    if not raw.get("datasets"):
        raise ValueError(f"{what.capitalize()} {path!r}: 'datasets' must list at least one dataset.")
    config = _build(cls, raw, path, sep=": ")
    config.source = path
    return config


def load_training_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None
                         ) -> TrainingConfig:
    """Read and validate a YAML run config: a path, a bundled config's name (`bundled_configs`), or the default
    synthetic run when `path` is None.

    Relative file paths in the config are resolved against the config file's folder. `overrides` maps dotted keys
    (`"optimization.max_steps"`) to values, applied before validation (and validated the same way).
    """
    config = read_config_file(path, overrides, TrainingConfig, bundled_configs(), DEFAULT_CONFIG, "training config")
    _resolve_paths(config, os.path.dirname(os.path.abspath(config.source)))
    validate_training_config(config)
    return config


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any] | None) -> None:
    """Set dotted keys (`"optimization.max_steps"`) of a raw config mapping in place, creating missing sections."""
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {dotted}: {key!r} is not a section of the config.")
        node[leaf] = value


def _resolve_paths(config: TrainingConfig, base: str) -> None:
    def fix(value: str | None) -> str | None:
        if value is None or os.path.isabs(value):
            return value
        return os.path.normpath(os.path.join(base, value))

    for dataset in config.datasets:
        for split in (dataset.train, dataset.val):
            if split is None:
                continue
            for key in ("annotations", "images", "detections", "mpii_gt_mat"):
                setattr(split, key, fix(getattr(split, key)))
            if split.hub_dataset is not None and os.path.exists(fix(split.hub_dataset)):
                split.hub_dataset = fix(split.hub_dataset)  # a save_to_disk folder; otherwise a Hub id
        if dataset.spec is not None and dataset.spec.endswith((".json", ".yaml", ".yml")):
            dataset.spec = fix(dataset.spec)
    config.model.init_from = fix(config.model.init_from)
    config.model.mae_checkpoint = fix(config.model.mae_checkpoint)
    if config.distillation is not None:
        config.distillation.teacher = fix(config.distillation.teacher)
        config.distillation.knowledge_token = fix(config.distillation.knowledge_token)


def _check(condition: bool, where: str, key: str, value: Any, expected: str) -> None:
    if not condition:
        raise ValueError(f"{where}: {key} = {value!r}: expected {expected}.")


def validate_training_config(config: TrainingConfig) -> None:
    """Checks that need no data loading: values in range, names unique, every named file present, overrides known."""
    where = config.source or "training config"
    names = [d.name for d in config.datasets]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: dataset names must be unique, got {names}.")
    for i, dataset in enumerate(config.datasets):
        here = f"datasets[{i}] ({dataset.name!r})"
        if dataset.synthetic is None and dataset.train is None:
            raise ValueError(f"{where}: {here} needs 'train' files or 'synthetic'.")
        for split_name in ("train", "val"):
            split = getattr(dataset, split_name)
            if split is None:
                continue
            if split_name == "val" and split.hub_dataset is not None:
                raise ValueError(f"{where}: {here}.val.hub_dataset: the evaluation protocol reads the released "
                                 "ground-truth file; give val.annotations and val.images instead.")
            if split.hub_dataset is None and (split.annotations is None or split.images is None):
                raise ValueError(f"{where}: {here}.{split_name} needs 'annotations' and 'images' (or 'hub_dataset').")
            for key in ("annotations", "images", "detections", "mpii_gt_mat"):
                value = getattr(split, key)
                if value is not None and not os.path.exists(value):
                    raise FileNotFoundError(f"{where}: {here}.{split_name}.{key} = {value!r} does not exist.")
        if dataset.synthetic is not None:
            s = dataset.synthetic
            _check(s.train_images >= 1, where, f"{here}.synthetic.train_images", s.train_images, "at least 1")
            _check(s.val_images >= 0, where, f"{here}.synthetic.val_images", s.val_images, ">= 0")
            _check(s.max_instances >= 1, where, f"{here}.synthetic.max_instances", s.max_instances, "at least 1")
            _check(len(s.image_size) == 2 and min(s.image_size) >= 32, where, f"{here}.synthetic.image_size",
                   s.image_size, "[height, width], each at least 32")
        if dataset.ratio is not None:
            _check(dataset.ratio >= 0, where, f"{here}.ratio", dataset.ratio, ">= 0")
    ratios = [d.ratio for d in config.datasets]
    if any(r is not None for r in ratios) and any(r is None for r in ratios):
        raise ValueError(f"{where}: give 'ratio' for every dataset or for none, got {ratios}.")
    model = config.model
    for key in ("init_from", "mae_checkpoint"):
        value = getattr(model, key)
        if value is not None and not os.path.exists(value):
            raise FileNotFoundError(f"{where}: model.{key} = {value!r} does not exist.")
    from vitpose_plus.modeling import PRESETS, VitPosePlusBottomUpConfig, VitPosePlusConfig

    if model.preset is not None and model.preset not in PRESETS:
        raise ValueError(f"{where}: model.preset = {model.preset!r}{_did_you_mean(model.preset, list(PRESETS))}; "
                         f"expected one of {list(PRESETS)}.")
    _check(model.task in TASKS, where, "model.task", model.task, f"one of {list(TASKS)}")
    _validate_task_sections(config, where)
    config_class = VitPosePlusBottomUpConfig if model.task == "bottom_up" else VitPosePlusConfig
    config_fields = sorted(config_class.__dataclass_fields__)
    for key in model.overrides:
        if key not in config_fields or key == "datasets":
            raise ValueError(f"{where}: model.overrides has an unknown field {key!r}"
                             f"{_did_you_mean(key, config_fields)}; the datasets come from the 'datasets' section.")
    opt, run = config.optimization, config.runtime
    _check(opt.schedule in ("step", "cosine"), where, "optimization.schedule", opt.schedule, "'step' or 'cosine'")
    for key in ("max_steps", "batch_size", "gradient_accumulation_steps"):
        _check(getattr(opt, key) >= 1, where, f"optimization.{key}", getattr(opt, key), "a positive integer")
    if opt.max_epochs is not None:
        _check(opt.max_epochs >= 1, where, "optimization.max_epochs", opt.max_epochs, "a positive integer")
    _check(opt.learning_rate > 0, where, "optimization.learning_rate", opt.learning_rate, "a positive number")
    _check(opt.weight_decay >= 0, where, "optimization.weight_decay", opt.weight_decay, ">= 0")
    if opt.layer_decay is not None:
        _check(0 < opt.layer_decay <= 1, where, "optimization.layer_decay", opt.layer_decay, "in (0, 1]")
    _check(len(opt.betas) == 2 and all(0 <= b < 1 for b in opt.betas), where, "optimization.betas", opt.betas,
           "two numbers in [0, 1)")
    _check(opt.warmup_steps >= 0, where, "optimization.warmup_steps", opt.warmup_steps, ">= 0")
    _check(0 < opt.warmup_ratio <= 1, where, "optimization.warmup_ratio", opt.warmup_ratio, "in (0, 1]")
    _check(0 < opt.gamma <= 1, where, "optimization.gamma", opt.gamma, "in (0, 1]")
    _check(0 <= opt.min_lr_ratio <= 1, where, "optimization.min_lr_ratio", opt.min_lr_ratio, "in [0, 1]")
    _check(opt.max_grad_norm >= 0, where, "optimization.max_grad_norm", opt.max_grad_norm, ">= 0 (0: no clipping)")
    _check(list(opt.milestones) == sorted(opt.milestones) and all(m > 0 for m in opt.milestones), where,
           "optimization.milestones", opt.milestones, "increasing positive step numbers")
    _check(run.mixed_precision in ("no", "bf16", "fp16"), where, "runtime.mixed_precision", run.mixed_precision,
           "'no', 'bf16' or 'fp16'")
    for key in ("log_every", "keep_checkpoints", "eval_batch_size"):
        _check(getattr(run, key) >= 1, where, f"runtime.{key}", getattr(run, key), "a positive integer")
    for key in ("save_every", "eval_every", "num_workers"):
        _check(getattr(run, key) >= 0, where, f"runtime.{key}", getattr(run, key), ">= 0 (0: off)")
    _check(run.eval_dark_kernel >= 1 and run.eval_dark_kernel % 2 == 1, where, "runtime.eval_dark_kernel",
           run.eval_dark_kernel, "a positive odd number")
    aug = config.augmentation
    for key in ("flip_prob", "half_body_prob", "rotation_prob", "center_jitter_prob"):
        _check(0 <= getattr(aug, key) <= 1, where, f"augmentation.{key}", getattr(aug, key), "a probability in [0, 1]")
    _check(0 <= aug.scale_factor < 1, where, "augmentation.scale_factor", aug.scale_factor, "in [0, 1)")
    _check(aug.sigma > 0, where, "augmentation.sigma", aug.sigma, "a positive number")
    if config.distillation is not None:
        _validate_distillation(config.distillation, where)


def _validate_distillation(distill: DistillationConfig, where: str) -> None:
    """The `distillation` section: ranges, and the teacher folder and token file present (their contents are checked
    against the student when the run builds its model)."""
    _check(distill.heatmap_weight >= 0, where, "distillation.heatmap_weight", distill.heatmap_weight,
           ">= 0 (0: no heatmap distillation)")
    _check(distill.teacher_dtype in ("fp32", "bf16", "fp16"), where, "distillation.teacher_dtype",
           distill.teacher_dtype, "'fp32', 'bf16' or 'fp16'")
    if distill.heatmap_weight > 0 and distill.teacher is None:
        raise ValueError(f"{where}: distillation.heatmap_weight = {distill.heatmap_weight} needs distillation.teacher "
                         "(a model folder).")
    if distill.teacher is not None and not os.path.isfile(os.path.join(distill.teacher, "config.json")):
        raise FileNotFoundError(f"{where}: distillation.teacher = {distill.teacher!r} is not a model folder (no "
                                "config.json there).")
    if distill.knowledge_token is not None and not os.path.isfile(distill.knowledge_token):
        raise FileNotFoundError(f"{where}: distillation.knowledge_token = {distill.knowledge_token!r} does not exist "
                                "(write one with `vitpose-plus distill token`).")
    token = distill.token_learning
    _check(token.max_epochs >= 1, where, "distillation.token_learning.max_epochs", token.max_epochs,
           "a positive integer")
    _check(token.learning_rate > 0, where, "distillation.token_learning.learning_rate", token.learning_rate,
           "a positive number")
    _check(token.warmup_steps >= 0, where, "distillation.token_learning.warmup_steps", token.warmup_steps, ">= 0")


def _validate_task_sections(config: TrainingConfig, where: str) -> None:
    """Each task has its own augmentation section; the other task's section must stay at its defaults (a setting
    there would silently do nothing)."""
    if config.model.task == "bottom_up":
        if config.augmentation != AugmentationConfig():
            raise ValueError(f"{where}: 'augmentation' holds the top-down transform's settings, but model.task is "
                             "bottom_up; put the bottom-up augmentation under 'bottom_up' (flip_prob, "
                             "rotation_factor, scale_range, scale_type, translation_factor).")
        bu = config.bottom_up
        _check(0 <= bu.flip_prob <= 1, where, "bottom_up.flip_prob", bu.flip_prob, "a probability in [0, 1]")
        _check(bu.rotation_factor >= 0, where, "bottom_up.rotation_factor", bu.rotation_factor, ">= 0 (degrees)")
        _check(len(bu.scale_range) == 2 and 0 < bu.scale_range[0] <= bu.scale_range[1], where,
               "bottom_up.scale_range", bu.scale_range, "[min, max] with 0 < min <= max")
        _check(bu.scale_type in ("short", "long"), where, "bottom_up.scale_type", bu.scale_type, "'short' or 'long'")
        _check(bu.translation_factor >= 0, where, "bottom_up.translation_factor", bu.translation_factor,
               ">= 0 (pixels at 200 px scale)")
        _check(bu.position_init in ("random", "sincos"), where, "bottom_up.position_init", bu.position_init,
               "'random' (the initializer's) or 'sincos' (MAE's 2-D sin-cos table)")
        if bu.eval_nms_threshold is not None:
            _check(0 < bu.eval_nms_threshold <= 1, where, "bottom_up.eval_nms_threshold", bu.eval_nms_threshold,
                   "in (0, 1], or null for no OKS-NMS")
        _check(len(bu.eval_scales) >= 1 and all(s > 0 for s in bu.eval_scales) and 1.0 in bu.eval_scales, where,
               "bottom_up.eval_scales", bu.eval_scales, "positive test scales including 1 (the tags come from it)")
        size = config.model.overrides.get("image_size")
        if size is not None:
            _check(isinstance(size, (list, tuple)) and len(size) == 2 and size[0] == size[1], where,
                   "model.overrides.image_size", size, "[side, side]: the bottom-up training input is square")
    elif config.bottom_up != BottomUpConfig():
        raise ValueError(f"{where}: the 'bottom_up' section applies only to model.task: bottom_up (this run is "
                         f"{config.model.task}); remove it or set model.task: bottom_up.")


__all__ = [
    "TASKS",
    "AugmentationConfig",
    "BottomUpConfig",
    "DatasetConfig",
    "DistillationConfig",
    "ModelConfig",
    "OptimizationConfig",
    "RuntimeConfig",
    "SplitConfig",
    "SyntheticConfig",
    "TokenLearningConfig",
    "TrainingConfig",
    "apply_overrides",
    "bundled_configs",
    "load_training_config",
    "validate_training_config",
]
