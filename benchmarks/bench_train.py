"""Training throughput: routed experts and heads against the original's masked method, plus the data pipeline.

ViTPose+-S (random weights), a batch of 32 spread over the six datasets, fp32, 256x192, one optimizer step
(forward, backward, AdamW):

- routed (this repository): each expert and each head runs only on its own samples;
- masked reference (the original repository's method): every expert on every sample with its output masked by the
  dataset index, and every head on the whole batch with targets and weights masked per dataset (the same loss value).

Runs alternate within one process. The data pipeline line times `TopDownTransform` (decode, augment, warp, targets) on
synthetic 256x256 images in one worker, against the samples/s the routed step consumes.

    python benchmarks/bench_train.py [--batch-size 32] [--repeats 3] [--preset vitpose-plus-small]
                                     [--device cuda] [--dtype bf16] [--compile]

With `--dtype bf16|fp16` the step runs under autocast (weights and AdamW states stay fp32, as mixed-precision training
does); `--compile` compiles the routed model (the masked reference patches the module at run time, so it stays eager).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from _bench_utils import add_runtime_arguments, describe, runtime, timed

from vitpose_plus import VitPosePlusConfig, VitPosePlusForPoseEstimation
from vitpose_plus.modeling.modeling_vitpose_plus import VitPosePlusMoEMLP


def masked_moe_forward(self: VitPosePlusMoEMLP, hidden_states: torch.Tensor, routing=None) -> torch.Tensor:
    """The original MoE FFN: every expert on every sample, outputs masked by (expert index == e)."""
    hidden = self.act(self.fc1(hidden_states))
    shared = self.fc2(hidden)
    expert_out = 0
    for e, expert in enumerate(self.experts):
        expert_out = expert_out + expert(hidden) * (self._expert_index == e).view(-1, 1, 1).to(hidden.dtype)
    return torch.cat([shared, expert_out], dim=-1)


def masked_reference_loss(model: VitPosePlusForPoseEstimation, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Loss of the original ViTPose+ training step (`TopDownMoE.forward_train` with the padded-target fix)."""
    index = batch["dataset_index"]
    sorted_index, order = torch.sort(index, stable=True)
    for layer in model.backbone.layers:  # the routed backbone sorts the batch; give the masks the same order
        layer.mlp._expert_index = sorted_index
    feature_map = model.backbone(batch["pixel_values"], dataset_index=index).feature_map
    loss = 0.0
    for d, head in enumerate(model.heads):
        k = model.config.dataset_spec(d).num_keypoints
        heatmaps = head(feature_map)  # every head on the whole batch
        weight = (batch["label_weights"][:, :k] * (index == d).float()[:, None])[:, :, None, None]
        loss = loss + F.mse_loss(heatmaps * weight, batch["labels"][:, :k] * weight)
    return loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="vitpose-plus-small")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-samples", type=int, default=64)
    add_runtime_arguments(parser)
    args = parser.parse_args()
    device, dtype = runtime(args)

    def autocast():
        if dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=dtype)

    torch.manual_seed(0)
    config = VitPosePlusConfig.from_preset(args.preset, drop_path_rate=0.0)
    model = VitPosePlusForPoseEstimation(config).to(device).train()
    routed_model = torch.compile(model) if args.compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    h, w = config.heatmap_size
    batch = {
        "pixel_values": torch.randn(args.batch_size, 3, *config.image_size, device=device),
        "labels": torch.rand(args.batch_size, config.max_num_keypoints, h, w, device=device),
        "label_weights": torch.ones(args.batch_size, config.max_num_keypoints, device=device),
        "dataset_index": torch.arange(args.batch_size, device=device) % config.num_datasets,
    }

    def routed_step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = routed_model(**batch).loss
        loss.backward()
        optimizer.step()
        return loss.item()

    original_forward = VitPosePlusMoEMLP.forward

    def masked_step() -> float:
        VitPosePlusMoEMLP.forward = masked_moe_forward
        try:
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = masked_reference_loss(model, batch)
            loss.backward()
            optimizer.step()
        finally:
            VitPosePlusMoEMLP.forward = original_forward
        return loss.item()

    # Same loss value on the same weights (BatchNorm in eval mode so that batch statistics do not differ).
    model.eval()
    with torch.no_grad():
        routed_loss = model(**batch).loss.item()
        VitPosePlusMoEMLP.forward = masked_moe_forward
        masked_loss = masked_reference_loss(model, batch).item()
        VitPosePlusMoEMLP.forward = original_forward
    model.train()

    times: dict[str, list[float]] = {"routed (this repo)": [], "masked reference (original method)": []}
    steps = {"routed (this repo)": routed_step, "masked reference (original method)": masked_step}
    for fn in steps.values():  # warm-up (and compilation)
        fn()
    for _ in range(args.repeats):
        for name, fn in steps.items():
            times[name].append(timed(fn, device))

    medians = {name: statistics.median(t) for name, t in times.items()}
    routed = medians["routed (this repo)"]
    print(f"{args.preset}, batch {args.batch_size} spread over {config.num_datasets} datasets, "
          f"{config.image_size[0]}x{config.image_size[1]}, {describe(args, device)}, "
          f"{args.repeats} rounds; loss routed {routed_loss:.6f} vs masked {masked_loss:.6f}\n")
    print("| training step | median s / step | samples/s | speed-up of routed |")
    print("|---|---|---|---|")
    for name, median in medians.items():
        print(f"| {name} | {median:.2f} | {args.batch_size / median:.1f} | {median / routed:.2f}x |")

    # Data pipeline: one worker's throughput.
    from vitpose_plus.data.datasets import load_keypoint_dataset
    from vitpose_plus.data.synthetic import make_synthetic_dataset
    from vitpose_plus.modeling import VitPosePlusImageProcessor
    from vitpose_plus.training.data_pipeline import TopDownTrainingDataset
    from vitpose_plus.training.transforms import TopDownTransform

    with tempfile.TemporaryDirectory() as tmp:
        annotations = make_synthetic_dataset("coco", max(8, args.data_samples // 2), 0, tmp)
        rows = load_keypoint_dataset(annotations, tmp, "coco")
        processor = VitPosePlusImageProcessor.from_model_config(config)
        samples = TopDownTrainingDataset(rows, TopDownTransform(processor, "coco", train=True), seed=0)
        count = min(args.data_samples, len(samples))
        start = time.perf_counter()
        for i in range(count):
            samples[i]
        data_rate = count / (time.perf_counter() - start)
    print(f"\ndata pipeline (decode + augment + warp + targets, 1 worker): {data_rate:.1f} samples/s; "
          f"the routed step consumes {args.batch_size / routed:.1f} samples/s "
          f"-> {math.ceil(args.batch_size / routed / data_rate)} worker(s) keep up")


if __name__ == "__main__":
    main()
