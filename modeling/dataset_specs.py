"""Keypoint dataset specifications: the one place where a dataset's keypoint metadata lives.

A `KeypointDatasetSpec` holds everything the model, the codecs, training and evaluation need to know about one
keypoint layout: keypoint names, flip pairs, skeleton, colours, OKS sigmas, joint weights, the upper/lower-body split
used by the half-body augmentation and whether the dataset uses the UDP (unbiased) geometry.

The six ViTPose+ datasets ship as package data (`keypoint_specs.json`, next to this file) and are looked up by name
with `get_dataset_spec`. The JSON file is read lazily, only when a spec is looked up by name: a model folder loaded
with `trust_remote_code` never needs it because the model config carries its full dataset specs.

This module imports only the standard library so that it can travel with the modeling code to the Hub.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

_SPECS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keypoint_specs.json")

# ViTPose+ dataset order (dataset index = position); see the reference, section 1.5.
VITPOSE_PLUS_DATASETS: tuple[str, ...] = ("coco", "aic", "mpii", "ap10k", "apt36k", "coco_wholebody")

# Datasets trained and decoded with the UDP geometry and targets (the rest use the non-UDP affine and MSRA targets).
_UDP_DATASETS = frozenset({"coco", "mpii"})
# Datasets on which the original recipe skips the half-body augmentation.
_NO_HALF_BODY_DATASETS = frozenset({"mpii"})


@dataclass(frozen=True)
class KeypointDatasetSpec:
    """Metadata of one keypoint dataset (one keypoint layout).

    Args:
        name: Short identifier, e.g. `"coco"`. Used to look up the dataset in a model config.
        keypoint_names: One name per keypoint, in channel order (K names).
        flip_pairs: Pairs `(i, j)` of keypoints that swap under a horizontal flip (0-based).
        skeleton: Pairs `(i, j)` of keypoints joined by a limb when drawing.
        sigmas: Per-keypoint OKS sigmas (K floats) used by COCO-style evaluation.
        use_udp: Whether the dataset uses the UDP affine transform, UDP targets and DARK-UDP decoding. Non-UDP
            datasets use the 3-point affine, MSRA targets, quarter-pixel decoding and a one-pixel flip-test shift.
        keypoint_colors: RGB colour per keypoint for drawing (K triples).
        skeleton_colors: RGB colour per skeleton limb for drawing.
        joint_weights: Per-keypoint loss weights as listed by the original metadata (not applied by the ViTPose
            loss, kept for users who want them).
        upper_or_lower: `"upper"`, `"lower"` or `""` (neither, e.g. WholeBody face and hands) per keypoint, for the
            half-body augmentation.
        use_half_body: Whether the half-body augmentation applies to this dataset.
        source_dataset_name: Name of the metadata source (e.g. `"ap10k"` for APT-36K, which reuses it).
    """

    name: str
    keypoint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()
    sigmas: tuple[float, ...] = ()
    use_udp: bool = True
    keypoint_colors: tuple[tuple[int, int, int], ...] = ()
    skeleton_colors: tuple[tuple[int, int, int], ...] = ()
    joint_weights: tuple[float, ...] = ()
    upper_or_lower: tuple[str, ...] = ()
    use_half_body: bool = True
    source_dataset_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Normalise lists coming from JSON into tuples so that specs compare and hash by value.
        object.__setattr__(self, "keypoint_names", tuple(self.keypoint_names))
        object.__setattr__(self, "flip_pairs", tuple(tuple(int(v) for v in p) for p in self.flip_pairs))
        object.__setattr__(self, "skeleton", tuple(tuple(int(v) for v in p) for p in self.skeleton))
        object.__setattr__(self, "sigmas", tuple(float(v) for v in self.sigmas))
        object.__setattr__(self, "keypoint_colors", tuple(tuple(int(v) for v in c) for c in self.keypoint_colors))
        object.__setattr__(self, "skeleton_colors", tuple(tuple(int(v) for v in c) for c in self.skeleton_colors))
        object.__setattr__(self, "joint_weights", tuple(float(v) for v in self.joint_weights))
        object.__setattr__(self, "upper_or_lower", tuple(str(v) for v in self.upper_or_lower))
        self.validate()

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    def validate(self) -> None:
        """Raise `ValueError` naming the dataset and the field when the spec is inconsistent."""
        k = self.num_keypoints
        where = f"keypoint dataset spec {self.name!r}"
        if not self.name:
            raise ValueError("A keypoint dataset spec needs a non-empty 'name'.")
        if k == 0:
            raise ValueError(f"{where}: 'keypoint_names' is empty; expected one name per keypoint.")
        for field_name in ("sigmas", "keypoint_colors", "joint_weights", "upper_or_lower"):
            value = getattr(self, field_name)
            if value and len(value) != k:
                raise ValueError(f"{where}: '{field_name}' has {len(value)} entries, expected {k} (one per keypoint).")
        if self.skeleton_colors and len(self.skeleton_colors) != len(self.skeleton):
            raise ValueError(
                f"{where}: 'skeleton_colors' has {len(self.skeleton_colors)} entries, expected {len(self.skeleton)} "
                "(one per skeleton limb)."
            )
        for field_name in ("flip_pairs", "skeleton"):
            for pair in getattr(self, field_name):
                if len(pair) != 2 or not all(0 <= v < k for v in pair):
                    raise ValueError(
                        f"{where}: '{field_name}' entry {list(pair)} is not a pair of indices in [0, {k})."
                    )
        seen: set[int] = set()
        for a, b in self.flip_pairs:
            if a == b or a in seen or b in seen:
                raise ValueError(f"{where}: 'flip_pairs' uses keypoint {a if a in seen or a == b else b} twice.")
            seen.update((a, b))
        for value in self.upper_or_lower:
            if value not in ("upper", "lower", ""):
                raise ValueError(
                    f"{where}: 'upper_or_lower' entries must be 'upper', 'lower' or '' (neither), got {value!r}."
                )

    def flip_permutation(self) -> list[int]:
        """Channel permutation that swaps left and right keypoints: `flipped[:, perm]` un-swaps a mirrored output."""
        perm = list(range(self.num_keypoints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (lists instead of tuples), as stored in `VitPosePlusConfig.datasets`."""
        data = asdict(self)
        if not data["extra"]:
            data.pop("extra")
        return json.loads(json.dumps(data))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeypointDatasetSpec:
        """Build a spec from a dict (a config entry, a JSON/YAML file, or an entry of `keypoint_specs.json`)."""
        if not isinstance(data, dict):
            raise ValueError(f"A keypoint dataset spec must be a mapping, got {type(data).__name__}.")
        data = dict(data)
        if "keypoints" in data and "keypoint_names" not in data:  # the layout of keypoint_specs.json
            data["keypoint_names"] = data.pop("keypoints")
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        if "name" not in data or "keypoint_names" not in data:
            raise ValueError(
                f"A keypoint dataset spec needs 'name' and 'keypoint_names' (or 'keypoints'); got keys {sorted(data)}."
            )
        num_keypoints = data.pop("num_keypoints", None)
        extra = dict(data.pop("extra", {}) or {})
        extra.update({k: v for k, v in data.items() if k not in known})
        spec = cls(**{k: v for k, v in data.items() if k in known}, extra=extra)
        if num_keypoints is not None and int(num_keypoints) != spec.num_keypoints:
            raise ValueError(
                f"keypoint dataset spec {spec.name!r}: 'num_keypoints' is {num_keypoints} but "
                f"{spec.num_keypoints} keypoint names are given."
            )
        return spec


