"""Data-level keypoint layout resolver: built-in datasets, dataset aliases, synthetic layouts and spec files.

Modeling knows only the six ViTPose+ datasets (`modeling.dataset_specs`); the data side adds what exists only for
data: OCHuman (the COCO layout under its own name, evaluated with a model's COCO head), the synthetic generator's
layouts (`synthetic.SYNTHETIC_SPECS`) and user spec files.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from vitpose_plus.modeling.dataset_specs import KeypointDatasetSpec, get_dataset_spec, load_dataset_spec_file

# Datasets that reuse a built-in layout under their own name.
DATASET_ALIASES = {"ochuman": "coco"}


def resolve_dataset_spec(name_or_spec: str | os.PathLike | dict[str, Any] | KeypointDatasetSpec) -> KeypointDatasetSpec:
    """The keypoint layout for a dataset name, a spec dict, a spec, or a JSON/YAML spec file.

    Names: the ViTPose+ datasets (`coco`, `aic`, `mpii`, `ap10k`, `apt36k`, `coco_wholebody`), `ochuman` (COCO's
    layout named `ochuman`) and the synthetic layouts (`synthetic_hand`). A string ending in `.json`, `.yaml` or
    `.yml` is read as a spec file.
    """
    if isinstance(name_or_spec, (KeypointDatasetSpec, dict)):
        return get_dataset_spec(name_or_spec)
    name = os.fspath(name_or_spec)
    if name.endswith((".json", ".yaml", ".yml")):
        return load_dataset_spec_file(name)
    if name in DATASET_ALIASES:
        base = get_dataset_spec(DATASET_ALIASES[name])
        return dataclasses.replace(base, name=name, source_dataset_name=name)
    from .synthetic import SYNTHETIC_SPECS

    if name in SYNTHETIC_SPECS:
        return SYNTHETIC_SPECS[name]
    try:
        return get_dataset_spec(name)
    except ValueError as err:
        known = sorted({*_builtin_names(), *DATASET_ALIASES, *SYNTHETIC_SPECS})
        raise ValueError(f"Unknown keypoint dataset {name!r}; known names are {known}, or give a JSON/YAML spec "
                         "file.") from err


def _builtin_names() -> tuple[str, ...]:
    from vitpose_plus.modeling.dataset_specs import builtin_dataset_names

    return builtin_dataset_names()


__all__ = ["DATASET_ALIASES", "resolve_dataset_spec"]
