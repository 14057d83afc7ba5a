"""The bottom-up (associative embedding) parts of `vitpose-plus train` (`model.task: bottom_up`).

`training.train.train` stays one top-to-bottom function; the few steps that differ for a bottom-up run call in here:

* `bottom_up_model_config`: a `VitPosePlusBottomUpConfig` (preset and overrides as for top-down; 512x512 default);
* `build_bottom_up_model`: `VitPosePlusForBottomUpPoseEstimation`, optionally with the backbone of MAE weights or of a
  saved top-down or bottom-up model folder;
* `build_bottom_up_training_data`: whole images (the per-image rows of `vitpose_plus.data`, every person of an image
  at once) through `BottomUpTrainTransform`, mixed across datasets by the same `MixedSampler`, batched by
  `BottomUpCollator`;
* `evaluate_bottom_up_run`: every rank groups its share of each validation split's images, the records are gathered
  and scored once with the dataset's COCO protocol (`vitpose_plus.evaluation.bottom_up`);
* `bottom_up_trained_processor`: the `VitPosePlusBottomUpImageProcessor` saved with the model.

Training images are those with at least one annotation (the original's `BottomUpCocoDataset` in training mode), and
every image keeps all its annotations: crowds and persons without keypoints mask the heatmap loss, the others are
targets.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import torch
from datasets import Image

from vitpose_plus.file_io import decode_image
from vitpose_plus.modeling import (
    KeypointDatasetSpec,
    VitPosePlusBottomUpConfig,
    VitPosePlusBottomUpImageProcessor,
    VitPosePlusConfig,
    VitPosePlusForBottomUpPoseEstimation,
)

from .bottom_up_transforms import BottomUpCollator, BottomUpTrainTransform
from .config import TrainingConfig

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------------ data
def row_instances(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The annotations of one image row (the loader's `instances` dict of lists) as COCO-style dicts for
    `BottomUpTrainTransform`: `keypoints` (flat), `iscrowd`, `num_keypoints` and `segmentation` (decoded from the
    row's JSON text; absent when the file had none)."""
    inst = row["instances"]
    out = []
    for i in range(len(inst["annotation_id"])):
        obj: dict[str, Any] = {
            "keypoints": inst["keypoints"][i],
            "iscrowd": int(inst["iscrowd"][i]),
            "num_keypoints": int(inst["num_keypoints"][i]),
        }
        text = inst["segmentation"][i]
        if text:
            try:
                obj["segmentation"] = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"image_id {row.get('image_id', '?')}, annotation {inst['annotation_id'][i]}: the "
                                 f"stored segmentation is not valid JSON ({err}).") from err
        out.append(obj)
    return out


