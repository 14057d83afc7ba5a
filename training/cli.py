"""The `vitpose-plus train` and `vitpose-plus evaluate` commands (registered by `vitpose_plus.cli`)."""

from __future__ import annotations

import argparse
import json


def _run_train(args: argparse.Namespace) -> int:
    from .train import run_from_args

    return run_from_args(args)


def _run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from vitpose_plus.evaluation.evaluate import evaluate_keypoints
    from vitpose_plus.modeling import VitPosePlusForPoseEstimation, VitPosePlusImageProcessor

    model = VitPosePlusForPoseEstimation.from_pretrained(args.model).eval()
    if args.device:
        model.to(torch.device(args.device))
    model.config.dataset_id(args.dataset)  # a clear error when the model lacks the dataset
    result = evaluate_keypoints(
        model, VitPosePlusImageProcessor.from_model_config(model.config), args.annotations, args.images, args.dataset,
        detections_file=args.detections, detection_score_threshold=args.detection_threshold,
        batch_size=args.batch_size, flip_test=not args.no_flip_test,
        nms_threshold=None if args.no_nms else args.nms_threshold, dark_kernel_size=args.dark_kernel,
        protocol=args.protocol, mpii_gt_mat=args.mpii_gt_mat,
    )
    boxes = "detections" if args.detections else "ground-truth boxes"
    boxes = "annotated center/scale" if result.protocol == "mpii" else boxes
    print(f"{result.dataset} ({result.protocol} protocol): {result.num_boxes} instances ({boxes}), "
          f"flip test {'off' if args.no_flip_test else 'on'}")
    groups: dict[str, dict[str, float]] = {}  # WholeBody: one table row per part
    for name, value in result.metrics.items():
        part, _, metric = name.rpartition("_")
        groups.setdefault(part or "all", {})[metric] = value
    header = list(next(iter(groups.values())))
    print("| " + " | ".join(["", *header] if len(groups) > 1 else header) + " |")
    print("|" + "---|" * (len(header) + (len(groups) > 1)))
    for part, values in groups.items():
        cells = [f"{values[m]:.4f}" for m in header]
        print("| " + " | ".join([part, *cells] if len(groups) > 1 else cells) + " |")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(result.results, handle)
        print(f"predictions (COCO results format) written to {args.output}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from .train import add_train_arguments

    train = subparsers.add_parser(
        "train", help="train or fine-tune ViTPose / ViTPose+ (Accelerate)",
        description="Train from a YAML run config (default: the synthetic run). Multi-GPU: "
                    "accelerate launch -m vitpose_plus.training.train --config FILE",
    )
    add_train_arguments(train)
    train.set_defaults(func=_run_train)

    evaluate = subparsers.add_parser(
        "evaluate", help="keypoint AP (or MPII PCKh) of a model on a dataset file, as the original",
        description="Top-down evaluation per dataset protocol: ground-truth or detector boxes (MPII: annotated "
                    "center/scale), flip test, per-dataset decoding, rescoring, OKS-NMS, then COCO-style AP/AR "
                    "with the dataset's sigmas (WholeBody: per part) or MPII PCKh.",
    )
    evaluate.add_argument("--model", required=True, help="saved model folder")
    evaluate.add_argument("--dataset", required=True, help="the model's dataset (name or index) to evaluate")
    evaluate.add_argument("--annotations", required=True, help="annotation file in the dataset's released format")
    evaluate.add_argument("--images", required=True, help="folder the annotation file names are relative to")
    evaluate.add_argument("--detections", default=None, help="COCO detection results JSON (default: GT boxes)")
    evaluate.add_argument("--detection-threshold", type=float, default=0.0,
                          help="keep detections with score >= this (the original's det_bbox_thr)")
    evaluate.add_argument("--protocol", default=None,
                          help="coco, ochuman, aic, mpii, ap10k, apt36k, coco_wholebody or generic "
                               "(default: from --dataset; OCHuman: --dataset coco --protocol ochuman)")
    evaluate.add_argument("--mpii-gt-mat", default=None,
                          help="MPII: mpii_gt_val.mat with the head boxes (default: next to --annotations)")
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--no-flip-test", action="store_true")
    evaluate.add_argument("--nms-threshold", type=float, default=0.9)
    evaluate.add_argument("--no-nms", action="store_true", help="skip OKS-NMS")
    evaluate.add_argument("--dark-kernel", type=int, default=11,
                          help="DARK-UDP blur kernel (11 for 64x48 heatmaps; about half for half-size heatmaps)")
    evaluate.add_argument("--device", default=None)
    evaluate.add_argument("--output", default=None, help="write the kept predictions as COCO results JSON")
    evaluate.set_defaults(func=_run_evaluate)
