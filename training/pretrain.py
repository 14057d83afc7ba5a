"""Pre-train a ViTPose backbone with MAE on pose images, with Accelerate on HF `datasets`, top to bottom (in the
spirit of transformers' `run_mae_no_trainer.py`): config -> data -> model -> optimizer and schedule -> loop ->
reconstruction pictures -> model folder.

    vitpose-plus pretrain [--config FILE_OR_NAME] [--resume | --overwrite] [--set optimization.max_steps=200 ...]
    torchrun --nproc_per_node 2 -m vitpose_plus pretrain --config FILE         # several processes (CPU: gloo)
    accelerate launch --multi_gpu --num_processes 8 -m vitpose_plus pretrain --config FILE
    vitpose-plus train --config FILE --set model.mae_checkpoint=runs/mae/model  # fine-tune from the result

The data are the pose datasets' own images, no labels needed (ViTPose's data-flexibility study): person crops cut
by the annotated boxes exactly as fine-tuning cuts them ("crop" mode), random resized crops of the whole images
("whole"), or unlabelled image folders, several sets mixed. The model is `VitPosePlusForMaskedImageModeling`, whose
encoder is this repository's ViTPose backbone, so `<output_dir>/model` initialises ViTPose and ViTPose+ directly
(`model.mae_checkpoint`; ViTPose+'s experts are split from the dense fc2).

Everything but the model, the data and the pictures is `train`'s: the Accelerator (mixed precision, DDP),
the output-folder lock and the --resume / --overwrite policy, the warmup + cosine schedule counted in optimizer steps,
the loop (gradient accumulation, divergence check, `log.jsonl`, tqdm, checkpoints every `save_every` steps with
rotation) and exact resume: each sample's crop, flip and mask come from a seed of its position in training, so a
resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vitpose_plus.modeling import VitPosePlusForMaskedImageModeling, VitPosePlusImageProcessor, VitPosePlusMAEConfig

from .config import OptimizationConfig
from .data_pipeline import MixedDataset, MixedSampler
from .mae_pictures import render_reconstructions, save_png
from .pretraining_config import PretrainingConfig, PretrainingDatasetConfig, build_mae_config
from .pretraining_data import (
    MAEPretrainingTransform,
    PretrainingCollator,
    PretrainingImageDataset,
    pretraining_processor,
)
from .train import (
    Schedule,
    _save_checkpoint,
    _tensorboard_available,
    _training_loop,
    begin_run,
    build_accelerator,
    build_loader,
    load_split_rows,
    materialise_synthetic,
    prepare_output_folder,
    resolve_spec,
    resume_from_checkpoint,
    training_schedule,
)

logger = logging.getLogger(__name__)

#: Files of a pre-training run in its output folder (anything else there, e.g. the synthetic data, is left alone).
PRETRAINING_RUN_FILES = ("checkpoints", "model", "log.jsonl", "pictures", "pretraining_config.yaml", "tensorboard")


# ------------------------------------------------------------------------------------------------------ data
def load_pretraining_rows(dataset: PretrainingDatasetConfig, output_dir: str) -> Any:
    """The image rows of one pre-training set: a keypoint dataset's rows (its loader, as in training) or an image
    folder through `datasets`' `imagefolder` (cached under `<output_dir>/data/<name>/`)."""
    if dataset.image_folder is None:
        return load_split_rows(dataset, dataset.train, resolve_spec(dataset))
    import datasets

    try:
        rows = datasets.load_dataset("imagefolder", data_dir=dataset.image_folder, split="train",
                                     cache_dir=os.path.join(output_dir, "data", dataset.name, "imagefolder-cache"))
    except Exception as err:  # datasets raises several types for an empty or unreadable folder
        raise ValueError(f"Pre-training set {dataset.name!r}: cannot read the image folder "
                         f"{dataset.image_folder!r} with datasets' imagefolder ({type(err).__name__}: {err}).") from err
    return rows


@dataclass
class PretrainingData:
    """The run's pre-training data: one `PretrainingImageDataset` per set, mixed by the sampler, and the processor
    whose normalisation they share (saved with the model)."""

    parts: list[PretrainingImageDataset]
    dataset: MixedDataset
    sampler: MixedSampler
    processor: VitPosePlusImageProcessor
    sizes: list[int] = field(default_factory=list)


