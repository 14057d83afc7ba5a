"""ViTPose / ViTPose+ model configuration."""

from __future__ import annotations

import copy
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from .dataset_specs import VITPOSE_PLUS_DATASETS, KeypointDatasetSpec, get_dataset_spec

# Published backbone sizes (reference section 1.1). ViTPose-S uses 12 heads of dim 32; pf is the released one.
_SIZES: dict[str, dict[str, Any]] = {
    "small": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 12, "drop_path_rate": 0.1},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "drop_path_rate": 0.3},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "drop_path_rate": 0.5},
    "huge": {"hidden_size": 1280, "num_hidden_layers": 32, "num_attention_heads": 16, "drop_path_rate": 0.55},
}
_PLUS_PART_FEATURES = {"small": 96, "base": 192, "large": 256, "huge": 320}

#: Layer-wise learning-rate decay of the published recipes (reference section 4.3), by preset name.
LAYER_DECAY_RATES: dict[str, float] = {
    "vitpose-small": 0.8,
    "vitpose-base": 0.75,
    "vitpose-large": 0.8,
    "vitpose-huge": 0.85,
    "vitpose-base-simple": 0.75,
    "vitpose-large-simple": 0.8,
    "vitpose-huge-simple": 0.85,
    "vitpose-plus-small": 0.8,
    "vitpose-plus-base": 0.75,
    "vitpose-plus-large": 0.8,
    "vitpose-plus-huge": 0.8,
}

PRESETS: tuple[str, ...] = tuple(LAYER_DECAY_RATES)

_DECODER_TYPES = ("classic", "simple")


