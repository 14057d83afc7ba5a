"""PyTorch ViTPose / ViTPose+ model.

The backbone is the original ViTPose ViT (patch convolution with padding 2, a position table whose slot 0 is added to
every token, pre-norm blocks, exact GELU, a final LayerNorm). ViTPose+ replaces the second FFN linear layer by a shared
part and one expert per dataset. Unlike the original and transformers' VitPose, which run every expert on every sample
and mask the result, each expert here runs only on the samples routed to it, and each dataset's keypoint head only
on that dataset's samples.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput

from .configuration_vitpose_plus import VitPosePlusConfig
from .keypoint_codecs import codec_for

# ---------------------------------------------------------------------------------------------------------- outputs


@dataclass
class VitPosePlusModelOutput(ModelOutput):
    """
    Output of `VitPosePlusModel`.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, num_patches, hidden_size)`):
            Tokens after the final LayerNorm, row-major over the patch grid.
        feature_map (`torch.FloatTensor` of shape `(batch_size, hidden_size, grid_height, grid_width)`):
            The same tokens as a feature map (grid = input size / 16 for 256x192 inputs: 16x12).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned with `output_hidden_states=True`):
            Embedding output and the output of every block (before the final norm), each
            `(batch_size, num_patches, hidden_size)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*, returned with `output_attentions=True`):
            Attention probabilities of every block, `(batch_size, num_heads, num_patches, num_patches)` (for windowed
            blocks `(batch_size * num_windows, num_heads, window_tokens, window_tokens)`).
    """

    last_hidden_state: torch.FloatTensor | None = None
    feature_map: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class VitPosePlusPoseEstimatorOutput(ModelOutput):
    """
    Output of `VitPosePlusForPoseEstimation`.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            Target-weighted JointsMSE loss, per dataset over its own samples, summed with weights n_d / batch_size.
        heatmaps (`torch.FloatTensor` of shape `(batch_size, max_num_keypoints, height / 4, width / 4)`):
            Predicted heatmaps; channels beyond a sample's own dataset's keypoint count are zero.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): see `VitPosePlusModelOutput`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): see `VitPosePlusModelOutput`.
    """

    loss: torch.FloatTensor | None = None
    heatmaps: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# ---------------------------------------------------------------------------------------------------------- routing


@dataclass
class ExpertRouting:
    """How a batch is routed through experts and heads, computed once per forward pass and shared by every block.

    The batch is sorted once by (expert, dataset) so that each expert and each head works on a contiguous slice
    (`split` / `cat`, whose backward passes allocate nothing extra), then put back in order at the end. When the
    caller asks for hidden states or attentions, the blocks keep batch order (so the returned tensors are the ones
    the output was computed from, with their autograd history) and only the expert matmuls gather their rows.

    Args:
        order: `(batch,)` permutation that sorts the batch, or `None` when it is already sorted.
        expert_runs: `(expert, start, end)` contiguous runs of the sorted batch that share an expert.
        dataset_runs: `(dataset, start, end)` contiguous runs of the sorted batch that share a dataset.
        batch_sorted: whether the backbone's tokens are in sorted order (else in batch order).
    """

    order: torch.Tensor | None
    expert_runs: list[tuple[int, int, int]]
    dataset_runs: list[tuple[int, int, int]]
    batch_sorted: bool = True

    @classmethod
    def build(cls, expert_index: torch.Tensor, dataset_index: torch.Tensor, num_datasets: int) -> ExpertRouting:
        key = expert_index * num_datasets + dataset_index
        sorted_key, order = torch.sort(key, stable=True)
        values, counts = torch.unique_consecutive(sorted_key, return_counts=True)
        expert_runs: list[tuple[int, int, int]] = []
        dataset_runs: list[tuple[int, int, int]] = []
        start = 0
        for value, count in zip(values.tolist(), counts.tolist()):
            expert, dataset = divmod(value, num_datasets)
            dataset_runs.append((dataset, start, start + count))
            if expert_runs and expert_runs[-1][0] == expert:  # datasets sharing one expert form a single run
                expert_runs[-1] = (expert, expert_runs[-1][1], start + count)
            else:
                expert_runs.append((expert, start, start + count))
            start += count
        is_sorted = bool((order == torch.arange(order.numel(), device=order.device)).all())
        return cls(order=None if is_sorted else order, expert_runs=expert_runs, dataset_runs=dataset_runs)

    @classmethod
    def uniform(cls, expert: int, dataset: int, batch_size: int) -> ExpertRouting:
        """The whole batch on one dataset (an int or a name was passed): nothing to sort, no data-dependent step, so
        the forward compiles and exports without graph breaks."""
        return cls(order=None, expert_runs=[(expert, 0, batch_size)], dataset_runs=[(dataset, 0, batch_size)])

    @staticmethod
    def sizes(runs: list[tuple[int, int, int]]) -> list[int]:
        return [end - start for _, start, end in runs]

    def sort(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor if self.order is None else tensor.index_select(0, self.order)

    def unsort(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.order is None:
            return tensor
        return torch.empty_like(tensor).index_copy_(0, self.order, tensor)


# ---------------------------------------------------------------------------------------------------------- backbone


def drop_path(hidden_states: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample: zero whole residual branches with probability `drop_prob`, rescale the rest."""
    if drop_prob == 0.0 or not training:
        return hidden_states
    keep_prob = 1 - drop_prob
    shape = (hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)
    mask = hidden_states.new_empty(shape).bernoulli_(keep_prob)
    return hidden_states * mask / keep_prob


