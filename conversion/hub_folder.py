"""Write a Hub-ready model folder: config.json (with `auto_map`), sharded safetensors, the modeling code for
`trust_remote_code`, preprocessor_config.json, README.md and a conversion report."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from ..modeling import VitPosePlusForPoseEstimation, VitPosePlusImageProcessor
from .model_card import ModelCardInfo, render_model_card

logger = logging.getLogger(__name__)

def ensure_auto_map(model: VitPosePlusForPoseEstimation) -> None:
    """Make `save_pretrained` write `auto_map` (and copy the modeling files) for `trust_remote_code` loading.

    The model classes are registered with the auto classes in-process only; `register_for_auto_class` records which
    auto class should point at them in saved folders. Idempotent.
    """
    if getattr(type(model.config), "_auto_class", None) is None:
        type(model.config).register_for_auto_class("AutoConfig")
    if getattr(type(model), "_auto_class", None) is None:
        type(model).register_for_auto_class("AutoModelForPoseEstimation")


def save_hub_folder(
    model: VitPosePlusForPoseEstimation,
    output_dir: str | os.PathLike,
    *,
    card: ModelCardInfo | None = None,
    max_shard_size: str | int = "5GB",
    report: dict[str, Any] | None = None,
) -> list[str]:
    """Save `model` as a Hub-ready folder and return the written file names.

    Args:
        model: the model to save (saved in its current dtype).
        output_dir: folder to create or fill.
        card: model card contents; README.md is rendered from `hub_cards/model_card.md` when given.
        max_shard_size: safetensors shard size (`save_pretrained`'s format, e.g. `"5GB"`, `"500MB"`).
        report: conversion accounting, written as `conversion_report.json` when given.

    Raises:
        RuntimeError: when the saved config has no `auto_map`.
    """
    output_dir = os.fspath(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    ensure_auto_map(model)
    model.save_pretrained(output_dir, max_shard_size=max_shard_size)
    with open(os.path.join(output_dir, "config.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    if "auto_map" not in config:
        raise RuntimeError(f"{output_dir}/config.json has no auto_map; the folder would not load remotely.")
    VitPosePlusImageProcessor.from_model_config(model.config).save_pretrained(output_dir)
    if card is not None:
        with open(os.path.join(output_dir, "README.md"), "w", encoding="utf-8") as handle:
            handle.write(render_model_card(card))
    if report is not None:
        with open(os.path.join(output_dir, "conversion_report.json"), "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2, sort_keys=True)
            handle.write("\n")
    files = sorted(os.listdir(output_dir))
    logger.info("wrote %s: %s", output_dir, ", ".join(files))
    return files
