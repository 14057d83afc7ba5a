"""Inference throughput (images/s) of ViTPose S/B/L/H and ViTPose+-B against transformers' VitPose, same weights,
same device, same dtype, alternating within one process.

For ViTPose+ the whole batch is one dataset (COCO, `dataset_index=0`): this repository runs one expert, transformers'
VitPose runs every expert and masks. Heatmaps of the two are compared once (max abs difference in the table).

    python benchmarks/bench_inference.py                                  # CPU: batch 8, S and B
    python benchmarks/bench_inference.py --device cuda --batch-size 64 --dtype bf16 --compile \\
        --presets vitpose-small vitpose-base vitpose-large vitpose-huge vitpose-plus-base
"""

from __future__ import annotations

import argparse
import statistics

import torch
from _bench_utils import add_runtime_arguments, describe, prepare, runtime, timed
from bench_moe import transformers_twin

from vitpose_plus import VitPosePlusConfig, VitPosePlusForPoseEstimation
from vitpose_plus.conversion.transformers_vitpose import to_transformers_vitpose


def measure(preset: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype
            ) -> tuple[float, float, float]:
    """(our images/s, transformers' images/s, max abs heatmap difference) for one preset."""
    torch.manual_seed(0)
    config = VitPosePlusConfig.from_preset(preset)
    model = VitPosePlusForPoseEstimation(config).eval()
    theirs = transformers_twin(model) if config.num_datasets > 1 else to_transformers_vitpose(model)
    ours_fn, theirs_fn = prepare(model, args, device, dtype), prepare(theirs.eval(), args, device, dtype)
    pixels = torch.randn(args.batch_size, 3, *config.image_size, device=device, dtype=dtype)
    index = torch.zeros(args.batch_size, dtype=torch.long, device=device)
    variants = {
        "ours": lambda: ours_fn(pixels, dataset_index=0),
        "transformers": (lambda: theirs_fn(pixels, dataset_index=index)) if config.num_experts > 1
        else (lambda: theirs_fn(pixels)),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.inference_mode():
        k = config.dataset_spec(0).num_keypoints
        diff = (variants["ours"]().heatmaps[:, :k].float() - variants["transformers"]().heatmaps.float()).abs().max()
        for _ in range(args.warmup):
            for fn in variants.values():
                fn()
        for _ in range(args.repeats):  # alternate so that drifts in machine load hit both alike
            for name, fn in variants.items():
                times[name].append(timed(fn, device))
    ours, hf = (args.batch_size / statistics.median(times[name]) for name in ("ours", "transformers"))
    return ours, hf, diff.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["vitpose-small", "vitpose-base"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds (compilation happens here)")
    add_runtime_arguments(parser)
    args = parser.parse_args()
    device, dtype = runtime(args)

    print(f"batch {args.batch_size}, no grad, {describe(args, device)}, median of {args.repeats} rounds\n")
    print("| model | this repo images/s | transformers images/s | speed-up | max abs heatmap diff |")
    print("|---|---|---|---|---|")
    for preset in args.presets:
        ours, hf, diff = measure(preset, args, device, dtype)
        print(f"| {preset} | {ours:.1f} | {hf:.1f} | {ours / hf:.2f}x | {diff:.1e} |")
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