class VitPosePlusDropPath(nn.Module):
    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return drop_path(hidden_states, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


def resize_position_table(
    table: torch.Tensor, source_grid: tuple[int, int], target_grid: tuple[int, int], num_prefix_tokens: int = 1
) -> torch.Tensor:
    """Resample a position table to another patch grid: bicubic (`align_corners=False`) over the 2-D grid, the
    prefix slots (ViTPose's slot 0, MAE's cls slot) kept in front. The one implementation of this, used by the
    embeddings (`interpolate_pos_encoding`) and by every converter.

    Args:
        table: `(1, num_prefix_tokens + rows * columns, dim)`, grid slots row-major.
        source_grid: `(rows, columns)` of `table`; target_grid: the wanted `(rows, columns)`.

    Returns:
        `(1, num_prefix_tokens + target_rows * target_columns, dim)` in the dtype of `table` (resampled in float32).
    """
    rows, columns = source_grid
    if table.shape[1] != num_prefix_tokens + rows * columns:
        raise ValueError(
            f"Position table has {table.shape[1]} slots, expected {num_prefix_tokens} + {rows} x {columns}."
        )
    if tuple(source_grid) == tuple(target_grid):
        return table
    prefix, grid = table[:, :num_prefix_tokens], table[:, num_prefix_tokens:]
    dim = table.shape[-1]
    grid = grid.reshape(1, rows, columns, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=tuple(target_grid), mode="bicubic", align_corners=False).to(table.dtype)
    grid = grid.permute(0, 2, 3, 1).reshape(1, target_grid[0] * target_grid[1], dim)
    return torch.cat([prefix, grid], dim=1)


class VitPosePlusEmbeddings(nn.Module):
    """Patch embedding (kernel = stride = patch size, padding 2) plus the position table.

    The position table has `num_patches + 1` slots but there is no cls token: slot 0 is added to every patch token.
    """

    def __init__(self, config: VitPosePlusConfig):
        super().__init__()
        self.config = config
        self.patch_embeddings = nn.Conv2d(
            config.num_channels,
            config.hidden_size,
            kernel_size=config.patch_size,
            stride=config.patch_size,
            padding=config.patch_padding,
        )
        self.grid_size = config.patch_grid()
        num_patches = self.grid_size[0] * self.grid_size[1]
        self.position_embeddings = nn.Parameter(torch.zeros(1, num_patches + 1, config.hidden_size))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def interpolated_position_table(self, grid_height: int, grid_width: int) -> torch.Tensor:
        """Patch position table for a grid, `(1, grid_height * grid_width, hidden_size)`, slot 0 folded in."""
        table = resize_position_table(self.position_embeddings, self.grid_size, (grid_height, grid_width))
        return table[:, 1:] + table[:, :1]

    def forward(
        self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """`pixel_values` `(batch_size, num_channels, height, width)` -> tokens `(batch_size, num_patches, hidden)`."""
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"Expected pixel_values of shape (batch_size, {self.config.num_channels}, height, width), got "
                f"{tuple(pixel_values.shape)}."
            )
        height, width = pixel_values.shape[-2:]
        if (height, width) != tuple(self.config.image_size) and not interpolate_pos_encoding:
            raise ValueError(
                f"Input image size {height}x{width} does not match the model's {self.config.image_size[0]}x"
                f"{self.config.image_size[1]}; resize the crops or pass interpolate_pos_encoding=True (or set "
                "config.interpolate_pos_encoding) to interpolate the position table."
            )
        embeddings = self.patch_embeddings(pixel_values.to(self.patch_embeddings.weight.dtype))
        grid = (embeddings.shape[-2], embeddings.shape[-1])
        embeddings = embeddings.flatten(2).transpose(1, 2)
        embeddings = embeddings + self.interpolated_position_table(*grid)
        return self.dropout(embeddings), grid


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T * scaling) v.

    Inputs `(batch, heads, tokens, head_dim)`; output `(batch, tokens, heads, head_dim)` and the probabilities.
    """
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


def window_partition(tokens: torch.Tensor, grid: tuple[int, int], window_size: int) -> tuple[torch.Tensor, tuple]:
    """`(B, H*W, C)` -> `(B * num_windows, window_size**2, C)`, zero-padding the grid to whole windows (ViTDet)."""
    batch, _, channels = tokens.shape
    height, width = grid
    pad_h = (window_size - height % window_size) % window_size
    pad_w = (window_size - width % window_size) % window_size
    x = tokens.view(batch, height, width, channels)
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = height + pad_h, width + pad_w
    x = x.view(batch, hp // window_size, window_size, wp // window_size, window_size, channels)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size, channels)
    return windows, (batch, height, width, hp, wp)


def window_unpartition(windows: torch.Tensor, window_size: int, layout: tuple) -> torch.Tensor:
    """Inverse of `window_partition`: back to `(B, H*W, C)` without the padding."""
    batch, height, width, hp, wp = layout
    channels = windows.shape[-1]
    x = windows.view(batch, hp // window_size, wp // window_size, window_size, window_size, channels)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch, hp, wp, channels)
    return x[:, :height, :width].reshape(batch, height * width, channels)


class VitPosePlusAttention(nn.Module):
    """Multi-head self-attention with a fused `qkv` projection (rows q | k | v) and an output projection."""

    def __init__(self, config: VitPosePlusConfig, window_size: int | None = None):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.window_size = window_size
        self.is_causal = False
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self, hidden_states: torch.Tensor, grid: tuple[int, int], output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`hidden_states` `(batch, tokens, hidden)` -> `(batch, tokens, hidden)` and optional attention weights."""
        layout = None
        if self.window_size is not None:
            hidden_states, layout = window_partition(hidden_states, grid, self.window_size)
        batch, tokens, _ = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)

        implementation = self.config._attn_implementation or "sdpa"
        if output_attentions and implementation != "eager":
            implementation = "eager"  # only the eager path materialises the probabilities
        attention_interface: Callable = eager_attention_forward
        if implementation != "eager":
            attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        context, weights = attention_interface(
            self,
            query,
            key,
            value,
            None,
            scaling=self.scaling,
            dropout=self.config.attention_probs_dropout_prob if self.training else 0.0,
            is_causal=False,
        )
        context = self.proj(context.reshape(batch, tokens, -1))
        if layout is not None:
            context = window_unpartition(context, self.window_size, layout)
        return context, (weights if output_attentions else None)


