"""Fine-tuning initialisation: a trained or converted model's weights into a new model of the same architecture,
with experts and heads matched by dataset name, through the shared remapping toolkit (strict accounting).

The backbone must transfer completely and with equal shapes; experts and heads of datasets the source does not have
keep their initialisation (reported). A shape mismatch or any other tensor left fresh is an error unless
`allow_partial=True`, so a run never silently fine-tunes largely from scratch (e.g. from a model of another width).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..modeling import VitPosePlusForPoseEstimation
from .state_dict_tools import RemapResult, Source, remap


@dataclass
class TransferReport:
    """What `transfer_weights` copied and what keeps its initialisation (and why)."""

    result: RemapResult
    new_datasets: list[str]

    def summary(self) -> str:
        text = f"copied {len(self.result.state)} tensors"
        if self.new_datasets:
            text += f"; new datasets {self.new_datasets} start with fresh heads/experts"
        if self.result.ignored:
            unused = sorted({key.split(".")[1] if key.startswith("heads.") else key for key in self.result.ignored})
            text += f"; {len(self.result.ignored)} source tensors not used ({', '.join(unused[:6])}...)"
        return text


def transfer_plan(source: VitPosePlusForPoseEstimation, target: VitPosePlusForPoseEstimation
                  ) -> tuple[dict[str, Source], dict[str, str]]:
    """`{target key: Source(source key)}` and `{target key: reason}` for tensors with no counterpart."""
    s_cfg, t_cfg = source.config, target.config
    plan: dict[str, Source] = {}
    fresh: dict[str, str] = {}
    source_names = s_cfg.dataset_names
    for name in target.state_dict():
        if name.startswith("heads."):
            head, rest = name[len("heads."):].split(".", 1)
            dataset = t_cfg.dataset_names[int(head)]
            if dataset in source_names:
                plan[name] = Source.of(f"heads.{source_names.index(dataset)}.{rest}")
            else:
                fresh[name] = f"dataset {dataset!r} is new (not in the source model)"
            continue
        if ".mlp.experts." in name:
            prefix, rest = name.split(".mlp.experts.", 1)
            expert, param = rest.split(".", 1)
            owners = [d for i, d in enumerate(t_cfg.dataset_names) if t_cfg.expert_of(i) == int(expert)]
            matches = [d for d in owners if d in source_names]
            if matches and s_cfg.num_experts > 1:
                plan[name] = Source.of(f"{prefix}.mlp.experts.{s_cfg.expert_of(matches[0])}.{param}")
            else:
                fresh[name] = f"the expert of {owners or ['no dataset']} has no counterpart in the source model"
            continue
        if name.endswith("knowledge_token") and name not in source.state_dict():
            fresh[name] = "the source model has no knowledge token (distillation.knowledge_token sets it)"
            continue
        plan[name] = Source.of(name)
    return plan, fresh


def transfer_weights(source: VitPosePlusForPoseEstimation, target: VitPosePlusForPoseEstimation,
                     allow_partial: bool = False, source_name: str | None = None) -> TransferReport:
    """Copy `source`'s weights into `target` in place (see the module docstring).

    Args:
        source: the trained or converted model.
        target: the model to initialise (its own initialisation stays where nothing transfers).
        allow_partial: let tensors with another shape or without a counterpart keep their initialisation.
        source_name: the source folder, named in errors and reports.

    Raises:
        CheckpointConversionError: listing every mis-shaped or missing tensor (unless `allow_partial`).
    """
    plan, fresh = transfer_plan(source, target)
    target_state = target.state_dict()
    source_state = source.state_dict()
    left_behind: set[str] = set()  # source tensors that fit nowhere (allow_partial): accounted, not copied
    if allow_partial:  # keep the target's tensor wherever the shapes differ or the source has none
        for name, rule in list(plan.items()):
            key = rule.keys[0]
            if key not in source_state or source_state[key].shape != target_state[name].shape:
                fresh[name] = "shape differs from the source's, kept at its initialisation (allow_partial_init)"
                del plan[name]
        used = {key for rule in plan.values() for key in rule.keys}
        # mis-shaped tensors and those with no counterpart at all (e.g. the blocks of a deeper source)
        left_behind = {key for key in source_state if key not in used}
    t_names = set(target.config.dataset_names)

    def ignore(key: str) -> str | None:
        if key.startswith("heads."):
            dataset = source.config.dataset_names[int(key.split(".")[1])]
            if dataset not in t_names:
                return f"dataset {dataset!r} is not trained in this run"
        if ".mlp.experts." in key:
            return "expert of a dataset not trained in this run"
        if key.endswith("num_batches_tracked"):
            return "BatchNorm step counter"
        if key in left_behind:
            return "no tensor of this shape in this run's model (allow_partial_init)"
        return None

    result = remap(
        source_state, plan, target_state, ignore=ignore, keep_initialised=fresh.get, source_name=source_name,
        message=("the source model's weights do not fit this run's model (another width, depth or decoder?); pass "
                 "model.allow_partial_init: true to fine-tune from what fits"),
    )
    target.load_state_dict({**target_state, **result.state}, strict=True)
    new = sorted({reason.split("'")[1] for reason in fresh.values() if reason.startswith("dataset ")})
    return TransferReport(result, new)


__all__ = ["TransferReport", "transfer_plan", "transfer_weights"]
