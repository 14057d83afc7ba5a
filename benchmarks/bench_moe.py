"""Inference throughput of the routed mixture of experts against merged-dense and transformers' VitPose.

ViTPose+ (random weights), a batch whose dataset indices are spread over the six experts, fp32, no grad, 256x192:

- routed: this repository's model, each expert and head on its own samples only;
- merged: the same model merged to a dense single-dataset model (`merge_experts`), the cost floor;
- transformers: `transformers.VitPoseForPoseEstimation` with the same weights (every expert on every sample, masked).

Runs alternate within one process so that the ratios compare like with like. Usage:

    python benchmarks/bench_moe.py [--preset vitpose-plus-base] [--batch-size 8] [--repeats 5]
                                   [--device cuda] [--dtype bf16] [--compile]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from _bench_utils import add_runtime_arguments, describe, prepare, runtime, timed

from vitpose_plus import VitPosePlusConfig, VitPosePlusForPoseEstimation
from vitpose_plus.conversion.transformers_vitpose import to_transformers_vitpose


def transformers_twin(model: VitPosePlusForPoseEstimation) -> torch.nn.Module:
    """transformers' VitPose with all of `model`'s experts and its COCO head (transformers holds one head)."""
    config = model.config.to_dict()
    for key in ("architectures", "auto_map", "transformers_version", "_name_or_path", "model_type"):
        config.pop(key, None)
    config["datasets"] = [{**model.config.datasets[0], "expert_index": 0}]
    single = VitPosePlusForPoseEstimation(VitPosePlusConfig(**config))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("heads.") or k.startswith("heads.0.")}
    single.load_state_dict(state, strict=True)
    return to_transformers_vitpose(single)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="vitpose-plus-base")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds; each round runs every variant once")
    parser.add_argument("--warmup", type=int, default=1)
    add_runtime_arguments(parser)
    args = parser.parse_args()
    device, dtype = runtime(args)

    torch.manual_seed(0)
    config = VitPosePlusConfig.from_preset(args.preset)
    model = VitPosePlusForPoseEstimation(config).eval()
    merged = model.merge_experts(0).eval()
    hf_model = transformers_twin(model).eval()
    routed_fn, merged_fn, hf_fn = (prepare(m, args, device, dtype) for m in (model, merged, hf_model))

    pixel_values = torch.randn(args.batch_size, 3, *config.image_size, device=device, dtype=dtype)
    index = torch.arange(args.batch_size, device=device) % config.num_datasets  # spread over every expert
    with torch.no_grad():
        ours, theirs = routed_fn(pixel_values, dataset_index=index).heatmaps, hf_fn(pixel_values, dataset_index=index)
        coco = index == 0
        diff = (ours[coco, :17].float() - theirs.heatmaps[coco].float()).abs().max().item()

    variants = {
        "routed (this repo)": lambda: routed_fn(pixel_values, dataset_index=index),
        "merged dense (this repo)": lambda: merged_fn(pixel_values),
        "transformers VitPose (masked experts)": lambda: hf_fn(pixel_values, dataset_index=index),
    }
    results: dict[str, list[float]] = {name: [] for name in variants}
    with torch.inference_mode():
        for _ in range(args.warmup):
            for fn in variants.values():
                fn()
        for _ in range(args.repeats):  # alternate so that drifts in machine load hit every variant alike
            for name, fn in variants.items():
                results[name].append(timed(fn, device))

    print(
        f"{args.preset}, batch {args.batch_size} (dataset indices {index.tolist()}), no grad, "
        f"{config.image_size[0]}x{config.image_size[1]}, {describe(args, device)}, {args.repeats} rounds"
    )
    print(f"COCO-sample heatmap max |routed - transformers| = {diff:.2e}\n")
    medians = {name: statistics.median(times) for name, times in results.items()}
    routed = medians["routed (this repo)"]
    print("| variant | median s / batch | images/s | routed speed-up |")
    print("|---|---|---|---|")
    for name, median in medians.items():
        print(f"| {name} | {median:.3f} | {args.batch_size / median:.1f} | {median / routed:.2f}x |")
    print()
    print(f"routed vs transformers: {medians['transformers VitPose (masked experts)'] / routed:.2f}x (target >= 1.3x)")
    print(f"routed vs merged dense: {routed / medians['merged dense (this repo)']:.3f}x time (target <= 1.05x)")


if __name__ == "__main__":
    main()
