"""ViTPose / ViTPose+ model configuration."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from .catalog import get_preset
from .dataset_specs import KeypointDatasetSpec, get_dataset_spec

_DECODER_TYPES = ("classic", "simple")

#: Keys transformers itself passes to a config besides its fields (from config.json or `from_pretrained` kwargs).
_TRANSFORMERS_KEYS = frozenset({
    "auto_map", "custom_pipelines", "model_type", "torch_dtype", "num_labels", "name_or_path", "_name_or_path",
    "_commit_hash", "output_attentions", "attn_implementation", "experts_implementation", "per_layer_config",
    "_attn_implementation_internal", "_experts_implementation_internal", "tie_word_embeddings",
    "tie_last_hidden_states", "use_cache",
})  # fmt: skip


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
        num_knowledge_tokens (`int`, defaults to 0): 0 or 1. With 1, a learnable knowledge token (the paper's
            transferability section) is appended after the patch tokens, without a position term, and takes part in
            every attention; the heads read the patch tokens only. Needs global attention (`window_size=None`).

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
    num_knowledge_tokens: int = 0
    num_experts: int = 1
    part_features: int = 0
    decoder_type: str = "classic"
    deconv_channels: list[int] | tuple[int, ...] = (256, 256)
    deconv_kernels: list[int] | tuple[int, ...] = (4, 4)
    upsample_factor: int = 4
    final_conv_kernel: int | None = None
    datasets: list[Any] | None = None
    loss_weights: list[float] | None = None

    def __post_init__(self, **kwargs):
        self._reject_unknown_keys(kwargs)
        self._check_field_types()
        self.image_size = [int(v) for v in self.image_size]
        self.global_attention_indexes = [int(v) for v in self.global_attention_indexes]
        self.deconv_channels = [int(v) for v in self.deconv_channels]
        self.deconv_kernels = [int(v) for v in self.deconv_kernels]
        if self.final_conv_kernel is None:
            self.final_conv_kernel = 1 if self.decoder_type == "classic" else 3
        if self.datasets is None:
            self.datasets = [get_dataset_spec("coco").to_dict()]
        if not isinstance(self.datasets, (list, tuple)):
            raise ValueError(f"`datasets` must be a list of dataset names, specs or dicts, got {self.datasets!r}.")
        self.datasets = [self._normalise_dataset_entry(entry) for entry in self.datasets]
        if self.num_experts == 1:
            self.part_features = 0
        self._check_architecture()
        # transformers' convention (VitPose): id2label names the keypoints of the model's (first) dataset.
        names = self.datasets[0]["keypoint_names"]
        self.id2label = dict(enumerate(names))
        self.label2id = {name: i for i, name in enumerate(names)}
        kwargs.pop("num_labels", None)
        super().__post_init__(**kwargs)

    @staticmethod
    def _normalise_dataset_entry(entry: Any) -> dict[str, Any]:
        if isinstance(entry, str):
            return get_dataset_spec(entry).to_dict()
        if isinstance(entry, KeypointDatasetSpec) or callable(getattr(entry, "to_dict", None)):
            return entry.to_dict()  # a spec, also from another module copy (remote code loads modules separately)
        if not isinstance(entry, dict):
            raise ValueError(f"Each entry of `datasets` must be a dataset name, a spec or a dict, got {entry!r}.")
        entry = dict(entry)
        expert_index = entry.pop("expert_index", None)
        normalised = KeypointDatasetSpec.from_dict(entry).to_dict()
        if expert_index is not None:
            normalised["expert_index"] = int(expert_index)
        return normalised

    @classmethod
    def _field_names(cls) -> set[str]:
        return set(cls.__dataclass_fields__)

    def _reject_unknown_keys(self, kwargs: dict[str, Any]) -> None:
        """A misspelt field must not become a junk attribute while the real field keeps its default."""
        fields = self._field_names()
        unknown = [key for key in kwargs if key not in _TRANSFORMERS_KEYS]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, sorted(fields), n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(
                f"{type(self).__name__} got unknown field(s) {', '.join(hints)}; the fields are "
                f"{sorted(f for f in fields if not f.startswith('_'))}."
            )

    def _check_field_types(self) -> None:
        """Each field has the annotated type (numbers as numbers: `"32"` is not a width); `ValueError` otherwise."""
        for klass in type(self).__mro__:
            if not issubclass(klass, VitPosePlusConfig):
                continue
            namespace = vars(__import__(klass.__module__, fromlist=["_"]))
            for name, annotation in vars(klass).get("__annotations__", {}).items():
                if name.startswith("_"):
                    continue
                expected = eval(annotation, namespace) if isinstance(annotation, str) else annotation  # noqa: S307
                value = getattr(self, name)
                if not _matches(value, expected):
                    raise ValueError(
                        f"{type(self).__name__}.{name} = {value!r} ({type(value).__name__}) does not have the expected "
                        f"type {_describe(expected)}."
                    )

    def validate_architecture(self):
        """Check the architecture (`ValueError` naming the field and the expected value); runs at init too."""
        super().validate_architecture()
        self._check_architecture()

    def _check_architecture(self) -> None:
        if len(self.image_size) != 2 or min(self.image_size) < 1:
            raise ValueError(f"`image_size` must be (height, width) of positive sizes, got {self.image_size}.")
        for name in ("patch_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)}.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be a multiple of `num_attention_heads` "
                f"({self.num_attention_heads})."
            )
        for name in ("drop_path_rate", "attention_probs_dropout_prob", "hidden_dropout_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {getattr(self, name)}.")
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
        if self.num_knowledge_tokens not in (0, 1):
            raise ValueError(f"`num_knowledge_tokens` must be 0 or 1, got {self.num_knowledge_tokens}.")
        if self.num_knowledge_tokens and self.window_size is not None:
            raise ValueError(
                "`num_knowledge_tokens` needs global attention in every block: the knowledge token belongs to no "
                f"window (got window_size={self.window_size})."
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

    def patch_grid(self, height: int | None = None, width: int | None = None) -> tuple[int, int]:
        """(rows, columns) of the patch grid for an input of (height, width), `image_size` by default (16x12 for
        256x192: the patch convolution has stride `patch_size` and padding `patch_padding`)."""
        height = self.image_size[0] if height is None else height
        width = self.image_size[1] if width is None else width
        return patch_grid(height, width, self.patch_size, self.patch_padding)

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(height, width) of the heatmaps for `image_size` inputs (input / 4 for the published models)."""
        factor = 2 ** len(self.deconv_kernels) if self.decoder_type == "classic" else self.upsample_factor
        rows, columns = self.patch_grid()
        return rows * factor, columns * factor

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
        """Build a published architecture of the catalog (`vitpose_plus.modeling.catalog.PRESETS`):
        `vitpose-{small,base,large,huge}` (classic decoder), `vitpose-{small,base,large,huge}-simple` and
        `vitpose-plus-{small,base,large,huge}` (6 experts, six datasets COCO, AIC, MPII, AP-10K, APT-36K,
        COCO-WholeBody). Keyword overrides replace any field."""
        kwargs = get_preset(name).config_kwargs()
        kwargs.update(overrides)
        return cls(**kwargs)


def patch_grid(height: int, width: int, patch_size: int = 16, patch_padding: int = 2) -> tuple[int, int]:
    """(rows, columns) of the patch convolution's output grid (kernel = stride = `patch_size`, `patch_padding`)."""
    return ((height + 2 * patch_padding - patch_size) // patch_size + 1,
            (width + 2 * patch_padding - patch_size) // patch_size + 1)


def _matches(value: Any, annotation: Any) -> bool:
    """Whether `value` fits a field annotation (int, float, bool, str, list/tuple of them, dict, optional)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is typing.Any:
        return True
    if origin in (list, tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(any(_matches(v, a) for a in args) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, annotation) if isinstance(annotation, type) else True


def _describe(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


__all__ = ["VitPosePlusConfig", "patch_grid"]
