"""Pictures of a training run: the learning curve (loss and per-dataset AP against steps)."""

from __future__ import annotations

import json
import os


def plot_learning_curve(log_path: str | os.PathLike, output_png: str | os.PathLike,
                        loss_name: str = "JointsMSE loss") -> str:
    """Plot `log.jsonl` (training loss per logged step, evaluation AP per dataset) into a PNG; returns its path.
    `loss_name` labels the loss axis (bottom-up runs: the heatmap MSE plus the AE pull and push terms)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, losses, evals = [], [], {}
    with open(log_path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if "loss" in record:
                steps.append(record["step"])
                losses.append(record["loss"])
            for name, metrics in record.get("eval", {}).items():
                evals.setdefault(name, []).append((record["step"], metrics["AP"] if "AP" in metrics else
                                                   metrics["PCKh"] / 100.0))  # MPII: PCKh as a fraction
    fig, loss_axis = plt.subplots(figsize=(8, 4.5), dpi=110)
    loss_axis.plot(steps, losses, color="tab:blue", label="training loss")
    loss_axis.set_yscale("log")
    loss_axis.set_xlabel("optimizer step")
    loss_axis.set_ylabel(f"{loss_name} (log scale)", color="tab:blue")
    loss_axis.grid(alpha=0.3)
    handles, labels = loss_axis.get_legend_handles_labels()
    if evals:
        ap_axis = loss_axis.twinx()
        for name, points in evals.items():
            xs, ys = zip(*points)
            ap_axis.plot(xs, ys, marker="o", label=f"{name} AP")
        ap_axis.set_ylim(0, 1)
        ap_axis.set_ylabel("COCO-style AP (held-out)")
        more_handles, more_labels = ap_axis.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    loss_axis.legend(handles, labels, loc="center right")
    loss_axis.set_title("vitpose-plus training run")
    fig.tight_layout()
    fig.savefig(output_png)
    plt.close(fig)
    return os.fspath(output_png)
