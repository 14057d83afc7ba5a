"""The `vitpose-plus convert ...` command group (registered by `vitpose_plus.cli`).

Heavy imports (torch, transformers) happen inside the handlers so that `vitpose-plus --help` stays fast.
"""

from __future__ import annotations

import argparse


def _run_original(args: argparse.Namespace) -> int:
    from .convert_original import run

    return run(args)


def _run_split(args: argparse.Namespace) -> int:
    from .convert_folders import split_model_folder

    model = split_model_folder(args.model, args.dataset, args.output, max_shard_size=args.max_shard_size)
    print(f"saved the dense {model.config.dataset_names[0]!r} model to {args.output}")
    return 0


def _run_to_transformers(args: argparse.Namespace) -> int:
    from .convert_folders import to_transformers_folder

    to_transformers_folder(args.model, args.output, dataset=args.dataset, max_shard_size=args.max_shard_size)
    print(f"saved a transformers VitPoseForPoseEstimation folder to {args.output}")
    return 0


def _run_from_transformers(args: argparse.Namespace) -> int:
    from .convert_folders import from_transformers_folder

    from_transformers_folder(args.model, args.output, max_shard_size=args.max_shard_size)
    print(f"saved to {args.output}")
    return 0


def _run_mae(args: argparse.Namespace) -> int:
    from .convert_mae import run

    return run(args)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `convert` command and its sub-commands to the top-level parser's sub-parsers."""
    from .convert_mae import add_arguments as add_mae_arguments
    from .convert_original import add_arguments as add_original_arguments

    convert = subparsers.add_parser(
        "convert",
        help="convert checkpoints (original ViTPose, MAE, transformers' VitPose)",
        description="Convert checkpoints into and out of vitpose-plus model folders.",
    )
    commands = convert.add_subparsers(
        dest="convert_command", metavar="{original,split,to-transformers,from-transformers,mae}", required=True
    )

    original = commands.add_parser(
        "original",
        help="an original ViTPose / ViTPose+ .pth (all heads kept)",
        description="Convert an original ViTPose / ViTPose+ checkpoint exactly, with every head.",
    )
    add_original_arguments(original)
    original.set_defaults(func=_run_original)

    split = commands.add_parser(
        "split",
        help="the dense single-dataset model of one dataset (a correct model_split)",
        description="Fold a dataset's expert into fc2 and keep its head: a dense single-dataset model.",
    )
    split.add_argument("--model", required=True, help="vitpose-plus model folder")
    split.add_argument("--dataset", required=True, help="dataset name (e.g. aic) or index")
    split.add_argument("--output", required=True, help="output folder")
    split.add_argument("--max-shard-size", default="5GB")
    split.set_defaults(func=_run_split)

    to_hf = commands.add_parser(
        "to-transformers",
        help="to a transformers VitPoseForPoseEstimation folder",
        description="Export to transformers' own VitPose format (one head: multi-dataset models need --dataset).",
    )
    to_hf.add_argument("--model", required=True, help="vitpose-plus model folder")
    to_hf.add_argument("--output", required=True, help="output folder")
    to_hf.add_argument("--dataset", help="dataset to export (required for multi-dataset models)")
    to_hf.add_argument("--max-shard-size", default="5GB")
    to_hf.set_defaults(func=_run_to_transformers)

    from_hf = commands.add_parser(
        "from-transformers",
        help="from a transformers VitPose folder (e.g. usyd-community/vitpose-base)",
        description="Import a transformers VitPoseForPoseEstimation folder or Hub id.",
    )
    from_hf.add_argument("--model", required=True, help="transformers VitPose folder or Hub id")
    from_hf.add_argument("--output", required=True, help="output folder")
    from_hf.add_argument("--max-shard-size", default="5GB")
    from_hf.set_defaults(func=_run_from_transformers)

    mae = commands.add_parser(
        "mae",
        help="a model initialised from MAE pre-training weights",
        description="Initialise a ViTPose / ViTPose+ preset from MAE weights (original .pth or transformers ViTMAE).",
    )
    add_mae_arguments(mae)
    mae.set_defaults(func=_run_mae)
