"""Configuration of the bottom-up (associative embedding) ViTPose / ViTPose+ model."""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict

from .configuration_vitpose_plus import VitPosePlusConfig

_AE_LOSS_TYPES = ("exp", "max")


@strict(accept_kwargs=True)
class VitPosePlusBottomUpConfig(VitPosePlusConfig):
    r"""
    Configuration of `VitPosePlusForBottomUpPoseEstimation`: the ViTPose / ViTPose+ backbone of `VitPosePlusConfig`
    with one associative-embedding head per dataset (K heatmaps followed by K tag maps, mmpose 0.x
    `AssociativeEmbedding` with `AESimpleHead`, `tag_per_joint=True`). All `VitPosePlusConfig` fields apply; the
    defaults that differ are:

        image_size (`tuple[int, int]`, defaults to `(512, 512)`): the training input; heatmaps are 128x128.
        interpolate_pos_encoding (`bool`, defaults to `True`): test images (short side 512, long side a multiple of
            64) use a bicubic interpolation of the 32x32 position table.

    Associative embedding (the original `MultiLossFactory` and `BottomUpGenerateTarget` settings):
        heatmap_loss_factor (`float`, defaults to 1.0): weight of the masked heatmap MSE.
        push_loss_factor (`float`, defaults to 0.001), pull_loss_factor (`float`, defaults to 0.001): weights of the
            AE push and pull terms.
        ae_loss_type (`str`, defaults to `"exp"`): push term `exp(-d^2)` (`"exp"`) or `max(0, 1 - |d|)` (`"max"`).
        max_num_people (`int`, defaults to 30): persons per image in the encoded joints (and the grouping's top-k).
        sigma (`float`, defaults to 2.0): Gaussian sigma of the target heatmaps, in heatmap pixels.
    """

    model_type = "vitpose_plus_bottom_up"

    image_size: list[int] | tuple[int, int] = (512, 512)
    interpolate_pos_encoding: bool = True
    heatmap_loss_factor: float | int = 1.0
    push_loss_factor: float | int = 0.001
    pull_loss_factor: float | int = 0.001
    ae_loss_type: str = "exp"
    max_num_people: int = 30
    sigma: float | int = 2.0

    def validate_architecture(self):
        """Check the architecture; raises `ValueError` naming the field and the expected value."""
        super().validate_architecture()
        if self.ae_loss_type not in _AE_LOSS_TYPES:
            raise ValueError(f"`ae_loss_type` must be one of {_AE_LOSS_TYPES}, got {self.ae_loss_type!r}.")
        for name in ("heatmap_loss_factor", "push_loss_factor", "pull_loss_factor"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)}.")
        if self.max_num_people < 1:
            raise ValueError(f"`max_num_people` must be at least 1, got {self.max_num_people}.")
        if self.sigma <= 0:
            raise ValueError(f"`sigma` must be positive, got {self.sigma}.")

    def heatmap_size_for(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of the model's maps for an input of `height x width` pixels (input / 4 when the input is a
        multiple of 16)."""
        p, pad = self.patch_size, self.patch_padding
        grid = [(size + 2 * pad - p) // p + 1 for size in (height, width)]
        factor = 2 ** len(self.deconv_kernels) if self.decoder_type == "classic" else self.upsample_factor
        return grid[0] * factor, grid[1] * factor

    @classmethod
    def from_top_down_config(
        cls, config: VitPosePlusConfig, image_size: tuple[int, int] | list[int] = (512, 512), **overrides: Any
    ) -> VitPosePlusBottomUpConfig:
        """The bottom-up config with the backbone, decoder and datasets of a top-down `VitPosePlusConfig` (input
        `image_size`, position interpolation on). Keyword overrides replace any field."""
        data = config.to_dict()
        for key in ("architectures", "auto_map", "transformers_version", "_name_or_path", "model_type"):
            data.pop(key, None)
        data.update(image_size=list(image_size), interpolate_pos_encoding=True)
        data.update(overrides)
        return cls(**data)


__all__ = ["VitPosePlusBottomUpConfig"]
