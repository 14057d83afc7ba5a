"""Train ViTPose / ViTPose+ with Accelerate on HF `datasets`.

    vitpose-plus train [--config FILE] [--resume] [--set optimization.max_steps=200 ...]
    accelerate launch -m vitpose_plus.training.train --config FILE

With no config the default synthetic run (`training/configs/synthetic.yaml`) renders three synthetic datasets
(human, quadruped, hand), trains a small ViTPose+ with one expert per dataset and reports COCO-style AP per dataset.

Mixed batches come from the concatenated datasets (in proportion to their sizes, or to `ratio`), every sample with
its dataset index, so the routed experts and heads see only their own samples. AdamW with layer-wise lr decay
(no decay on norms, biases, position table), linear warmup then a step or cosine schedule, gradient clipping,
accumulation and mixed precision come from Accelerate. `accelerator.save_state` checkpoints every `save_every` steps;
`--resume` continues from the newest one with no lost or repeated step (the sampler and the augmentation are seeded
by position, and Accelerate restores the model, optimizer, scheduler and RNG states).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict
from typing import Any

import torch
import yaml
from tqdm.auto import tqdm

from vitpose_plus.data import resolve_dataset_spec
from vitpose_plus.data.datasets import flatten_top_down, load_keypoint_dataset
from vitpose_plus.evaluation.evaluate import evaluate_keypoints
from vitpose_plus.modeling import (
    LAYER_DECAY_RATES,
    KeypointDatasetSpec,
    VitPosePlusConfig,
    VitPosePlusForPoseEstimation,
)
from vitpose_plus.modeling.image_processing_vitpose_plus import VitPosePlusImageProcessor

from .config import DatasetConfig, TrainingConfig, load_training_config
from .data_pipeline import KeypointCollator, MixedDataset, MixedSampler, TopDownTrainingDataset
from .transforms import TopDownTransform

logger = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the newest checkpoint on disk is the last good state."""


# ------------------------------------------------------------------------------------------------------ set-up
def resolve_spec(dataset: DatasetConfig) -> KeypointDatasetSpec:
    """The keypoint spec of a run dataset: a built-in name (`synthetic_hand` included) or a JSON/YAML spec file."""
    return resolve_dataset_spec(dataset.spec or dataset.name)


def materialise_synthetic(config: TrainingConfig, is_main: bool) -> None:
    """Render the synthetic datasets of the run (once; kept under `<output_dir>/data` for resumes and evaluation)."""
    from vitpose_plus.data.synthetic import make_synthetic_dataset

    from .config import SplitConfig

    for dataset in config.datasets:
        synth = dataset.synthetic
        if synth is None:
            continue
        spec = resolve_spec(dataset)
        for split, count, seed in (("train", synth.train_images, synth.seed), ("val", synth.val_images,
                                                                               synth.seed + 1_000_003)):
            if count <= 0:
                continue
            folder = os.path.join(config.runtime.output_dir, "data", dataset.name, split)
            annotations = os.path.join(folder, "annotations.json")
            if is_main and not os.path.exists(annotations):
                make_synthetic_dataset(spec, count, seed, folder, image_size=synth.image_size,
                                       max_instances=synth.max_instances)
            setattr(dataset, split, SplitConfig(annotations=annotations, images=folder))


def build_model_config(config: TrainingConfig, specs: list[KeypointDatasetSpec]) -> VitPosePlusConfig:
    overrides = dict(config.model.overrides)
    datasets = [spec.to_dict() for spec in specs]
    if config.model.preset:
        return VitPosePlusConfig.from_preset(config.model.preset, datasets=datasets, **overrides)
    return VitPosePlusConfig(datasets=datasets, **overrides)


def build_model(config: TrainingConfig, specs: list[KeypointDatasetSpec]) -> VitPosePlusForPoseEstimation:
    """A fresh model for the run's datasets, optionally initialised from a saved model or MAE weights."""
    model_config = build_model_config(config, specs)
    if config.model.mae_checkpoint:
        from vitpose_plus.conversion.convert_mae import init_from_mae_state_dict, read_mae_state_dict

        mae = init_from_mae_state_dict(read_mae_state_dict(config.model.mae_checkpoint), model_config,
                                       source=config.model.mae_checkpoint)
        logger.info("Initialised the backbone from MAE %s (%d tensors mapped, %d ignored).",
                    config.model.mae_checkpoint, len(mae.mapped), len(mae.ignored))
        model = mae.model
    else:
        model = VitPosePlusForPoseEstimation(model_config)
    if config.model.init_from:
        source = VitPosePlusForPoseEstimation.from_pretrained(config.model.init_from)
        report = initialise_from(model, source)
        logger.info("Initialised from %s: %s", config.model.init_from, report)
    return model


