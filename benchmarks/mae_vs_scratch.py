"""ViTPose's data-flexibility claim on this machine: MAE pre-training on the pose data's own images, then fine-tuning,
against the same fine-tuning from random initialisation at an equal, small budget.

1. Render the default synthetic recipe's data once (`training/configs/synthetic.yaml`: a COCO-17 human, an AP-10K-17
   quadruped and a 21-keypoint hand, 1,000 training and 60 held-out images each).
2. Pre-train the recipe's backbone with MAE on the **training images only**, person crops cut by the annotated boxes
   (`training/configs/pretraining/synthetic_mae.yaml`; no labels are read).
3. Fine-tune the recipe's ViTPose+ (three experts and heads) for `--finetune-steps` steps (default 1,000, a quarter
   of the recipe's 4,000; the cosine schedule spans them), once from the MAE encoder (`model.mae_checkpoint`) and
   once from random initialisation, with everything else equal (data, seed, sampler, augmentation, schedule).
4. Print COCO-style AP of both per held-out split side by side and draw both learning curves into one plot.

    flock /tmp/vitpose-cpu.lock python benchmarks/mae_vs_scratch.py [--output-dir runs/mae_vs_scratch]
        [--pretrain-steps N] [--finetune-steps 1000] [--eval-every 200] [--plot docs/mae_vs_scratch.png]

Writes `<output-dir>/{pretrain,scratch,mae}/` (each a complete run folder) and `<output-dir>/results.json`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time

from vitpose_plus.training.config import load_training_config
from vitpose_plus.training.pretrain import pretrain
from vitpose_plus.training.pretraining_config import load_pretraining_config, validate_pretraining_config
from vitpose_plus.training.train import materialise_synthetic, train

BACKBONE_FIELDS = ("image_size", "hidden_size", "num_hidden_layers", "num_attention_heads")


def finetune_configs(root: str, steps: int, eval_every: int) -> dict[str, object]:
    """The synthetic recipe at `steps` steps, its data rendered once into `<root>/data`, as two runs (scratch, MAE)
    that read the same files."""
    base = load_training_config("synthetic", {"runtime.output_dir": root, "optimization.max_steps": steps,
                                              "runtime.eval_every": eval_every, "runtime.save_every": steps,
                                              "runtime.trackers": []})
    materialise_synthetic(base, is_main=True)
    for dataset in base.datasets:
        dataset.synthetic = None  # the rendered files (train / val) are now given as files
    runs = {}
    for name in ("scratch", "mae"):
        config = copy.deepcopy(base)
        config.runtime.output_dir = os.path.join(root, name)
        runs[name] = config
    return runs


def pretraining_config(root: str, finetune: object, steps: int | None) -> object:
    """`synthetic_mae` reading the fine-tuning runs' training files (its synthetic declarations are the same ones)."""
    overrides = {"runtime.output_dir": os.path.join(root, "pretrain"), "runtime.trackers": []}
    if steps is not None:
        overrides["optimization.max_steps"] = steps
    config = load_pretraining_config("synthetic_mae", overrides)
    by_name = {d.name: d for d in finetune.datasets}
    for dataset in config.datasets:
        if dataset.name not in by_name:
            raise ValueError(f"synthetic_mae's set {dataset.name!r} is not a dataset of the synthetic recipe.")
        dataset.synthetic, dataset.train = None, copy.deepcopy(by_name[dataset.name].train)
    validate_pretraining_config(config)
    for key in BACKBONE_FIELDS:  # the MAE encoder must be the fine-tuned backbone
        ours, theirs = config.model.overrides.get(key), finetune.model.overrides.get(key)
        if ours != theirs:
            raise ValueError(f"synthetic_mae's model.overrides.{key} = {ours!r} differs from the recipe's {theirs!r}.")
    return config


def read_log(path: str) -> tuple[list[tuple[int, float]], list[tuple[int, dict[str, float]]]]:
    losses, evals = [], []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if "loss" in record:
                losses.append((record["step"], record["loss"]))
            if "eval" in record:
                evals.append((record["step"], {name: m["AP"] for name, m in record["eval"].items()}))
    return losses, evals


