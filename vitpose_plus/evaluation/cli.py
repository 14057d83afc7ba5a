"""The `vitpose-plus evaluate` command (registered by `vitpose_plus.cli`)."""

from __future__ import annotations

import argparse

from vitpose_plus.cli import DefaultsFormatter, dataset_argument

TASKS = ("top-down", "bottom-up")


def model_task(model) -> str:
    """`"bottom-up"` for an associative-embedding model, else `"top-down"`."""
    from vitpose_plus.modeling import VitPosePlusForBottomUpPoseEstimation

    return "bottom-up" if isinstance(model, VitPosePlusForBottomUpPoseEstimation) else "top-down"


def check_task(model, task: str | None, model_dir: str) -> str:
    """The task to run: `task`, or the model's when `None`; `ValueError` when the model cannot do `task`."""
    own = model_task(model)
    if task is not None and task != own:
        raise ValueError(f"--task {task}: {model_dir!r} is a {own} model ({type(model).__name__}); use --task {own} "
                         "or a model folder of the other kind.")
    return own


def load_model_and_processor(model_dir: str, device: str | None = None, blur_kernel_size: int | None = None):
    """A model folder and its saved processor (the decoding or grouping settings it was evaluated with), or the
    default processor of its config when the folder has none (bottom-up models: `VitPosePlusBottomUpImageProcessor`)."""
    import torch

    from vitpose_plus.file_io import load_model_folder
    from vitpose_plus.modeling import VitPosePlusBottomUpImageProcessor, VitPosePlusImageProcessor

    model = load_model_folder(model_dir)
    if device:
        model.to(torch.device(device))
    processor_class = VitPosePlusBottomUpImageProcessor if model_task(model) == "bottom-up" else \
        VitPosePlusImageProcessor
    try:
        processor = processor_class.from_pretrained(model_dir)
    except OSError:
        processor = processor_class.from_model_config(model.config)
    if processor_class is VitPosePlusBottomUpImageProcessor:
        if blur_kernel_size is not None:
            raise ValueError("--dark-kernel is the top-down DARK-UDP decoding's blur; bottom-up models group their "
                             "heatmaps with the associative-embedding parser.")
        return model, processor
    if blur_kernel_size is not None:
        processor.blur_kernel_size = int(blur_kernel_size)
        processor.codec()  # validates the kernel size
    return model, processor


def _run_evaluate(args: argparse.Namespace) -> int:
    from vitpose_plus.file_io import write_json

    from .evaluate import evaluate_keypoints

    model, processor = load_model_and_processor(args.model, args.device, args.dark_kernel)
    task = check_task(model, args.task, args.model)
    model.config.dataset_id(args.dataset)  # a clear error when the model lacks the dataset
    if task == "bottom-up":
        result = _evaluate_bottom_up(args, model, processor)
    else:
        if args.scales is not None:
            raise ValueError("--scales is the bottom-up multi-scale test; top-down evaluation crops boxes.")
        result = evaluate_keypoints(
            model, processor, args.annotations, args.images, args.dataset,
            detections_file=args.detections, detection_score_threshold=args.detection_threshold,
            batch_size=args.batch_size, flip_test=not args.no_flip_test,
            nms_threshold=None if args.no_nms else 0.9 if args.nms_threshold is None else args.nms_threshold,
            progress=not args.no_progress, protocol=args.protocol, mpii_gt_mat=args.mpii_gt_mat,
        )
        boxes = "detections" if args.detections else "ground-truth boxes"
        boxes = "annotated center/scale" if result.protocol == "mpii" else boxes
        print(f"{result.dataset} ({result.protocol} protocol): {result.num_boxes} instances ({boxes}), "
              f"flip test {'off' if args.no_flip_test else 'on'}")
    print(metrics_table(result.metrics))
    if args.output:
        write_json(args.output, result.results, indent=None)
        print(f"predictions (COCO results format) written to {args.output}")
    return 0


