"""Per-dataset evaluation protocols of the original (which file format, which boxes, which metric).

| protocol | format | boxes in the original | metric | OKS scale (xtcocotools) |
|---|---|---|---|---|
| `coco` | coco | detector file (GT boxes without one) | COCO AP/AR | `area` |
| `ochuman` | coco | GT boxes (COCO head) | COCO AP/AR | `area` |
| `aic` | aic | GT boxes | COCO AP/AR | `use_area=False`: box area x 0.53 |
| `mpii` | mpii | annotated center/scale | PCKh (head boxes of `mpii_gt_val.mat`) | - |
| `ap10k`, `apt36k` | ap10k | GT boxes, per-species category | COCO AP/AR over all categories | `area` |
| `coco_wholebody` | coco_wholebody | detector file (GT boxes without one) | AP per part, whole body | `area` |
| `generic` | coco | GT boxes or a detector file | COCO AP/AR with the spec's sigmas | `area`, else box area x 0.53 |
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvaluationProtocol:
    """How the original evaluates one dataset.

    Args:
        name: protocol name.
        format: annotation format of the ground-truth file (`vitpose_plus.data.formats.FORMATS`).
        metric: `"coco"` (COCO keypoint AP/AR), `"coco_wholebody"` (AP/AR per part and whole body) or `"pckh"`.
        use_area: xtcocotools `use_area`: OKS scale and area ranges from `area` (True) or box area x 0.53.
        detection_category: category a detection must have to be used (the original keeps `category_id == 1`);
            `None` keeps detections of any ground-truth category, each with its own category.
        annotated_crops: crops come from the annotated center/scale (MPII) instead of boxes.
        spec: default keypoint layout (the model head used), when the protocol name is not one.
    """

    name: str
    format: str
    metric: str = "coco"
    use_area: bool = True
    detection_category: int | None = 1
    annotated_crops: bool = False
    spec: str | None = None


PROTOCOLS: dict[str, EvaluationProtocol] = {
    "coco": EvaluationProtocol("coco", "coco"),
    "ochuman": EvaluationProtocol("ochuman", "ochuman", spec="coco"),
    "aic": EvaluationProtocol("aic", "aic", use_area=False),
    "mpii": EvaluationProtocol("mpii", "mpii", metric="pckh", annotated_crops=True),
    "ap10k": EvaluationProtocol("ap10k", "ap10k", detection_category=None),
    "apt36k": EvaluationProtocol("apt36k", "apt36k", detection_category=None),
    "coco_wholebody": EvaluationProtocol("coco_wholebody", "coco_wholebody", metric="coco_wholebody"),
    "generic": EvaluationProtocol("generic", "coco", detection_category=None),
}

COCO_METRIC_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
WHOLEBODY_PARTS = ("body", "foot", "face", "lefthand", "righthand")
MPII_METRIC_NAMES = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "PCKh", "PCKh@0.1")


def metric_names(protocol: EvaluationProtocol) -> tuple[str, ...]:
    """The keys of `metrics` a protocol reports, in report order."""
    if protocol.metric == "pckh":
        return MPII_METRIC_NAMES
    names = COCO_METRIC_NAMES
    if protocol.metric == "coco_wholebody":
        names = names + tuple(f"{part}_{name}" for part in WHOLEBODY_PARTS for name in COCO_METRIC_NAMES)
    return names


def resolve_protocol(protocol: str | EvaluationProtocol | None, dataset: str) -> EvaluationProtocol:
    """The protocol given, else the one named like the dataset, else `generic` (COCO AP with the spec's sigmas)."""
    if isinstance(protocol, EvaluationProtocol):
        return protocol
    name = protocol if protocol is not None else (dataset if dataset in PROTOCOLS else "generic")
    if name not in PROTOCOLS:
        raise ValueError(f"Unknown evaluation protocol {name!r}; choose one of {sorted(PROTOCOLS)}.")
    return PROTOCOLS[name]


__all__ = [
    "COCO_METRIC_NAMES",
    "MPII_METRIC_NAMES",
    "PROTOCOLS",
    "WHOLEBODY_PARTS",
    "EvaluationProtocol",
    "metric_names",
    "resolve_protocol",
]