class VitPosePlusMLP(nn.Module):
    """Dense FFN: fc1 (D -> mlp_ratio * D), GELU, fc2 (-> D)."""

    def __init__(self, config: VitPosePlusConfig):
        super().__init__()
        hidden_features = int(config.hidden_size * config.mlp_ratio)
        self.fc1 = nn.Linear(config.hidden_size, hidden_features)
        self.act = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(hidden_features, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor, routing: ExpertRouting | None = None) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(hidden_states)))


class VitPosePlusMoEMLP(nn.Module):
    """ViTPose+ FFN: shared fc1 and fc2 (-> D - part_features) plus one expert Linear (-> part_features) per dataset.

    The output is `cat(fc2(h), expert(h))` with the expert channels last. Each expert runs only on its own run of the
    (sorted) batch: one matmul per expert present.
    """

    def __init__(self, config: VitPosePlusConfig):
        super().__init__()
        hidden_features = int(config.hidden_size * config.mlp_ratio)
        self.part_features = config.part_features
        self.fc1 = nn.Linear(config.hidden_size, hidden_features)
        self.act = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(hidden_features, config.hidden_size - config.part_features)
        self.experts = nn.ModuleList(
            [nn.Linear(hidden_features, config.part_features) for _ in range(config.num_experts)]
        )

    def forward(self, hidden_states: torch.Tensor, routing: ExpertRouting | None = None) -> torch.Tensor:
        """`hidden_states` `(batch, tokens, hidden)` (sorted as `routing` says, or in batch order) -> same shape."""
        if routing is None:
            raise ValueError("A mixture-of-experts FFN needs the dataset index of every sample.")
        hidden = self.act(self.fc1(hidden_states))
        shared = self.fc2(hidden)
        runs = routing.expert_runs
        gather = routing.order is not None and not routing.batch_sorted
        if len(runs) == 1:
            expert_out = self.experts[runs[0][0]](hidden)
        else:
            chunks = (routing.sort(hidden) if gather else hidden).split(routing.sizes(runs), dim=0)
            expert_out = torch.cat([self.experts[e](chunk) for (e, _, _), chunk in zip(runs, chunks)], dim=0)
            if gather:
                expert_out = routing.unsort(expert_out)
        return torch.cat([shared, expert_out], dim=-1)


class VitPosePlusLayer(GradientCheckpointingLayer):
    """Pre-norm transformer block: x += DropPath(Attn(LN1(x))); x += DropPath(MLP(LN2(x)))."""

    def __init__(self, config: VitPosePlusConfig, drop_path_rate: float, window_size: int | None):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = VitPosePlusAttention(config, window_size=window_size)
        self.drop_path = VitPosePlusDropPath(drop_path_rate)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = VitPosePlusMoEMLP(config) if config.num_experts > 1 else VitPosePlusMLP(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        grid: tuple[int, int] = (0, 0),
        routing: ExpertRouting | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attention_output, weights = self.attention(self.norm1(hidden_states), grid, output_attentions)
        hidden_states = hidden_states + self.drop_path(attention_output)
        hidden_states = hidden_states + self.drop_path(self.mlp(self.norm2(hidden_states), routing))
        return hidden_states, weights


# ---------------------------------------------------------------------------------------------------------- heads


class VitPosePlusDeconvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        # mmpose's _get_deconv_cfg: kernel 4 -> padding 1; kernel 3 -> padding 1, output padding 1; kernel 2 -> 0, 0.
        padding, output_padding = {4: (1, 0), 3: (1, 1), 2: (0, 0)}[kernel_size]
        self.deconv = nn.ConvTranspose2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=2,
            padding=padding,
            output_padding=output_padding,
            bias=False,
        )
        self.deconv.is_head_conv = True
        self.batchnorm = nn.BatchNorm2d(out_channels)
        self.activation = nn.ReLU()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.batchnorm(self.deconv(hidden_states)))


