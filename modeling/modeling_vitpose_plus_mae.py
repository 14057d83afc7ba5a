"""MAE (masked-autoencoder) pre-training of the ViTPose backbone (He et al., 2022; ViTPose's data-flexibility study).

The encoder is this repository's dense backbone (`VitPosePlusModel`: patch convolution with padding 2, the position
table `(1, N + 1, D)` whose slot 0 is added to every token, the same blocks and final norm), stored under the same
`backbone.*` names as in `VitPosePlusForPoseEstimation`, so the pre-trained encoder weights are a ViTPose backbone.
The decoder and the masking follow facebookresearch/mae (`models_mae.py`):

* per-sample random masking by argsort of uniform noise (keep the `int(N * (1 - mask_ratio))` smallest);
* the encoder runs on the visible tokens only; the decoder embeds them, fills the masked slots with one learned mask
  token, unshuffles, adds its position table and predicts `patch_size**2 * num_channels` values per patch;
* loss: mean squared error over masked patches only, targets normalised per patch when `norm_pix_loss` (default);
* both position tables are fixed 2-D sin-cos tables of the actual (rectangular) grid in MAE's layout, the encoder's
  with a zero slot 0 (MAE's cls position).

Deviations from MAE, on purpose:

* No cls token. ViTPose has none, so the fine-tuned backbone computes exactly what was pre-trained (MAE's cls token
  attends with the patches and is dropped when ViTPose loads an MAE encoder).
* Patch targets follow the padded patch convolution: token (r, c) sees input rows `16 r - 2 .. 16 r + 13` and columns
  `16 c - 2 .. 16 c + 13`, so `patchify` cuts patches from the image zero-padded by `patch_padding`. At 256x192 the
  grid is 16x12 and the last 2 rows and columns of the image are seen by no token: they are neither predicted nor
  part of the loss (`unpatchify` returns zeros there; `patch_coverage` marks them).
* Inputs of another size (`interpolate_pos_encoding=True`) get both sin-cos tables rebuilt for their own 2-D grid
  (exact, since the tables are fixed), where transformers' ViTMAE interpolates the decoder table as a 1-D sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_vitpose_plus import patch_grid
from .configuration_vitpose_plus_mae import VitPosePlusMAEConfig
from .modeling_vitpose_plus import VitPosePlusEmbeddings, VitPosePlusLayer, VitPosePlusModel, VitPosePlusPreTrainedModel

#: MAE's variance floor of the per-patch target normalisation (`norm_pix_loss`).
NORM_PIX_EPS = 1e-6

# ---------------------------------------------------------------------------------------------------------- outputs


@dataclass
class VitPosePlusMAEOutput(ModelOutput):
    """
    Output of `VitPosePlusForMaskedImageModeling`.

    Args:
        loss (`torch.FloatTensor` of shape `()`):
            Mean squared error over the masked patches (mean over a patch's values, then over masked patches).
        logits (`torch.FloatTensor` of shape `(batch_size, num_patches, patch_size**2 * num_channels)`):
            Predicted patches in `patchify` layout (normalised per patch when `config.norm_pix_loss`).
        mask (`torch.FloatTensor` of shape `(batch_size, num_patches)`):
            1 for masked (hidden, predicted) patches, 0 for the visible ones, row-major over the patch grid.
        ids_restore (`torch.LongTensor` of shape `(batch_size, num_patches)`):
            Position of every patch in the shuffled order (visible first); `argsort` of the shuffle.
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, num_visible, hidden_size)`):
            Encoder output (after the final norm) of the visible patches, in the kept order.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned with `output_hidden_states=True`):
            Encoder embedding output (visible tokens) and every block's output, each
            `(batch_size, num_visible, hidden_size)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*, returned with `output_attentions=True`):
            Encoder attention probabilities, `(batch_size, num_heads, num_visible, num_visible)` per block.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    ids_restore: torch.LongTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# ---------------------------------------------------------------------------------------------------------- tables


