"""MAE initialisation (conversion/convert_mae.py) from original MAE `.pth` files and transformers ViTMAE folders."""

from __future__ import annotations

import os

import pytest
import torch
from helpers import TINY_PLUS, make_mae_state, save_pth

from vitpose_plus.conversion.checkpoint_io import load_state_dict_file
from vitpose_plus.conversion.convert_mae import convert_mae_checkpoint, mae_position_table, read_mae_state_dict
from vitpose_plus.conversion.state_dict_tools import CheckpointConversionError, pad_patch_kernel


def test_mae_original_pth_moe_init(tmp_path):
    mae = make_mae_state()
    path = save_pth(mae, tmp_path / "mae_pretrain_vit_small.pth", wrap="model")
    result = convert_mae_checkpoint(path, "vitpose-plus-small", **TINY_PLUS)
    ours = result.model.state_dict()
    pos = ours["backbone.embeddings.position_embeddings"]
    assert pos.shape == (1, 193, 48)
    assert torch.equal(pos[:, 0], mae["pos_embed"][:, 0])  # cls slot kept in front
    grid = mae["pos_embed"][0, 1:].reshape(14, 14, 48)
    table = pos[0, 1:].reshape(16, 12, 48)
    # corners: bicubic align_corners=False resampling of the 14x14 grid; a constant grid stays constant
    expected = torch.nn.functional.interpolate(
        grid.permute(2, 0, 1)[None], size=(16, 12), mode="bicubic", align_corners=False
    )[0].permute(1, 2, 0)
    for r, c in [(0, 0), (0, 11), (15, 0), (15, 11)]:
        torch.testing.assert_close(table[r, c], expected[r, c])
    const = mae_position_table(torch.full((1, 197, 4), 0.25), (16, 12))
    assert torch.allclose(const, torch.full_like(const, 0.25), atol=1e-6)
    fc2 = mae["blocks.0.mlp.fc2.weight"]
    assert torch.equal(ours["backbone.layers.0.mlp.fc2.weight"], fc2[:36])
    for e in range(6):
        assert torch.equal(ours[f"backbone.layers.0.mlp.experts.{e}.weight"], fc2[36:])
        assert torch.equal(ours[f"backbone.layers.0.mlp.experts.{e}.bias"], mae["blocks.0.mlp.fc2.bias"][36:])
    assert torch.equal(ours["backbone.layers.0.attention.qkv.weight"], mae["blocks.0.attn.qkv.weight"])
    assert {"cls_token", "mask_token", "decoder_embed.weight", "norm.weight"} <= set(result.ignored)
    assert torch.equal(ours["backbone.layernorm.weight"], torch.ones(48))  # as the original (name mismatch)
    assert result.model.training
    loaded = convert_mae_checkpoint(path, "vitpose-plus-small", load_final_norm=True, **TINY_PLUS)
    assert torch.equal(loaded.model.state_dict()["backbone.layernorm.weight"], mae["norm.weight"])


def test_mae_patch_kernel_padding_and_grid_of_huge():
    mae = make_mae_state(patch=14, grid=16)  # MAE ViT-H: patch 14 at 224 -> 16x16 grid
    path_free = mae
    from vitpose_plus.conversion.convert_mae import init_from_mae_state_dict
    from vitpose_plus.modeling import VitPosePlusConfig

    config = VitPosePlusConfig.from_preset("vitpose-huge", hidden_size=48, num_hidden_layers=1, num_attention_heads=12)
    result = init_from_mae_state_dict(path_free, config)
    weight = result.model.state_dict()["backbone.embeddings.patch_embeddings.weight"]
    assert weight.shape == (48, 3, 16, 16)
    assert torch.equal(weight[:, :, 1:15, 1:15], mae["patch_embed.proj.weight"])
    assert weight[:, :, 0].abs().sum() == 0 and weight[:, :, :, 15].abs().sum() == 0
    assert pad_patch_kernel(torch.ones(1, 1, 16, 16), 16).shape == (1, 1, 16, 16)


def test_mae_wrong_width_is_reported():
    with pytest.raises(CheckpointConversionError, match="blocks.0.attn.qkv.weight"):
        from vitpose_plus.conversion.convert_mae import init_from_mae_state_dict
        from vitpose_plus.modeling import VitPosePlusConfig

        init_from_mae_state_dict(
            make_mae_state(dim=48), VitPosePlusConfig.from_preset("vitpose-small", hidden_size=96, num_hidden_layers=1)
        )


def test_mae_transformers_folder(tmp_path):
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    torch.manual_seed(0)
    config = ViTMAEConfig(
        hidden_size=48,
        num_hidden_layers=1,
        num_attention_heads=12,
        intermediate_size=192,
        decoder_hidden_size=32,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=4,
        decoder_intermediate_size=64,
    )
    ViTMAEForPreTraining(config).save_pretrained(tmp_path / "mae")
    timm = read_mae_state_dict(tmp_path / "mae")
    from safetensors.torch import load_file

    hf = load_file(tmp_path / "mae" / "model.safetensors")  # the Hub's (legacy) names
    q = hf["vit.encoder.layer.0.attention.attention.query.weight"]
    assert torch.equal(timm["blocks.0.attn.qkv.weight"][:48], q)
    assert torch.equal(timm["blocks.0.mlp.fc2.weight"], hf["vit.encoder.layer.0.output.dense.weight"])
    result = convert_mae_checkpoint(tmp_path / "mae", "vitpose-plus-small", **TINY_PLUS)
    assert any(k.startswith("decoder.") for k in result.ignored)
    ours = result.model.state_dict()
    assert torch.equal(ours["backbone.layers.0.mlp.fc1.weight"], hf["vit.encoder.layer.0.intermediate.dense.weight"])
    assert torch.equal(
        ours["backbone.layers.0.mlp.experts.5.weight"], hf["vit.encoder.layer.0.output.dense.weight"][36:]
    )


def test_loading_a_non_checkpoint_fails_clearly(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2], path)
    with pytest.raises(CheckpointConversionError, match="list.pth"):
        load_state_dict_file(path)
    assert not os.path.exists(tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError):
        load_state_dict_file(tmp_path / "missing.pth")
