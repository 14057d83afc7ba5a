"""Train ViTPose / ViTPose+ with Accelerate on HF `datasets`, top to bottom (in the spirit of transformers'
`run_*_no_trainer.py` examples): config -> data -> model -> optimizer and schedule -> loop -> evaluation -> Hub folder.

    vitpose-plus train [--config FILE_OR_NAME] [--resume | --overwrite] [--set optimization.max_steps=200 ...]
    torchrun --nproc_per_node 2 -m vitpose_plus train --config FILE          # several processes (CPU: gloo)
    accelerate launch --multi_gpu --num_processes 8 -m vitpose_plus train --config FILE

With no config the default synthetic run (`training/configs/synthetic.yaml`) renders three synthetic datasets
(human, quadruped, hand), trains a small ViTPose+ with one expert per dataset and reports COCO-style AP per dataset.

Mixed batches come from the concatenated datasets (in proportion to their sizes, or to `ratio`), every sample with its
dataset index, so the routed experts and heads see only their own samples. AdamW with layer-wise lr decay (no decay
on norms, biases, position table), linear warmup then a step or cosine schedule counted in optimizer steps (the same
on any number of processes), gradient clipping, accumulation and mixed precision come from Accelerate.
`accelerator.save_state` checkpoints every `save_every` steps; `--resume` continues from the newest one with no lost or
repeated step (the sampler and the augmentation are seeded by position) and `log.jsonl` keeps each step once.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from vitpose_plus.data import load_keypoint_dataset, resolve_dataset_spec
from vitpose_plus.data.datasets import keypoint_features
from vitpose_plus.file_io import FolderLock, write_json, write_text
from vitpose_plus.modeling import (
    KeypointDatasetSpec,
    VitPosePlusConfig,
    VitPosePlusForPoseEstimation,
    VitPosePlusImageProcessor,
    get_preset,
)

from . import bottom_up_data
from .config import DatasetConfig, OptimizationConfig, SplitConfig, TrainingConfig
from .data_pipeline import KeypointCollator, MixedDataset, MixedSampler, TopDownTrainingDataset
from .transforms import TopDownTransform

logger = logging.getLogger(__name__)

#: Files of a run in its output folder (anything else there, e.g. the synthetic data cache, is left alone).
RUN_FILES = ("checkpoints", "model", "log.jsonl", "final_metrics.json", "learning_curve.png", "training_config.yaml",
             "tensorboard", "knowledge_token.safetensors", "knowledge_token.json")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the newest checkpoint on disk is the last good state."""


# ------------------------------------------------------------------------------------------------------ schedule
@dataclass(frozen=True)
class Schedule:
    """The learning-rate schedule in optimizer steps (a pure function of the config and the loader length)."""

    max_steps: int
    milestones: tuple[int, ...]
    warmup_steps: int
    warmup_ratio: float
    kind: str
    gamma: float
    min_lr_ratio: float

    def lr_factor(self, step: int) -> float:
        """Warmup (linear from `warmup_ratio`) times the step or cosine schedule, at optimizer step `step`."""
        if self.kind == "cosine":
            progress = min(step / max(self.max_steps, 1), 1.0)
            factor = self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        else:
            factor = self.gamma ** sum(step >= m for m in self.milestones)
        if step < self.warmup_steps:
            factor *= 1 - (1 - step / self.warmup_steps) * (1 - self.warmup_ratio)
        return factor


def training_schedule(opt: OptimizationConfig, steps_per_epoch: int) -> Schedule:
    """The schedule of `opt`: epoch recipes (`max_epochs`, `milestone_epochs`) converted with `steps_per_epoch`
    optimizer steps per epoch, else `max_steps` and `milestones` as given."""
    max_steps, milestones = opt.max_steps, tuple(opt.milestones)
    if opt.max_epochs is not None:
        max_steps = opt.max_epochs * steps_per_epoch
        milestones = tuple(e * steps_per_epoch for e in opt.milestone_epochs)
    return Schedule(max_steps, milestones, opt.warmup_steps, opt.warmup_ratio, opt.schedule, opt.gamma,
                    opt.min_lr_ratio)


