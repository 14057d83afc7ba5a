"""ViTPose / ViTPose+ model classes in the transformers layout (`vitpose_plus.modeling`).

This folder is self-contained (torch, transformers, the standard library and its own files) so that
`save_pretrained` can copy it into a Hub folder for `trust_remote_code` loading.
"""

from transformers import AutoConfig, AutoModel, AutoModelForPoseEstimation, AutoModelForPreTraining

from .catalog import PRESETS, Preset, get_preset
from .configuration_vitpose_plus import VitPosePlusConfig
from .configuration_vitpose_plus_bottom_up import VitPosePlusBottomUpConfig
from .configuration_vitpose_plus_mae import VitPosePlusMAEConfig
from .dataset_specs import (
    VITPOSE_PLUS_DATASETS,
    KeypointDatasetSpec,
    builtin_dataset_names,
    get_dataset_spec,
    load_dataset_spec_file,
)
from .image_processing_vitpose_plus import VitPosePlusImageProcessor  # registers AutoImageProcessor
from .image_processing_vitpose_plus_bottom_up import VitPosePlusBottomUpImageProcessor  # registers AutoImageProcessor
from .keypoint_codecs import HeatmapCodec, MSRAHeatmap, UDPHeatmap, codec_for
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
from .modeling_vitpose_plus_mae import VitPosePlusForMaskedImageModeling, VitPosePlusMAEEncoder, VitPosePlusMAEOutput
from .person_detection import ObjectDetector
from .pipeline_vitpose_plus import VitPosePlusKeypointDetectionPipeline, register_pipeline
from .top_down import ImageInstances, PosePrediction, TopDownPredictor

AutoConfig.register(VitPosePlusConfig.model_type, VitPosePlusConfig, exist_ok=True)
AutoModel.register(VitPosePlusConfig, VitPosePlusModel, exist_ok=True)
AutoModelForPoseEstimation.register(VitPosePlusConfig, VitPosePlusForPoseEstimation, exist_ok=True)
# `save_pretrained` then copies the modeling files and writes `auto_map` for trust_remote_code loading.
VitPosePlusConfig.register_for_auto_class()
VitPosePlusModel.register_for_auto_class("AutoModel")
VitPosePlusForPoseEstimation.register_for_auto_class("AutoModelForPoseEstimation")
# MAE pre-training: its own model_type, under AutoModelForPreTraining as transformers' ViTMAEForPreTraining (and its
# encoder under AutoModel, as ViTMAEModel).
AutoConfig.register(VitPosePlusMAEConfig.model_type, VitPosePlusMAEConfig, exist_ok=True)
AutoModel.register(VitPosePlusMAEConfig, VitPosePlusMAEEncoder, exist_ok=True)
AutoModelForPreTraining.register(VitPosePlusMAEConfig, VitPosePlusForMaskedImageModeling, exist_ok=True)
VitPosePlusMAEConfig.register_for_auto_class()
VitPosePlusForMaskedImageModeling.register_for_auto_class("AutoModelForPreTraining")
# Bottom-up (associative embedding): its own model_type, so a folder loads unambiguously.
AutoConfig.register(VitPosePlusBottomUpConfig.model_type, VitPosePlusBottomUpConfig, exist_ok=True)
AutoModel.register(VitPosePlusBottomUpConfig, VitPosePlusBottomUpModel, exist_ok=True)
AutoModelForPoseEstimation.register(VitPosePlusBottomUpConfig, VitPosePlusForBottomUpPoseEstimation, exist_ok=True)
VitPosePlusBottomUpConfig.register_for_auto_class()
# `pipeline("keypoint-detection", model=folder)` in this process (saved folders also register it as remote code).
register_pipeline()

__all__ = [
    "PRESETS",
    "Preset",
    "VITPOSE_PLUS_DATASETS",
    "HeatmapCodec",
    "ImageInstances",
    "KeypointDatasetSpec",
    "MSRAHeatmap",
    "ObjectDetector",
    "PosePrediction",
    "TopDownPredictor",
    "UDPHeatmap",
    "VitPosePlusBottomUpConfig",
    "VitPosePlusBottomUpImageProcessor",
    "VitPosePlusBottomUpModel",
    "VitPosePlusBottomUpOutput",
    "VitPosePlusConfig",
    "VitPosePlusForBottomUpPoseEstimation",
    "VitPosePlusForMaskedImageModeling",
    "VitPosePlusForPoseEstimation",
    "VitPosePlusImageProcessor",
    "VitPosePlusKeypointDetectionPipeline",
    "VitPosePlusMAEConfig",
    "VitPosePlusMAEEncoder",
    "VitPosePlusMAEOutput",
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