def build_pretraining_data(config: PretrainingConfig, mae_config: VitPosePlusMAEConfig) -> PretrainingData:
    """Read every pre-training set (each file checked before any step) into the mixed dataset and its sampler.

    Raises:
        ValueError: for a set without a single sample (no image, or no person box in crop mode).
    """
    settings = config.data
    image_size = tuple(mae_config.image_size)
    rows_patches = mae_config.grid_size[0] * mae_config.grid_size[1]
    parts = []
    for index, dataset in enumerate(config.datasets):
        rows = load_pretraining_rows(dataset, config.runtime.output_dir)
        # Annotated sets are cut with their own dataset's crop geometry, exactly as fine-tuning cuts them.
        spec = resolve_spec(dataset) if dataset.image_folder is None else None
        transform = MAEPretrainingTransform(
            mode=config.dataset_mode(dataset), flip_prob=settings.flip_prob, scale=settings.scale,
            ratio=settings.ratio, ratio_relative_to_input=settings.ratio_relative_to_input,
            processor=pretraining_processor(image_size, settings.padding, dataset=spec),
        )
        part = PretrainingImageDataset(rows, transform, rows_patches, dataset_index=index, seed=config.runtime.seed,
                                       name=dataset.name)
        if len(part) == 0:
            what = "person box" if part.per_person else "image"
            raise ValueError(f"datasets[{index}] ({dataset.name!r}) has no {what} to pre-train on"
                             + (" (crop mode uses the top-down instances; try mode: whole)." if part.per_person
                                else "."))
        parts.append(part)
    sizes = [len(p) for p in parts]
    ratios = [d.ratio for d in config.datasets] if config.datasets[0].ratio is not None else None
    sampler = MixedSampler(sizes, seed=config.runtime.seed, ratios=ratios)
    return PretrainingData(parts, MixedDataset(parts), sampler, pretraining_processor(image_size, settings.padding),
                           sizes)


# ------------------------------------------------------------------------------------------------------ model
def build_pretraining_model(mae_config: VitPosePlusMAEConfig) -> VitPosePlusForMaskedImageModeling:
    """A freshly initialised MAE (MAE's initialisation, fixed sin-cos tables), in train mode."""
    return VitPosePlusForMaskedImageModeling(mae_config).train()


def pretraining_learning_rate(config: PretrainingConfig, num_processes: int) -> float:
    """MAE's linear scaling rule: `base_learning_rate * global batch / 256`, the global batch being
    `batch_size * gradient_accumulation_steps * processes`; or `learning_rate` when given."""
    opt = config.optimization
    if opt.learning_rate is not None:
        return opt.learning_rate
    return opt.base_learning_rate * opt.batch_size * opt.gradient_accumulation_steps * num_processes / 256


def build_pretraining_optimizer(model: VitPosePlusForMaskedImageModeling, config: PretrainingConfig,
                                learning_rate: float) -> torch.optim.AdamW:
    """AdamW with MAE's groups: weight decay on weight matrices, none on norms and biases; the fixed sin-cos
    tables are not optimised."""
    groups = model.pretraining_parameter_groups(config.optimization.weight_decay)
    for group in groups:
        group.pop("param_names")
    return torch.optim.AdamW(groups, lr=learning_rate, betas=tuple(config.optimization.betas))


def pretraining_schedule(config: PretrainingConfig, steps_per_epoch: int) -> Schedule:
    """`train`'s schedule function with the pre-training settings: linear warmup from `warmup_ratio` (MAE: 0) and a
    cosine to `min_lr_ratio`, epochs converted to optimizer steps with `steps_per_epoch`."""
    opt = config.optimization
    warmup = opt.warmup_steps if opt.warmup_epochs is None else opt.warmup_epochs * steps_per_epoch
    # Schedule multiplies a linear warmup from `warmup_ratio` onto the cosine; a ratio of 0 starts at lr 0 as MAE.
    as_training = OptimizationConfig(max_steps=opt.max_steps, max_epochs=opt.max_epochs, warmup_steps=warmup,
                                     warmup_ratio=opt.warmup_ratio, schedule="cosine", min_lr_ratio=opt.min_lr_ratio)
    return training_schedule(as_training, steps_per_epoch)


