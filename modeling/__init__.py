"""ViTPose / ViTPose+ model classes in the transformers layout (`vitpose_plus.modeling`).

This folder is self-contained (torch, transformers, the standard library and its own files) so that
`save_pretrained` can copy it into a Hub folder for `trust_remote_code` loading.
"""

from transformers import AutoConfig, AutoModel, AutoModelForPoseEstimation

from .catalog import PRESETS, Preset, get_preset
from .configuration_vitpose_plus import VitPosePlusConfig
from .dataset_specs import (
    VITPOSE_PLUS_DATASETS,
    KeypointDatasetSpec,
    builtin_dataset_names,
    get_dataset_spec,
    load_dataset_spec_file,
)
from .image_processing_vitpose_plus import VitPosePlusImageProcessor  # registers AutoImageProcessor
from .keypoint_codecs import HeatmapCodec, MSRAHeatmap, UDPHeatmap, codec_for
from .modeling_vitpose_plus import (
    VitPosePlusForPoseEstimation,
    VitPosePlusModel,
    VitPosePlusModelOutput,
    VitPosePlusPoseEstimatorOutput,
    VitPosePlusPreTrainedModel,
)
from .top_down import ImageInstances, PosePrediction, TopDownPredictor

AutoConfig.register(VitPosePlusConfig.model_type, VitPosePlusConfig, exist_ok=True)
AutoModel.register(VitPosePlusConfig, VitPosePlusModel, exist_ok=True)
AutoModelForPoseEstimation.register(VitPosePlusConfig, VitPosePlusForPoseEstimation, exist_ok=True)
# `save_pretrained` then copies the modeling files and writes `auto_map` for trust_remote_code loading.
VitPosePlusConfig.register_for_auto_class()
VitPosePlusModel.register_for_auto_class("AutoModel")
VitPosePlusForPoseEstimation.register_for_auto_class("AutoModelForPoseEstimation")

__all__ = [
    "PRESETS",
    "Preset",
    "VITPOSE_PLUS_DATASETS",
    "HeatmapCodec",
    "ImageInstances",
    "KeypointDatasetSpec",
    "MSRAHeatmap",
    "PosePrediction",
    "TopDownPredictor",
    "UDPHeatmap",
    "VitPosePlusConfig",
    "VitPosePlusForPoseEstimation",
    "VitPosePlusImageProcessor",
    "VitPosePlusModel",
    "VitPosePlusModelOutput",
    "VitPosePlusPoseEstimatorOutput",
    "VitPosePlusPreTrainedModel",
    "builtin_dataset_names",
    "codec_for",
    "get_dataset_spec",
    "get_preset",
    "load_dataset_spec_file",
]