def build_2d_sincos_position_table(
    embed_dim: int, grid_height: int, grid_width: int, cls_slot: bool = True, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """MAE's fixed 2-D sin-cos position table (`util/pos_embed.py`, `get_2d_sincos_pos_embed`) for a rectangular grid.

    MAE builds `np.meshgrid(grid_w, grid_h)` ("w goes first"), so the first half of the channels encodes the column
    index and the second half the row index (its variable named `emb_h` holds the columns). Each half is
    `[sin(pos * omega_k), cos(pos * omega_k)]` with `omega_k = 1 / 10000 ** (k / (D / 4))`, `k = 0 .. D/4 - 1`. The
    patches are row-major (token `r * grid_width + c`). Computed in float64 and rounded once to `dtype`.

    Args:
        embed_dim: channels D, a multiple of 4.
        grid_height, grid_width: patch grid rows and columns.
        cls_slot: put a zero row in front (MAE's cls position; ViTPose's slot 0 that is added to every token).

    Returns:
        `(1 + grid_height * grid_width, embed_dim)` (or without the leading row when `cls_slot` is `False`).
    """
    if embed_dim % 4 != 0:
        raise ValueError(f"The 2-D sin-cos table needs embed_dim divisible by 4, got {embed_dim}.")
    quarter = embed_dim // 4
    omega = 1.0 / 10000.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter)  # (D/4,)
    rows, cols = torch.meshgrid(
        torch.arange(grid_height, dtype=torch.float64), torch.arange(grid_width, dtype=torch.float64), indexing="ij"
    )
    col_angles = cols.reshape(-1, 1) * omega  # (H*W, D/4)
    row_angles = rows.reshape(-1, 1) * omega
    table = torch.cat([col_angles.sin(), col_angles.cos(), row_angles.sin(), row_angles.cos()], dim=1)
    if cls_slot:
        table = torch.cat([table.new_zeros(1, embed_dim), table], dim=0)
    return table.to(dtype)


# ---------------------------------------------------------------------------------------------------------- patches


def patchify(pixel_values: torch.Tensor, patch_size: int, patch_padding: int) -> torch.Tensor:
    """Cut the image into the patches the tokens see: patch (r, c) is the image zero-padded by `patch_padding`, rows
    `r * p .. r * p + p - 1`, columns `c * p .. c * p + p - 1` (the patch convolution's window of token (r, c)).

    Args:
        pixel_values (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`).

    Returns:
        `(batch_size, grid_h * grid_w, patch_size**2 * num_channels)`, row-major over the grid, each patch flattened
        as (row in patch, column in patch, channel) like MAE (`nchpwq -> nhwpqc`).
    """
    if pixel_values.ndim != 4:
        raise ValueError(f"patchify expects (batch_size, channels, height, width), got {tuple(pixel_values.shape)}.")
    batch, channels, height, width = pixel_values.shape
    rows, cols = patch_grid(height, width, patch_size, patch_padding)
    if rows < 1 or cols < 1:
        raise ValueError(f"A {height}x{width} input has no {patch_size}x{patch_size} patch (padding {patch_padding}).")
    padded = nn.functional.pad(pixel_values, (patch_padding,) * 4)[:, :, : rows * patch_size, : cols * patch_size]
    patches = padded.reshape(batch, channels, rows, patch_size, cols, patch_size)
    return patches.permute(0, 2, 4, 3, 5, 1).reshape(batch, rows * cols, patch_size * patch_size * channels)