def initialise_from(model: VitPosePlusForPoseEstimation, source: VitPosePlusForPoseEstimation) -> dict[str, Any]:
    """Copy `source`'s backbone into `model` and each head/expert whose dataset name both models have.

    Tensors whose shapes differ are left at their initialisation and reported; nothing else is skipped silently.
    """
    target_state = model.state_dict()
    source_state = source.state_dict()
    source_names = source.config.dataset_names
    copied, mismatched = [], []
    new_state = {}
    for name, tensor in target_state.items():
        source_name = name
        if name.startswith("heads."):
            head, rest = name[len("heads."):].split(".", 1)
            dataset = model.config.dataset_names[int(head)]
            if dataset not in source_names:
                continue
            source_name = f"heads.{source_names.index(dataset)}.{rest}"
        elif ".mlp.experts." in name:
            prefix, rest = name.split(".mlp.experts.", 1)
            expert, param = rest.split(".", 1)
            owners = [d for i, d in enumerate(model.config.dataset_names) if model.config.expert_of(i) == int(expert)]
            matches = [d for d in owners if d in source_names]
            if not matches or source.config.num_experts == 1:
                continue
            source_name = f"{prefix}.mlp.experts.{source.config.expert_of(matches[0])}.{param}"
        if source_name not in source_state:
            continue
        if source_state[source_name].shape != tensor.shape:
            mismatched.append(name)
            continue
        new_state[name] = source_state[source_name]
        copied.append(name)
    model.load_state_dict({**target_state, **new_state})
    fresh = [n for n in target_state if n not in new_state]
    return {"copied": len(copied), "fresh": fresh, "shape_mismatch": mismatched}


