"""The `vitpose-plus convert ...` and `vitpose-plus export ...` commands (registered by `vitpose_plus.cli`).

Heavy imports (torch, transformers) happen inside the handlers so that `vitpose-plus --help` stays fast.
"""

from __future__ import annotations

import argparse
import os

from vitpose_plus.cli import DefaultsFormatter, dataset_argument, parse_assignments


def _run_original(args: argparse.Namespace) -> int:
    from ..file_io import check_local_path, save_model_folder
    from .convert_original import convert_original

    check_local_path(args.checkpoint, "checkpoint file")
    result = convert_original(
        args.checkpoint,
        args.variant,
        num_attention_heads=args.num_attention_heads,
        datasets=args.datasets,
        image_size=args.image_size,
        allow_unsafe_pickle=args.allow_unsafe_pickle,
        verify=args.verify,
    )
    print(result.summary())
    save_model_folder(result.model, args.output, card=result.card_info(), max_shard_size=args.max_shard_size,
                      report=result.to_dict(), overwrite=args.overwrite)
    print(f"saved to {args.output}")
    return 0


def _run_split(args: argparse.Namespace) -> int:
    from .convert_folders import split_model_folder

    model = split_model_folder(args.model, args.dataset, args.output, max_shard_size=args.max_shard_size,
                               overwrite=args.overwrite)
    print(f"saved the dense {model.config.dataset_names[0]!r} model to {args.output}")
    return 0


def _run_to_transformers(args: argparse.Namespace) -> int:
    from .convert_folders import to_transformers_folder

    to_transformers_folder(args.model, args.output, dataset=args.dataset, max_shard_size=args.max_shard_size,
                           overwrite=args.overwrite)
    print(f"saved a transformers VitPoseForPoseEstimation folder to {args.output}")
    return 0


def _run_from_transformers(args: argparse.Namespace) -> int:
    from .convert_folders import from_transformers_folder

    from_transformers_folder(args.model, args.output, max_shard_size=args.max_shard_size, overwrite=args.overwrite)
    print(f"saved to {args.output}")
    return 0


def _run_mae(args: argparse.Namespace) -> int:
    from ..file_io import check_local_path, save_model_folder
    from ..hub_cards.cards import card_info_for_model
    from .convert_mae import convert_mae_checkpoint

    check_local_path(args.checkpoint, "MAE checkpoint")
    overrides = parse_assignments(args.set)
    if args.datasets:
        overrides["datasets"] = args.datasets
    result = convert_mae_checkpoint(
        args.checkpoint, args.preset, load_final_norm=args.load_final_norm,
        allow_unsafe_pickle=args.allow_unsafe_pickle, **overrides,
    )
    print(result.summary())
    source = os.path.basename(os.fspath(args.checkpoint).rstrip("/"))
    card = card_info_for_model(
        result.model,
        title=f"{args.preset}-mae-init",
        description=(f"{args.preset} initialised from MAE pre-training weights, ready for training (heads untrained: "
                     "do not use for inference)."),
        provenance=[f"Backbone from MAE weights `{source}` via `vitpose-plus convert mae`."],
    )
    save_model_folder(result.model, args.output, card=card, max_shard_size=args.max_shard_size,
                      report=result.to_dict(), overwrite=args.overwrite)
    print(f"saved to {args.output}")
    return 0


def _run_onnx(args: argparse.Namespace) -> int:
    from ..file_io import load_model_folder
    from .export_onnx import export_onnx

    model = load_model_folder(args.model)
    result = export_onnx(
        model, args.output, dataset=args.dataset, opset=args.opset, flip_test=args.flip_test, tolerance=args.tolerance,
        overwrite=args.overwrite,
    )
    diffs = ", ".join(f"{name}: {d:.3e}" for name, d in result.max_abs_difference.items())
    print(
        f"exported {result.path} (dataset {result.dataset!r}, {result.num_keypoints} keypoints, opset {result.opset}, "
        f"dynamic batch); onnxruntime vs PyTorch max abs difference: {diffs} (tolerance {args.tolerance:.0e})"
    )
    return 0


def _run_cards(args: argparse.Namespace) -> int:
    from ..hub_cards.catalog_cards import write_catalog_cards

    paths = write_catalog_cards(args.output, org=args.org, progress=not args.no_progress)
    print(f"rendered and validated {len(paths)} model cards in {args.output}")
    return 0