def unpatchify(
    patches: torch.Tensor, image_size: tuple[int, int], patch_size: int, patch_padding: int
) -> torch.Tensor:
    """Inverse of `patchify`: put the patches back at their image positions.

    Patch pixels that fall in the zero padding are dropped; image pixels no patch covers (the last
    `height + 2 * padding - grid_h * patch_size - padding` rows, 2 at 256x192, and the same for columns) are 0.
    `unpatchify(patchify(x)) == x * patch_coverage(...)` and `patchify(unpatchify(patchify(x))) == patchify(x)`.

    Args:
        patches (`torch.Tensor` of shape `(batch_size, grid_h * grid_w, patch_size**2 * num_channels)`).
        image_size: `(height, width)` of the image the patches came from.

    Returns:
        `(batch_size, num_channels, height, width)`.
    """
    height, width = int(image_size[0]), int(image_size[1])
    rows, cols = patch_grid(height, width, patch_size, patch_padding)
    batch, num, values = patches.shape
    channels = values // (patch_size * patch_size)
    if num != rows * cols or channels * patch_size * patch_size != values:
        raise ValueError(
            f"unpatchify: {tuple(patches.shape)} patches do not fit a {height}x{width} image (grid {rows}x{cols}, "
            f"{patch_size}x{patch_size} patches: expected (batch, {rows * cols}, {patch_size}**2 * channels))."
        )
    grid = patches.reshape(batch, rows, cols, patch_size, patch_size, channels).permute(0, 5, 1, 3, 2, 4)
    grid = grid.reshape(batch, channels, rows * patch_size, cols * patch_size)
    padded = grid.new_zeros(batch, channels, height + 2 * patch_padding, width + 2 * patch_padding)
    padded[:, :, : rows * patch_size, : cols * patch_size] = grid
    return padded[:, :, patch_padding : patch_padding + height, patch_padding : patch_padding + width]


def patch_coverage(image_size: tuple[int, int], patch_size: int, patch_padding: int) -> torch.Tensor:
    """`(height, width)` bool map of the image pixels some patch covers (all but the last 2 rows / columns at
    256x192 with padding 2)."""
    rows, cols = patch_grid(int(image_size[0]), int(image_size[1]), patch_size, patch_padding)
    ones = torch.ones(1, rows * cols, patch_size * patch_size)
    return unpatchify(ones, image_size, patch_size, patch_padding)[0, 0] > 0


