"""The state-dict remapping toolkit every converter and fine-tuning initialisation use.

A conversion is a *plan*: for every tensor of the target model, which source tensor(s) it comes from and how
(`Source`: keys plus an optional transform such as fusing q/k/v or taking the expert rows of an fc2). `remap` runs a
plan with strict key accounting, proven once in the tests for all converters:

* every source key is either used by the plan, or ignored with a reason (`ignore`), or reported as unknown;
* every target key is either provided, or kept at its initialisation with a reason (`keep_initialised`), or
  reported as missing;
* every provided tensor has the target's shape, or it is reported as mismatched;

and anything reported stops the conversion with the whole list (`CheckpointConversionError`), so nothing is dropped
or left untrained silently. The tensor primitives shared by the converters live here too (q/k/v fusing, patch-kernel
padding; position-table resampling is the model's own `resize_position_table`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..modeling.modeling_vitpose_plus import resize_position_table

__all__ = [
    "CheckpointConversionError",
    "RemapResult",
    "Source",
    "fuse_qkv",
    "pad_patch_kernel",
    "remap",
    "resize_position_table",
    "split_qkv",
]


class CheckpointConversionError(ValueError):
    """A checkpoint cannot be converted exactly.

    Attributes:
        unknown: source keys that match no rule.
        missing: target keys that no source key provides.
        mismatched: `(key, got_shape, expected_shape)` triples.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        unknown: Iterable[str] = (),
        missing: Iterable[str] = (),
        mismatched: Iterable[tuple[str, tuple[int, ...], tuple[int, ...]]] = (),
    ):
        self.source = source
        self.unknown = sorted(unknown)
        self.missing = sorted(missing)
        self.mismatched = sorted(mismatched, key=lambda item: item[0])
        lines = [message if source is None else f"{source}: {message}"]
        if self.unknown:
            lines.append(f"{len(self.unknown)} unknown key(s) (no mapping rule):")
            lines.extend(f"  {key}" for key in self.unknown)
        if self.missing:
            lines.append(f"{len(self.missing)} missing key(s) (needed by the target model, absent from the source):")
            lines.extend(f"  {key}" for key in self.missing)
        if self.mismatched:
            lines.append(f"{len(self.mismatched)} key(s) with a wrong shape:")
            lines.extend(f"  {key}: got {list(got)}, expected {list(want)}" for key, got, want in self.mismatched)
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Source:
    """Where one target tensor comes from: source `keys` and a `transform(*tensors) -> tensor` (identity for one key).

    `note` describes a non-trivial transform in the accounting (e.g. "rows 576:768 (expert part)").
    """

    keys: tuple[str, ...]
    transform: Callable[..., torch.Tensor] | None = None
    note: str = ""

    @classmethod
    def of(cls, key: str, transform: Callable[..., torch.Tensor] | None = None, note: str = "") -> Source:
        return cls((key,), transform, note)

    def build(self, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        tensors = [state[key] for key in self.keys]
        if self.transform is not None:
            return self.transform(*tensors)
        if len(tensors) != 1:
            raise ValueError(f"A Source with several keys {self.keys} needs a transform.")
        return tensors[0]


@dataclass
class RemapResult:
    """A remapped state dict and its accounting.

    Attributes:
        state: target key -> tensor (every target key except those kept at their initialisation).
        mapped: source key -> the target key(s) it feeds (comma-separated when several, e.g. an fc2 split).
        ignored: source key -> reason.
        initialised: target key -> reason it keeps the model's own initialisation.
    """

    state: dict[str, torch.Tensor]
    mapped: dict[str, str] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)
    initialised: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"mapped {len(self.mapped)} tensors, ignored {len(self.ignored)}, kept {len(self.initialised)} at "
                 "their initialisation"]
        lines += [f"  ignored {key}: {why}" for key, why in sorted(self.ignored.items())]
        reasons: dict[str, list[str]] = {}
        for key, why in self.initialised.items():
            reasons.setdefault(why, []).append(key)
        lines += [f"  initialised {len(keys)} tensor(s) ({why})" for why, keys in reasons.items()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"mapped": self.mapped, "ignored": self.ignored, "initialised": self.initialised}