class VitPosePlusClassicHead(nn.Module):
    """Classic decoder: [ConvTranspose (stride 2, no bias), BatchNorm, ReLU] x n, then a conv to K heatmaps."""

    def __init__(self, config: VitPosePlusConfig, num_keypoints: int):
        super().__init__()
        channels = [config.hidden_size, *config.deconv_channels]
        self.deconv_layers = nn.ModuleList(
            [VitPosePlusDeconvBlock(channels[i], channels[i + 1], k) for i, k in enumerate(config.deconv_kernels)]
        )
        kernel = config.final_conv_kernel
        self.conv = nn.Conv2d(channels[-1], num_keypoints, kernel_size=kernel, padding=(kernel - 1) // 2)
        self.conv.is_head_conv = True

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        """`(batch, hidden, h, w)` -> heatmaps `(batch, num_keypoints, h * 2**n, w * 2**n)`."""
        for block in self.deconv_layers:
            feature_map = block(feature_map)
        return self.conv(feature_map)


class VitPosePlusSimpleHead(nn.Module):
    """Simple decoder: ReLU, bilinear upsampling (align_corners=False), then a conv to K heatmaps."""

    def __init__(self, config: VitPosePlusConfig, num_keypoints: int):
        super().__init__()
        self.upsample_factor = config.upsample_factor
        kernel = config.final_conv_kernel
        self.conv = nn.Conv2d(config.hidden_size, num_keypoints, kernel_size=kernel, padding=(kernel - 1) // 2)
        self.conv.is_head_conv = True

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        """`(batch, hidden, h, w)` -> heatmaps `(batch, num_keypoints, h * factor, w * factor)`."""
        feature_map = F.interpolate(
            F.relu(feature_map), scale_factor=self.upsample_factor, mode="bilinear", align_corners=False
        )
        return self.conv(feature_map)


# ---------------------------------------------------------------------------------------------------------- models


class VitPosePlusPreTrainedModel(PreTrainedModel):
    config_class = VitPosePlusConfig
    config: VitPosePlusConfig
    base_model_prefix = "backbone"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["VitPosePlusEmbeddings", "VitPosePlusLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False
    #: Auto classes `save_pretrained` names in `auto_map`: auto class -> model class defined in this class's module.
    _auto_map_model_classes: dict[str, str] = {
        "AutoModel": "VitPosePlusModel",
        "AutoModelForPoseEstimation": "VitPosePlusForPoseEstimation",
    }
    #: Whether saved folders register the `keypoint-detection` pipeline (`config.custom_pipelines`).
    _ships_keypoint_pipeline: bool = False

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        """Save as a Hub-ready folder. The config's `auto_map` names every auto class of this model (config, backbone,
        pose model; `_auto_map_model_classes`), so that the folder loads with `trust_remote_code=True` in a process
        that never imported `vitpose_plus`; the modeling code files are copied next to the weights. Pose models also
        register the `keypoint-detection` pipeline (`config.custom_pipelines`) and ship its file."""
        module = type(self).__module__.rsplit(".", 1)[-1]
        config_module = type(self.config).__module__.rsplit(".", 1)[-1]
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map["AutoConfig"] = f"{config_module}.{type(self.config).__name__}"
        auto_map.update({auto: f"{module}.{name}" for auto, name in self._auto_map_model_classes.items()})
        self.config.auto_map = auto_map
        if not self._ships_keypoint_pipeline:
            return super().save_pretrained(save_directory, *args, **kwargs)
        # transformers copies every file this module imports relatively (also inside functions), so this import also
        # puts the pipeline file and its own imports into the folder. The entry is written to the folder only: on the
        # in-memory config it would send `pipeline(model=this_model)` to remote code, which needs a folder.
        from .pipeline_vitpose_plus import custom_pipelines_entry

        previous = getattr(self.config, "custom_pipelines", None)
        self.config.custom_pipelines = custom_pipelines_entry()
        try:
            return super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            if previous is None:
                del self.config.custom_pipelines
            else:
                self.config.custom_pipelines = previous

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # Backbone: ViT/MAE conventions. Heads: the original mmpose init (normal, std 0.001, for every conv).
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and getattr(module, "is_head_conv", False):
            init.normal_(module.weight, mean=0.0, std=0.001)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.Linear, nn.Conv2d)):
            init.trunc_normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if getattr(module, "running_mean", None) is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, VitPosePlusEmbeddings):
            init.trunc_normal_(module.position_embeddings, mean=0.0, std=self.config.initializer_range)

    def apply_freezing(self) -> None:
        """Apply `config.freeze_attention` / `config.freeze_ffn` (sets `requires_grad=False` on those parameters)."""
        for layer in _backbone_of(self).layers:
            if self.config.freeze_attention:
                for module in (layer.norm1, layer.attention):
                    module.requires_grad_(False)
            if self.config.freeze_ffn:
                for module in (layer.norm2, layer.mlp):
                    module.requires_grad_(False)

    def layer_decay_parameter_groups(
        self, learning_rate: float, weight_decay: float = 0.1, layer_decay: float = 0.75
    ) -> list[dict]:
        """AdamW parameter groups with layer-wise learning-rate decay, as in the original recipe.

        Layer ids: 0 for the patch and position embeddings, i + 1 for block i, L + 1 for everything else (final norm,
        heads). Each group's lr is `learning_rate * layer_decay ** (L + 1 - id)`. No weight decay on 1-D parameters
        (norms), biases and the position table. Frozen parameters are left out. Each group carries `lr_scale` and
        `layer_id` so that schedulers can scale its own initial lr.
        """
        num_layers = self.config.num_hidden_layers
        groups: dict[tuple[int, bool], dict] = {}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            layer_id = _layer_id(name, num_layers)
            no_decay = param.ndim == 1 or name.endswith(".bias") or "position_embeddings" in name
            key = (layer_id, no_decay)
            if key not in groups:
                scale = layer_decay ** (num_layers + 1 - layer_id)
                groups[key] = {
                    "params": [],
                    "param_names": [],
                    "lr": learning_rate * scale,
                    "lr_scale": scale,
                    "layer_id": layer_id,
                    "weight_decay": 0.0 if no_decay else weight_decay,
                }
            groups[key]["params"].append(param)
            groups[key]["param_names"].append(name)
        return [groups[key] for key in sorted(groups)]