def random_masking(
    tokens: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE's per-sample random masking: argsort uniform noise, keep the `int(N * (1 - mask_ratio))` lowest.

    Args:
        tokens (`torch.Tensor` of shape `(batch_size, num_patches, dim)`).
        mask_ratio: fraction of the patches to hide.
        noise (`torch.Tensor` of shape `(batch_size, num_patches)`, *optional*): the noise to sort (fixes the mask,
            for tests and for pictures of chosen masks); uniform `[0, 1)` when omitted.

    Returns:
        visible `(batch_size, num_visible, dim)` (in kept order), mask `(batch_size, num_patches)` (1 = hidden),
        ids_restore `(batch_size, num_patches)`, ids_keep `(batch_size, num_visible)`.
    """
    batch, num, dim = tokens.shape
    keep = int(num * (1 - mask_ratio))
    if keep < 1:
        raise ValueError(f"mask_ratio {mask_ratio} leaves no visible patch of {num}.")
    if noise is None:
        noise = torch.rand(batch, num, device=tokens.device)
    elif tuple(noise.shape) != (batch, num):
        raise ValueError(
            f"noise must have shape (batch_size, num_patches) = ({batch}, {num}), got {tuple(noise.shape)}."
        )
    ids_shuffle = torch.argsort(noise.to(tokens.device), dim=1)  # ascending: small noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]
    visible = torch.gather(tokens, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dim))
    mask = torch.ones(batch, num, device=tokens.device, dtype=tokens.dtype)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return visible, mask, ids_restore, ids_keep


# ---------------------------------------------------------------------------------------------------------- init


@torch.no_grad()
def _mae_init_weights(config: VitPosePlusMAEConfig, module: nn.Module) -> None:
    """MAE's initialisation (`initialize_weights`): xavier-uniform Linear layers and patch kernel (as a Linear), zero
    biases, LayerNorm 1 / 0, sin-cos position tables, mask token N(0, 0.02)."""
    if isinstance(module, nn.Linear):
        init.xavier_uniform_(module.weight)
        if module.bias is not None:
            init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):  # the patch embedding, initialised like a Linear over the flattened kernel
        fan_out, fan_in = module.weight.shape[0], module.weight[0].numel()
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        init.uniform_(module.weight, -bound, bound)
        if module.bias is not None:
            init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        init.ones_(module.weight)
        init.zeros_(module.bias)
    elif isinstance(module, VitPosePlusEmbeddings):
        table = build_2d_sincos_position_table(config.hidden_size, *module.grid_size)
        init.copy_(module.position_embeddings, table.unsqueeze(0))
    elif isinstance(module, VitPosePlusMAEDecoder):
        table = build_2d_sincos_position_table(config.decoder_hidden_size, *module.grid_size)
        init.copy_(module.position_embeddings, table.unsqueeze(0))
        init.normal_(module.mask_token, mean=0.0, std=config.initializer_range)


# ---------------------------------------------------------------------------------------------------------- modules


class VitPosePlusMAEDecoderConfig:
    """The decoder blocks' view of a `VitPosePlusMAEConfig`: the decoder's width, depth and heads, a dense FFN and
    global attention; every other field (the attention implementation included) is read live from the model config,
    so `model.set_attn_implementation(...)` reaches the decoder too."""

    _RENAMED = {
        "hidden_size": "decoder_hidden_size",
        "num_hidden_layers": "decoder_num_hidden_layers",
        "num_attention_heads": "decoder_num_attention_heads",
    }
    _FIXED = {"num_experts": 1, "part_features": 0, "window_size": None, "drop_path_rate": 0.0}

    def __init__(self, config: VitPosePlusMAEConfig):
        self.__dict__["_config"] = config

    def __getattr__(self, name: str):
        config = self.__dict__.get("_config")
        if config is None or name == "_config":  # during copy / unpickling, before __init__ state exists
            raise AttributeError(name)
        if name in self._RENAMED:
            return getattr(config, self._RENAMED[name])
        if name in self._FIXED:
            return self._FIXED[name]
        return getattr(config, name)


class VitPosePlusMAEDecoder(nn.Module):
    """MAE decoder: embed the visible tokens, fill the masked slots with the mask token, unshuffle, add the fixed
    position table `(1, N + 1, decoder_hidden_size)` (slot 0 zero and added to every token, as in the encoder), run
    the blocks, norm and predict `patch_size**2 * num_channels` values per patch."""

    def __init__(self, config: VitPosePlusMAEConfig):
        super().__init__()
        self.config = VitPosePlusMAEDecoderConfig(config)
        self.grid_size = tuple(config.grid_size)
        width = config.decoder_hidden_size
        self.embed = nn.Linear(config.hidden_size, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        num_patches = self.grid_size[0] * self.grid_size[1]
        self.position_embeddings = nn.Parameter(torch.zeros(1, num_patches + 1, width), requires_grad=False)
        self.layers = nn.ModuleList(
            [VitPosePlusLayer(self.config, drop_path_rate=0.0, window_size=None)
             for _ in range(config.decoder_num_hidden_layers)]
        )
        self.layernorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.pred = nn.Linear(width, config.patch_size**2 * config.num_channels)

    def forward(
        self, latent: torch.Tensor, ids_restore: torch.Tensor, position_table: torch.Tensor, grid: tuple[int, int]
    ) -> torch.Tensor:
        """
        Args:
            latent (`torch.Tensor` of shape `(batch_size, num_visible, hidden_size)`): encoder output.
            ids_restore (`torch.LongTensor` of shape `(batch_size, num_patches)`).
            position_table (`torch.Tensor` of shape `(1, num_patches, decoder_hidden_size)`): slot 0 folded in.
            grid: `(grid_height, grid_width)`.

        Returns:
            `(batch_size, num_patches, patch_size**2 * num_channels)` predicted patches in grid order.
        """
        tokens = self.embed(latent)
        batch, visible, width = tokens.shape
        num = ids_restore.shape[1]
        tokens = torch.cat([tokens, self.mask_token.to(tokens.dtype).expand(batch, num - visible, width)], dim=1)
        tokens = torch.gather(tokens, 1, ids_restore.unsqueeze(-1).expand(-1, -1, width))  # unshuffle
        tokens = tokens + position_table.to(tokens.dtype)
        for layer in self.layers:
            tokens, _ = layer(tokens, grid=grid)
        return self.pred(self.layernorm(tokens))


# ---------------------------------------------------------------------------------------------------------- models


class VitPosePlusMAEPreTrainedModel(VitPosePlusPreTrainedModel):
    """Base of the MAE classes: MAE's initialisation; `save_pretrained` names the MAE auto classes in `auto_map`."""

    config_class = VitPosePlusMAEConfig
    config: VitPosePlusMAEConfig
    _no_split_modules = ["VitPosePlusEmbeddings", "VitPosePlusLayer"]
    _auto_map_model_classes = {
        "AutoModel": "VitPosePlusMAEEncoder",
        "AutoModelForPreTraining": "VitPosePlusForMaskedImageModeling",
    }

    def _init_weights(self, module: nn.Module) -> None:
        _mae_init_weights(self.config, module)


class VitPosePlusMAEEncoder(VitPosePlusModel):
    """The MAE encoder: exactly `VitPosePlusModel` (same modules, same state-dict names, same unmasked forward pass),
    initialised as MAE with a frozen 2-D sin-cos position table `(1, N + 1, D)` whose slot 0 is zero.

    `AutoModel.from_pretrained(mae_folder)` gives it alone (as transformers' `ViTMAEModel`), a ViTPose backbone
    feature extractor; the decoder weights are skipped."""

    config_class = VitPosePlusMAEConfig
    config: VitPosePlusMAEConfig
    _keys_to_ignore_on_load_unexpected = [r"^heads\.", r"^decoder\."]

    def __init__(self, config: VitPosePlusMAEConfig):
        super().__init__(config)
        self.embeddings.position_embeddings.requires_grad_(False)  # fixed sin-cos, as MAE's pos_embed

    def _init_weights(self, module: nn.Module) -> None:
        _mae_init_weights(self.config, module)


class VitPosePlusForMaskedImageModeling(VitPosePlusMAEPreTrainedModel):
    """MAE pre-training of the ViTPose backbone: `backbone` (a ViTPose backbone, `backbone.*` names as in
    `VitPosePlusForPoseEstimation`) plus MAE's `decoder`. See the module docstring."""

    def __init__(self, config: VitPosePlusMAEConfig):
        super().__init__(config)
        self.backbone = VitPosePlusMAEEncoder(config)
        self.decoder = VitPosePlusMAEDecoder(config)
        self.post_init()
        self.freeze_position_tables()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, then the sin-cos tables frozen again (loading re-creates every
        parameter as trainable, which would leave DDP with parameters that never get a gradient)."""
        loaded = super().from_pretrained(*args, **kwargs)
        (loaded[0] if isinstance(loaded, tuple) else loaded).freeze_position_tables()
        return loaded

    def freeze_position_tables(self) -> None:
        """Set `requires_grad=False` on both fixed sin-cos position tables (MAE keeps them out of training)."""
        self.backbone.embeddings.position_embeddings.requires_grad_(False)
        self.decoder.position_embeddings.requires_grad_(False)

    # ------------------------------------------------------------------ patches
    def patchify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(B, C, H, W)` -> `(B, N, patch_size**2 * C)`: the patch each token sees (see `patchify`)."""
        return patchify(pixel_values, self.config.patch_size, self.config.patch_padding)

    def unpatchify(self, patches: torch.Tensor, image_size: tuple[int, int] | None = None) -> torch.Tensor:
        """`(B, N, patch_size**2 * C)` -> `(B, C, H, W)` for an image of `image_size` (defaults to the config's)."""
        size = tuple(image_size) if image_size is not None else tuple(self.config.image_size)
        return unpatchify(patches, size, self.config.patch_size, self.config.patch_padding)

    def reconstruct_patches(self, pixel_values: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Predictions back in the input's (ImageNet-normalised) value space, `(B, N, patch_size**2 * C)`: with
        `norm_pix_loss` each predicted patch is un-normalised with the mean and variance of the true patch (as MAE's
        visualisation does), otherwise returned as is."""
        if not self.config.norm_pix_loss:
            return logits
        target = self.patchify(pixel_values).float()
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        return logits.float() * (var + NORM_PIX_EPS) ** 0.5 + mean

    # ------------------------------------------------------------------ position tables
    def position_tables(self, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder `(1, N, D)` and decoder `(1, N, decoder_hidden_size)` position tables for a patch grid, each with
        its slot 0 folded in (added to every token, the ViTPose convention). At the config's grid these are the stored
        tables; at another grid the sin-cos tables are rebuilt for that 2-D grid."""
        encoder = self.backbone.embeddings.position_embeddings.detach()  # fixed tables, never trained
        decoder = self.decoder.position_embeddings.detach()
        if tuple(grid) == tuple(self.backbone.embeddings.grid_size):
            return encoder[:, 1:] + encoder[:, :1], decoder[:, 1:] + decoder[:, :1]
        enc = build_2d_sincos_position_table(self.config.hidden_size, *grid, cls_slot=False)
        dec = build_2d_sincos_position_table(self.config.decoder_hidden_size, *grid, cls_slot=False)
        enc = enc.to(encoder.device, encoder.dtype).unsqueeze(0) + encoder[:, :1]
        dec = dec.to(decoder.device, decoder.dtype).unsqueeze(0) + decoder[:, :1]
        return enc, dec

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        pixel_values: torch.Tensor,
        noise: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        interpolate_pos_encoding: bool | None = None,
        return_dict: bool | None = None,
    ) -> VitPosePlusMAEOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
                ImageNet-normalised images (256x192 person crops or image crops of `config.image_size`).
            noise (`torch.FloatTensor` of shape `(batch_size, num_patches)`, *optional*):
                Noise whose per-sample argsort decides the mask (the smallest `num_visible` values stay visible);
                uniform random when omitted. Passing it makes the forward pass deterministic.
            output_attentions, output_hidden_states, return_dict: as in transformers (encoder only).
            interpolate_pos_encoding (`bool`, *optional*): accept another input size; both sin-cos tables are rebuilt
                for its 2-D grid (defaults to `config.interpolate_pos_encoding`).
        """
        config = self.config
        return_dict = return_dict if return_dict is not None else config.return_dict
        output_attentions = output_attentions if output_attentions is not None else config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else config.output_hidden_states
        )
        if interpolate_pos_encoding is None:
            interpolate_pos_encoding = config.interpolate_pos_encoding
        if pixel_values.ndim != 4 or pixel_values.shape[1] != config.num_channels:
            raise ValueError(
                f"Expected pixel_values of shape (batch_size, {config.num_channels}, height, width), got "
                f"{tuple(pixel_values.shape)}."
            )
        height, width = pixel_values.shape[-2:]
        if (height, width) != tuple(config.image_size) and not interpolate_pos_encoding:
            raise ValueError(
                f"Input image size {height}x{width} does not match the model's {config.image_size[0]}x"
                f"{config.image_size[1]}; resize the images or pass interpolate_pos_encoding=True (or set "
                "config.interpolate_pos_encoding) to rebuild the sin-cos position tables for that grid."
            )

        embeddings = self.backbone.embeddings
        tokens = embeddings.patch_embeddings(pixel_values.to(embeddings.patch_embeddings.weight.dtype))
        grid = (tokens.shape[-2], tokens.shape[-1])
        encoder_table, decoder_table = self.position_tables(grid)
        tokens = embeddings.dropout(tokens.flatten(2).transpose(1, 2) + encoder_table)
        hidden, mask, ids_restore, _ = random_masking(tokens, config.mask_ratio, noise)

        all_hidden = [hidden] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        for layer in self.backbone.layers:
            hidden, weights = layer(hidden, grid=grid, output_attentions=bool(output_attentions))
            if output_hidden_states:
                all_hidden.append(hidden)
            if output_attentions:
                all_attentions.append(weights)
        latent = self.backbone.layernorm(hidden)

        logits = self.decoder(latent, ids_restore, decoder_table, grid)
        loss = self.masked_patch_loss(pixel_values, logits, mask)
        hidden_out = tuple(all_hidden) if all_hidden is not None else None
        attentions_out = tuple(all_attentions) if all_attentions is not None else None
        if not return_dict:
            values = (loss, logits, mask, ids_restore, latent, hidden_out, attentions_out)
            return tuple(v for v in values if v is not None)
        return VitPosePlusMAEOutput(
            loss=loss,
            logits=logits,
            mask=mask,
            ids_restore=ids_restore,
            last_hidden_state=latent,
            hidden_states=hidden_out,
            attentions=attentions_out,
        )

    def masked_patch_loss(self, pixel_values: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """MAE's `forward_loss`: per-patch mean squared error, averaged over the masked patches only.

        Args:
            pixel_values: `(B, C, H, W)` input images; the targets are `patchify(pixel_values)`, normalised per patch
                (`(x - mean) / sqrt(var + 1e-6)`, unbiased variance) when `config.norm_pix_loss`.
            logits: `(B, N, patch_size**2 * C)` predictions.
            mask: `(B, N)`, 1 for the masked patches.

        Returns:
            `()` float32 loss (0 when nothing is masked).
        """
        target = self.patchify(pixel_values).float()
        if tuple(target.shape) != tuple(logits.shape):
            raise ValueError(f"logits {tuple(logits.shape)} do not match the patch targets {tuple(target.shape)}.")
        if self.config.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + NORM_PIX_EPS) ** 0.5
        per_patch = (logits.float() - target).pow(2).mean(dim=-1)  # (B, N)
        mask = mask.float()
        return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)

    # ------------------------------------------------------------------ optimisation
    def pretraining_parameter_groups(self, weight_decay: float = 0.05) -> list[dict]:
        """AdamW groups as MAE's `optim_factory.add_weight_decay`: no weight decay on 1-D parameters (norms) and
        biases; frozen parameters and the fixed sin-cos tables left out."""
        decay, no_decay = [], []
        decay_names, no_decay_names = [], []
        for name, param in self.named_parameters():
            if not param.requires_grad or name.endswith("position_embeddings"):
                continue
            if param.ndim <= 1 or name.endswith(".bias"):
                no_decay.append(param)
                no_decay_names.append(name)
            else:
                decay.append(param)
                decay_names.append(name)
        return [
            {"params": decay, "param_names": decay_names, "weight_decay": weight_decay},
            {"params": no_decay, "param_names": no_decay_names, "weight_decay": 0.0},
        ]


__all__ = [
    "NORM_PIX_EPS",
    "VitPosePlusForMaskedImageModeling",
    "VitPosePlusMAEDecoder",
    "VitPosePlusMAEEncoder",
    "VitPosePlusMAEOutput",
    "VitPosePlusMAEPreTrainedModel",
    "build_2d_sincos_position_table",
    "patch_coverage",
    "patchify",
    "random_masking",
    "unpatchify",
]