@lru_cache(maxsize=1)
def _builtin_specs() -> dict[str, KeypointDatasetSpec]:
    with open(_SPECS_FILE, encoding="utf-8") as handle:
        raw = json.load(handle)
    specs = {}
    for name, entry in raw.items():
        entry = {k: v for k, v in entry.items() if k != "dataset_index"}
        entry["name"] = name
        entry["use_udp"] = name in _UDP_DATASETS
        entry["use_half_body"] = name not in _NO_HALF_BODY_DATASETS
        specs[name] = KeypointDatasetSpec.from_dict(entry)
    return specs


def builtin_dataset_names() -> tuple[str, ...]:
    """Names of the datasets shipped with the package: the six ViTPose+ datasets in dataset-index order."""
    return tuple(_builtin_specs())


def get_dataset_spec(name_or_spec: str | dict[str, Any] | KeypointDatasetSpec) -> KeypointDatasetSpec:
    """Return a spec given a built-in dataset name, a spec dict or a spec (returned unchanged; a spec of another
    copy of this module, as transformers' remote code loads config and processor separately, is rebuilt from its
    `to_dict()`)."""
    if isinstance(name_or_spec, KeypointDatasetSpec):
        return name_or_spec
    if isinstance(name_or_spec, dict):
        return KeypointDatasetSpec.from_dict(name_or_spec)
    if not isinstance(name_or_spec, str) and callable(getattr(name_or_spec, "to_dict", None)):
        return KeypointDatasetSpec.from_dict(name_or_spec.to_dict())
    specs = _builtin_specs()
    if name_or_spec not in specs:
        raise ValueError(f"Unknown keypoint dataset {name_or_spec!r}; the built-in datasets are {sorted(specs)}.")
    return specs[name_or_spec]


def load_dataset_spec_file(path: str | os.PathLike) -> KeypointDatasetSpec:
    """Load a user's keypoint layout from a JSON or YAML file (same fields as `KeypointDatasetSpec`)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as err:
        raise ValueError(f"Cannot read keypoint spec file {path!r}: {err}") from err
    try:
        if path.endswith((".yaml", ".yml")):
            try:
                import yaml
            except ImportError as err:  # PyYAML is optional
                raise ValueError(f"Reading {path!r} needs PyYAML (pip install pyyaml), or use a JSON file.") from err
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"Keypoint spec file {path!r} is not valid JSON: {err}") from err
    except Exception as err:  # a YAML parser error
        if isinstance(err, ValueError) and "PyYAML" in str(err):
            raise
        raise ValueError(f"Keypoint spec file {path!r} is not valid: {err}") from err
    try:
        return KeypointDatasetSpec.from_dict(data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"Keypoint spec file {path!r}: {err}") from err
