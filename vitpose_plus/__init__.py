"""vitpose-plus: ViTPose and ViTPose+ (mixture of experts) for Hugging Face Transformers.

Importing this package registers the model with transformers' auto classes (`AutoConfig`, `AutoModel`,
`AutoModelForPoseEstimation`).
"""

from .modeling import (
    KeypointDatasetSpec,
    VitPosePlusConfig,
    VitPosePlusForPoseEstimation,
    VitPosePlusModel,
    VitPosePlusPreTrainedModel,
    get_dataset_spec,
)

__version__ = "0.1.0"

__all__ = [
    "KeypointDatasetSpec",
    "VitPosePlusConfig",
    "VitPosePlusForPoseEstimation",
    "VitPosePlusModel",
    "VitPosePlusPreTrainedModel",
    "get_dataset_spec",
    "__version__",
]