def lr_factor(step: int, opt: Any, total_steps: int) -> float:
    """Warmup (linear from `warmup_ratio`) times the step or cosine schedule, at optimizer step `step`."""
    if opt.schedule == "cosine":
        progress = min(step / max(total_steps, 1), 1.0)
        factor = opt.min_lr_ratio + (1 - opt.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    else:
        factor = opt.gamma ** sum(step >= m for m in opt.milestones)
    if step < opt.warmup_steps:
        factor *= 1 - (1 - step / opt.warmup_steps) * (1 - opt.warmup_ratio)
    return factor


# ------------------------------------------------------------------------------------------------------ the loop
def _checkpoints(output_dir: str) -> list[str]:
    folder = os.path.join(output_dir, "checkpoints")
    if not os.path.isdir(folder):
        return []
    found = [d for d in os.listdir(folder) if d.startswith("step_") and os.path.exists(
        os.path.join(folder, d, "trainer_state.json"))]
    return [os.path.join(folder, d) for d in sorted(found, key=lambda d: int(d.split("_")[1]))]


def _log_jsonl(path: str, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def train(config: TrainingConfig, resume: bool = False, progress: bool = True, stop_after: int | None = None
          ) -> dict[str, Any]:
    """Run (or resume) training; returns the final evaluation metrics per dataset and the output folder.

    `stop_after` ends this invocation after that many optimizer steps, leaving a checkpoint as a killed or time-sliced
    job would (continue with `resume=True`); the schedule still spans `max_steps`.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed

    run, opt = config.runtime, config.optimization
    trackers = [t for t in run.trackers if t != "tensorboard" or _tensorboard_available()]
    accelerator = Accelerator(
        mixed_precision=run.mixed_precision,
        gradient_accumulation_steps=opt.gradient_accumulation_steps,
        log_with=trackers or None,
        project_dir=run.output_dir,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=run.find_unused_parameters)],
    )
    os.makedirs(run.output_dir, exist_ok=True)
    log_path = os.path.join(run.output_dir, "log.jsonl")
    checkpoints = _checkpoints(run.output_dir) if resume else []
    if accelerator.is_main_process and not resume:
        if os.path.exists(log_path):
            os.remove(log_path)
        shutil.rmtree(os.path.join(run.output_dir, "checkpoints"), ignore_errors=True)
        with open(os.path.join(run.output_dir, "training_config.yaml"), "w", encoding="utf-8") as handle:
            yaml.safe_dump(asdict(config), handle, sort_keys=False)
    set_seed(run.seed)

    # Data: every dataset checked at start (files, keypoint counts) before any step runs.
    materialise_synthetic(config, accelerator.is_main_process)
    accelerator.wait_for_everyone()
    specs = [resolve_spec(d) for d in config.datasets]
    model = build_model(config, specs)
    model_config = model.config
    image_wh = (model_config.image_size[1], model_config.image_size[0])
    parts = []
    for index, (dataset, spec) in enumerate(zip(config.datasets, specs)):
        rows = flatten_top_down(load_keypoint_dataset(dataset.train.annotations, dataset.train.images, spec))
        transform = TopDownTransform(spec, dataset_index=index, train=True, image_size=image_wh,
                                     heatmap_size=model_config.heatmap_size[::-1], **asdict(config.augmentation))
        parts.append(TopDownTrainingDataset(rows, transform, seed=run.seed))
    mixed = MixedDataset(parts)
    ratios = [d.ratio for d in config.datasets] if config.datasets[0].ratio is not None else None
    sampler = MixedSampler([len(p) for p in parts], seed=run.seed, ratios=ratios)
    loader = torch.utils.data.DataLoader(
        mixed, batch_size=opt.batch_size, sampler=sampler, collate_fn=KeypointCollator(model_config.max_num_keypoints),
        num_workers=run.num_workers, drop_last=True, persistent_workers=False,
    )
    if len(loader) == 0:
        raise ValueError(f"The training data ({len(mixed)} instances) is smaller than one batch of {opt.batch_size}.")

    if run.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    layer_decay = opt.layer_decay if opt.layer_decay is not None else LAYER_DECAY_RATES.get(config.model.preset, 0.75)
    groups = model.layer_decay_parameter_groups(opt.learning_rate, opt.weight_decay, layer_decay)
    for group in groups:
        group.pop("param_names")
    optimizer = torch.optim.AdamW(groups, lr=opt.learning_rate, betas=tuple(opt.betas))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, opt, opt.max_steps))
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    if opt.max_epochs is not None:  # epoch recipes: converted once the (per-process) loader length is known
        steps_per_epoch = max(len(loader) // opt.gradient_accumulation_steps, 1)
        opt.max_steps = opt.max_epochs * steps_per_epoch
        opt.milestones = [e * steps_per_epoch for e in opt.milestone_epochs]
        accelerator.print(f"{opt.max_epochs} epochs = {opt.max_steps} steps; lr milestones at steps {opt.milestones}")
    if trackers:
        accelerator.init_trackers("vitpose_plus", config={"source": config.source})

    state = {"step": 0, "epoch": 0, "batches_in_epoch": 0, "samples": 0}
    if checkpoints:
        accelerator.load_state(checkpoints[-1])
        with open(os.path.join(checkpoints[-1], "trainer_state.json"), encoding="utf-8") as handle:
            state = json.load(handle)
        accelerator.print(f"Resumed from {checkpoints[-1]} at step {state['step']}.")
    elif resume:
        accelerator.print(f"No checkpoint under {run.output_dir}/checkpoints; starting from scratch.")

    micro_per_epoch = len(loader)
    start_step = state["step"]
    bar = tqdm(total=opt.max_steps, initial=state["step"], disable=not (progress and accelerator.is_main_process),
               desc="train", unit="step")
    window_loss, window_count, window_start = 0.0, 0, time.perf_counter()
    window_samples = 0
    global_batch = opt.batch_size * accelerator.num_processes
    while state["step"] < opt.max_steps and (stop_after is None or state["step"] < start_step + stop_after):
        sampler.epoch = state["epoch"]
        epoch_loader = loader
        if state["batches_in_epoch"]:
            epoch_loader = accelerator.skip_first_batches(loader, state["batches_in_epoch"])
        for batch in epoch_loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
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
                scheduler.step()
                optimizer.zero_grad()
            state["batches_in_epoch"] += 1
            state["samples"] += global_batch
            window_samples += global_batch
            window_loss += loss.detach().float().item()
            window_count += 1
            if not accelerator.sync_gradients:
                continue
            state["step"] += 1
            bar.update(1)
            step = state["step"]
            if step % run.log_every == 0 or step == opt.max_steps:
                elapsed = time.perf_counter() - window_start
                lr = max(g["lr"] for g in optimizer.param_groups)
                record = {"step": step, "epoch": state["epoch"], "loss": window_loss / window_count, "lr": lr,
                          "samples_per_s": window_samples / max(elapsed, 1e-9)}
                bar.set_postfix(loss=f"{record['loss']:.5f}", lr=f"{lr:.2e}", sps=f"{record['samples_per_s']:.1f}")
                accelerator.log({"train/loss": record["loss"], "train/lr": lr}, step=step)
                if accelerator.is_main_process:
                    _log_jsonl(log_path, record)
                window_loss, window_count, window_samples, window_start = 0.0, 0, 0, time.perf_counter()
            if run.eval_every and step % run.eval_every == 0 and step < opt.max_steps:
                _evaluate_and_log(accelerator, model, config, step, log_path)
            if run.save_every and step % run.save_every == 0:
                _save_checkpoint(accelerator, run, state)
            if step >= opt.max_steps or (stop_after is not None and step >= start_step + stop_after):
                break
        else:
            state["epoch"] += 1
            state["batches_in_epoch"] = 0
            continue
        if state["batches_in_epoch"] >= micro_per_epoch:
            state["epoch"] += 1
            state["batches_in_epoch"] = 0
    bar.close()
    if run.save_every and state["step"] % run.save_every != 0:
        _save_checkpoint(accelerator, run, state)
    if state["step"] < opt.max_steps:  # stopped early on request: a checkpoint is on disk, nothing else to do
        accelerator.end_training()
        return {"metrics": {}, "model_dir": None, "step": state["step"]}
    metrics = _evaluate_and_log(accelerator, model, config, state["step"], log_path)
    final_dir = os.path.join(run.output_dir, "model")
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(final_dir)
        VitPosePlusImageProcessor.from_model_config(unwrapped.config).save_pretrained(final_dir)
        with open(os.path.join(run.output_dir, "final_metrics.json"), "w", encoding="utf-8") as handle:
            json.dump(metrics, handle, indent=2)
        try:
            from .plots import plot_learning_curve

            plot_learning_curve(log_path, os.path.join(run.output_dir, "learning_curve.png"))
        except ImportError:
            logger.info("matplotlib is not installed; skipping the learning-curve plot.")
    accelerator.end_training()
    return {"metrics": metrics, "model_dir": final_dir, "step": state["step"]}


def _save_checkpoint(accelerator: Any, run: Any, state: dict[str, Any]) -> None:
    folder = os.path.join(run.output_dir, "checkpoints", f"step_{state['step']}")
    accelerator.save_state(folder)
    if accelerator.is_main_process:
        with open(os.path.join(folder, "trainer_state.json"), "w", encoding="utf-8") as handle:
            json.dump(state, handle)
        for old in _checkpoints(run.output_dir)[: -run.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _evaluate_and_log(accelerator: Any, model: Any, config: TrainingConfig, step: int, log_path: str
                      ) -> dict[str, dict[str, float]]:
    metrics: dict[str, dict[str, float]] = {}
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        was_training = unwrapped.training
        unwrapped.eval()
        processor = VitPosePlusImageProcessor.from_model_config(unwrapped.config)
        for dataset in config.datasets:
            if dataset.val is None:
                continue
            result = evaluate_keypoints(
                unwrapped, processor, dataset.val.annotations, dataset.val.images, dataset.name,
                detections_file=dataset.val.detections, batch_size=config.runtime.eval_batch_size,
                flip_test=config.runtime.flip_test, progress=False, dark_kernel_size=config.runtime.eval_dark_kernel,
            )
            metrics[dataset.name] = result.metrics
        unwrapped.train(was_training)
        if metrics:
            headline = {name: ("PCKh", m["PCKh"]) if "PCKh" in m else ("AP", m["AP"]) for name, m in metrics.items()}
            summary = ", ".join(f"{name} {key} {value:.4f}" for name, (key, value) in headline.items())
            accelerator.print(f"step {step}: {summary}")
            accelerator.log({f"eval/{name}/{key}": value for name, (key, value) in headline.items()}, step=step)
            _log_jsonl(log_path, {"step": step, "eval": metrics})
    accelerator.wait_for_everyone()
    return metrics


def _tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            return False
    return True


# ------------------------------------------------------------------------------------------------------ CLI
def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="run config YAML (default: the synthetic run)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint of output_dir")
    parser.add_argument("--output-dir", default=None, help="override runtime.output_dir")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optimization.max_steps=100 (YAML value)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="stop after N optimizer steps with a checkpoint (continue later with --resume)")


def run_from_args(args: argparse.Namespace) -> int:
    overrides = {}
    for item in args.set:
        if "=" not in item:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key] = yaml.safe_load(value)
    if args.output_dir:
        overrides["runtime.output_dir"] = args.output_dir
    config = load_training_config(args.config, overrides)
    result = train(config, resume=args.resume, progress=not args.no_progress, stop_after=args.stop_after)
    for name, metrics in result["metrics"].items():
        print(f"{name}: " + "  ".join(f"{key} {metrics[key]:.4f}" for key in ("AP", "AP50", "AR", "PCKh", "PCKh@0.1")
                                      if key in metrics))
    if result["model_dir"] is None:
        print(f"stopped at step {result['step']}; continue with --resume")
    else:
        print(f"model saved to {result['model_dir']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vitpose-plus train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run_from_args(parser.parse_args(argv))
    except (ValueError, TrainingDiverged) as err:
        raise SystemExit(f"error: {err}") from err


if __name__ == "__main__":
    raise SystemExit(main())
