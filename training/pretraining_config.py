"""MAE pre-training run configuration (`vitpose-plus pretrain --config ...`): a YAML file mapped onto typed
dataclasses and validated completely before anything runs, with the same rules and messages as the training config
(`training/config.py`): unknown keys are errors with a "did you mean" suggestion, every value is checked for type
and range naming the file, the key, the value and what was expected, and every file the run names must exist.

Sections:

* `datasets`: the pre-training sets, mixed in proportion to their sizes (or to `ratio`). Each is a keypoint dataset
  read by the same loaders as training (`train: {annotations, images[, format]}` or `train: {hub_dataset}`; the
  boxes are used, the keypoints are not), a synthetic set (the same `synthetic:` declaration as a training config,
  only its training images are rendered), or an unlabelled image folder (`image_folder`, read with `datasets`'
  `imagefolder`). `mode` (`crop` or `whole`) overrides the `data` section's for one set.
* `model`: `preset` (the backbone of any preset; ViTPose+ presets give their dense backbone) and `overrides` (any
  `VitPosePlusMAEConfig` field: backbone, `mask_ratio`, `norm_pix_loss`, `decoder_*`).
* `data`: the `MAEPretrainingTransform` settings (mode, flip, box padding, whole-image crop ranges).
* `optimization`: MAE's AdamW recipe: betas (0.9, 0.95), weight decay 0.05 (none on norms and biases; the sin-cos
  tables are fixed), `lr = base_learning_rate * global batch / 256` unless `learning_rate` is given, linear warmup
  then cosine, no gradient clipping.
* `runtime`: output folder, seed, mixed precision, logging, checkpoints and resume as `train`'s, plus the
  reconstruction pictures (`picture_every`, `picture_samples`).

Bundled configs (`PRETRAINING_CONFIG_DIR`, nameable instead of a path): see `bundled_pretraining_configs()`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from .config import CONFIG_DIR, SplitConfig, SyntheticConfig, _check, _did_you_mean, read_config_file

PRETRAINING_CONFIG_DIR = os.path.join(CONFIG_DIR, "pretraining")
DEFAULT_PRETRAINING_CONFIG = os.path.join(PRETRAINING_CONFIG_DIR, "synthetic_mae.yaml")
MODES = ("crop", "whole")


def bundled_pretraining_configs() -> dict[str, str]:
    """The pre-training configs shipped with the package, by name (`synthetic_mae`, ...)."""
    return {os.path.splitext(n)[0]: os.path.join(PRETRAINING_CONFIG_DIR, n)
            for n in sorted(os.listdir(PRETRAINING_CONFIG_DIR)) if n.endswith(".yaml")}


@dataclass
class PretrainingDatasetConfig:
    """One pre-training set; exactly one of `train`, `synthetic` and `image_folder`."""

    name: str
    spec: str | None = None  # keypoint layout of `train` files (built-in or synthetic name, or a spec file); `name`
    train: SplitConfig | None = None  # a keypoint dataset's files (annotations + images) or hub_dataset
    synthetic: SyntheticConfig | None = None  # rendered like training's synthetic sets (training images only)
    image_folder: str | None = None  # unlabelled images, read with `datasets.load_dataset("imagefolder", ...)`
    mode: str | None = None  # "crop" or "whole"; defaults to data.mode
    ratio: float | None = None


@dataclass
class PretrainingModelConfig:
    preset: str | None = None  # the backbone of a preset (e.g. vitpose-base); None: VitPosePlusMAEConfig defaults
    overrides: dict[str, Any] = field(default_factory=dict)  # any VitPosePlusMAEConfig field


@dataclass
class PretrainingDataConfig:
    """`MAEPretrainingTransform` settings; the defaults are MAE's (whole-image mode) and the top-down crop's."""

    mode: str = "crop"  # "crop": person boxes cut out as fine-tuning crops them; "whole": RandomResizedCrop
    flip_prob: float = 0.5
    padding: float = 1.25  # crop mode: box padding
    scale: list[float] = field(default_factory=lambda: [0.2, 1.0])  # whole mode: crop area fraction range
    ratio: list[float] = field(default_factory=lambda: [3.0 / 4.0, 4.0 / 3.0])  # whole mode: aspect range
    ratio_relative_to_input: bool = True  # whole mode: the aspect range is relative to the input's 3:4


@dataclass
class PretrainingOptimizationConfig:
    batch_size: int = 64  # per process
    gradient_accumulation_steps: int = 1
    max_steps: int = 1000  # optimizer steps
    max_epochs: int | None = None  # when set, replaces max_steps
    base_learning_rate: float = 1.5e-4  # MAE's blr: lr = blr * global batch / 256
    learning_rate: float | None = None  # an absolute lr instead of the scaling rule
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    warmup_steps: int = 0
    warmup_epochs: int | None = None  # when set, replaces warmup_steps (MAE: 40 of 800/1600 epochs)
    warmup_ratio: float = 0.0  # warmup starts at lr * warmup_ratio (MAE: 0)
    min_lr_ratio: float = 0.0  # cosine floor (MAE: min_lr 0)
    max_grad_norm: float = 0.0  # 0: no clipping (MAE pre-training does not clip)


@dataclass
class PretrainingRuntimeConfig:
    output_dir: str = "runs/mae"
    seed: int = 0
    mixed_precision: str = "no"  # "no", "bf16" or "fp16" (Accelerate)
    gradient_checkpointing: bool = False
    num_workers: int = 0
    log_every: int = 10
    save_every: int = 500
    keep_checkpoints: int = 2
    picture_every: int = 0  # reconstruction pictures every N steps (0: only at the end)
    picture_samples: int = 4  # rows (samples) per picture
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])  # used when installed
    find_unused_parameters: bool = False  # DDP: every MAE parameter gets a gradient in every step


@dataclass
class PretrainingConfig:
    datasets: list[PretrainingDatasetConfig]
    model: PretrainingModelConfig = field(default_factory=PretrainingModelConfig)
    data: PretrainingDataConfig = field(default_factory=PretrainingDataConfig)
    optimization: PretrainingOptimizationConfig = field(default_factory=PretrainingOptimizationConfig)
    runtime: PretrainingRuntimeConfig = field(default_factory=PretrainingRuntimeConfig)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("source")
        return data

    def dataset_mode(self, dataset: PretrainingDatasetConfig) -> str:
        """The crop mode of one set (its own `mode`, else `data.mode`)."""
        return dataset.mode or self.data.mode


def load_pretraining_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None
                            ) -> PretrainingConfig:
    """Read and validate a YAML pre-training config: a path, a bundled config's name
    (`bundled_pretraining_configs`), or `synthetic_mae` when `path` is None.

    Relative file paths are resolved against the config file's folder. `overrides` maps dotted keys
    (`"optimization.max_steps"`) to values, applied before validation (and validated the same way).
    """
    config = read_config_file(path, overrides, PretrainingConfig, bundled_pretraining_configs(),
                              DEFAULT_PRETRAINING_CONFIG, "pre-training config")
    _resolve_paths(config, os.path.dirname(os.path.abspath(config.source)))
    validate_pretraining_config(config)
    return config


def _resolve_paths(config: PretrainingConfig, base: str) -> None:
    def fix(value: str | None) -> str | None:
        if value is None or os.path.isabs(value):
            return value
        return os.path.normpath(os.path.join(base, value))

    for dataset in config.datasets:
        if dataset.train is not None:
            for key in ("annotations", "images"):
                setattr(dataset.train, key, fix(getattr(dataset.train, key)))
            if dataset.train.hub_dataset is not None and os.path.exists(fix(dataset.train.hub_dataset)):
                dataset.train.hub_dataset = fix(dataset.train.hub_dataset)  # a save_to_disk folder, else a Hub id
        dataset.image_folder = fix(dataset.image_folder)
        if dataset.spec is not None and dataset.spec.endswith((".json", ".yaml", ".yml")):
            dataset.spec = fix(dataset.spec)


def validate_pretraining_config(config: PretrainingConfig) -> None:
    """Checks that need no data loading: values in range, names unique, every named file present, overrides known."""
    where = config.source or "pre-training config"
    names = [d.name for d in config.datasets]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: dataset names must be unique, got {names}.")
    for i, dataset in enumerate(config.datasets):
        here = f"datasets[{i}] ({dataset.name!r})"
        given = [key for key in ("train", "synthetic", "image_folder") if getattr(dataset, key) is not None]
        if len(given) != 1:
            raise ValueError(f"{where}: {here} needs exactly one of 'train' (keypoint files), 'synthetic' or "
                             f"'image_folder', got {given or 'none'}.")
        if dataset.train is not None:
            split = dataset.train
            if split.hub_dataset is None and (split.annotations is None or split.images is None):
                raise ValueError(f"{where}: {here}.train needs 'annotations' and 'images' (or 'hub_dataset').")
            for key in ("detections", "mpii_gt_mat"):
                if getattr(split, key) is not None:
                    raise ValueError(f"{where}: {here}.train.{key} is an evaluation file; pre-training reads only "
                                     "'annotations', 'images', 'format' or 'hub_dataset'.")
            for key in ("annotations", "images"):
                value = getattr(split, key)
                if value is not None and not os.path.exists(value):
                    raise FileNotFoundError(f"{where}: {here}.train.{key} = {value!r} does not exist.")
        if dataset.image_folder is not None and not os.path.isdir(dataset.image_folder):
            raise FileNotFoundError(f"{where}: {here}.image_folder = {dataset.image_folder!r} is not a folder.")
        if dataset.synthetic is not None:
            s = dataset.synthetic
            _check(s.train_images >= 1, where, f"{here}.synthetic.train_images", s.train_images, "at least 1")
            _check(s.max_instances >= 1, where, f"{here}.synthetic.max_instances", s.max_instances, "at least 1")
            _check(len(s.image_size) == 2 and min(s.image_size) >= 32, where, f"{here}.synthetic.image_size",
                   s.image_size, "[height, width], each at least 32")
        if dataset.mode is not None:
            _check(dataset.mode in MODES, where, f"{here}.mode", dataset.mode, f"one of {list(MODES)}")
        if dataset.ratio is not None:
            _check(dataset.ratio >= 0, where, f"{here}.ratio", dataset.ratio, ">= 0")
    ratios = [d.ratio for d in config.datasets]
    if any(r is not None for r in ratios) and any(r is None for r in ratios):
        raise ValueError(f"{where}: give 'ratio' for every dataset or for none, got {ratios}.")
    if all(r is not None for r in ratios):
        _check(sum(ratios) > 0, where, "datasets[*].ratio", ratios, "a positive sum")

    from vitpose_plus.modeling import PRESETS, VitPosePlusMAEConfig

    model = config.model
    if model.preset is not None and model.preset not in PRESETS:
        raise ValueError(f"{where}: model.preset = {model.preset!r}{_did_you_mean(model.preset, list(PRESETS))}; "
                         f"expected one of {list(PRESETS)}.")
    config_fields = sorted(VitPosePlusMAEConfig.__dataclass_fields__)
    for key in model.overrides:
        if key not in config_fields or key == "datasets":
            raise ValueError(f"{where}: model.overrides has an unknown field {key!r}"
                             f"{_did_you_mean(key, config_fields)}; expected a VitPosePlusMAEConfig field.")
    try:
        build_mae_config(config)
    except (ValueError, TypeError) as err:  # the config class's own checks (mask ratio, widths, dense, ...)
        raise ValueError(f"{where}: the model section does not make a valid MAE model: {err}") from err

    data, opt, run = config.data, config.optimization, config.runtime
    _check(data.mode in MODES, where, "data.mode", data.mode, f"one of {list(MODES)}")
    _check(0 <= data.flip_prob <= 1, where, "data.flip_prob", data.flip_prob, "a probability in [0, 1]")
    _check(data.padding >= 1, where, "data.padding", data.padding, "a number >= 1 (1.25 in the original)")
    _check(len(data.scale) == 2 and 0 < data.scale[0] <= data.scale[1] <= 1, where, "data.scale", data.scale,
           "[min, max] with 0 < min <= max <= 1")
    _check(len(data.ratio) == 2 and 0 < data.ratio[0] <= data.ratio[1], where, "data.ratio", data.ratio,
           "[min, max] with 0 < min <= max")
    for key in ("max_steps", "batch_size", "gradient_accumulation_steps"):
        _check(getattr(opt, key) >= 1, where, f"optimization.{key}", getattr(opt, key), "a positive integer")
    if opt.max_epochs is not None:
        _check(opt.max_epochs >= 1, where, "optimization.max_epochs", opt.max_epochs, "a positive integer")
    _check(opt.base_learning_rate > 0, where, "optimization.base_learning_rate", opt.base_learning_rate,
           "a positive number")
    if opt.learning_rate is not None:
        _check(opt.learning_rate > 0, where, "optimization.learning_rate", opt.learning_rate, "a positive number")
    _check(opt.weight_decay >= 0, where, "optimization.weight_decay", opt.weight_decay, ">= 0")
    _check(len(opt.betas) == 2 and all(0 <= b < 1 for b in opt.betas), where, "optimization.betas", opt.betas,
           "two numbers in [0, 1)")
    _check(opt.warmup_steps >= 0, where, "optimization.warmup_steps", opt.warmup_steps, ">= 0")
    if opt.warmup_epochs is not None:
        _check(opt.warmup_epochs >= 0, where, "optimization.warmup_epochs", opt.warmup_epochs, ">= 0")
        _check(opt.max_epochs is not None, where, "optimization.warmup_epochs", opt.warmup_epochs,
               "to be used with max_epochs (or give warmup_steps)")
    _check(0 <= opt.warmup_ratio <= 1, where, "optimization.warmup_ratio", opt.warmup_ratio, "in [0, 1]")
    _check(0 <= opt.min_lr_ratio <= 1, where, "optimization.min_lr_ratio", opt.min_lr_ratio, "in [0, 1]")
    _check(opt.max_grad_norm >= 0, where, "optimization.max_grad_norm", opt.max_grad_norm, ">= 0 (0: no clipping)")
    _check(run.mixed_precision in ("no", "bf16", "fp16"), where, "runtime.mixed_precision", run.mixed_precision,
           "'no', 'bf16' or 'fp16'")
    for key in ("log_every", "keep_checkpoints", "picture_samples"):
        _check(getattr(run, key) >= 1, where, f"runtime.{key}", getattr(run, key), "a positive integer")
    for key in ("save_every", "picture_every", "num_workers"):
        _check(getattr(run, key) >= 0, where, f"runtime.{key}", getattr(run, key), ">= 0 (0: off)")


def build_mae_config(config: PretrainingConfig) -> Any:
    """The `VitPosePlusMAEConfig` of the run: the preset's backbone (or the defaults) with the overrides."""
    from vitpose_plus.modeling import VitPosePlusMAEConfig

    overrides = dict(config.model.overrides)
    if config.model.preset:
        return VitPosePlusMAEConfig.from_preset(config.model.preset, **overrides)
    return VitPosePlusMAEConfig(**overrides)


__all__ = [
    "DEFAULT_PRETRAINING_CONFIG",
    "MODES",
    "PRETRAINING_CONFIG_DIR",
    "PretrainingConfig",
    "PretrainingDataConfig",
    "PretrainingDatasetConfig",
    "PretrainingModelConfig",
    "PretrainingOptimizationConfig",
    "PretrainingRuntimeConfig",
    "build_mae_config",
    "bundled_pretraining_configs",
    "load_pretraining_config",
    "validate_pretraining_config",
]