# ------------------------------------------------------------------------------------------------------ output folder
def prepare_output_folder(config: TrainingConfig, resume: bool, overwrite: bool, is_main: bool,
                          run_files: Sequence[str] = RUN_FILES) -> FolderLock:
    """Check the output-folder policy and lock the folder; nothing is deleted here (`begin_run` does that, with
    `overwrite`, once everything is validated).

    `run_files` are the names a run writes there (`RUN_FILES`; pre-training passes its own), whose presence marks a
    previous run.

    Raises:
        FileExistsError: the folder holds a previous run and neither `resume` nor `overwrite` was given.
    """
    out = config.runtime.output_dir
    previous = [name for name in run_files if os.path.exists(os.path.join(out, name))]
    if previous and not (resume or overwrite):
        raise FileExistsError(
            f"Output folder {out!r} holds a previous run ({', '.join(previous)}); pass --resume to continue it or "
            "--overwrite to replace it (or choose another runtime.output_dir)."
        )
    return FolderLock(out).acquire() if is_main else FolderLock(out)


def begin_run(output_dir: str, resume: bool, overwrite: bool, is_main: bool, config_file: str,
              config_dict: dict[str, Any], run_files: Sequence[str] = RUN_FILES) -> None:
    """Start writing into the (locked) output folder, once the config, data and model are validated: with
    `overwrite`, remove the previous run's `run_files` now (so a typo or a bad file never costs the previous run);
    then write the run's config as `config_file`. Resumed runs keep everything. Main process only."""
    if not is_main or resume:
        return
    import yaml

    if overwrite:
        for name in run_files:
            path = os.path.join(output_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    write_text(os.path.join(output_dir, config_file), yaml.safe_dump(config_dict, sort_keys=False))


def _checkpoints(output_dir: str) -> list[str]:
    folder = os.path.join(output_dir, "checkpoints")
    if not os.path.isdir(folder):
        return []
    found = [d for d in os.listdir(folder) if d.startswith("step_") and os.path.exists(
        os.path.join(folder, d, "trainer_state.json"))]
    return [os.path.join(folder, d) for d in sorted(found, key=lambda d: int(d.split("_")[1]))]


def _read_trainer_state(checkpoint: str) -> dict[str, Any]:
    path = os.path.join(checkpoint, "trainer_state.json")
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"Cannot resume from {checkpoint!r}: {path} is unreadable or truncated ({err}); delete that "
                         "checkpoint folder to resume from the one before.") from err
    missing = [k for k in ("step", "epoch", "batches_in_epoch", "samples") if k not in state]
    if missing:
        raise ValueError(f"Cannot resume from {checkpoint!r}: {path} lacks {missing}.")
    return state