def remap(
    source: Mapping[str, torch.Tensor],
    plan: Mapping[str, Source],
    target: Mapping[str, torch.Tensor],
    *,
    ignore: Callable[[str], str | None] = lambda key: None,
    keep_initialised: Callable[[str], str | None] = lambda key: None,
    source_name: str | None = None,
    message: str = "the checkpoint does not match the target model; nothing was converted",
) -> RemapResult:
    """Run a conversion plan with strict accounting (see the module docstring).

    Args:
        source: the source state dict.
        plan: target key -> `Source`. Target keys absent from the plan must be covered by `keep_initialised`.
        target: the target model's state dict (shapes, and the values of kept tensors).
        ignore: source key -> reason it is not needed (or `None`); only consulted for keys the plan does not use.
        keep_initialised: target key -> reason it keeps its initialisation (or `None`); only for keys not planned.
        source_name: file or folder named in errors.
        message: first line of the error.

    Raises:
        CheckpointConversionError: listing every unknown, missing and mis-shaped key.
    """
    used: dict[str, list[str]] = {}
    state: dict[str, torch.Tensor] = {}
    missing, mismatched, unknown_targets = [], [], []
    initialised: dict[str, str] = {}
    for key in target:
        if key not in plan:
            reason = keep_initialised(key)
            if reason is None:
                missing.append(f"{key} (no rule provides it)")
            else:
                initialised[key] = reason
            continue
        rule = plan[key]
        absent = [k for k in rule.keys if k not in source]
        if absent:
            missing.append(f"{', '.join(absent)} (for {key})")
            continue
        for k in rule.keys:  # used (a wrong shape is reported below, not as an unknown key as well)
            used.setdefault(k, []).append(key + (f" [{rule.note}]" if rule.note else ""))
        tensor = rule.build(source)
        if tuple(tensor.shape) != tuple(target[key].shape):
            shown = rule.keys[0] if len(rule.keys) == 1 and rule.transform is None else f"{key} <- {rule.keys}"
            mismatched.append((shown, tuple(tensor.shape), tuple(target[key].shape)))
            continue
        state[key] = tensor
    unknown_targets = [key for key in plan if key not in target]
    if unknown_targets:  # a plan naming tensors the model does not have is a converter bug
        missing.extend(f"{key} (planned, but the target model has no such tensor)" for key in unknown_targets)
    ignored: dict[str, str] = {}
    unknown: list[str] = []
    for key in source:
        if key in used:
            continue
        reason = ignore(key)
        if reason is None:
            unknown.append(key)
        else:
            ignored[key] = reason
    if unknown or missing or mismatched:
        raise CheckpointConversionError(message, source=source_name, unknown=unknown, missing=missing,
                                        mismatched=mismatched)
    mapped = {key: ", ".join(targets) for key, targets in used.items()}
    return RemapResult(state, mapped, ignored, initialised)


def ignore_by_patterns(rules: Sequence[tuple[str, str]]) -> Callable[[str], str | None]:
    """An `ignore` function from `(regex, reason)` pairs (first full match wins)."""
    compiled = [(re.compile(pattern), reason) for pattern, reason in rules]

    def ignore(key: str) -> str | None:
        return next((reason for pattern, reason in compiled if pattern.fullmatch(key)), None)

    return ignore


# --------------------------------------------------------------------------------------------------- tensor primitives
def fuse_qkv(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Separate q, k, v projections -> one fused `qkv` (rows q | k | v), weight or bias."""
    return torch.cat([query, key, value], dim=0)


def split_qkv(qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fused `qkv` weight `(3D, D)` or bias `(3D,)` -> q, k, v (rows [0:D], [D:2D], [2D:3D])."""
    dim = qkv.shape[0] // 3
    return qkv[:dim].clone(), qkv[dim : 2 * dim].clone(), qkv[2 * dim :].clone()


def rows(start: int, end: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A transform taking output rows `[start:end]` (e.g. the shared or the expert part of a dense fc2)."""
    return lambda tensor: tensor[start:end].clone()


def pad_patch_kernel(weight: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a `(D, C, k, k)` patch kernel around the centre to `(D, C, size, size)` (the original's
    `patch_padding='pad'`, e.g. MAE ViT-H's 14x14 kernel into ViTPose's 16x16)."""
    k = weight.shape[-1]
    if k == size:
        return weight
    if k > size:
        raise CheckpointConversionError(f"patch kernel {k}x{k} is larger than the model's {size}x{size}")
    before = (size - k) // 2
    after = size - k - before
    return F.pad(weight, (before, after, before, after))
