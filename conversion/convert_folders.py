"""Conversions between model folders: a correct `model_split` (one dense single-dataset model from a multi-dataset
one) and transformers' own VitPose folders (the Hub's `usyd-community/vitpose-*`) in both directions."""

from __future__ import annotations

import json
import logging
import os

from ..file_io import load_model_folder
from ..modeling import VitPosePlusForPoseEstimation
from .convert_original import SIZE_BY_WIDTH
from .hub_folder import save_hub_folder
from .model_card import card_info_for_model

logger = logging.getLogger(__name__)

#: transformers' preprocessor defaults for VitPose (reference 2.4), written next to exported transformers folders.
_IMAGENET_MEAN = [0.485, 0.456, 0.406]
_IMAGENET_STD = [0.229, 0.224, 0.225]


def _preset_name(model: VitPosePlusForPoseEstimation) -> str | None:
    c = model.config
    size = SIZE_BY_WIDTH.get(c.hidden_size)
    if size is None:
        return None
    if c.num_experts > 1:
        return f"vitpose-plus-{size}"
    return f"vitpose-{size}" + ("-simple" if c.decoder_type == "simple" else "")


def split_model(model: VitPosePlusForPoseEstimation, dataset: int | str) -> VitPosePlusForPoseEstimation:
    """The dense single-dataset model of `dataset` (fc2 = cat(fc2, expert), that dataset's head only): what the
    original `tools/model_split.py` meant to produce, without its leftovers."""
    return model.merge_experts(dataset)


def split_model_folder(
    model_dir: str | os.PathLike, dataset: int | str, output_dir: str | os.PathLike, max_shard_size: str = "5GB"
) -> VitPosePlusForPoseEstimation:
    """`vitpose-plus convert split`: load `model_dir`, merge the experts for `dataset`, save a Hub folder."""
    model = load_model_folder(model_dir)
    if isinstance(dataset, str) and dataset.isdigit():
        dataset = int(dataset)
    dataset_name = model.config.dataset_names[model.config.dataset_id(dataset)]
    dense = split_model(model, dataset)
    preset = _preset_name(model)
    card = card_info_for_model(
        dense,
        title=f"{preset or 'vitpose'}-{dataset_name}",
        description=(
            f"Single-dataset ({dataset_name}) dense model split from a {model.config.num_datasets}-dataset model: "
            "the dataset's expert folded into fc2 (exact) and its keypoint head."
        ),
        preset=preset,
        from_vitpose_plus=model.config.num_experts > 1,
        provenance=[
            f"Split from `{os.path.basename(os.fspath(model_dir).rstrip('/'))}` with "
            f"`vitpose-plus convert split --dataset {dataset_name}`."
        ],
    )
    save_hub_folder(dense, output_dir, card=card, max_shard_size=max_shard_size)
    return dense


def write_transformers_preprocessor_config(output_dir: str | os.PathLike, image_size: list[int]) -> None:
    """preprocessor_config.json of transformers' `VitPoseImageProcessor`, as in the Hub's usyd-community folders."""
    config = {
        "do_affine_transform": True,
        "do_normalize": True,
        "do_rescale": True,
        "image_mean": _IMAGENET_MEAN,
        "image_processor_type": "VitPoseImageProcessor",
        "image_std": _IMAGENET_STD,
        "normalize_factor": 200.0,
        "rescale_factor": 1 / 255,
        "size": {"height": int(image_size[0]), "width": int(image_size[1])},
    }
    with open(os.path.join(os.fspath(output_dir), "preprocessor_config.json"), "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2)
        handle.write("\n")


def to_transformers_folder(
    model_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    dataset: int | str | None = None,
    max_shard_size: str = "5GB",
):
    """`vitpose-plus convert to-transformers`: our folder -> transformers' `VitPoseForPoseEstimation` folder.

    transformers' VitPose holds one head: a multi-dataset model needs `dataset` and is merged for it first.
    """
    model = load_model_folder(model_dir)
    if isinstance(dataset, str) and dataset.isdigit():
        dataset = int(dataset)
    hf_model = model.to_transformers_vitpose(dataset)
    os.makedirs(output_dir, exist_ok=True)
    hf_model.save_pretrained(output_dir, max_shard_size=max_shard_size)
    write_transformers_preprocessor_config(output_dir, list(model.config.image_size))
    return hf_model


def from_transformers_folder(
    model_dir: str | os.PathLike, output_dir: str | os.PathLike, max_shard_size: str = "5GB"
) -> VitPosePlusForPoseEstimation:
    """`vitpose-plus convert from-transformers`: a transformers VitPose folder (or Hub id) -> our Hub folder."""
    model = VitPosePlusForPoseEstimation.from_transformers_vitpose(os.fspath(model_dir)).eval()
    preset = _preset_name(model)
    card = card_info_for_model(
        model,
        title=f"{preset or 'vitpose'}-from-transformers",
        description="ViTPose model imported from transformers' VitPoseForPoseEstimation format (a single head).",
        preset=None,  # which original file the transformers weights came from is not recorded in the folder
        provenance=[
            f"Imported from the transformers VitPose folder `{os.fspath(model_dir)}` with "
            "`vitpose-plus convert from-transformers`."
        ],
    )
    save_hub_folder(model, output_dir, card=card, max_shard_size=max_shard_size)
    return model