# ------------------------------------------------------------------------------------------------------ pictures
def picture_batch(data: PretrainingData, count: int) -> dict[str, torch.Tensor]:
    """A fixed batch for the reconstruction pictures: `count` samples spread evenly over the mixture (every set
    shows up when `count` >= the number of sets), each with its epoch-0 crop and mask."""
    total = len(data.dataset)
    indices = np.unique(np.linspace(0, total - 1, num=min(count, total)).round().astype(int))
    return PretrainingCollator()([data.dataset[int(i)] for i in indices])


def save_reconstruction_picture(model: VitPosePlusForMaskedImageModeling, batch: dict[str, torch.Tensor],
                                processor: VitPosePlusImageProcessor, path: str) -> None:
    """Render (original, masked, reconstruction) rows of `batch` with `model` (eval mode, then put back)."""
    device = next(model.parameters()).device
    grid = render_reconstructions(model, batch["pixel_values"].to(device), noise=batch["noise"].to(device),
                                  num_samples=batch["pixel_values"].shape[0], processor=processor,
                                  upscale=2 if max(model.config.image_size) <= 128 else 1)
    save_png(path, grid)


# ------------------------------------------------------------------------------------------------------ the run
@dataclass
class PretrainingResult:
    model_dir: str | None  # None when stopped early (a checkpoint is on disk; continue with resume=True)
    step: int
    final_loss: float | None


def pretrain(config: PretrainingConfig, resume: bool = False, overwrite: bool = False, progress: bool = True,
             stop_after: int | None = None) -> PretrainingResult:
    """Run (or resume) MAE pre-training; returns the saved model folder (a `model.mae_checkpoint` for `train`).

    `stop_after` ends this invocation after that many optimizer steps, leaving a checkpoint as a killed or time-sliced
    job would (continue with `resume=True`); the schedule still spans the whole run.
    """
    from accelerate.utils import set_seed

    run, opt = config.runtime, config.optimization
    # 1. Everything is validated before anything is written: the output-folder policy, every data file, the model;
    # only then does `--overwrite` remove the previous run.
    accelerator = build_accelerator(config)
    lock = prepare_output_folder(config, resume, overwrite, accelerator.is_main_process,
                                 run_files=PRETRAINING_RUN_FILES)
    try:
        materialise_synthetic(config, accelerator.is_main_process, progress, splits=("train",))
        accelerator.wait_for_everyone()
        mae_config = build_mae_config(config)
        data = build_pretraining_data(config, mae_config)
        set_seed(run.seed)
        model = build_pretraining_model(mae_config)
        begin_run(run.output_dir, resume, overwrite, accelerator.is_main_process, "pretraining_config.yaml",
                  config.to_dict(), PRETRAINING_RUN_FILES)

        # 2. Optimizer (lr scaled with the global batch), schedule.
        if run.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        learning_rate = pretraining_learning_rate(config, accelerator.num_processes)
        optimizer = build_pretraining_optimizer(model, config, learning_rate)
        loader, steps_per_epoch = build_loader(data.dataset, data.sampler, opt.batch_size, PretrainingCollator(),
                                               run.num_workers, accelerator.num_processes,
                                               opt.gradient_accumulation_steps, what="pre-training data")
        schedule = pretraining_schedule(config, steps_per_epoch)
        # As in `train`: the scheduler is stepped once per optimizer step by the loop, not by Accelerate's wrapper.
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.lr_factor)
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        accelerator.register_for_checkpointing(scheduler)
        accelerator.print(f"MAE pre-training: {sum(data.sizes)} samples from {len(data.parts)} set(s), "
                          f"{schedule.max_steps} steps, lr {learning_rate:.3g} (global batch "
                          f"{opt.batch_size * opt.gradient_accumulation_steps * accelerator.num_processes}).")
        trackers = [t for t in run.trackers if t != "tensorboard" or _tensorboard_available()]
        if trackers:
            accelerator.init_trackers("vitpose_plus_mae", config={"source": config.source})

        # 3. Resume.
        log_path = os.path.join(run.output_dir, "log.jsonl")
        state = resume_from_checkpoint(accelerator, run.output_dir, resume, log_path)

        # 4. The loop, drawing the same samples with the same masks every `picture_every` steps.
        pictures = picture_batch(data, run.picture_samples) if accelerator.is_main_process else None

        def draw(step: int) -> None:
            if accelerator.is_main_process and (step == schedule.max_steps or (
                    run.picture_every and step % run.picture_every == 0)):
                save_reconstruction_picture(accelerator.unwrap_model(model), pictures, data.processor,
                                            os.path.join(run.output_dir, "pictures", f"step_{step}.png"))

        state = _training_loop(accelerator, model, optimizer, scheduler, loader, data.sampler, config, schedule,
                               state, log_path, progress, stop_after, on_step=draw)
        if run.save_every and state["step"] % run.save_every != 0:
            _save_checkpoint(accelerator, run, state)
        final_loss = _last_loss(log_path) if accelerator.is_main_process else None
        if state["step"] < schedule.max_steps:  # stopped early on request: a checkpoint is on disk
            accelerator.end_training()
            return PretrainingResult(None, state["step"], final_loss)

        # 5. The model folder: what `train` takes as model.mae_checkpoint.
        final_dir = os.path.join(run.output_dir, "model")
        if accelerator.is_main_process:
            save_pretrained_mae(accelerator.unwrap_model(model), config, data, final_dir, state["step"], final_loss)
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return PretrainingResult(final_dir, state["step"], final_loss)
    finally:
        lock.release()


