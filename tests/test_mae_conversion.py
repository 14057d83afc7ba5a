"""This repository's MAE folders as ViTPose / ViTPose+ initialisation (the `model.mae_checkpoint` path)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from vitpose_plus.conversion.convert_mae import (
    VitPoseMaeWeights,
    init_from_mae_state_dict,
    read_mae_state_dict,
)
from vitpose_plus.conversion.state_dict_tools import CheckpointConversionError, resize_position_table
from vitpose_plus.modeling import VitPosePlusConfig, VitPosePlusForMaskedImageModeling, VitPosePlusMAEConfig

TINY_MAE = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": (64, 48),
    "decoder_hidden_size": 16,
    "decoder_num_hidden_layers": 2,
    "decoder_num_attention_heads": 4,
}
POSE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": (64, 48),
        "deconv_channels": (16, 16)}


@pytest.fixture(scope="module")
def mae_folder(tmp_path_factory):
    """A saved tiny MAE with every weight perturbed (final norm too), so copies are told apart from inits."""
    torch.manual_seed(0)
    model = VitPosePlusForMaskedImageModeling(VitPosePlusMAEConfig(**TINY_MAE))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=generator) * 0.1)
    folder = tmp_path_factory.mktemp("mae")
    model.save_pretrained(folder)
    return folder, {k: v.clone() for k, v in model.state_dict().items()}


def _pose(**overrides) -> VitPosePlusConfig:
    return VitPosePlusConfig(**{**POSE, **overrides})


def test_read_mae_state_dict_gives_own_names_and_grid(mae_folder):
    folder, state = mae_folder
    weights = read_mae_state_dict(folder)
    assert isinstance(weights, VitPoseMaeWeights) and weights.grid == (4, 3)
    assert set(weights) == set(state)
    for key, tensor in state.items():
        torch.testing.assert_close(weights[key], tensor, atol=0, rtol=0, msg=key)


@pytest.mark.parametrize("load_final_norm", [False, True])
def test_dense_init_uses_every_backbone_key(mae_folder, load_final_norm):
    folder, state = mae_folder
    # The exact call training makes for `model.mae_checkpoint`.
    result = init_from_mae_state_dict(read_mae_state_dict(folder), _pose(), load_final_norm=load_final_norm,
                                      source=str(folder))
    pose = result.model.state_dict()
    backbone_keys = {k for k in state if k.startswith("backbone.")}
    decoder_keys = {k for k in state if k.startswith("decoder.")}
    norm_keys = {"backbone.layernorm.weight", "backbone.layernorm.bias"}
    assert set(result.mapped) | set(result.ignored) == set(state)  # nothing silently dropped
    assert not set(result.mapped) & set(result.ignored)
    assert set(result.mapped) == (backbone_keys if load_final_norm else backbone_keys - norm_keys)
    assert all(result.ignored[k].startswith("MAE decoder") for k in decoder_keys)
    for key in backbone_keys - norm_keys:
        torch.testing.assert_close(pose[key], state[key], atol=0, rtol=0, msg=key)
    if load_final_norm:
        torch.testing.assert_close(pose["backbone.layernorm.weight"], state["backbone.layernorm.weight"])
    else:
        assert set(result.ignored) == decoder_keys | norm_keys
        assert "last_norm" in result.ignored["backbone.layernorm.weight"]
        assert torch.equal(pose["backbone.layernorm.weight"], torch.ones(32))
        assert torch.equal(pose["backbone.layernorm.bias"], torch.zeros(32))
        assert "backbone.layernorm.weight" in result.initialised
    assert result.model.backbone.embeddings.position_embeddings.requires_grad  # fine-tuned, as in ViTPose
    assert result.model.training


def test_moe_init_splits_fc2_into_shared_part_and_identical_experts(mae_folder):
    folder, state = mae_folder
    config = _pose(num_experts=3, part_features=8, datasets=["coco", "aic", "mpii"])
    result = init_from_mae_state_dict(read_mae_state_dict(folder), config, load_final_norm=True)
    pose = result.model.state_dict()
    for layer in range(2):
        fc2 = f"backbone.layers.{layer}.mlp.fc2."
        for param in ("weight", "bias"):
            dense = state[fc2 + param]
            torch.testing.assert_close(pose[fc2 + param], dense[:24], atol=0, rtol=0)
            for e in range(3):
                expert = pose[f"backbone.layers.{layer}.mlp.experts.{e}.{param}"]
                torch.testing.assert_close(expert, dense[24:], atol=0, rtol=0)
        assert "experts.2" in result.mapped[fc2 + "weight"]
    missing = {k for k in pose if k.startswith("backbone.")} - {
        k.split(" [")[0] for v in result.mapped.values() for k in v.split(", ")
    }
    assert not missing
    # Identical experts: every dataset's backbone features equal the dense model's.
    dense = init_from_mae_state_dict(read_mae_state_dict(folder), _pose(), load_final_norm=True).model.eval()
    moe = result.model.eval()
    x = torch.randn(3, 3, 64, 48, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = dense.backbone(x).feature_map
        for dataset in range(3):
            torch.testing.assert_close(moe.backbone(x, dataset_index=dataset).feature_map, expected,
                                       atol=1e-5, rtol=1e-5)


def test_position_table_resized_in_2d_for_another_grid(mae_folder):
    folder, state = mae_folder
    result = init_from_mae_state_dict(read_mae_state_dict(folder), _pose(image_size=(96, 64)))
    table = result.model.backbone.embeddings.position_embeddings.detach()
    source = state["backbone.embeddings.position_embeddings"]
    assert table.shape == (1, 1 + 6 * 4, 32)
    torch.testing.assert_close(table[:, 0], source[:, 0], atol=0, rtol=0)
    grid = source[0, 1:].reshape(4, 3, 32).permute(2, 0, 1)[None]
    expected = F.interpolate(grid, size=(6, 4), mode="bicubic", align_corners=False)[0].permute(1, 2, 0)
    torch.testing.assert_close(table[0, 1:].reshape(6, 4, 32), expected, atol=1e-6, rtol=0)


def test_resize_position_table_keeps_rows_and_columns_apart():
    """A table varying along columns only stays constant down each column after the resize: the grid is resized as
    a rows x columns image, not as a flat sequence."""
    columns = torch.linspace(-1, 1, 3)
    pos = torch.cat([torch.full((1, 1, 2), 7.0), columns.repeat(4).reshape(1, 12, 1).expand(1, 12, 2)], dim=1)
    out = resize_position_table(pos, (4, 3), (8, 5))
    assert out.shape == (1, 41, 2) and torch.equal(out[:, 0], pos[:, 0])
    grid = out[0, 1:, 0].reshape(8, 5)
    torch.testing.assert_close(grid, grid[:1].expand(8, 5), atol=1e-6, rtol=0)
    assert torch.equal(resize_position_table(pos, (4, 3), (4, 3)), pos)
    with pytest.raises(ValueError, match=r"expected 1 \+ 4 x 4"):
        resize_position_table(pos, (4, 4), (8, 5))


def test_plain_state_dict_without_grid(mae_folder):
    folder, state = mae_folder
    plain = load_file(str(folder / "model.safetensors"))
    result = init_from_mae_state_dict(plain, _pose())  # same grid: the table is taken as is
    torch.testing.assert_close(result.model.backbone.embeddings.position_embeddings.detach(),
                               state["backbone.embeddings.position_embeddings"], atol=0, rtol=0)
    with pytest.raises(CheckpointConversionError, match=r"pass source_grid=\(rows, columns\)"):
        init_from_mae_state_dict(plain, _pose(image_size=(96, 64)))
    result = init_from_mae_state_dict(plain, _pose(image_size=(96, 64)), source_grid=(4, 3))
    assert result.model.backbone.embeddings.position_embeddings.shape == (1, 25, 32)


def test_mismatched_model_lists_every_bad_key(mae_folder):
    folder, _ = mae_folder
    with pytest.raises(CheckpointConversionError) as info:
        init_from_mae_state_dict(read_mae_state_dict(folder), _pose(num_hidden_layers=3), source="mae")
    assert any(k.startswith("backbone.layers.2.") for k in info.value.missing)
    with pytest.raises(CheckpointConversionError) as info:
        init_from_mae_state_dict(read_mae_state_dict(folder), _pose(num_hidden_layers=1))
    assert any("backbone.layers.1." in k for k in info.value.unknown)
    with pytest.raises(CheckpointConversionError) as info:
        init_from_mae_state_dict(read_mae_state_dict(folder), _pose(hidden_size=64))
    assert info.value.mismatched