class BottomUpTrainingDataset(torch.utils.data.Dataset):
    """The images of one keypoint dataset (rows of `load_keypoint_dataset`) through its `BottomUpTrainTransform`.

    Like `TopDownTrainingDataset`: images are read as raw files (an unreadable one fails naming it), items are
    addressed by `epoch * len(self) + index`, and each sample's augmentation draws from a generator seeded by
    `(seed, dataset, epoch, index)`, so a batch depends only on the seed and the position in training.

    Args:
        rows: per-image rows (`image`, `image_id`, `instances`, ...).
        transform: the dataset's transform (its `dataset_index` is the model's dataset).
        seed: the run's seed.
    """

    def __init__(self, rows: Any, transform: BottomUpTrainTransform, seed: int = 0):
        self.rows = rows.cast_column("image", Image(decode=False)) if "image" in rows.column_names else rows
        self.transform = transform
        self.seed = int(seed)
        meta = rows.select_columns(["instances"])["instances"]
        # the original trains on images with at least one annotation (crowds included)
        self.index = np.asarray([i for i, inst in enumerate(meta) if len(inst["annotation_id"]) > 0], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def sample(self, index: int, epoch: int) -> dict[str, Any]:
        row = self.rows[int(self.index[index])]
        context = f"dataset {self.transform.spec.name!r}, image_id {row.get('image_id', '?')}"
        rng = np.random.default_rng([self.seed, self.transform.dataset_index, epoch, index])
        try:
            out = self.transform(decode_image(row["image"], context), row_instances(row), rng=rng)
        except ValueError as err:
            raise ValueError(f"{context}: {err}") from err
        return {key: out[key] for key in ("pixel_values", "labels", "label_mask", "label_joints", "dataset_index")}

    def __getitem__(self, code: int) -> dict[str, Any]:
        code = int(code)
        epoch, index = divmod(code, len(self))
        return self.sample(index, epoch)


def build_bottom_up_training_data(config: TrainingConfig, model_config: VitPosePlusBottomUpConfig,
                                  specs: list[KeypointDatasetSpec]) -> Any:
    """The run's `TrainingData` for a bottom-up model: one `BottomUpTrainingDataset` per dataset, the mixed sampler
    (sizes or `ratio`), and `BottomUpCollator` as the batch collator.

    Raises:
        ValueError: for a non-square input, or a dataset without a training image (unless `allow_empty`).
    """
    from .train import TrainingData, load_split_rows

    height, width = model_config.image_size
    if height != width:
        raise ValueError(f"model.overrides.image_size = {list(model_config.image_size)}: the bottom-up training "
                         "input is square (the original's BottomUpRandomAffine); use [side, side].")
    map_height, map_width = model_config.heatmap_size_for(height, width)
    aug = config.bottom_up
    parts = []
    for index, (dataset, spec) in enumerate(zip(config.datasets, specs)):
        transform = BottomUpTrainTransform(
            spec, dataset_index=index, input_size=height, heatmap_size=map_height,
            rotation_factor=aug.rotation_factor, scale_range=aug.scale_range, scale_type=aug.scale_type,
            translation_factor=aug.translation_factor, flip_prob=aug.flip_prob, sigma=model_config.sigma,
            max_num_people=model_config.max_num_people,
        )
        part = BottomUpTrainingDataset(load_split_rows(dataset, dataset.train, spec), transform,
                                       seed=config.runtime.seed)
        if len(part) == 0 and not dataset.allow_empty:
            raise ValueError(
                f"datasets[{index}] ({dataset.name!r}) has no annotated image in its training files; its expert and "
                "head would stay untrained. Fix the files, or set allow_empty: true for that dataset."
            )
        parts.append(part)
    return TrainingData.mixed(config, specs, parts, BottomUpCollator(model_config.max_num_keypoints))


# ------------------------------------------------------------------------------------------------------ model
def bottom_up_model_config(config: TrainingConfig, specs: list[KeypointDatasetSpec]) -> VitPosePlusBottomUpConfig:
    """The bottom-up model config of the run: the preset's architecture (if any), the overrides, the datasets."""
    datasets = [spec.to_dict() for spec in specs]
    overrides = dict(config.model.overrides)
    if config.model.preset:
        return VitPosePlusBottomUpConfig.from_preset(config.model.preset, datasets=datasets, **overrides)
    return VitPosePlusBottomUpConfig(datasets=datasets, **overrides)


def top_down_twin(config: VitPosePlusBottomUpConfig) -> VitPosePlusConfig:
    """The top-down config with the same backbone, decoder and datasets (what MAE initialisation builds)."""
    fields = set(VitPosePlusConfig.__dataclass_fields__)
    data = {k: v for k, v in config.to_dict().items() if k in fields}
    return VitPosePlusConfig(**data)


def build_bottom_up_model(config: TrainingConfig, model_config: VitPosePlusBottomUpConfig
                          ) -> VitPosePlusForBottomUpPoseEstimation:
    """A fresh bottom-up model; `model.mae_checkpoint` initialises its backbone from MAE weights (as for top-down,
    the position table resized to the input grid), `model.init_from` from a saved bottom-up folder (everything that
    matches, by dataset name) or top-down folder (the backbone; its position table resized). Heads start from the
    mmpose initialisation unless a bottom-up folder provides them."""
    from vitpose_plus.conversion.weight_transfer import transfer_weights
    from vitpose_plus.file_io import load_model_folder

    model = VitPosePlusForBottomUpPoseEstimation(model_config)
    if config.bottom_up.position_init == "sincos":
        sincos_position_table(model)
    if config.model.mae_checkpoint:
        from vitpose_plus.conversion.convert_mae import init_from_mae_state_dict, read_mae_state_dict

        mae = init_from_mae_state_dict(read_mae_state_dict(config.model.mae_checkpoint), top_down_twin(model_config),
                                       source=config.model.mae_checkpoint)
        logger.info("Initialised the backbone from MAE %s (%d tensors mapped, %d ignored).",
                    config.model.mae_checkpoint, len(mae.mapped), len(mae.ignored))
        _load_backbone(model, mae.model)
    if config.model.init_from:
        source = load_model_folder(config.model.init_from)
        if isinstance(source, VitPosePlusForBottomUpPoseEstimation):
            report = transfer_weights(source, model, allow_partial=config.model.allow_partial_init,
                                      source_name=config.model.init_from)
            logger.warning("Initialised from %s: %s", config.model.init_from, report.summary())
        else:
            _load_backbone(model, source)
            logger.warning("Initialised the backbone from the top-down model %s (heads start fresh).",
                           config.model.init_from)
    return model.train()


def sincos_position_table(model: VitPosePlusForBottomUpPoseEstimation) -> None:
    """Set the position table to MAE's fixed 2-D sin-cos table of the model's patch grid (slot 0 zero), the table an
    MAE-initialised backbone starts from; it stays trainable. From scratch it gives every token its row and column
    from the first step, which the tags (a per-person value) build on."""
    from vitpose_plus.modeling.modeling_vitpose_plus_mae import build_2d_sincos_position_table

    embeddings = model.backbone.embeddings
    rows, cols = embeddings.grid_size
    table = build_2d_sincos_position_table(model.config.hidden_size, rows, cols, cls_slot=True)
    with torch.no_grad():
        embeddings.position_embeddings.copy_(table.reshape(embeddings.position_embeddings.shape))


def _load_backbone(model: VitPosePlusForBottomUpPoseEstimation, source: Any) -> None:
    """Copy a top-down model's backbone (experts included, position table resized to the model's grid)."""
    from vitpose_plus.conversion.weight_transfer import transfer_weights

    converted = VitPosePlusForBottomUpPoseEstimation.from_top_down(source, image_size=model.config.image_size)
    # Heads of `converted` are fresh; transferring everything that matches by name keeps `model`'s own heads
    # whenever the decoders differ (allow_partial covers only the heads: the backbone is checked below).
    before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("heads.")}
    transfer_weights(converted, model, allow_partial=True)
    with torch.no_grad():
        for key, value in before.items():
            model.state_dict()[key].copy_(value)
    own, theirs = model.state_dict(), converted.state_dict()
    for key, value in own.items():
        if key.startswith("backbone.") and ".mlp.experts." not in key and (
                key not in theirs or theirs[key].shape != value.shape or not torch.equal(theirs[key], value)):
            raise ValueError(f"The initial backbone does not fit the bottom-up model at {key!r} (another width, "
                             "depth or patch size?).")


