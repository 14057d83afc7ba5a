"""ViTPose / ViTPose+ model classes in the transformers layout (`vitpose_plus.modeling`).

This folder is self-contained (torch, transformers, the standard library and its own files) so that
`save_pretrained` can copy it into a Hub folder for `trust_remote_code` loading.
"""

from transformers import AutoConfig, AutoModel, AutoModelForPoseEstimation

from .configuration_vitpose_plus import LAYER_DECAY_RATES, PRESETS, VitPosePlusConfig
from .configuration_vitpose_plus_bottom_up import VitPosePlusBottomUpConfig
from .dataset_specs import (
    VITPOSE_PLUS_DATASETS,
    KeypointDatasetSpec,
    builtin_dataset_names,
    get_dataset_spec,
    load_dataset_spec_file,
)
from .image_processing_vitpose_plus import VitPosePlusImageProcessor  # registers AutoImageProcessor
from .image_processing_vitpose_plus_bottom_up import VitPosePlusBottomUpImageProcessor  # registers AutoImageProcessor
from .modeling_vitpose_plus import (
    VitPosePlusForPoseEstimation,
    VitPosePlusModel,
    VitPosePlusModelOutput,
    VitPosePlusPoseEstimatorOutput,
    VitPosePlusPreTrainedModel,
)
from .modeling_vitpose_plus_bottom_up import (
    VitPosePlusBottomUpModel,
    VitPosePlusBottomUpOutput,
    VitPosePlusForBottomUpPoseEstimation,
)

AutoConfig.register(VitPosePlusConfig.model_type, VitPosePlusConfig, exist_ok=True)
AutoModel.register(VitPosePlusConfig, VitPosePlusModel, exist_ok=True)
AutoModelForPoseEstimation.register(VitPosePlusConfig, VitPosePlusForPoseEstimation, exist_ok=True)
# `save_pretrained` then copies the modeling files and writes `auto_map` for trust_remote_code loading.
VitPosePlusConfig.register_for_auto_class()
VitPosePlusModel.register_for_auto_class("AutoModel")
VitPosePlusForPoseEstimation.register_for_auto_class("AutoModelForPoseEstimation")
# Bottom-up (associative embedding): its own model_type, so a folder loads unambiguously.
AutoConfig.register(VitPosePlusBottomUpConfig.model_type, VitPosePlusBottomUpConfig, exist_ok=True)
AutoModel.register(VitPosePlusBottomUpConfig, VitPosePlusBottomUpModel, exist_ok=True)
AutoModelForPoseEstimation.register(VitPosePlusBottomUpConfig, VitPosePlusForBottomUpPoseEstimation, exist_ok=True)
VitPosePlusBottomUpConfig.register_for_auto_class()

__all__ = [
    "LAYER_DECAY_RATES",
    "PRESETS",
    "VITPOSE_PLUS_DATASETS",
    "KeypointDatasetSpec",
    "VitPosePlusBottomUpConfig",
    "VitPosePlusBottomUpImageProcessor",
    "VitPosePlusBottomUpModel",
    "VitPosePlusBottomUpOutput",
    "VitPosePlusConfig",
    "VitPosePlusForBottomUpPoseEstimation",
    "VitPosePlusForPoseEstimation",
    "VitPosePlusImageProcessor",
    "VitPosePlusModel",
    "VitPosePlusModelOutput",
    "VitPosePlusPoseEstimatorOutput",
    "VitPosePlusPreTrainedModel",
    "builtin_dataset_names",
    "get_dataset_spec",
    "load_dataset_spec_file",
]