def _backbone_of(model: nn.Module) -> VitPosePlusModel:
    return model if isinstance(model, VitPosePlusModel) else model.backbone


def _layer_id(name: str, num_layers: int) -> int:
    parts = name.split(".")
    if "embeddings" in parts:
        return 0
    if "layers" in parts:
        return int(parts[parts.index("layers") + 1]) + 1
    return num_layers + 1


class VitPosePlusModel(VitPosePlusPreTrainedModel):
    """The ViTPose / ViTPose+ backbone: pixels `(B, 3, H, W)` -> feature map `(B, D, H/16, W/16)`."""

    # Loading a pose-model folder into the bare backbone drops the heads on purpose.
    _keys_to_ignore_on_load_unexpected = [r"^heads\."]

    def __init__(self, config: VitPosePlusConfig):
        super().__init__(config)
        self.embeddings = VitPosePlusEmbeddings(config)
        rates = torch.linspace(0, config.drop_path_rate, config.num_hidden_layers, device="cpu").tolist()
        global_blocks = set(config.global_attention_indexes)
        self.layers = nn.ModuleList(
            [
                VitPosePlusLayer(
                    config,
                    drop_path_rate=rates[i],
                    window_size=None if (config.window_size is None or i in global_blocks) else config.window_size,
                )
                for i in range(config.num_hidden_layers)
            ]
        )
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()
        self.apply_freezing()

    def expert_index_for(self, dataset_index: torch.Tensor) -> torch.Tensor:
        """Map dataset indices `(B,)` to expert indices `(B,)` with the config's dataset -> expert table."""
        table = torch.tensor(
            [self.config.expert_of(i) for i in range(self.config.num_datasets)], device=dataset_index.device
        )
        return table[dataset_index]

    def forward(
        self,
        pixel_values: torch.Tensor,
        dataset_index: torch.Tensor | int | str | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        interpolate_pos_encoding: bool | None = None,
        return_dict: bool | None = None,
    ) -> VitPosePlusModelOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
                Normalised person crops (256x192 for the published models).
            dataset_index (`torch.LongTensor` of shape `(batch_size,)`, `int` or `str`, *optional*):
                Dataset of each sample (its position in `config.datasets`, or a dataset name); selects the expert.
                May be omitted only when the model has a single dataset.
            output_attentions, output_hidden_states, return_dict: as in transformers.
            interpolate_pos_encoding (`bool`, *optional*): accept another input size (defaults to the config's).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        encoded = self.encode(pixel_values, dataset_index, output_attentions, output_hidden_states,
                              interpolate_pos_encoding)
        last_hidden_state = encoded.unsort(encoded.tokens)
        batch, _, dim = last_hidden_state.shape
        feature_map = last_hidden_state.transpose(1, 2).reshape(batch, dim, *encoded.grid)
        hidden_out, attentions_out = encoded.ordered_extras()
        if not return_dict:
            return tuple(v for v in (last_hidden_state, feature_map, hidden_out, attentions_out) if v is not None)
        return VitPosePlusModelOutput(
            last_hidden_state=last_hidden_state,
            feature_map=feature_map,
            hidden_states=hidden_out,
            attentions=attentions_out,
        )

    def encode(
        self,
        pixel_values: torch.Tensor,
        dataset_index: torch.Tensor | int | str | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        interpolate_pos_encoding: bool | None = None,
    ) -> EncodedBatch:
        """Run the backbone on the batch sorted by (expert, dataset); see `EncodedBatch`."""
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        if interpolate_pos_encoding is None:
            interpolate_pos_encoding = self.config.interpolate_pos_encoding

        hidden_states, grid = self.embeddings(pixel_values, interpolate_pos_encoding)
        routing = None
        if self.config.num_experts > 1 or self.config.num_datasets > 1 or dataset_index is not None:
            batch_size = hidden_states.shape[0]
            index = resolve_dataset_index(self.config, dataset_index, batch_size, pixel_values.device)
            if self.config.num_experts > 1 or self.config.num_datasets > 1:
                if isinstance(index, int):
                    routing = ExpertRouting.uniform(self.config.expert_of(index), index, batch_size)
                else:
                    routing = ExpertRouting.build(self.expert_index_for(index), index, self.config.num_datasets)
                    # With extras requested, keep batch order so the returned tensors are the computed ones.
                    routing.batch_sorted = not (output_hidden_states or output_attentions)
                    if routing.batch_sorted:
                        hidden_states = routing.sort(hidden_states)

        all_hidden_states = [hidden_states] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        for layer in self.layers:
            hidden_states, weights = layer(
                hidden_states, grid=grid, routing=routing, output_attentions=bool(output_attentions)
            )
            if output_hidden_states:
                all_hidden_states.append(hidden_states)
            if output_attentions:
                all_attentions.append(weights)
        hidden_states = self.layernorm(hidden_states)
        return EncodedBatch(hidden_states, grid, routing, all_hidden_states, all_attentions)


