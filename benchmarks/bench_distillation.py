"""Training-step time with and without a distillation teacher (training/distillation.py).

A student training step (forward, backward, AdamW) on a fixed batch, against the same step plus the frozen teacher's
forward on that batch (`DistillationLoss`: `no_grad`, eval mode, the teacher in its own dtype), next to the
teacher's forward alone. The distillation overhead should be about the teacher's forward, nothing more. Random
weights; the variants alternate within one process.

    python benchmarks/bench_distillation.py                                    # the synthetic pair, CPU
    python benchmarks/bench_distillation.py --teacher-preset vitpose-large --student-preset vitpose-base \\
        --batch-size 64 --device cuda --dtype bf16 --teacher-dtype bf16 --compile

`--dtype` is the student's autocast dtype (fp32: none); `--teacher-dtype` the teacher's weights (fp32, bf16, fp16);
`--compile` compiles the student and the teacher with `torch.compile`.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from vitpose_plus import VitPosePlusConfig, VitPosePlusForPoseEstimation
from vitpose_plus.data import resolve_dataset_spec
from vitpose_plus.training.distillation import DistillationLoss

#: The default pair: the default synthetic run's architecture as teacher, a half-width student.
SYNTHETIC = {"image_size": [128, 96], "num_hidden_layers": 4, "num_attention_heads": 4, "num_experts": 3,
             "deconv_channels": [64, 64], "datasets": ["coco", "ap10k", "synthetic_hand"]}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def build(preset: str | None, width: int, datasets: list[str], image_size: list[int]) -> VitPosePlusConfig:
    """A catalog preset on the given datasets and input size, or the synthetic architecture at `width`."""
    datasets = [resolve_dataset_spec(name).to_dict() for name in datasets]  # built-in or synthetic layouts
    if preset:
        return VitPosePlusConfig.from_preset(preset, datasets=datasets, image_size=image_size, drop_path_rate=0.0)
    return VitPosePlusConfig(**{**SYNTHETIC, "datasets": datasets, "image_size": image_size}, hidden_size=width,
                             part_features=width // 4)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher-preset", default=None, help="a catalog preset (default: synthetic width 128)")
    parser.add_argument("--student-preset", default=None, help="a catalog preset (default: synthetic width 64)")
    parser.add_argument("--teacher-width", type=int, default=128)
    parser.add_argument("--student-width", type=int, default=64)
    parser.add_argument("--image-size", type=int, nargs=2, default=None, help="default: 128 96, or 256 192 for presets")
    parser.add_argument("--datasets", nargs="+", default=["coco", "ap10k", "synthetic_hand"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="the student's autocast dtype")
    parser.add_argument("--teacher-dtype", choices=list(DTYPES), default="bf16",
                        help="the teacher's dtype of the last row (the fp32 teacher row is always shown)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the student and the teachers")
    args = parser.parse_args()

    device = torch.device(args.device)
    image_size = args.image_size or ([256, 192] if args.teacher_preset or args.student_preset else [128, 96])
    torch.manual_seed(0)
    teacher_config = build(args.teacher_preset, args.teacher_width, args.datasets, image_size)
    student_config = build(args.student_preset, args.student_width, args.datasets, image_size)
    student = VitPosePlusForPoseEstimation(student_config).to(device).train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4)
    teachers = {}
    for name in dict.fromkeys(["fp32", args.teacher_dtype]):
        teacher = VitPosePlusForPoseEstimation(teacher_config).eval().requires_grad_(False)
        teachers[name] = teacher.to(device=device, dtype=DTYPES[name])
    h, w = student_config.heatmap_size
    k = student_config.max_num_keypoints
    batch = {
        "pixel_values": torch.randn(args.batch_size, 3, *image_size, device=device),
        "labels": torch.rand(args.batch_size, k, h, w, device=device),
        "label_weights": torch.ones(args.batch_size, k, device=device),
        # A constant index per run keeps the compiled graphs free of data-dependent routing.
        "dataset_index": torch.arange(args.batch_size, device=device) % student_config.num_datasets,
    }
    losses = {name: DistillationLoss(teacher, student_config, heatmap_weight=1.0) for name, teacher in teachers.items()}
    forward = student
    if args.compile:
        forward = torch.compile(student)
        for loss in losses.values():
            loss.teacher = torch.compile(loss.teacher)

    def autocast():
        if args.dtype == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=DTYPES[args.dtype])

    def step(loss_fn) -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn(forward, batch)
        loss.backward()
        optimizer.step()

    def teacher_forward(loss: DistillationLoss) -> None:
        loss.teacher_heatmaps(batch["pixel_values"], batch["dataset_index"])

    variants = {"student step, ground truth only": lambda: step(lambda m, b: m(**b).loss)}
    for name, loss in losses.items():
        variants[f"teacher forward alone ({name})"] = lambda loss=loss: teacher_forward(loss)
    for name, loss in losses.items():
        variants[f"student step + teacher ({name})"] = lambda loss=loss: step(loss)
    for fn in variants.values():
        for _ in range(args.warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)

    medians = {name: statistics.median(t) * 1000 for name, t in times.items()}
    base = medians["student step, ground truth only"]
    where = f"{device.type}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                f", {torch.get_num_threads()} threads")
    teacher_millions = sum(p.numel() for p in teachers["fp32"].parameters()) / 1e6
    student_millions = sum(p.numel() for p in student.parameters()) / 1e6
    print(f"teacher {args.teacher_preset or f'width {args.teacher_width}'} ({teacher_millions:.1f}M), student "
          f"{args.student_preset or f'width {args.student_width}'} ({student_millions:.1f}M), "
          f"{student_config.num_hidden_layers}/{teacher_config.num_hidden_layers} blocks, batch {args.batch_size} over "
          f"{student_config.num_datasets} datasets, {image_size[0]}x{image_size[1]}, {where}, student {args.dtype}"
          f"{', compiled' if args.compile else ''}; median of {args.repeats} alternating rounds\n")
    print("| variant | median ms | overhead vs ground truth only |")
    print("|---|---|---|")
    for name, median in medians.items():
        overhead = "" if name.startswith("teacher forward") or name == "student step, ground truth only" else \
            f"+{median - base:.1f} ms ({median / base:.2f}x)"
        print(f"| {name} | {median:.1f} | {overhead} |")


if __name__ == "__main__":
    main()
