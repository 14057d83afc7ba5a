"""The `vitpose-plus train`, `finetune`, `pretrain` and `distill` commands (registered by `vitpose_plus.cli`)."""

from __future__ import annotations

import argparse
import os

from vitpose_plus.cli import DefaultsFormatter, dataset_argument, parse_assignments


def _load_config(args: argparse.Namespace):
    from .config import load_training_config

    overrides = parse_assignments(args.set)
    if args.output_dir:
        overrides["runtime.output_dir"] = args.output_dir
    return load_training_config(args.config, overrides)


def _run_train(args: argparse.Namespace) -> int:
    config = _load_config(args)
    if args.check_data:
        return _check_data(config)
    from .train import train

    if args.resume and args.overwrite:
        raise ValueError("Give either --resume (continue the run in the output folder) or --overwrite (replace it).")
    result = train(config, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                   stop_after=args.stop_after)
    for name, metrics in result.metrics.items():
        shown = "  ".join(f"{key} {value:.4f}" for key, value in list(metrics.items())[:4])
        print(f"{name}: {shown}")
    if result.model_dir is None:
        print(f"stopped at step {result.step}; continue with --resume")
    else:
        print(f"model saved to {result.model_dir}")
    return 0


def _check_data(config) -> int:
    """Validate every data file of the run and print the instance table; no model is built."""
    from vitpose_plus.data.check import check_dataset_files, dataset_files_from_run

    from .train import materialise_synthetic

    materialise_synthetic(config, is_main=True, progress=True)
    report = check_dataset_files(dataset_files_from_run(config.datasets))
    print(report.format_table())
    if not report.ok:
        report.raise_for_errors()
    print("all data files are usable")
    return 0


def _run_finetune(args: argparse.Namespace) -> int:
    from .finetune_with_trainer import finetune_with_trainer

    result = finetune_with_trainer(
        args.output_dir, model=args.model, dataset=args.dataset, train_annotations=args.train_annotations,
        train_images=args.train_images, val_annotations=args.val_annotations, val_images=args.val_images,
        max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
        save_steps=args.save_steps, resume=args.resume, seed=args.seed,
    )
    for key, value in result.metrics.items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    print(f"model saved to {result.model_dir}")
    return 0


def _run_pretrain(args: argparse.Namespace) -> int:
    from .pretrain import pretrain
    from .pretraining_config import load_pretraining_config

    if args.resume and args.overwrite:
        raise ValueError("Give either --resume (continue the run in the output folder) or --overwrite (replace it).")
    overrides = parse_assignments(args.set)
    if args.output_dir:
        overrides["runtime.output_dir"] = args.output_dir
    config = load_pretraining_config(args.config, overrides)
    result = pretrain(config, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                      stop_after=args.stop_after)
    loss = f" (loss {result.final_loss:.4f})" if result.final_loss is not None else ""
    if result.model_dir is None:
        print(f"stopped at step {result.step}{loss}; continue with --resume")
    else:
        print(f"MAE model saved to {result.model_dir}{loss}; pictures in "
              f"{config.runtime.output_dir}/pictures. Fine-tune with: vitpose-plus train --config RUN.yaml "
              f"--set model.mae_checkpoint={result.model_dir}")
    return 0


def _add_run_arguments(parser: argparse.ArgumentParser, set_example: str = "optimization.max_steps=100") -> None:
    """The options every Accelerate run command shares (train, pretrain, distill token)."""
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint of the output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous run in the output folder")
    parser.add_argument("--output-dir", default=None, help="override runtime.output_dir")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config value, e.g. --set {set_example} (YAML value)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="stop after N optimizer steps with a checkpoint (continue later with --resume)")