def truncate_log(log_path: str, step: int) -> None:
    """Keep the records of steps <= `step` (a resumed run writes the later ones again, exactly once)."""
    if not os.path.exists(log_path):
        return
    kept = []
    with open(log_path, encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            if record.get("step", 0) <= step:
                kept.append(line if line.endswith("\n") else line + "\n")
    write_text(log_path, "".join(kept))


def _log_jsonl(path: str, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()


# ------------------------------------------------------------------------------------------------------ data
def resolve_spec(dataset: DatasetConfig) -> KeypointDatasetSpec:
    """The keypoint layout of a run dataset: a built-in or synthetic name, or a JSON/YAML spec file."""
    return resolve_dataset_spec(dataset.spec or dataset.name)


def materialise_synthetic(config: TrainingConfig, is_main: bool, progress: bool = False,
                          splits: Sequence[str] = ("train", "val")) -> None:
    """Render the synthetic datasets of the run into `<output_dir>/data/<name>/<split>-<key>`, where the key hashes
    every setting that made the data: changing the size or the seed renders again instead of reusing stale data.
    Only `splits` are rendered (pre-training needs no validation images)."""
    import hashlib

    from vitpose_plus.data.synthetic import make_synthetic_dataset

    for dataset in config.datasets:
        synth = dataset.synthetic
        if synth is None:
            continue
        spec = resolve_spec(dataset)
        for split, count in (("train", synth.train_images), ("val", synth.val_images)):
            seed = synth.split_seeds[split]
            if count <= 0 or split not in splits:
                continue
            key = hashlib.sha256(json.dumps([spec.to_dict(), count, seed, list(synth.image_size), synth.max_instances],
                                            sort_keys=True).encode()).hexdigest()[:12]
            folder = os.path.join(config.runtime.output_dir, "data", dataset.name, f"{split}-{key}")
            annotations = os.path.join(folder, "annotations.json")
            if is_main and not os.path.exists(annotations):
                make_synthetic_dataset(spec, count, seed, folder, image_size=synth.image_size,
                                       max_instances=synth.max_instances, progress=progress)
            setattr(dataset, split, SplitConfig(annotations=annotations, images=folder))


def load_split_rows(dataset: DatasetConfig, split: SplitConfig, spec: KeypointDatasetSpec) -> Any:
    """The image rows of one split: an annotation file in its released format, or a `datasets` dataset."""
    if split.hub_dataset is not None:
        import datasets

        if os.path.isdir(split.hub_dataset):
            rows = datasets.load_from_disk(split.hub_dataset)
        else:
            rows = datasets.load_dataset(split.hub_dataset, split=split.hub_split)
        expected = set(keypoint_features())
        if not expected <= set(rows.column_names):
            raise ValueError(f"datasets[{dataset.name!r}]: {split.hub_dataset!r} has the columns {rows.column_names}, "
                             f"expected the loader's {sorted(expected)}.")
        return rows
    return load_keypoint_dataset(split.annotations, split.images, spec, format=split.format)


@dataclass
class TrainingData:
    """The run's training data: one dataset per run dataset (`TopDownTrainingDataset` or, for bottom-up runs,
    `BottomUpTrainingDataset`), mixed by the sampler, batched by `collate_fn`."""

    specs: list[KeypointDatasetSpec]
    parts: list[Any]
    dataset: MixedDataset
    sampler: MixedSampler
    sizes: list[int] = field(default_factory=list)
    collate_fn: Any = None

    @classmethod
    def mixed(cls, config: TrainingConfig, specs: list[KeypointDatasetSpec], parts: list[Any], collate_fn: Any
              ) -> TrainingData:
        """The parts concatenated, with the sampler of the run (dataset sizes, or the datasets' `ratio`)."""
        sizes = [len(p) for p in parts]
        if sum(sizes) == 0:
            raise ValueError("The training data has no labelled instance at all.")
        ratios = [d.ratio for d in config.datasets] if config.datasets[0].ratio is not None else None
        if ratios is not None:
            ratios = [0.0 if size == 0 else ratio for ratio, size in zip(ratios, sizes)]
        sampler = MixedSampler(sizes, seed=config.runtime.seed, ratios=ratios)
        return cls(specs, parts, MixedDataset(parts), sampler, sizes, collate_fn)


def build_training_data(config: TrainingConfig, model_config: VitPosePlusConfig, specs: list[KeypointDatasetSpec]
                        ) -> TrainingData:
    """Read every training split (each file checked before any step) into the mixed dataset and its sampler.

    Raises:
        ValueError: for a dataset without a labelled instance (unless `allow_empty`) or smaller than nothing at all.
    """
    if config.model.task == "bottom_up":
        return bottom_up_data.build_bottom_up_training_data(config, model_config, specs)
    processor = VitPosePlusImageProcessor.from_model_config(model_config)
    parts = []
    for index, (dataset, spec) in enumerate(zip(config.datasets, specs)):
        rows = load_split_rows(dataset, dataset.train, spec)
        transform = TopDownTransform(processor, dataset=index, train=True, augmentation=config.augmentation)
        part = TopDownTrainingDataset(rows, transform, seed=config.runtime.seed)
        if len(part) == 0 and not dataset.allow_empty:
            raise ValueError(
                f"datasets[{index}] ({dataset.name!r}) has no labelled top-down instance in its training files; its "
                "expert and head would stay untrained. Fix the files, or set allow_empty: true for that dataset."
            )
        parts.append(part)
    return TrainingData.mixed(config, specs, parts, KeypointCollator(model_config.max_num_keypoints))


# ------------------------------------------------------------------------------------------------------ model
def build_model_config(config: TrainingConfig, specs: list[KeypointDatasetSpec]) -> VitPosePlusConfig:
    if config.model.task == "bottom_up":
        return bottom_up_data.bottom_up_model_config(config, specs)
    datasets = [spec.to_dict() for spec in specs]
    overrides = dict(config.model.overrides)
    if config.distillation is not None and config.distillation.knowledge_token:
        overrides["num_knowledge_tokens"] = 1  # the student carries the frozen token (training/distillation.py)
    try:
        if config.model.preset:
            return VitPosePlusConfig.from_preset(config.model.preset, datasets=datasets, **overrides)
        return VitPosePlusConfig(datasets=datasets, **overrides)
    except ValueError as err:  # a wrong type or an impossible architecture: say where it comes from
        raise ValueError(f"{config.source or 'training config'}: model (preset {config.model.preset!r}, overrides "
                         f"{overrides}): {err}") from err


def build_model(config: TrainingConfig, model_config: VitPosePlusConfig) -> VitPosePlusForPoseEstimation:
    """A fresh model for the run's datasets, initialised from MAE weights and/or a saved model (strict accounting)."""
    from vitpose_plus.conversion.convert_mae import init_from_mae_state_dict, read_mae_state_dict
    from vitpose_plus.conversion.weight_transfer import transfer_weights
    from vitpose_plus.file_io import load_model_folder

    if config.model.task == "bottom_up":
        return bottom_up_data.build_bottom_up_model(config, model_config)
    if config.model.mae_checkpoint:
        mae = init_from_mae_state_dict(read_mae_state_dict(config.model.mae_checkpoint), model_config,
                                       source=config.model.mae_checkpoint)
        logger.info("Initialised the backbone from MAE %s (%d tensors mapped, %d ignored).",
                    config.model.mae_checkpoint, len(mae.mapped), len(mae.ignored))
        model = mae.model
    else:
        model = VitPosePlusForPoseEstimation(model_config)
    if config.model.init_from:
        report = transfer_weights(load_model_folder(config.model.init_from), model,
                                  allow_partial=config.model.allow_partial_init, source_name=config.model.init_from)
        logger.warning("Initialised from %s: %s", config.model.init_from, report.summary())
    return model.train()


def build_optimizer(model: VitPosePlusForPoseEstimation, config: TrainingConfig) -> torch.optim.AdamW:
    """AdamW over layer-decay parameter groups (the preset's published decay unless the config sets one)."""
    opt = config.optimization
    layer_decay = opt.layer_decay
    if layer_decay is None:
        layer_decay = get_preset(config.model.preset).layer_decay if config.model.preset else 0.75
    groups = model.layer_decay_parameter_groups(opt.learning_rate, opt.weight_decay, layer_decay)
    for group in groups:
        group.pop("param_names")
    return torch.optim.AdamW(groups, lr=opt.learning_rate, betas=tuple(opt.betas))


def build_loader(dataset: Any, sampler: Any, batch_size: int, collate_fn: Any, num_workers: int, num_processes: int,
                 gradient_accumulation_steps: int = 1, what: str = "training data"
                 ) -> tuple[torch.utils.data.DataLoader, int]:
    """A loader of whole batches from `sampler`, and the optimizer steps per epoch of each process.

    Raises:
        ValueError: the data is smaller than one global batch.
    """
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True,
                                         collate_fn=collate_fn, num_workers=num_workers)
    batches_per_process = len(loader) // num_processes
    if batches_per_process == 0:
        raise ValueError(f"The {what} ({len(dataset)} samples) is smaller than one global batch of "
                         f"{batch_size * num_processes}.")
    return loader, max(batches_per_process // gradient_accumulation_steps, 1)


def build_loader_and_schedule(data: TrainingData, config: TrainingConfig, opt: OptimizationConfig,
                              num_processes: int) -> tuple[torch.utils.data.DataLoader, Schedule]:
    """The training loader (the mixed sampler, the data's collator, whole batches) and the schedule of `opt` over its
    length per process."""
    loader, steps_per_epoch = build_loader(data.dataset, data.sampler, opt.batch_size, data.collate_fn,
                                           config.runtime.num_workers, num_processes, opt.gradient_accumulation_steps)
    return loader, training_schedule(opt, steps_per_epoch)


# ------------------------------------------------------------------------------------------------------ accelerate
def build_accelerator(config: TrainingConfig) -> Any:
    """The Accelerator of the run; several CPU processes (torchrun) use gloo.

    Raises:
        RuntimeError: when `accelerate launch --multi_gpu` started several processes on a machine without GPUs (they
            would run as independent copies writing into one folder).
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    run, opt = config.runtime, config.optimization
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.cuda.is_available() and "ACCELERATE_MIXED_PRECISION" in os.environ:
        raise RuntimeError(
            f"`accelerate launch --multi_gpu` started {world} processes, but this machine has no GPU. On CPUs run "
            f"`torchrun --nproc_per_node {world} -m vitpose_plus train ...` (gloo), or launch on a GPU machine."
        )
    trackers = [t for t in run.trackers if t != "tensorboard" or _tensorboard_available()]
    accelerator = Accelerator(
        cpu=world > 1 and not torch.cuda.is_available(),
        mixed_precision=run.mixed_precision,
        gradient_accumulation_steps=opt.gradient_accumulation_steps,
        log_with=trackers or None,
        project_dir=run.output_dir,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=run.find_unused_parameters)],
    )
    if world > 1 and accelerator.num_processes != world:
        raise RuntimeError(f"{world} processes were launched but Accelerate runs {accelerator.num_processes}; check "
                           "the launch command (docs/training.md).")
    return accelerator


# ------------------------------------------------------------------------------------------------------ the run
@dataclass
class TrainingResult:
    metrics: dict[str, dict[str, float]]
    model_dir: str | None
    step: int


def train(config: TrainingConfig, resume: bool = False, overwrite: bool = False, progress: bool = True,
          stop_after: int | None = None) -> TrainingResult:
    """Run (or resume) training; returns the final evaluation metrics per dataset and the saved model folder.

    `stop_after` ends this invocation after that many optimizer steps, leaving a checkpoint as a killed or time-sliced
    job would (continue with `resume=True`); the schedule still spans the whole run.
    """
    from accelerate.utils import set_seed

    run, opt = config.runtime, config.optimization
    # 1. Everything is validated before anything is written: the dataset names and the architecture, the
    # output-folder policy, then every data file and the initial weights. `--overwrite` removes the previous run only
    # then, so that a bad file or a typo leaves it intact.
    accelerator = build_accelerator(config)
    specs = [resolve_spec(d) for d in config.datasets]
    model_config = build_model_config(config, specs)
    lock = prepare_output_folder(config, resume, overwrite, accelerator.is_main_process)
    try:
        materialise_synthetic(config, accelerator.is_main_process, progress)
        accelerator.wait_for_everyone()
        data = build_training_data(config, model_config, specs)
        set_seed(run.seed)
        model = build_model(config, model_config)
        begin_run(run.output_dir, resume, overwrite, accelerator.is_main_process, "training_config.yaml",
                  config.to_dict())

        # 2. Model, optimizer, schedule.
        from .distillation import prepare_distillation

        loss_fn = prepare_distillation(config, model, accelerator.device)  # model(**batch).loss, or + the teacher's
        if run.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        if run.sync_batchnorm and accelerator.num_processes > 1:
            if model_config.num_datasets > 1:
                raise ValueError("runtime.sync_batchnorm needs a single-dataset model: each head runs only on its own "
                                 "dataset's samples, so a rank without them would never join the head's sync.")
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        optimizer = build_optimizer(model, config)
        loader, schedule = build_loader_and_schedule(data, config, opt, accelerator.num_processes)
        # The scheduler is not passed to `prepare`: Accelerate's wrapper would step it once per process per optimizer
        # step (8x too fast on 8 processes). It is stepped here once per optimizer step and checkpointed with the rest.
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.lr_factor)
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        accelerator.register_for_checkpointing(scheduler)
        if accelerator.is_main_process and opt.max_epochs is not None:
            accelerator.print(f"{opt.max_epochs} epochs = {schedule.max_steps} steps; lr milestones at steps "
                              f"{list(schedule.milestones)}")
        trackers = [t for t in run.trackers if t != "tensorboard" or _tensorboard_available()]
        if trackers:
            accelerator.init_trackers("vitpose_plus", config={"source": config.source})

        # 3. Resume.
        log_path = os.path.join(run.output_dir, "log.jsonl")
        state = resume_from_checkpoint(accelerator, run.output_dir, resume, log_path)

        # 4. The loop, evaluating every `eval_every` steps.
        def evaluate_at(step: int) -> None:
            if run.eval_every and step % run.eval_every == 0 and step < schedule.max_steps:
                evaluate_run(accelerator, model, config, step, log_path)

        state = _training_loop(accelerator, model, optimizer, scheduler, loader, data.sampler, config, schedule,
                               state, log_path, progress, stop_after, loss_fn=loss_fn, on_step=evaluate_at)
        if run.save_every and state["step"] % run.save_every != 0:
            _save_checkpoint(accelerator, run, state)
        if state["step"] < schedule.max_steps:  # stopped early on request: a checkpoint is on disk
            accelerator.end_training()
            return TrainingResult({}, None, state["step"])

        # 5. Evaluation (every rank predicts its share) and the Hub folder.
        metrics = evaluate_run(accelerator, model, config, state["step"], log_path)
        final_dir = os.path.join(run.output_dir, "model")
        if accelerator.is_main_process:
            save_trained_model(accelerator.unwrap_model(model), config, metrics, final_dir)
            write_json(os.path.join(run.output_dir, "final_metrics.json"), metrics)
            try:
                from .plots import plot_learning_curve

                loss_name = "heatmap MSE + AE pull + push" if config.model.task == "bottom_up" else "JointsMSE loss"
                plot_learning_curve(log_path, os.path.join(run.output_dir, "learning_curve.png"), loss_name)
            except ImportError:
                logger.info("matplotlib is not installed; skipping the learning-curve plot.")
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return TrainingResult(metrics, final_dir, state["step"])
    finally:
        lock.release()


def pose_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss of a batch as the model computes it (`model(**batch).loss`: the pose model's target-weighted JointsMSE,
    the MAE loss, ...)."""
    return model(**batch).loss


def resume_from_checkpoint(accelerator: Any, output_dir: str, resume: bool, log_path: str) -> dict[str, Any]:
    """The loop state to start from: with `resume`, the newest checkpoint's (its Accelerate state loaded and
    `log.jsonl` cut back to its step), otherwise step 0 (and any old `log.jsonl` removed)."""
    state = {"step": 0, "epoch": 0, "batches_in_epoch": 0, "samples": 0}
    checkpoints = _checkpoints(output_dir) if resume else []
    if checkpoints:
        state = _read_trainer_state(checkpoints[-1])
        try:
            accelerator.load_state(checkpoints[-1])
        except Exception as err:  # a cut model.safetensors / optimizer.bin: safetensors and torch name no file
            raise ValueError(f"Cannot resume from {checkpoints[-1]!r}: a file there is truncated or unreadable "
                             f"({type(err).__name__}: {str(err)[:200]}); delete that checkpoint folder to resume "
                             "from the one before.") from err
        if accelerator.is_main_process:
            truncate_log(log_path, state["step"])
        accelerator.print(f"Resumed from {checkpoints[-1]} at step {state['step']}.")
    elif resume:
        accelerator.print(f"No checkpoint under {output_dir}/checkpoints; starting from scratch.")
    elif accelerator.is_main_process and os.path.exists(log_path):
        os.remove(log_path)
    return state


def _training_loop(accelerator: Any, model: Any, optimizer: Any, scheduler: Any, loader: Any, sampler: MixedSampler,
                   config: TrainingConfig, schedule: Schedule, state: dict[str, Any], log_path: str, progress: bool,
                   stop_after: int | None, loss_fn: Callable[[Any, dict], torch.Tensor] = pose_loss,
                   on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Optimizer steps until `schedule.max_steps` (or `stop_after` more); returns the updated state.

    `loss_fn(model, batch)` gives the loss to minimise (`pose_loss`: `model(**batch).loss`, so any model whose
    batches are its keyword arguments trains here; or distillation's). `on_step(step)` runs after each optimizer
    step's logging and before its checkpoint (training evaluates there, pre-training draws its pictures)."""
    run, opt = config.runtime, config.optimization
    micro_per_epoch = len(loader)
    start_step = state["step"]
    bar = tqdm(total=schedule.max_steps, initial=state["step"], disable=not (progress and accelerator.is_main_process),
               desc="train", unit="step")
    window_loss = torch.zeros((), device=accelerator.device)
    window_count, window_samples, window_start = 0, 0, time.perf_counter()
    global_batch = opt.batch_size * accelerator.num_processes

    def done() -> bool:
        return state["step"] >= schedule.max_steps or (stop_after is not None and state["step"] >= start_step +
                                                        stop_after)

    while not done():
        sampler.epoch = state["epoch"]
        epoch_loader = loader
        if state["batches_in_epoch"]:
            epoch_loader = accelerator.skip_first_batches(loader, state["batches_in_epoch"])
        for batch in epoch_loader:
            with accelerator.accumulate(model):
                loss = loss_fn(model, batch)
                if not torch.isfinite(loss):
                    last = _checkpoints(run.output_dir)
                    raise TrainingDiverged(
                        f"The loss is {loss.item()} at step {state['step']} (epoch {state['epoch']}); stopping. "
                        f"The last good checkpoint is {last[-1] if last else 'none (no checkpoint was saved yet)'}; "
                        "lower the learning rate or use fp32/bf16 and resume with --resume."
                    )
                accelerator.backward(loss)
                if accelerator.sync_gradients and opt.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), opt.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            state["batches_in_epoch"] += 1
            state["samples"] += global_batch
            window_samples += global_batch
            window_loss += loss.detach().float()
            window_count += 1
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            state["step"] += 1
            bar.update(1)
            step = state["step"]
            if step % run.log_every == 0 or step == schedule.max_steps:
                mean_loss = accelerator.reduce(window_loss / window_count, reduction="mean").item()  # over ranks
                elapsed = time.perf_counter() - window_start
                lr = max(g["lr"] for g in optimizer.param_groups)
                record = {"step": step, "epoch": state["epoch"], "loss": mean_loss, "lr": lr,
                          "samples_per_s": window_samples / max(elapsed, 1e-9)}
                bar.set_postfix(loss=f"{mean_loss:.5f}", lr=f"{lr:.2e}", sps=f"{record['samples_per_s']:.1f}")
                accelerator.log({"train/loss": mean_loss, "train/lr": lr}, step=step)
                if accelerator.is_main_process:
                    _log_jsonl(log_path, record)
                window_loss = torch.zeros((), device=accelerator.device)
                window_count, window_samples, window_start = 0, 0, time.perf_counter()
            if on_step is not None:
                on_step(step)
            if run.save_every and step % run.save_every == 0:
                _save_checkpoint(accelerator, run, state)
            if done():
                break
        else:
            state["epoch"] += 1
            state["batches_in_epoch"] = 0
            continue
        if state["batches_in_epoch"] >= micro_per_epoch:
            state["epoch"] += 1
            state["batches_in_epoch"] = 0
    bar.close()
    return state


def _save_checkpoint(accelerator: Any, run: Any, state: dict[str, Any]) -> None:
    """`accelerator.save_state` into `step_N`, written under a temporary name first so that a kill never leaves a
    half-written checkpoint that looks complete (resume only picks folders with a `trainer_state.json`)."""
    folder = os.path.join(run.output_dir, "checkpoints", f"step_{state['step']}")
    accelerator.save_state(folder)
    if accelerator.is_main_process:
        write_json(os.path.join(folder, "trainer_state.json"), state)
        for old in _checkpoints(run.output_dir)[: -run.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


# ------------------------------------------------------------------------------------------------------ evaluation
def evaluate_run(accelerator: Any, model: Any, config: TrainingConfig, step: int, log_path: str
                 ) -> dict[str, dict[str, float]]:
    """Evaluate every dataset with a validation split: every rank predicts its share of the images (so all ranks
    run forward passes, as sharded models need), the records are gathered and scored once, and every rank gets the
    metrics."""
    unwrapped = accelerator.unwrap_model(model)
    was_training = unwrapped.training
    unwrapped.eval()
    if config.model.task == "bottom_up":
        metrics = bottom_up_data.evaluate_bottom_up_run(accelerator, unwrapped, config)
    else:
        metrics = _evaluate_top_down(accelerator, unwrapped, config)
    unwrapped.train(was_training)
    if metrics and accelerator.is_main_process:
        summary = ", ".join(f"{name} {_headline(m)}" for name, m in metrics.items())
        accelerator.print(f"step {step}: {summary}")
        accelerator.log({f"eval/{name}/{key}": value for name, m in metrics.items() for key, value in m.items()},
                        step=step)
        _log_jsonl(log_path, {"step": step, "eval": metrics})
    accelerator.wait_for_everyone()
    return metrics


def _evaluate_top_down(accelerator: Any, model: Any, config: TrainingConfig) -> dict[str, dict[str, float]]:
    from accelerate.utils import gather_object

    from vitpose_plus.evaluation.evaluate import predict_split, score_split

    processor = trained_processor(model.config, config)
    metrics: dict[str, dict[str, float]] = {}
    for index, dataset in enumerate(config.datasets):
        if dataset.val is None:
            continue
        prepared, records = predict_split(
            model, processor, dataset.val.annotations, dataset.val.images, index,
            detections_file=dataset.val.detections, mpii_gt_mat=dataset.val.mpii_gt_mat,
            batch_size=config.runtime.eval_batch_size, flip_test=config.runtime.flip_test, progress=False,
            shard=(accelerator.process_index, accelerator.num_processes),
        )
        gathered = gather_object(records) if accelerator.num_processes > 1 else records
        metrics[dataset.name] = score_split(prepared, gathered).metrics
    return metrics


def _headline(metrics: dict[str, float]) -> str:
    key = "AP" if "AP" in metrics else "PCKh" if "PCKh" in metrics else next(iter(metrics))
    return f"{key} {metrics[key]:.4f}"


def trained_processor(model_config: VitPosePlusConfig, config: TrainingConfig) -> VitPosePlusImageProcessor:
    """The processor saved with the trained model: the run's target sigma and evaluation blur kernel, so the model is
    decoded everywhere exactly as it was evaluated (bottom-up: `VitPosePlusBottomUpImageProcessor`)."""
    if config.model.task == "bottom_up":
        return bottom_up_data.bottom_up_trained_processor(model_config, config)
    return VitPosePlusImageProcessor.from_model_config(model_config, sigma=config.augmentation.sigma,
                                                       blur_kernel_size=config.runtime.eval_dark_kernel)


def save_trained_model(model: VitPosePlusForPoseEstimation, config: TrainingConfig,
                       metrics: dict[str, dict[str, float]], folder: str) -> None:
    """The Hub folder of the trained model (the same writer as every other folder), with a model card that states
    the run and its measured metrics in `model-index`."""
    from vitpose_plus.file_io import save_model_folder
    from vitpose_plus.hub_cards.cards import card_info_for_model

    card = card_info_for_model(
        model,
        title=os.path.basename(os.path.normpath(config.runtime.output_dir)) or "vitpose-plus-model",
        description=f"A {'bottom-up (associative embedding) ' if config.model.task == 'bottom_up' else ''}"
                    f"ViTPose{'+' if model.config.num_experts > 1 else ''} model trained with `vitpose-plus train` "
                    f"on {', '.join(model.config.dataset_names)}.",
        provenance=[f"Trained with `vitpose-plus train --config {os.path.basename(config.source)}`."],
        measured_results=metrics,
    )
    save_model_folder(model, folder, processor=trained_processor(model.config, config), card=card, overwrite=True)


def _tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            return False
    return True


__all__ = [
    "RUN_FILES",
    "Schedule",
    "TrainingDiverged",
    "TrainingResult",
    "build_model",
    "build_model_config",
    "build_optimizer",
    "build_training_data",
    "evaluate_run",
    "begin_run",
    "prepare_output_folder",
    "resume_from_checkpoint",
    "train",
    "training_schedule",
    "truncate_log",
]
