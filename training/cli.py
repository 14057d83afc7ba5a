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
    )
    boxes = "detections" if args.detections else "ground-truth boxes"
    print(f"{result.dataset}: {result.num_boxes} instances ({boxes}), flip test {'off' if args.no_flip_test else 'on'}")
    print("| " + " | ".join(result.metrics) + " |")
    print("|" + "---|" * len(result.metrics))
    print("| " + " | ".join(f"{v:.4f}" for v in result.metrics.values()) + " |")
    if args.output:
        records = [{k: r[k] for k in ("image_id", "category_id", "keypoints", "score")} for r in result.predictions]
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(records, handle)
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
        "evaluate", help="COCO keypoint AP of a model on a COCO-format file",
        description="Top-down evaluation: ground-truth or detector boxes, flip test, per-dataset decoding, "
                    "rescoring, OKS-NMS, pycocotools AP/AR with the dataset's sigmas.",
    )
    evaluate.add_argument("--model", required=True, help="saved model folder")
    evaluate.add_argument("--dataset", required=True, help="the model's dataset (name or index) to evaluate")
    evaluate.add_argument("--annotations", required=True, help="COCO-format keypoint annotation JSON")
    evaluate.add_argument("--images", required=True, help="folder the annotation file names are relative to")
    evaluate.add_argument("--detections", default=None, help="COCO detection results JSON (default: GT boxes)")
    evaluate.add_argument("--detection-threshold", type=float, default=0.0, help="keep detections above this score")
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--no-flip-test", action="store_true")
    evaluate.add_argument("--nms-threshold", type=float, default=0.9)
    evaluate.add_argument("--no-nms", action="store_true", help="skip OKS-NMS")
    evaluate.add_argument("--dark-kernel", type=int, default=11,
                          help="DARK-UDP blur kernel (11 for 64x48 heatmaps; about half for half-size heatmaps)")
    evaluate.add_argument("--device", default=None)
    evaluate.add_argument("--output", default=None, help="write the kept predictions as COCO results JSON")
    evaluate.set_defaults(func=_run_evaluate)