def register_pretrain(subparsers: argparse._SubParsersAction) -> None:
    """Add `pretrain` (MAE pre-training of the backbone) to the top-level parser's sub-parsers."""
    from .pretraining_config import bundled_pretraining_configs

    pretrain = subparsers.add_parser(
        "pretrain", formatter_class=DefaultsFormatter,
        help="pre-train a ViTPose backbone with MAE on pose images (Accelerate)",
        description="MAE pre-training from a YAML config (default: the synthetic images, synthetic_mae): person "
                    "crops or whole images of keypoint datasets, or unlabelled image folders. Writes "
                    "OUTPUT_DIR/model (use it as model.mae_checkpoint in `train`) and reconstruction pictures in "
                    "OUTPUT_DIR/pictures. Several processes: torchrun --nproc_per_node N -m vitpose_plus pretrain "
                    "--config FILE, or accelerate launch --multi_gpu --num_processes N -m vitpose_plus pretrain ...",
    )
    pretrain.add_argument("--config", default=None,
                          help=f"pre-training config YAML, or a bundled one by name "
                               f"({', '.join(bundled_pretraining_configs())}); default: synthetic_mae")
    _add_run_arguments(pretrain)
    pretrain.set_defaults(func=_run_pretrain)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `train`, `finetune` and `pretrain` to the top-level parser's sub-parsers."""
    from .config import bundled_configs

    train = subparsers.add_parser(
        "train", formatter_class=DefaultsFormatter,
        help="train or fine-tune ViTPose / ViTPose+ (Accelerate)",
        description="Train from a YAML run config (default: the synthetic run). Several processes: "
                    "torchrun --nproc_per_node N -m vitpose_plus train --config FILE (CPU or GPU), or "
                    "accelerate launch --multi_gpu --num_processes N -m vitpose_plus train --config FILE.",
    )
    train.add_argument("--config", default=None,
                       help=f"run config YAML, or a bundled one by name ({', '.join(bundled_configs())}); "
                            "default: synthetic")
    train.add_argument("--check-data", action="store_true",
                       help="validate every data file of the config, print the instance table and stop")
    _add_run_arguments(train)
    train.set_defaults(func=_run_train)

    finetune = subparsers.add_parser(
        "finetune", formatter_class=DefaultsFormatter,
        help="fine-tune one dataset of a model with transformers.Trainer",
        description="Fine-tune one dataset with transformers.Trainer (processor and card saved with every checkpoint, "
                    "exact --resume, streaming evaluation). Without annotation files: a small synthetic set.",
    )
    finetune.add_argument("--output-dir", default="runs/trainer", help="Trainer output folder")
    finetune.add_argument("--model", default=None,
                          help="model folder or Hub id to fine-tune (default: a small new one)")
    dataset_argument(finetune, help_suffix="; without --model: the keypoint layout of the new model")
    finetune.set_defaults(dataset="coco")
    for split in ("train", "val"):
        finetune.add_argument(f"--{split}-annotations", default=None, help=f"{split} annotation file (COCO format)")
        finetune.add_argument(f"--{split}-images", default=None, help=f"{split} image folder")
    finetune.add_argument("--max-steps", type=int, default=300)
    finetune.add_argument("--batch-size", type=int, default=32, help="per device")
    finetune.add_argument("--learning-rate", type=float, default=1e-3)
    finetune.add_argument("--save-steps", type=int, default=100, help="checkpoint interval")
    finetune.add_argument("--seed", type=int, default=0)
    finetune.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    finetune.set_defaults(func=_run_finetune)
    register_pretrain(subparsers)
    _register_distill(subparsers)


# ------------------------------------------------------------------------------------------------------ distill
def _run_distill_token(args: argparse.Namespace) -> int:
    if args.resume and args.overwrite:
        raise ValueError("Give either --resume (continue the run in the output folder) or --overwrite (replace it).")
    overrides = parse_assignments(args.set)
    if args.output_dir:
        overrides["runtime.output_dir"] = args.output_dir
    overrides["distillation.knowledge_token"] = None  # the token this command writes; a student config may name it
    if args.teacher:
        overrides["distillation.teacher"] = os.path.abspath(args.teacher)  # relative to here, not to the config
    from .config import load_training_config
    from .distillation import learn_knowledge_token

    config = load_training_config(args.config, overrides)
    result = learn_knowledge_token(config, resume=args.resume, overwrite=args.overwrite,
                                   progress=not args.no_progress, stop_after=args.stop_after)
    if result.token_path is None:
        print(f"stopped at step {result.step}; continue with --resume")
        return 0
    meta = result.metadata
    print(f"knowledge token (width {meta['width']}, teacher width {meta['teacher_width']}"
          f"{', through a linear map' if meta['projection'] else ''}) after {meta['steps']} steps, final loss "
          f"{meta['final_loss']:.6f}; |token - initial| = {meta['token_relative_change']:.2f} x |initial|")
    for name, without in meta.get("teacher_metrics", {}).get("without_token", {}).items():
        with_token = meta["teacher_metrics"]["with_token"][name]
        key = "AP" if "AP" in without else next(iter(without))
        print(f"teacher {name}: {key} {without[key]:.4f} without the token, {with_token[key]:.4f} with it")
    print(f"token saved to {result.token_path}")
    return 0


def _register_distill(subparsers: argparse._SubParsersAction) -> None:
    distill = subparsers.add_parser(
        "distill", formatter_class=DefaultsFormatter,
        help="knowledge transfer from a larger model (knowledge token; heatmap distillation is a config section)",
        description="Knowledge transfer from a larger ViTPose / ViTPose+ (docs/distillation.md). Heatmap distillation "
                    "and the frozen knowledge token of a student run are set in its config's `distillation` section "
                    "and run with `vitpose-plus train`.",
    )
    commands = distill.add_subparsers(dest="distill_command", metavar="COMMAND", required=True)
    token = commands.add_parser(
        "token", formatter_class=DefaultsFormatter,
        help="learn the knowledge token on a frozen teacher",
        description="Train only a knowledge token appended to the frozen teacher's patch tokens, with the pose loss "
                    "on the config's training data (distillation.token_learning: epochs, lr). The token gets the "
                    "width of the config's model (the student); writes knowledge_token.safetensors and "
                    "knowledge_token.json into runtime.output_dir.",
    )
    token.add_argument("--teacher", default=None, help="the teacher's model folder (default: distillation.teacher)")
    token.add_argument("--config", default=None, help="the student's run config (YAML file or bundled name)")
    _add_run_arguments(token, set_example="distillation.token_learning.max_epochs=2")
    token.set_defaults(func=_run_distill_token)
