"""Conversions between model folders: a correct `model_split` (one dense single-dataset model from a multi-dataset
one) and transformers' own VitPose folders (the Hub's `usyd-community/vitpose-*`) in both directions."""

from __future__ import annotations

import logging
import os

from ..file_io import load_model_folder, save_model_folder, write_json
from ..hub_cards.cards import card_info_for_model
from ..modeling import VitPosePlusForPoseEstimation
from ..modeling.catalog import preset_for_architecture
from .transformers_vitpose import from_transformers_vitpose, to_transformers_vitpose

logger = logging.getLogger(__name__)

#: transformers' preprocessor defaults for VitPose (reference 2.4), written next to exported transformers folders.
_IMAGENET_MEAN = [0.485, 0.456, 0.406]
_IMAGENET_STD = [0.229, 0.224, 0.225]


def _preset_name(model: VitPosePlusForPoseEstimation) -> str | None:
    c = model.config
    preset = preset_for_architecture(c.hidden_size, c.num_experts, c.decoder_type)
    return preset.name if preset is not None else None


def split_model_folder(
    model_dir: str | os.PathLike, dataset: int | str, output_dir: str | os.PathLike, max_shard_size: str = "5GB",
    overwrite: bool = False,
) -> VitPosePlusForPoseEstimation:
    """`vitpose-plus convert split`: load `model_dir`, merge the experts for `dataset`, save a Hub folder."""
    model = load_model_folder(model_dir)
    if isinstance(dataset, str) and dataset.isdigit():
        dataset = int(dataset)
    dataset_name = model.config.dataset_names[model.config.dataset_id(dataset)]
    dense = model.merge_experts(dataset)
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
    save_model_folder(dense, output_dir, card=card, max_shard_size=max_shard_size, overwrite=overwrite)
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
    write_json(os.path.join(os.fspath(output_dir), "preprocessor_config.json"), config)


def to_transformers_folder(
    model_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    dataset: int | str | None = None,
    max_shard_size: str = "5GB",
    overwrite: bool = False,
):
    """`vitpose-plus convert to-transformers`: our folder -> transformers' `VitPoseForPoseEstimation` folder.

    transformers' VitPose holds one head: a multi-dataset model needs `dataset` and is merged for it first.
    """
    model = load_model_folder(model_dir)
    if isinstance(dataset, str) and dataset.isdigit():
        dataset = int(dataset)
    hf_model = to_transformers_vitpose(model, dataset)
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
        raise FileExistsError(f"Output folder {os.fspath(output_dir)!r} exists and is not empty; pass --overwrite.")
    os.makedirs(output_dir, exist_ok=True)
    hf_model.save_pretrained(output_dir, max_shard_size=max_shard_size)
    write_transformers_preprocessor_config(output_dir, list(model.config.image_size))
    return hf_model


def from_transformers_folder(
    model_dir: str | os.PathLike, output_dir: str | os.PathLike, max_shard_size: str = "5GB", overwrite: bool = False
) -> VitPosePlusForPoseEstimation:
    """`vitpose-plus convert from-transformers`: a transformers VitPose folder (or Hub id) -> our Hub folder."""
    model = from_transformers_vitpose(os.fspath(model_dir)).eval()
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
    save_model_folder(model, output_dir, card=card, max_shard_size=max_shard_size, overwrite=overwrite)
    return model
