"""Inference throughput of bottom-up ViTPose (associative embedding) on whole images, 512x512 by default.

Three stages, each timed over the same batch (median of `--repeats` rounds after `--warmup` rounds):

- model: `VitPosePlusForBottomUpPoseEstimation` forward on a preprocessed batch (heatmaps + tags);
- model + flip test: the same with the mirrored images in the same pass (the original's test setting);
- end to end: `BottomUpPredictor` on decoded RGB images: the test resize, the model (flip test as `--flip-test`) and
  the original's grouping (NMS, top-k, Munkres matching, adjustment, refinement) back to image coordinates.

With random weights (the default) the heatmaps have no peak above the detection threshold, so the grouping does
almost nothing; pass `--model` with a trained folder to time grouping on real detections. Usage:

    python benchmarks/bench_bottom_up.py [--preset vitpose-base] [--model FOLDER] [--image-size 512]
        [--batch-size 1] [--device cpu] [--dtype fp32|bf16|fp16] [--compile] [--repeats 5] [--threads 0]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from _bench_utils import add_runtime_arguments, describe, prepare, runtime, timed

from vitpose_plus.modeling import (
    VitPosePlusBottomUpConfig,
    VitPosePlusBottomUpImageProcessor,
    VitPosePlusForBottomUpPoseEstimation,
)
from vitpose_plus.modeling.bottom_up_predictor import BottomUpPredictor


def median_seconds(fn, repeats: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn, device) for _ in range(repeats))


def build_model(args: argparse.Namespace) -> tuple[torch.nn.Module, VitPosePlusBottomUpImageProcessor]:
    if args.model:
        from vitpose_plus.file_io import load_model_folder

        model = load_model_folder(args.model)
        try:
            processor = VitPosePlusBottomUpImageProcessor.from_pretrained(args.model)
        except OSError:
            processor = VitPosePlusBottomUpImageProcessor.from_model_config(model.config)
        return model, processor
    torch.manual_seed(0)
    size = [args.image_size, args.image_size]
    config = VitPosePlusBottomUpConfig.from_preset(args.preset, image_size=size, datasets=["coco"])
    model = VitPosePlusForBottomUpPoseEstimation(config)
    return model, VitPosePlusBottomUpImageProcessor.from_model_config(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="vitpose-base", help="architecture with random weights (no --model)")
    parser.add_argument("--model", default=None, help="a trained bottom-up model folder instead of --preset")
    parser.add_argument("--image-size", type=int, default=512, help="square test images of this side")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--flip-test", action="store_true", help="flip test in the end-to-end stage")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    add_runtime_arguments(parser)
    args = parser.parse_args()
    device, dtype = runtime(args)

    model, processor = build_model(args)
    runner = prepare(model.eval(), args, device, dtype)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (args.image_size, args.image_size, 3), dtype=np.uint8)
              for _ in range(args.batch_size)]
    inputs = processor(images)
    pixel_values = inputs["pixel_values"].to(device, dtype)
    predictor = BottomUpPredictor(runner, processor, batch_size=args.batch_size, flip_test=args.flip_test)

    stages = {
        "model": lambda: runner(pixel_values),
        "model + flip test": lambda: runner(pixel_values, flip_test=True),
        f"end to end (resize, model{' + flip' if args.flip_test else ''}, grouping)": lambda: predictor.predict(
            images),
    }
    with torch.inference_mode():
        medians = {name: median_seconds(fn, args.repeats, args.warmup, device) for name, fn in stages.items()}

    name = args.model or args.preset
    height, width = pixel_values.shape[-2:]
    print(f"bottom-up {name}, {height}x{width} input, batch {args.batch_size}, {describe(args, device)}, "
          f"median of {args.repeats}")
    print("| stage | median s / batch | images/s |")
    print("|---|---|---|")
    for stage, seconds in medians.items():
        print(f"| {stage} | {seconds:.3f} | {args.batch_size / seconds:.2f} |")


if __name__ == "__main__":
    main()
