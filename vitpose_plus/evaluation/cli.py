"""The `vitpose-plus evaluate` command (registered by `vitpose_plus.cli`)."""

from __future__ import annotations

import argparse

from vitpose_plus.cli import DefaultsFormatter, dataset_argument


def load_model_and_processor(model_dir: str, device: str | None = None, blur_kernel_size: int | None = None):
    """A model folder and its saved processor (the decoding settings it was evaluated with), or the default
    processor of its config when the folder has none."""
    import torch

    from vitpose_plus.file_io import load_model_folder
    from vitpose_plus.modeling import VitPosePlusImageProcessor

    model = load_model_folder(model_dir)
    if device:
        model.to(torch.device(device))
    try:
        processor = VitPosePlusImageProcessor.from_pretrained(model_dir)
    except OSError:
        processor = VitPosePlusImageProcessor.from_model_config(model.config)
    if blur_kernel_size is not None:
        processor.blur_kernel_size = int(blur_kernel_size)
        processor.codec()  # validates the kernel size
    return model, processor


def _run_evaluate(args: argparse.Namespace) -> int:
    from vitpose_plus.file_io import write_json

    from .evaluate import evaluate_keypoints

    model, processor = load_model_and_processor(args.model, args.device, args.dark_kernel)
    model.config.dataset_id(args.dataset)  # a clear error when the model lacks the dataset
    result = evaluate_keypoints(
        model, processor, args.annotations, args.images, args.dataset,
        detections_file=args.detections, detection_score_threshold=args.detection_threshold,
        batch_size=args.batch_size, flip_test=not args.no_flip_test,
        nms_threshold=None if args.no_nms else args.nms_threshold, progress=not args.no_progress,
    )
    boxes = "detections" if args.detections else "ground-truth boxes"
    print(f"{result.dataset}: {result.num_boxes} instances ({boxes}), flip test {'off' if args.no_flip_test else 'on'}")
    print("| " + " | ".join(result.metrics) + " |")
    print("|" + "---|" * len(result.metrics))
    print("| " + " | ".join(f"{v:.4f}" for v in result.metrics.values()) + " |")
    if args.output:
        records = [{k: r[k] for k in ("image_id", "category_id", "keypoints", "score")} for r in result.predictions]
        write_json(args.output, records, indent=None)
        print(f"predictions (COCO results format) written to {args.output}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `evaluate` to the top-level parser's sub-parsers."""
    evaluate = subparsers.add_parser(
        "evaluate", formatter_class=DefaultsFormatter,
        help="keypoint metrics of a model on an annotation file, exactly as the original",
        description="Top-down evaluation: ground-truth or detector boxes, flip test, per-dataset decoding, "
                    "rescoring, OKS-NMS, and the dataset's metric (COCO-style AP with its sigmas, PCKh for MPII).",
    )
    evaluate.add_argument("--model", required=True, help="saved model folder")
    dataset_argument(evaluate, required=True)
    evaluate.add_argument("--annotations", required=True, help="annotation file in its released format")
    evaluate.add_argument("--images", required=True, help="folder the annotation file names are relative to")
    evaluate.add_argument("--detections", default=None, help="COCO detection results JSON (default: GT boxes)")
    evaluate.add_argument("--detection-threshold", type=float, default=0.0,
                          help="keep detections with a score >= this (the original's det_bbox_thr)")
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--no-flip-test", action="store_true")
    evaluate.add_argument("--nms-threshold", type=float, default=0.9)
    evaluate.add_argument("--no-nms", action="store_true", help="skip OKS-NMS")
    evaluate.add_argument("--dark-kernel", type=int, default=None,
                          help="DARK-UDP blur kernel (default: the model's preprocessor_config.json, 11 for 64x48)")
    evaluate.add_argument("--device", default=None)
    evaluate.add_argument("--output", default=None, help="write the kept predictions as COCO results JSON")
    evaluate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    evaluate.set_defaults(func=_run_evaluate)
