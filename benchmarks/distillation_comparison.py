"""Distillation on the synthetic data: one teacher, a smaller student trained three ways at the same budget.

    python benchmarks/distillation_comparison.py                         # teacher: runs/synthetic/model
    python benchmarks/distillation_comparison.py --teacher FOLDER --output-dir runs/distillation --steps 2500

The teacher is the default synthetic run's model (`vitpose-plus train`: ViTPose+ width 128, 4 blocks, three
datasets); when `--teacher` is not given and `runs/synthetic/model` does not exist, that run is trained first (about
12 minutes on 2 CPU cores, reported separately). The student is the same recipe at width 64 (a quarter of the
backbone's FLOPs), trained for `--steps` optimizer steps three ways, everything else equal (data, order, schedule):

1. ground truth only;
2. + heatmap distillation (`distillation.heatmap_weight`, the teacher in bf16);
3. + heatmap distillation and the knowledge token, learned first on the frozen teacher with `distill token`
   (`--token-epochs` epochs, through a linear map 64 -> 128 because the widths differ).

It prints COCO-style AP per held-out split (ground-truth boxes, pycocotools) side by side with wall times, and writes
`comparison.json` and `comparison.md` into the output folder. One seed: differences of about 0.01 AP are within the
run-to-run noise of these short runs (`--seed` repeats the comparison with another one).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

from vitpose_plus.training.config import DEFAULT_CONFIG, DistillationConfig, TokenLearningConfig, load_training_config
from vitpose_plus.training.distillation import learn_knowledge_token
from vitpose_plus.training.train import materialise_synthetic, train

VARIANTS = ("ground truth only", "+ heatmap distillation", "+ heatmap distillation + knowledge token")


def student_config(args: argparse.Namespace, output_dir: str, data_config, distillation: DistillationConfig | None):
    """The synthetic recipe at the student's width and budget, on the already rendered data."""
    overrides = {
        "runtime.output_dir": output_dir, "runtime.seed": args.seed, "runtime.save_every": 0, "runtime.eval_every": 0,
        "runtime.trackers": [], "optimization.max_steps": args.steps,
        "model.overrides.hidden_size": args.student_width, "model.overrides.part_features": args.student_width // 4,
    }
    config = load_training_config(DEFAULT_CONFIG, overrides)
    for dataset, rendered in zip(config.datasets, data_config.datasets):
        dataset.synthetic, dataset.train, dataset.val = None, rendered.train, rendered.val
    config.distillation = distillation
    return config


def headline(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    aps = {name: m["AP"] for name, m in metrics.items()}
    return {**aps, "mean": sum(aps.values()) / len(aps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default=None, help="teacher model folder (default: runs/synthetic/model)")
    parser.add_argument("--output-dir", default="runs/distillation")
    parser.add_argument("--steps", type=int, default=2500, help="optimizer steps of each student (batch 32)")
    parser.add_argument("--student-width", type=int, default=64)
    parser.add_argument("--heatmap-weight", type=float, default=1.0)
    parser.add_argument("--teacher-dtype", default="bf16", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--token-epochs", type=int, default=2)
    parser.add_argument("--token-lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    timings: dict[str, float] = {}
    teacher = args.teacher or "runs/synthetic/model"
    if args.teacher is None and not os.path.isdir(teacher):
        print("No teacher at runs/synthetic/model: training the default synthetic run first.")
        clock = time.perf_counter()
        train(load_training_config(DEFAULT_CONFIG, {"runtime.output_dir": "runs/synthetic"}), progress=False)
        timings["teacher training (default synthetic run)"] = time.perf_counter() - clock
    out = os.path.abspath(args.output_dir)  # the runs' saved configs name their data by absolute paths
    os.makedirs(out, exist_ok=True)

    clock = time.perf_counter()
    data_config = load_training_config(DEFAULT_CONFIG, {"runtime.output_dir": out})
    materialise_synthetic(data_config, is_main=True)  # rendered once, shared by every run below
    timings["data"] = time.perf_counter() - clock

    heatmap = DistillationConfig(teacher=os.path.abspath(teacher), heatmap_weight=args.heatmap_weight,
                                 teacher_dtype=args.teacher_dtype,
                                 token_learning=TokenLearningConfig(max_epochs=args.token_epochs,
                                                                    learning_rate=args.token_lr))
    clock = time.perf_counter()
    token_run = student_config(args, os.path.join(out, "token"), data_config, replace(heatmap, teacher_dtype="fp32"))
    token = learn_knowledge_token(token_run, overwrite=True, progress=False)
    timings["knowledge token"] = time.perf_counter() - clock
    print(f"knowledge token: {token.step} steps, relative change {token.metadata['token_relative_change']:.2f}, "
          f"{timings['knowledge token']:.0f} s")

    results = {}
    for variant, distillation in zip(VARIANTS, (None, heatmap, replace(heatmap, knowledge_token=token.token_path))):
        clock = time.perf_counter()
        folder = os.path.join(out, f"student_{VARIANTS.index(variant)}")
        result = train(student_config(args, folder, data_config, distillation), overwrite=True, progress=False)
        timings[variant] = time.perf_counter() - clock
        results[variant] = headline(result.metrics)
        print(f"{variant}: {results[variant]} in {timings[variant]:.0f} s")

    teacher_metrics = token.metadata.get("teacher_metrics", {})
    rows = []
    if teacher_metrics:
        rows.append(("teacher (width 128)", headline(teacher_metrics["without_token"]), None))
        rows.append(("teacher + its knowledge token", headline(teacher_metrics["with_token"]), None))
    rows += [(f"student (width {args.student_width}) {v}", results[v], timings[v]) for v in VARIANTS]
    names = list(results[VARIANTS[0]])
    lines = [f"| model | {' | '.join(n for n in names if n != 'mean')} | mean AP | wall time |",
             "|---|" + "---|" * (len(names) + 1)]
    for label, aps, seconds in rows:
        cells = " | ".join(f"{aps[n]:.3f}" for n in names if n != "mean")
        lines.append(f"| {label} | {cells} | {aps['mean']:.3f} | {f'{seconds / 60:.1f} min' if seconds else ''} |")
    total = time.perf_counter() - started
    teacher_time = timings.get("teacher training (default synthetic run)")
    summary = (f"students: {args.steps} steps of batch 32 each, seed {args.seed}; knowledge token "
               f"{token.step} steps ({timings['knowledge token'] / 60:.1f} min); data {timings['data'] / 60:.1f} min; "
               f"total {total / 60:.1f} min" + (f", of which teacher training {teacher_time / 60:.1f} min"
                                                 if teacher_time else " (teacher reused, its training not included)"))
    table = "\n".join(lines)
    print("\n" + table + "\n\n" + summary)
    with open(os.path.join(out, "comparison.md"), "w", encoding="utf-8") as handle:
        handle.write(table + "\n\n" + summary + "\n")
    with open(os.path.join(out, "comparison.json"), "w", encoding="utf-8") as handle:
        json.dump({"results": results, "teacher": teacher_metrics, "timings_s": timings, "total_s": total,
                   "token": token.metadata, "args": vars(args)}, handle, indent=2)


if __name__ == "__main__":
    main()