def _last_loss(log_path: str) -> float | None:
    import json

    if not os.path.exists(log_path):
        return None
    loss = None
    with open(log_path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            loss = record.get("loss", loss)
    return loss


def save_pretrained_mae(model: VitPosePlusForMaskedImageModeling, config: PretrainingConfig, data: PretrainingData,
                        folder: str, step: int, final_loss: float | None) -> None:
    """The MAE folder (the same writer as every other folder): weights, config, the remote code, the processor
    whose crop and normalisation made the inputs, and a card that says how to fine-tune from it."""
    from vitpose_plus.file_io import save_model_folder
    from vitpose_plus.hub_cards.publish import remote_code_files

    sets = ", ".join(f"{d.name} ({config.dataset_mode(d)}, {n} samples)" for d, n in zip(config.datasets, data.sizes))
    cfg = model.config
    card = "\n".join([
        "---",
        "library_name: transformers",
        "tags: [vitpose-plus, mae, masked-image-modeling, pose-estimation]",
        "---",
        f"# {os.path.basename(os.path.dirname(os.path.normpath(folder))) or 'vitpose-plus-mae'}",
        "",
        f"A ViTPose backbone (width {cfg.hidden_size}, {cfg.num_hidden_layers} blocks, {cfg.image_size[0]}x"
        f"{cfg.image_size[1]} input) pre-trained with MAE (mask ratio {cfg.mask_ratio}, norm_pix_loss "
        f"{cfg.norm_pix_loss}) by `vitpose-plus pretrain --config {os.path.basename(config.source)}` for {step} steps "
        f"on {sets}" + (f"; final loss {final_loss:.4f}." if final_loss is not None else "."),
        "",
        "Fine-tune ViTPose or ViTPose+ from it: `vitpose-plus train --config RUN.yaml --set "
        "model.mae_checkpoint=PATH_TO_THIS_FOLDER` (the encoder is the ViTPose backbone; ViTPose+ experts start as "
        "copies of the dense fc2's last part_features rows).",
        "",
    ])
    files = save_model_folder(model, folder, processor=data.processor, card=card, overwrite=True)
    missing = [name for name in (*remote_code_files(model), "config.json", "preprocessor_config.json")
               if name not in files]
    if missing:
        raise RuntimeError(f"{folder}: the MAE folder lacks {missing}; it would not load with trust_remote_code.")


__all__ = [
    "PRETRAINING_RUN_FILES",
    "PretrainingData",
    "PretrainingResult",
    "build_pretraining_data",
    "build_pretraining_model",
    "build_pretraining_optimizer",
    "load_pretraining_rows",
    "pretrain",
    "pretraining_learning_rate",
    "pretraining_schedule",
    "save_pretrained_mae",
]
