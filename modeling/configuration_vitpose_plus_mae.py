"""Configuration of MAE (masked-autoencoder) pre-training on the ViTPose backbone."""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict

from .catalog import get_preset
from .configuration_vitpose_plus import VitPosePlusConfig


@strict(accept_kwargs=True)
class VitPosePlusMAEConfig(VitPosePlusConfig):
    r"""
    Configuration of `VitPosePlusForMaskedImageModeling`: this repository's dense ViTPose backbone as the MAE encoder
    (every backbone field of `VitPosePlusConfig` applies and means the same) plus MAE's lightweight decoder.

    The pose-head fields of the parent (`decoder_type`, `deconv_*`, `datasets`, ...) are kept, unused, so that the
    config converts into a pose config field by field.

    MAE:
        mask_ratio (`float`, defaults to 0.75): fraction of the patches hidden from the encoder; the encoder sees
            `int(num_patches * (1 - mask_ratio))` of them (48 of 192 at 256x192).
        norm_pix_loss (`bool`, defaults to `True`): regress each patch normalised by its own mean and variance
            (`(x - mean) / sqrt(var + 1e-6)`, unbiased variance, as MAE).
        decoder_hidden_size (`int`, defaults to 512), decoder_num_hidden_layers (`int`, defaults to 8),
        decoder_num_attention_heads (`int`, defaults to 16): the MAE decoder (its blocks use the encoder's
            `mlp_ratio`, `qkv_bias`, `layer_norm_eps` and `hidden_act`, as MAE).

    The encoder must be dense with global attention: `num_experts` 1 (pre-train dense, then split `fc2` into the
    shared part and experts when initialising ViTPose+) and no `window_size`. Both position tables are fixed 2-D
    sin-cos tables of the patch grid (16x12 at 256x192).
    """

    model_type = "vitpose_plus_mae"

    mask_ratio: float | int = 0.75
    norm_pix_loss: bool = True
    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 8
    decoder_num_attention_heads: int = 16

    def _check_architecture(self) -> None:
        """Check the architecture; raises `ValueError` naming the field and the expected value."""
        super()._check_architecture()
        if not 0.0 <= float(self.mask_ratio) < 1.0:
            raise ValueError(f"`mask_ratio` must be in [0, 1), got {self.mask_ratio}.")
        if self.num_experts != 1:
            raise ValueError(
                f"MAE pre-trains the dense backbone: `num_experts` must be 1, got {self.num_experts} (the experts "
                "are split from the dense fc2 when a ViTPose+ model is initialised from the MAE weights)."
            )
        if self.window_size is not None:
            raise ValueError(
                f"MAE's encoder sees a random subset of the patches, so it needs global attention: `window_size` "
                f"must be None, got {self.window_size}."
            )
        for name in ("decoder_hidden_size", "decoder_num_hidden_layers", "decoder_num_attention_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)}.")
        if self.decoder_hidden_size % self.decoder_num_attention_heads != 0:
            raise ValueError(
                f"`decoder_hidden_size` ({self.decoder_hidden_size}) must be a multiple of "
                f"`decoder_num_attention_heads` ({self.decoder_num_attention_heads})."
            )
        for name in ("hidden_size", "decoder_hidden_size"):
            if getattr(self, name) % 4 != 0:
                raise ValueError(
                    f"`{name}` ({getattr(self, name)}) must be a multiple of 4 for the 2-D sin-cos position table."
                )

    @property
    def grid_size(self) -> tuple[int, int]:
        """(rows, columns) of the patch grid for `image_size` inputs (16x12 at 256x192 with padding 2)."""
        return self.patch_grid()

    @property
    def num_visible_patches(self) -> int:
        """Patches the encoder sees for `image_size` inputs: `int(num_patches * (1 - mask_ratio))`, as MAE."""
        rows, cols = self.grid_size
        return int(rows * cols * (1 - self.mask_ratio))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> VitPosePlusMAEConfig:
        """MAE config whose encoder is the backbone of preset `name` (any of `PRESETS`).

        A ViTPose+ preset gives its dense backbone (`num_experts` 1; the experts are split off at initialisation).
        `drop_path_rate` is 0 unless overridden (MAE pre-trains without stochastic depth). Keyword overrides replace
        any field (`mask_ratio`, `decoder_hidden_size`, `image_size`, ...).
        """
        get_preset(name)  # validates the name
        backbone = VitPosePlusConfig.from_preset(name).to_dict()
        keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "patch_size", "patch_padding",
                "image_size", "mlp_ratio", "qkv_bias", "layer_norm_eps", "hidden_act")
        kwargs: dict[str, Any] = {key: backbone[key] for key in keys}
        kwargs["drop_path_rate"] = 0.0
        kwargs.update(overrides)
        return cls(**kwargs)


__all__ = ["VitPosePlusMAEConfig"]