@dataclass
class EncodedBatch:
    """Backbone output in routing order (sorted by expert and dataset when `routing` is set).

    Args:
        tokens: `(batch, num_patches, hidden)` final-norm tokens, sorted.
        grid: `(grid_height, grid_width)` of the patch grid.
        routing: the batch's `ExpertRouting`, or `None` for a single-dataset dense model (nothing sorted);
            `routing.batch_sorted` says whether `tokens` are sorted or in batch order.
        hidden_states, attentions: per-block outputs, sorted, when requested.
    """

    tokens: torch.Tensor
    grid: tuple[int, int]
    routing: ExpertRouting | None
    hidden_states: list[torch.Tensor] | None
    attentions: list[torch.Tensor] | None

    def unsort(self, tensor: torch.Tensor) -> torch.Tensor:
        """A tensor of the backbone's order back in batch order."""
        if self.routing is None or not self.routing.batch_sorted:
            return tensor
        return self.routing.unsort(tensor)

    def feature_map(self) -> torch.Tensor:
        """Tokens as a `(batch, hidden, grid_height, grid_width)` feature map, sorted for the heads."""
        batch, _, dim = self.tokens.shape
        tokens = self.tokens
        if self.routing is not None and not self.routing.batch_sorted:
            tokens = self.routing.sort(tokens)
        return tokens.transpose(1, 2).reshape(batch, dim, *self.grid)

    def ordered_extras(self) -> tuple[tuple[torch.Tensor, ...] | None, tuple[torch.Tensor, ...] | None]:
        """Hidden states and attentions back in batch order (windowed attentions keep the window batch)."""
        batch = self.tokens.shape[0]
        hidden = tuple(self.unsort(h) for h in self.hidden_states) if self.hidden_states is not None else None
        attentions = None
        if self.attentions is not None:
            attentions = tuple(self.unsort(a) if a.shape[0] == batch else a for a in self.attentions)
        return hidden, attentions


def resolve_dataset_index(
    config: VitPosePlusConfig,
    dataset_index: torch.Tensor | int | str | Sequence | None,
    batch_size: int,
    device: torch.device,
) -> int | torch.Tensor:
    """Validate a dataset index given as a tensor, an int, a name or a list.

    Returns:
        An `int` when the whole batch has one dataset given as an int or a name (or the model has a single dataset and
        none was given): nothing data-dependent follows, so the forward compiles and exports in one graph. Otherwise
        a validated LongTensor `(batch_size,)`.
    """
    if dataset_index is None:
        if config.num_datasets > 1:
            raise ValueError(
                f"This model has {config.num_datasets} datasets {config.dataset_names}; pass dataset_index (a "
                "LongTensor of shape (batch_size,), an int or a dataset name) to choose the expert and head."
            )
        return 0
    if isinstance(dataset_index, (str, int)) and not isinstance(dataset_index, bool):
        return config.dataset_id(dataset_index)
    if isinstance(dataset_index, (list, tuple)):
        dataset_index = [config.dataset_id(d) for d in dataset_index]
    index = torch.as_tensor(dataset_index, device=device)
    if index.is_floating_point() or index.dtype == torch.bool:
        raise ValueError(f"dataset_index must hold integers, got dtype {index.dtype}.")
    index = index.long()
    if index.ndim == 0 or (index.ndim == 1 and index.numel() == 1 and batch_size != 1):
        index = index.reshape(1).expand(batch_size)
    if index.ndim != 1 or index.shape[0] != batch_size:
        raise ValueError(
            f"dataset_index must have shape (batch_size,) = ({batch_size},), got {tuple(index.shape)}."
        )
    if not torch.compiler.is_compiling():  # a data-dependent check: skipped inside compiled graphs
        low, high = int(index.min()), int(index.max())
        if low < 0 or high >= config.num_datasets:
            bad = low if low < 0 else high
            raise ValueError(
                f"dataset_index {bad} is out of range; this model has {config.num_datasets} datasets "
                f"{config.dataset_names} (indices 0..{config.num_datasets - 1})."
            )
    return index


