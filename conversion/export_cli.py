"""The `vitpose-plus export` (onnx, cards) and `vitpose-plus publish` commands (registered by `vitpose_plus.cli`).

Heavy imports happen inside the handlers so that `vitpose-plus --help` stays fast.
"""

from __future__ import annotations

import argparse


def _run_onnx(args: argparse.Namespace) -> int:
    from ..file_io import load_model_folder
    from .export_onnx import export_onnx

    model = load_model_folder(args.model)
    result = export_onnx(
        model, args.output, dataset=args.dataset, opset=args.opset, flip_test=args.flip_test, tolerance=args.tolerance
    )
    diffs = ", ".join(f"batch {b}: {d:.3e}" for b, d in result.max_abs_difference.items())
    print(
        f"exported {result.path} (dataset {result.dataset!r}, {result.num_keypoints} keypoints, opset {result.opset}, "
        f"dynamic batch); onnxruntime vs PyTorch max abs difference: {diffs} (tolerance {args.tolerance:.0e})"
    )
    return 0


def _run_cards(args: argparse.Namespace) -> int:
    from .model_card import write_catalog_cards

    paths = write_catalog_cards(args.output, org=args.org)
    print(f"rendered and validated {len(paths)} model cards in {args.output}")
    return 0


def _run_publish(args: argparse.Namespace) -> int:
    from .publish import run

    return run(args)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `export` group (onnx, cards) and the `publish` command."""
    from .publish import add_arguments as add_publish_arguments

    export = subparsers.add_parser(
        "export", help="export a model to ONNX, or render the catalog's model cards",
        description="Export a model folder to ONNX, or render the model cards of every catalog variant.",
    )
    commands = export.add_subparsers(dest="export_command", metavar="{onnx,cards}", required=True)
    onnx = commands.add_parser(
        "onnx",
        help="one dataset as a dense ONNX model: pixel_values -> heatmaps, dynamic batch",
        description="Merge the dataset's expert, export pixel_values -> heatmaps with a dynamic batch axis and check "
        "the file with onnxruntime against PyTorch.",
    )
    onnx.add_argument("--model", required=True, help="vitpose-plus model folder")
    onnx.add_argument("--dataset", help="dataset name or index (required for multi-dataset models)")
    onnx.add_argument("--output", required=True, help="output .onnx file")
    onnx.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    onnx.add_argument("--flip-test", action="store_true", help="bake the flip test into the graph")
    onnx.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted max abs difference")
    onnx.set_defaults(func=_run_onnx)

    cards = commands.add_parser(
        "cards",
        help="render the model cards of ViTPose S/B/L/H, ViTPose+ S/B/L/H and every split model",
        description="Render (and validate) hub_cards/ model cards for every catalog variant into OUTPUT/<name>/.",
    )
    cards.add_argument("--output", required=True, help="output folder")
    cards.add_argument("--org", default="your-org", help="Hub organisation used in the repository ids")
    cards.set_defaults(func=_run_cards)

    publish = subparsers.add_parser(
        "publish",
        help="assemble a Hub-ready folder (and upload it with --push)",
        description="Assemble config.json (auto_map), remote code, safetensors, preprocessor_config.json and a "
        "README model card; upload with huggingface_hub only with --push.",
    )
    add_publish_arguments(publish)
    publish.set_defaults(func=_run_publish)