def _common(parser: argparse.ArgumentParser, output_help: str = "output folder (Hub layout)") -> None:
    parser.add_argument("--output", required=True, help=output_help)
    parser.add_argument("--max-shard-size", default="5GB", help="safetensors shard size, e.g. 2GB or 500MB")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty output folder")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `convert` and `export` commands to the top-level parser's sub-parsers."""
    from ..modeling.catalog import PRESETS

    convert = subparsers.add_parser(
        "convert",
        help="convert checkpoints (original ViTPose, MAE, transformers' VitPose)",
        description="Convert checkpoints into and out of vitpose-plus model folders.",
    )
    commands = convert.add_subparsers(
        dest="convert_command", metavar="{original,split,to-transformers,from-transformers,mae}", required=True
    )

    original = commands.add_parser(
        "original", formatter_class=DefaultsFormatter,
        help="an original ViTPose / ViTPose+ .pth (all heads kept)",
        description="Convert an original ViTPose / ViTPose+ checkpoint exactly, with every head.",
    )
    original.add_argument("--checkpoint", required=True, help="original .pth file (mmpose layout)")
    original.add_argument("--variant", choices=list(PRESETS), help="preset to take the attention-head count from")
    original.add_argument("--num-attention-heads", type=int, help="explicit number of attention heads")
    original.add_argument(
        "--datasets", nargs="+", help="dataset of every head in head order (built-in names or spec JSON/YAML files)"
    )
    original.add_argument("--image-size", nargs=2, type=int, metavar=("HEIGHT", "WIDTH"), help="input size")
    original.add_argument("--verify", action="store_true", help="check against the reference forward (max abs 1e-4)")
    original.add_argument(
        "--allow-unsafe-pickle", action="store_true", help="fully unpickle the file (only for files you trust)"
    )
    _common(original)
    original.set_defaults(func=_run_original)

    split = commands.add_parser(
        "split", formatter_class=DefaultsFormatter,
        help="the dense single-dataset model of one dataset (a correct model_split)",
        description="Fold a dataset's expert into fc2 and keep its head: a dense single-dataset model.",
    )
    split.add_argument("--model", required=True, help="vitpose-plus model folder")
    dataset_argument(split, required=True)
    _common(split)
    split.set_defaults(func=_run_split)

    to_hf = commands.add_parser(
        "to-transformers", formatter_class=DefaultsFormatter,
        help="to a transformers VitPoseForPoseEstimation folder",
        description="Export to transformers' own VitPose format (one head: multi-dataset models need --dataset).",
    )
    to_hf.add_argument("--model", required=True, help="vitpose-plus model folder")
    dataset_argument(to_hf, help_suffix=" (required for multi-dataset models)")
    _common(to_hf)
    to_hf.set_defaults(func=_run_to_transformers)

    from_hf = commands.add_parser(
        "from-transformers", formatter_class=DefaultsFormatter,
        help="from a transformers VitPose folder (e.g. usyd-community/vitpose-base)",
        description="Import a transformers VitPoseForPoseEstimation folder or Hub id.",
    )
    from_hf.add_argument("--model", required=True, help="transformers VitPose folder or Hub id")
    _common(from_hf)
    from_hf.set_defaults(func=_run_from_transformers)

    mae = commands.add_parser(
        "mae", formatter_class=DefaultsFormatter,
        help="a model initialised from MAE pre-training weights",
        description="Initialise a ViTPose / ViTPose+ preset from MAE weights (original .pth, transformers ViTMAE, "
                    "or a vitpose-plus MAE folder).",
    )
    mae.add_argument("--checkpoint", required=True, help="MAE .pth file, transformers ViTMAE folder or MAE folder")
    mae.add_argument("--preset", required=True, choices=list(PRESETS), help="architecture to initialise")
    mae.add_argument("--datasets", nargs="+", help="datasets (one head each), default: the preset's")
    mae.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                     help="config field override (YAML value), e.g. image_size=[384,288]; repeatable")
    mae.add_argument("--load-final-norm", action="store_true", help="copy MAE's norm into the final LayerNorm")
    mae.add_argument("--allow-unsafe-pickle", action="store_true", help="fully unpickle (trusted files only)")
    _common(mae)
    mae.set_defaults(func=_run_mae)

    export = subparsers.add_parser(
        "export", help="export a model to ONNX, or render the catalog's model cards",
        description="Export a model folder to ONNX, or render the model cards of every catalog variant.",
    )
    exports = export.add_subparsers(dest="export_command", metavar="{onnx,cards}", required=True)
    onnx = exports.add_parser(
        "onnx", formatter_class=DefaultsFormatter,
        help="one dataset as a dense ONNX model: pixel_values -> heatmaps, dynamic batch",
        description="Merge the dataset's expert, export pixel_values -> heatmaps with a dynamic batch axis and check "
        "the file with onnxruntime against PyTorch through the shared top-down predictor.",
    )
    onnx.add_argument("--model", required=True, help="vitpose-plus model folder")
    dataset_argument(onnx, help_suffix=" (required for multi-dataset models)")
    onnx.add_argument("--output", required=True, help="output .onnx file")
    onnx.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    onnx.add_argument("--flip-test", action="store_true", help="bake the flip test into the graph")
    onnx.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted max abs difference")
    onnx.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    onnx.set_defaults(func=_run_onnx)

    cards = exports.add_parser(
        "cards", formatter_class=DefaultsFormatter,
        help="render the model cards of ViTPose S/B/L/H, ViTPose+ S/B/L/H and every split model",
        description="Render (and validate) hub_cards/ model cards for every catalog variant into OUTPUT/<name>/.",
    )
    cards.add_argument("--output", required=True, help="output folder")
    cards.add_argument("--org", default="your-org", help="Hub organisation used in the repository ids")
    cards.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    cards.set_defaults(func=_run_cards)
