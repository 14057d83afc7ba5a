"""The `vitpose-plus predict` command (registered by `vitpose_plus.cli`); heavy imports happen in the handler."""

from __future__ import annotations

import argparse
import sys

from vitpose_plus.cli import DefaultsFormatter, dataset_argument


def model_kind(model_id: str) -> str:
    """`"bottom-up"` or `"top-down"`, from the `model_type` of a model folder's (or Hub id's) `config.json`."""
    import os

    from transformers import PretrainedConfig

    from vitpose_plus.file_io import check_local_path, read_json_file
    from vitpose_plus.modeling import VitPosePlusBottomUpConfig

    path = check_local_path(model_id)
    if os.path.isfile(os.path.join(path, "config.json")):  # local: our reader names a truncated or broken file
        config = read_json_file(os.path.join(path, "config.json"), "model config")
    else:
        config, _ = PretrainedConfig.get_config_dict(path)
    return "bottom-up" if config.get("model_type") == VitPosePlusBottomUpConfig.model_type else "top-down"


def _bottom_up_pipeline(args: argparse.Namespace):
    from .bottom_up import BottomUpPipeline

    if args.boxes or args.detector:
        raise ValueError("--task bottom-up finds every person in the whole image; it takes no --boxes or --detector.")
    return BottomUpPipeline.from_pretrained(args.model, dataset=args.dataset, batch_size=args.batch_size,
                                            flip_test=args.flip_test, scale_factors=args.scales or [1.0],
                                            device=args.device)


def _run_predict(args: argparse.Namespace) -> int:
    from .pipeline import PosePipeline
    from .predict import predict_inputs

    if args.boxes and args.detector:
        raise ValueError("Give either --boxes or --detector, not both.")
    task = args.task or model_kind(args.model)
    if task == "bottom-up":
        pipeline = _bottom_up_pipeline(args)
    else:
        if args.scales is not None:
            raise ValueError("--scales is the bottom-up multi-scale test (--task bottom-up).")
        pipeline = PosePipeline.from_pretrained(
            args.model,
            dataset=args.dataset,
            detector=args.detector,
            detector_labels=args.detector_labels,
            detector_threshold=args.detector_threshold,
            batch_size=args.batch_size,
            flip_test=args.flip_test,
            device=args.device,
        )
    summary = predict_inputs(
        pipeline,
        args.image,
        args.output,
        boxes_file=args.boxes,
        box_format=args.box_format,
        category_id=args.category_id,
        keypoint_threshold=args.keypoint_threshold,
        strict=args.strict,
        progress=not args.no_progress,
    )
    print(
        f"{summary.num_instances} instance(s) in {summary.num_images} image(s) [{pipeline.spec.name}]: "
        f"{summary.results_file}, {len(summary.pictures)} picture(s) in {args.output}"
    )
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} unreadable image(s):", file=sys.stderr)
        for path, reason in summary.skipped:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `predict` to the top-level parser's sub-parsers."""
    predict = subparsers.add_parser(
        "predict", formatter_class=DefaultsFormatter,
        help="pose estimation on an image, a folder of images or a video (top-down or bottom-up)",
        description=(
            "Predict keypoints with boxes from a JSON file, an object detector, or the whole image (top-down), or of "
            "every person without boxes (bottom-up models); writes keypoints.json (COCO keypoint results) and a "
            "skeleton picture per image into --output."
        ),
    )
    predict.add_argument("--task", choices=("top-down", "bottom-up"), default=None,
                         help="top-down (boxes) or bottom-up (every person, no detector); default: the model's kind")
    predict.add_argument("--scales", type=float, nargs="+", default=None,
                         help="bottom-up multi-scale test, e.g. 0.5 1 2 (must include 1); default: 1")
    predict.add_argument("--model", required=True, help="vitpose-plus model folder or Hub id")
    predict.add_argument("--image", required=True, help="image file, folder of images, or video file")
    source = predict.add_mutually_exclusive_group()
    source.add_argument(
        "--boxes",
        help="JSON: a list of [x, y, w, h] boxes (or {'bbox', 'score'} objects), or {image file name: list}",
    )
    source.add_argument("--detector", help="transformers object-detection model (Hub id or folder)")
    predict.add_argument("--box-format", choices=("xywh", "xyxy"), default="xywh", help="box layout in --boxes")
    predict.add_argument(
        "--detector-labels", nargs="+", default=["person"], help="detector classes to keep (default: person)"
    )
    predict.add_argument("--detector-threshold", type=float, default=0.5, help="detector score threshold")
    dataset_argument(predict, help_suffix="; default: the processor's (the model's first)")
    predict.add_argument("--flip-test", action="store_true", help="average with the mirrored crops (images)")
    predict.add_argument("--batch-size", type=int, default=32, help="crops (bottom-up: images) per forward pass")
    predict.add_argument("--keypoint-threshold", type=float, default=0.3, help="hide keypoints below this score")
    predict.add_argument("--category-id", type=int, default=1, help="category_id of the COCO results")
    predict.add_argument("--device", default=None, help="torch device (default: cpu)")
    predict.add_argument("--output", required=True, help="output folder (not the folder of the inputs)")
    predict.add_argument("--strict", action="store_true", help="stop at the first unreadable image (default: skip "
                         "it with a warning, list it, and exit with status 1 at the end)")
    predict.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    predict.set_defaults(func=_run_predict)