@strict(accept_kwargs=True)
class VitPosePlusConfig(PreTrainedConfig):
    r"""
    Configuration of a ViTPose or ViTPose+ model: a plain ViT backbone (optionally with a mixture-of-experts FFN, one
    expert per dataset) and one keypoint head per dataset.

    Backbone:
        image_size (`tuple[int, int]`, defaults to `(256, 192)`): input (height, width) the position table is built for.
        patch_size (`int`, defaults to 16): patch-embedding kernel and stride.
        patch_padding (`int`, defaults to 2): zero padding of the patch-embedding convolution (the original's quirk).
        num_channels (`int`, defaults to 3), hidden_size (`int`, defaults to 768), num_hidden_layers (`int`, defaults
        to 12), num_attention_heads (`int`, defaults to 12), mlp_ratio (`float`, defaults to 4.0), qkv_bias (`bool`,
        defaults to `True`), layer_norm_eps (`float`, defaults to 1e-6, the original's value), hidden_act (`str`,
        defaults to `"gelu"`, the exact erf GELU).
        drop_path_rate (`float`, defaults to 0.0): stochastic depth rate of the last block (linear from 0).
        attention_probs_dropout_prob (`float`, defaults to 0.0), hidden_dropout_prob (`float`, defaults to 0.0).
        interpolate_pos_encoding (`bool`, defaults to `False`): accept inputs of another size than `image_size` by
            bicubic interpolation of the position table. When `False`, another size raises a `ValueError`.
        window_size (`int`, *optional*): when set, blocks not listed in `global_attention_indexes` attend within
            non-overlapping `window_size x window_size` token windows (ViTDet style) for high-resolution fine-tuning.
        global_attention_indexes (`list[int]`, defaults to `[]`): blocks that keep global attention.
        freeze_attention / freeze_ffn (`bool`, defaults to `False`): freeze the attention (norm1 + MHSA) or the FFN
            (norm2 + MLP, experts included) parameters of every block, as in the paper's ablations.

    Mixture of experts (ViTPose+):
        num_experts (`int`, defaults to 1): 1 is a dense FFN; more gives shared `fc2` plus one expert per dataset.
        part_features (`int`, defaults to 0): output channels of each expert (the last channels of the FFN output).

    Decoder (one head per dataset):
        decoder_type (`str`, defaults to `"classic"`): `"classic"` (deconvolutions) or `"simple"` (ReLU, bilinear
            upsampling, conv).
        deconv_channels (`list[int]`, defaults to `[256, 256]`), deconv_kernels (`list[int]`, defaults to `[4, 4]`):
            the classic decoder's transposed convolutions.
        upsample_factor (`int`, defaults to 4): the simple decoder's bilinear factor.
        final_conv_kernel (`int`, *optional*): the last convolution's kernel; 1 for classic, 3 for simple by default.

    Datasets:
        datasets (`list[dict]`): ordered dataset specs (see `KeypointDatasetSpec.to_dict`); the dataset index of a
            dataset is its position. Entries may carry `"expert_index"` (defaults to the position) to route a dataset
            to another expert. Defaults to COCO alone.
        loss_weights (`list[float]`, *optional*): extra per-dataset factors on the loss (defaults to 1 each).
    """

    model_type = "vitpose_plus"

    image_size: list[int] | tuple[int, int] = (256, 192)
    patch_size: int = 16
    patch_padding: int = 2
    num_channels: int = 3
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    mlp_ratio: float | int = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu"
    drop_path_rate: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    hidden_dropout_prob: float | int = 0.0
    initializer_range: float = 0.02
    interpolate_pos_encoding: bool = False
    window_size: int | None = None
    global_attention_indexes: list[int] | tuple[int, ...] = ()
    freeze_attention: bool = False
    freeze_ffn: bool = False
    num_experts: int = 1
    part_features: int = 0
    decoder_type: str = "classic"
    deconv_channels: list[int] | tuple[int, ...] = (256, 256)
    deconv_kernels: list[int] | tuple[int, ...] = (4, 4)
    upsample_factor: int = 4
    final_conv_kernel: int | None = None
    datasets: list[dict] | None = None
    loss_weights: list[float] | None = None

    def __post_init__(self, **kwargs):
        self.image_size = [int(v) for v in self.image_size]
        self.global_attention_indexes = [int(v) for v in self.global_attention_indexes]
        self.deconv_channels = [int(v) for v in self.deconv_channels]
        self.deconv_kernels = [int(v) for v in self.deconv_kernels]
        if self.final_conv_kernel is None:
            self.final_conv_kernel = 1 if self.decoder_type == "classic" else 3
        if self.datasets is None:
            self.datasets = [get_dataset_spec("coco").to_dict()]
        self.datasets = [self._normalise_dataset_entry(entry) for entry in self.datasets]
        if self.num_experts == 1:
            self.part_features = 0
        super().__post_init__(**kwargs)

    @staticmethod
    def _normalise_dataset_entry(entry: Any) -> dict[str, Any]:
        if isinstance(entry, str):
            return get_dataset_spec(entry).to_dict()
        if isinstance(entry, KeypointDatasetSpec):
            return entry.to_dict()
        if not isinstance(entry, dict):
            raise ValueError(f"Each entry of `datasets` must be a dataset name, a spec or a dict, got {entry!r}.")
        entry = dict(entry)
        expert_index = entry.pop("expert_index", None)
        normalised = KeypointDatasetSpec.from_dict(entry).to_dict()
        if expert_index is not None:
            normalised["expert_index"] = int(expert_index)
        return normalised

    def validate_architecture(self):
        """Check the architecture; raises `ValueError` naming the field and the expected value."""
        super().validate_architecture()
        if len(self.image_size) != 2:
            raise ValueError(f"`image_size` must be (height, width), got {self.image_size}.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be a multiple of `num_attention_heads` "
                f"({self.num_attention_heads})."
            )
        if self.decoder_type not in _DECODER_TYPES:
            raise ValueError(f"`decoder_type` must be one of {_DECODER_TYPES}, got {self.decoder_type!r}.")
        if len(self.deconv_channels) != len(self.deconv_kernels):
            raise ValueError(
                f"`deconv_channels` ({self.deconv_channels}) and `deconv_kernels` ({self.deconv_kernels}) must have "
                "the same length."
            )
        for kernel in self.deconv_kernels:
            if kernel not in (2, 3, 4):
                raise ValueError(f"`deconv_kernels` entries must be 2, 3 or 4, got {kernel}.")
        if self.num_experts < 1:
            raise ValueError(f"`num_experts` must be at least 1, got {self.num_experts}.")
        if self.num_experts > 1 and not 0 < self.part_features < self.hidden_size:
            raise ValueError(
                f"`part_features` must be in (0, hidden_size={self.hidden_size}) when num_experts > 1, got "
                f"{self.part_features}."
            )
        if not self.datasets:
            raise ValueError("`datasets` must name at least one keypoint dataset.")
        names = [d["name"] for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError(f"Dataset names must be unique, got {names}.")
        for index, entry in enumerate(self.datasets):
            expert = entry.get("expert_index", index)
            if not 0 <= expert < self.num_experts and self.num_experts > 1:
                raise ValueError(
                    f"Dataset {entry['name']!r} (index {index}) routes to expert {expert}, but the model has "
                    f"{self.num_experts} experts."
                )
        if self.loss_weights is not None and len(self.loss_weights) != len(self.datasets):
            raise ValueError(
                f"`loss_weights` has {len(self.loss_weights)} entries, expected {len(self.datasets)} (one per dataset)."
            )
        if self.window_size is not None and self.window_size < 1:
            raise ValueError(f"`window_size` must be a positive number of tokens, got {self.window_size}.")
        for index in self.global_attention_indexes:
            if not 0 <= index < self.num_hidden_layers:
                raise ValueError(
                    f"`global_attention_indexes` entry {index} is not a block index in [0, {self.num_hidden_layers})."
                )

    # ------------------------------------------------------------------ datasets
    @property
    def num_datasets(self) -> int:
        return len(self.datasets)

    @property
    def dataset_names(self) -> list[str]:
        return [entry["name"] for entry in self.datasets]

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(height, width) of the heatmaps for `image_size` inputs (input / 4 for the published models)."""
        p, pad = self.patch_size, self.patch_padding
        grid = [(size + 2 * pad - p) // p + 1 for size in self.image_size]
        factor = 2 ** len(self.deconv_kernels) if self.decoder_type == "classic" else self.upsample_factor
        return grid[0] * factor, grid[1] * factor

    @property
    def max_num_keypoints(self) -> int:
        return max(len(entry["keypoint_names"]) for entry in self.datasets)

    def dataset_spec(self, dataset: int | str) -> KeypointDatasetSpec:
        """The `KeypointDatasetSpec` of a dataset given by index or name."""
        return KeypointDatasetSpec.from_dict({k: v for k, v in self.datasets[self.dataset_id(dataset)].items()
                                              if k != "expert_index"})

    def dataset_id(self, dataset: int | str) -> int:
        """Dataset index of a dataset given by name or index; `ValueError` when the model does not have it."""
        if isinstance(dataset, str):
            names = self.dataset_names
            if dataset not in names:
                raise ValueError(f"Unknown dataset {dataset!r}; this model has the datasets {names}.")
            return names.index(dataset)
        index = int(dataset)
        if not 0 <= index < self.num_datasets:
            raise ValueError(
                f"Dataset index {index} is out of range; this model has {self.num_datasets} datasets "
                f"{self.dataset_names} (indices 0..{self.num_datasets - 1})."
            )
        return index

    def expert_of(self, dataset: int | str) -> int:
        """Index of the expert a dataset routes to (0 for a dense model)."""
        index = self.dataset_id(dataset)
        if self.num_experts == 1:
            return 0
        return int(self.datasets[index].get("expert_index", index))

    # ------------------------------------------------------------------ presets
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> VitPosePlusConfig:
        """Build a published architecture: `vitpose-{small,base,large,huge}` (classic decoder),
        `vitpose-{base,large,huge}-simple` and `vitpose-plus-{small,base,large,huge}` (6 experts, six datasets
        COCO, AIC, MPII, AP-10K, APT-36K, COCO-WholeBody). Keyword overrides replace any field."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {list(PRESETS)}.")
        parts = name.split("-")
        plus = parts[1] == "plus"
        size = parts[2] if plus else parts[1]
        kwargs: dict[str, Any] = copy.deepcopy(_SIZES[size])
        kwargs["decoder_type"] = "simple" if name.endswith("-simple") else "classic"
        if plus:
            kwargs["num_experts"] = len(VITPOSE_PLUS_DATASETS)
            kwargs["part_features"] = _PLUS_PART_FEATURES[size]
            kwargs["datasets"] = list(VITPOSE_PLUS_DATASETS)
        else:
            kwargs["datasets"] = ["coco"]
        kwargs.update(overrides)
        return cls(**kwargs)


__all__ = ["VitPosePlusConfig", "PRESETS", "LAYER_DECAY_RATES"]