# ------------------------------------------------------------------------------------------------------ evaluation
def bottom_up_trained_processor(model_config: VitPosePlusBottomUpConfig, config: TrainingConfig
                                ) -> VitPosePlusBottomUpImageProcessor:
    """The processor saved with a trained bottom-up model (its input size, geometry and grouping settings)."""
    return VitPosePlusBottomUpImageProcessor.from_model_config(model_config)


def evaluate_bottom_up_run(accelerator: Any, model: Any, config: TrainingConfig) -> dict[str, dict[str, float]]:
    """COCO-style metrics of every dataset with a validation split, predicted on every rank's share of the images
    (all ranks run forward passes), gathered and scored once; every rank gets the metrics."""
    from accelerate.utils import gather_object

    from vitpose_plus.evaluation.bottom_up import predict_bottom_up_split, score_bottom_up_split

    processor = bottom_up_trained_processor(model.config, config)
    metrics: dict[str, dict[str, float]] = {}
    for index, dataset in enumerate(config.datasets):
        if dataset.val is None:
            continue
        prepared, records = predict_bottom_up_split(
            model, processor, dataset.val.annotations, dataset.val.images, index,
            batch_size=config.runtime.eval_batch_size, flip_test=config.runtime.flip_test,
            scale_factors=config.bottom_up.eval_scales, progress=False,
            shard=(accelerator.process_index, accelerator.num_processes),
        )
        gathered = gather_object(records) if accelerator.num_processes > 1 else records
        metrics[dataset.name] = score_bottom_up_split(prepared, gathered, config.bottom_up.eval_nms_threshold).metrics
    return metrics


__all__ = [
    "BottomUpTrainingDataset",
    "bottom_up_model_config",
    "bottom_up_trained_processor",
    "build_bottom_up_model",
    "build_bottom_up_training_data",
    "evaluate_bottom_up_run",
    "row_instances",
    "sincos_position_table",
    "top_down_twin",
]