def _evaluate_bottom_up(args: argparse.Namespace, model, processor):
    """`--task bottom-up`: whole images, no boxes, OKS-NMS only with --nms-threshold."""
    from .bottom_up import evaluate_bottom_up

    if args.detections:
        raise ValueError("--detections: bottom-up evaluation runs on whole images and takes no boxes.")
    nms = None if args.no_nms else args.nms_threshold
    scales = args.scales or [1.0]
    result = evaluate_bottom_up(
        model, processor, args.annotations, args.images, args.dataset, batch_size=args.batch_size,
        flip_test=not args.no_flip_test, scale_factors=scales, nms_threshold=nms, progress=not args.no_progress,
        protocol=args.protocol,
    )
    print(f"{result.dataset} ({result.protocol} protocol, bottom-up): {result.num_boxes} persons grouped in whole "
          f"images, flip test {'off' if args.no_flip_test else 'on'}, scales {scales}, OKS-NMS "
          f"{'off' if nms is None else nms}")
    return result


def metrics_table(metrics: dict[str, float]) -> str:
    """A markdown table of metrics; COCO-WholeBody gets one row per part (`body_AP` -> row `body`, column `AP`)."""
    groups: dict[str, dict[str, float]] = {}
    for name, value in metrics.items():
        part, _, metric = name.rpartition("_") if name.count("_") and not name.startswith("PCKh") else ("", "", name)
        groups.setdefault(part or "all", {})[metric] = value
    header = list(next(iter(groups.values())))
    several = len(groups) > 1
    lines = ["| " + " | ".join(["", *header] if several else header) + " |",
             "|" + "---|" * (len(header) + several)]
    for part, values in groups.items():
        cells = [f"{values[m]:.4f}" if m in values else "" for m in header]
        lines.append("| " + " | ".join([part, *cells] if several else cells) + " |")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `evaluate` to the top-level parser's sub-parsers."""
    evaluate = subparsers.add_parser(
        "evaluate", formatter_class=DefaultsFormatter,
        help="keypoint metrics of a model on an annotation file, exactly as the original",
        description="Top-down evaluation per dataset protocol: ground-truth or detector boxes (MPII: annotated "
                    "center/scale), flip test, the model's decoding, rescoring, OKS-NMS, and the dataset's metric "
                    "(COCO-style AP with its sigmas, per-part COCO-WholeBody AP, PCKh for MPII).",
    )
    evaluate.add_argument("--model", required=True, help="saved model folder")
    dataset_argument(evaluate, required=True)
    evaluate.add_argument("--annotations", required=True, help="annotation file in its released format")
    evaluate.add_argument("--images", required=True, help="folder the annotation file names are relative to")
    evaluate.add_argument("--detections", default=None, help="COCO detection results JSON (default: GT boxes)")
    evaluate.add_argument("--protocol", default=None,
                          help="coco, ochuman, aic, mpii, ap10k, apt36k, coco_wholebody or generic "
                               "(default: from --dataset; OCHuman: --dataset coco --protocol ochuman)")
    evaluate.add_argument("--mpii-gt-mat", default=None,
                          help="MPII: mpii_gt_val.mat with the head boxes (default: next to --annotations)")
    evaluate.add_argument("--detection-threshold", type=float, default=0.0,
                          help="keep detections with a score >= this (the original's det_bbox_thr)")
    evaluate.add_argument("--task", choices=TASKS, default=None,
                          help="top-down (boxes) or bottom-up (whole images, every person grouped; no boxes, "
                               "keypoint-box area, no OKS-NMS unless --nms-threshold); default: the model's kind")
    evaluate.add_argument("--scales", type=float, nargs="+", default=None,
                          help="bottom-up multi-scale test, e.g. 0.5 1 2 (must include 1); default: 1")
    evaluate.add_argument("--batch-size", type=int, default=32, help="crops (bottom-up: images) per forward pass")
    evaluate.add_argument("--no-flip-test", action="store_true")
    evaluate.add_argument("--nms-threshold", type=float, default=None,
                          help="OKS-NMS threshold (default: 0.9 top-down, as the original; off for bottom-up)")
    evaluate.add_argument("--no-nms", action="store_true", help="skip OKS-NMS")
    evaluate.add_argument("--dark-kernel", type=int, default=None,
                          help="DARK-UDP blur kernel (default: the model's preprocessor_config.json, 11 for 64x48)")
    evaluate.add_argument("--device", default=None)
    evaluate.add_argument("--output", default=None, help="write the results as the original writes them (COCO "
                          "results JSON; WholeBody with its part keys)")
    evaluate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    evaluate.set_defaults(func=_run_evaluate)