class VitPosePlusForPoseEstimation(VitPosePlusPreTrainedModel):
    """ViTPose / ViTPose+ with one keypoint heatmap head per dataset."""

    _ships_keypoint_pipeline = True

    def __init__(self, config: VitPosePlusConfig):
        super().__init__(config)
        self.backbone = VitPosePlusModel(config)
        head_class = VitPosePlusClassicHead if config.decoder_type == "classic" else VitPosePlusSimpleHead
        self.heads = nn.ModuleList(
            [head_class(config, len(entry["keypoint_names"])) for entry in config.datasets]
        )
        self._flip_permutations = [config.dataset_spec(i).flip_permutation() for i in range(config.num_datasets)]
        # The codec of each dataset owns its flip-test flip-back (the one-pixel shift of non-UDP datasets).
        self._codecs = [codec_for(entry, config.image_size, config.heatmap_size) for entry in config.datasets]
        self.post_init()

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        pixel_values: torch.Tensor,
        dataset_index: torch.Tensor | int | str | None = None,
        labels: torch.Tensor | None = None,
        label_weights: torch.Tensor | None = None,
        flip_test: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        interpolate_pos_encoding: bool | None = None,
    ) -> VitPosePlusPoseEstimatorOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
                Normalised person crops.
            dataset_index (`torch.LongTensor` of shape `(batch_size,)`, `int` or `str`, *optional*):
                Dataset of each sample (index into `config.datasets` or a name): picks the expert and the head. May be
                omitted only when the model has a single dataset.
            labels (`torch.FloatTensor` of shape `(batch_size, max_num_keypoints, height / 4, width / 4)`, *optional*):
                Target heatmaps, zero-padded beyond each sample's keypoint count.
            label_weights (`torch.FloatTensor` of shape `(batch_size, max_num_keypoints)`, *optional*):
                Target weights (visibility); defaults to ones.
            flip_test (`bool`, defaults to `False`): also run the mirrored batch in the same forward pass, flip its
                heatmaps back with the dataset's flip pairs (shifted one pixel for non-UDP datasets) and average.

        The loss is JointsMSE with target weights (mean over pixels, keypoints and samples, no 1/2 factor), computed
        per dataset over its own samples and keypoints and summed with weights `n_d / batch_size` (times
        `config.loss_weights[d]` when set). This equals the original ViTPose+ sum of per-head losses.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        batch_size = pixel_values.shape[0] if pixel_values.ndim == 4 else -1
        index = resolve_dataset_index(self.config, dataset_index, batch_size, pixel_values.device)
        if flip_test:
            pixel_values = torch.cat([pixel_values, pixel_values.flip(-1)], dim=0)
            backbone_index = index if isinstance(index, int) else torch.cat([index, index])
        else:
            backbone_index = index
        encoded = self.backbone.encode(
            pixel_values,
            dataset_index=backbone_index,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            interpolate_pos_encoding=interpolate_pos_encoding,
        )
        heatmaps = self._decode_heads(encoded, batch_size, flip_test)
        hidden_states, attentions = encoded.ordered_extras()

        loss = None
        if labels is not None:
            loss = self.compute_loss(heatmaps, labels, label_weights, index)
        if not return_dict:
            values = (loss, heatmaps, hidden_states, attentions)
            return tuple(v for v in values if v is not None)
        return VitPosePlusPoseEstimatorOutput(
            loss=loss, heatmaps=heatmaps, hidden_states=hidden_states, attentions=attentions
        )

    def _decode_heads(self, encoded: EncodedBatch, batch_size: int, flip_test: bool) -> torch.Tensor:
        """Run each dataset's head on its own contiguous run of the sorted batch.

        With `flip_test` the batch holds the mirrored copies after the originals; a stable sort keeps each run's
        originals before its mirrored copies, in the same order, so the two halves of a run pair up.
        Returns heatmaps `(batch_size, max_num_keypoints, h, w)` in batch order.
        """
        feature_map = encoded.feature_map()
        routing = encoded.routing
        runs = routing.dataset_runs if routing is not None else [(0, 0, feature_map.shape[0])]
        chunks = feature_map.split(ExpertRouting.sizes(runs), dim=0) if len(runs) > 1 else [feature_map]
        max_k = self.config.max_num_keypoints
        outputs, positions = [], []
        for (dataset, start, end), features in zip(runs, chunks):
            out = self.heads[dataset](features)
            if flip_test:
                count = (end - start) // 2
                flipped = self._codecs[dataset].flip_back(out[count:], self._flip_permutations[dataset])
                out = (out[:count] + flipped) * 0.5
                end = start + count
            if out.shape[1] < max_k:
                out = F.pad(out, (0, 0, 0, 0, 0, max_k - out.shape[1]))
            outputs.append(out)
            if routing is not None and routing.order is not None:
                positions.append(routing.order[start:end])
        heatmaps = torch.cat(outputs, dim=0) if len(outputs) > 1 else outputs[0]
        if positions:
            heatmaps = torch.empty_like(heatmaps).index_copy_(0, torch.cat(positions), heatmaps)
        return heatmaps

    def compute_loss(
        self,
        heatmaps: torch.Tensor,
        labels: torch.Tensor,
        label_weights: torch.Tensor | None,
        dataset_index: torch.Tensor | int,
    ) -> torch.Tensor:
        """Target-weighted JointsMSE per dataset, summed with weights n_d / batch_size (see `forward`).

        Args:
            heatmaps: `(batch_size, max_num_keypoints, h, w)` predictions.
            labels: `(batch_size, max_num_keypoints, h, w)` targets.
            label_weights: `(batch_size, max_num_keypoints)` (or with a trailing 1) weights, or `None` for ones.
            dataset_index: `(batch_size,)` dataset of each sample, or an int for the whole batch.
        """
        if labels.shape != heatmaps.shape:
            raise ValueError(
                f"labels must have shape (batch_size, max_num_keypoints, height, width) = {tuple(heatmaps.shape)}, "
                f"got {tuple(labels.shape)}."
            )
        batch_size, max_k = heatmaps.shape[:2]
        if label_weights is None:
            label_weights = heatmaps.new_ones(batch_size, max_k)
        if label_weights.ndim == 3 and label_weights.shape[-1] == 1:
            label_weights = label_weights.squeeze(-1)
        if tuple(label_weights.shape) != (batch_size, max_k):
            raise ValueError(
                f"label_weights must have shape (batch_size, max_num_keypoints) = ({batch_size}, {max_k}), got "
                f"{tuple(label_weights.shape)}."
            )
        if isinstance(dataset_index, int):
            present = [dataset_index]
        else:
            present = [0] if self.config.num_datasets == 1 else torch.unique(dataset_index).tolist()
        loss = heatmaps.new_zeros((), dtype=torch.float32)
        for dataset in present:
            k = len(self.config.datasets[dataset]["keypoint_names"])
            if len(present) == 1:
                pred, target, weight = heatmaps[:, :k], labels[:, :k], label_weights[:, :k]
            else:
                rows = (dataset_index == dataset).nonzero().squeeze(1)
                pred, target, weight = heatmaps[rows, :k], labels[rows, :k], label_weights[rows, :k]
            weight = weight.float()[:, :, None, None]
            dataset_loss = ((pred.float() - target.float()) * weight).pow(2).mean()
            factor = pred.shape[0] / batch_size
            if self.config.loss_weights is not None:
                factor *= float(self.config.loss_weights[dataset])
            loss = loss + factor * dataset_loss
        return loss

    # ------------------------------------------------------------------ experts
    def merge_experts(self, dataset: int | str = 0) -> VitPosePlusForPoseEstimation:
        """Dense single-dataset model for `dataset`: fc2 = cat(fc2, expert), that dataset's head only.

        Its heatmaps equal this model's for that dataset (the fold is exact up to float rounding), at the cost of a
        plain ViTPose.
        """
        dataset_id = self.config.dataset_id(dataset)
        expert = self.config.expert_of(dataset_id)
        config_dict = self.config.to_dict()
        for key in ("architectures", "auto_map", "transformers_version", "_name_or_path", "model_type"):
            config_dict.pop(key, None)
        entry = {k: v for k, v in self.config.datasets[dataset_id].items() if k != "expert_index"}
        config_dict.update(num_experts=1, part_features=0, datasets=[entry], loss_weights=None)
        dense = type(self)(type(self.config)(**config_dict))
        state = {}
        for name, tensor in self.state_dict().items():
            if name.startswith("heads."):
                head_id, rest = name[len("heads.") :].split(".", 1)
                if int(head_id) == dataset_id:
                    state[f"heads.0.{rest}"] = tensor
                continue
            if ".mlp.experts." in name:
                continue
            if ".mlp.fc2." in name and self.config.num_experts > 1:
                prefix, param = name.rsplit(".fc2.", 1)
                tensor = torch.cat([tensor, self.state_dict()[f"{prefix}.experts.{expert}.{param}"]], dim=0)
            state[name] = tensor
        dense.load_state_dict(state, strict=True)
        dense.to(dtype=next(self.parameters()).dtype, device=next(self.parameters()).device)
        dense.train(self.training)
        return dense


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (BatchNorm running buffers excluded), as in the reference's tables."""
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "VitPosePlusPreTrainedModel",
    "VitPosePlusModel",
    "VitPosePlusForPoseEstimation",
    "VitPosePlusModelOutput",
    "VitPosePlusPoseEstimatorOutput",
    "ExpertRouting",
    "count_parameters",
    "resize_position_table",
    "resolve_dataset_index",
]