def plot(results: dict[str, dict], pretrain_log: str, output: str) -> None:
    """Fine-tuning loss (log scale) and mean held-out AP of both runs, and the MAE loss, in one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"mae": "tab:red", "scratch": "tab:blue"}
    labels = {"mae": "from MAE (pose images only)", "scratch": "from random init"}
    fig, (loss_axis, mae_axis) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110, gridspec_kw={"width_ratios": [2, 1]})
    ap_axis = loss_axis.twinx()
    for name in ("scratch", "mae"):
        losses, evals = read_log(results[name]["log"])
        steps, values = zip(*losses)
        loss_axis.plot(steps, values, color=colours[name], alpha=0.45, lw=1, label=f"{labels[name]}: loss")
        if evals:
            eval_steps = [s for s, _ in evals]
            means = [sum(m.values()) / len(m) for _, m in evals]
            ap_axis.plot(eval_steps, means, color=colours[name], marker="o", lw=2, label=f"{labels[name]}: mean AP")
    loss_axis.set_yscale("log")
    loss_axis.set_xlabel("fine-tuning step")
    loss_axis.set_ylabel("JointsMSE loss (log scale)")
    ap_axis.set_ylabel("mean held-out AP (3 synthetic datasets)")
    ap_axis.set_ylim(0, 1)
    loss_axis.grid(alpha=0.3)
    handles = loss_axis.get_legend_handles_labels()[0] + ap_axis.get_legend_handles_labels()[0]
    names = loss_axis.get_legend_handles_labels()[1] + ap_axis.get_legend_handles_labels()[1]
    loss_axis.legend(handles, names, loc="upper right", fontsize=8)
    loss_axis.set_title("Fine-tuning the synthetic ViTPose+ recipe")
    pre_losses, _ = read_log(pretrain_log)
    steps, values = zip(*pre_losses)
    mae_axis.plot(steps, values, color="tab:gray")
    mae_axis.set_xlabel("pre-training step")
    mae_axis.set_ylabel("masked-patch MSE (norm_pix)")
    mae_axis.set_title("MAE on the training images")
    mae_axis.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(output)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default="runs/mae_vs_scratch")
    parser.add_argument("--pretrain-steps", type=int, default=None, help="default: synthetic_mae's max_steps")
    parser.add_argument("--finetune-steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--plot", default="docs/mae_vs_scratch.png")
    args = parser.parse_args()

    start = time.perf_counter()
    runs = finetune_configs(args.output_dir, args.finetune_steps, args.eval_every)
    times = {"data": time.perf_counter() - start}

    t = time.perf_counter()
    pre = pretrain(pretraining_config(args.output_dir, runs["mae"], args.pretrain_steps), overwrite=True,
                   progress=False)
    times["pretrain"] = time.perf_counter() - t
    runs["mae"].model.mae_checkpoint = pre.model_dir

    results: dict[str, dict] = {}
    for name in ("scratch", "mae"):
        t = time.perf_counter()
        result = train(runs[name], overwrite=True, progress=False)
        times[name] = time.perf_counter() - t
        results[name] = {"metrics": result.metrics, "log": os.path.join(runs[name].runtime.output_dir, "log.jsonl")}
    times["total"] = time.perf_counter() - start

    datasets = list(results["scratch"]["metrics"])
    print(f"\nMAE pre-training: {pre.step} steps, final loss {pre.final_loss:.4f}; fine-tuning: "
          f"{args.finetune_steps} steps each\n")
    print("| dataset | AP from random init | AP from MAE | difference |")
    print("|---|---|---|---|")
    for dataset in datasets + ["mean"]:
        if dataset == "mean":
            a = sum(results["scratch"]["metrics"][d]["AP"] for d in datasets) / len(datasets)
            b = sum(results["mae"]["metrics"][d]["AP"] for d in datasets) / len(datasets)
        else:
            a, b = results["scratch"]["metrics"][dataset]["AP"], results["mae"]["metrics"][dataset]["AP"]
        print(f"| {dataset} | {a:.3f} | {b:.3f} | {b - a:+.3f} |")
    print("\nwall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in times.items()))
    plot(results, os.path.join(args.output_dir, "pretrain", "log.jsonl"), args.plot)
    summary = {"pretrain_steps": pre.step, "pretrain_final_loss": pre.final_loss,
               "finetune_steps": args.finetune_steps, "times_s": times,
               "metrics": {name: r["metrics"] for name, r in results.items()}}
    with open(os.path.join(args.output_dir, "results.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    print(f"plot: {args.plot}; results: {os.path.join(args.output_dir, 'results.json')}")


if __name__ == "__main__":
    main()
