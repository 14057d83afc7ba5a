"""The remapping toolkit (conversion/state_dict_tools.py): the strict key accounting every converter relies on is
proven here once, with the shared tensor primitives."""

from __future__ import annotations

import pytest
import torch

from vitpose_plus.conversion.state_dict_tools import (
    CheckpointConversionError,
    Source,
    fuse_qkv,
    pad_patch_kernel,
    remap,
    resize_position_table,
    rows,
    split_qkv,
)

TARGET = {"a.weight": torch.zeros(4, 2), "b.weight": torch.zeros(2, 2), "b.bias": torch.zeros(2),
          "counter": torch.zeros((), dtype=torch.long)}


def test_every_key_is_accounted_for():
    source = {"x": torch.ones(4, 2), "y": torch.arange(6.0).reshape(3, 2), "junk": torch.ones(1)}
    plan = {"a.weight": Source.of("x"), "b.weight": Source.of("y", rows(0, 2), "rows 0:2"),
            "b.bias": Source.of("y", lambda t: t[2].clone())}
    result = remap(source, plan, TARGET, ignore=lambda k: "not needed" if k == "junk" else None,
                   keep_initialised=lambda k: "a counter" if k == "counter" else None)
    assert result.state.keys() == {"a.weight", "b.weight", "b.bias"}
    assert torch.equal(result.state["b.weight"], source["y"][:2])
    assert torch.equal(result.state["b.bias"], source["y"][2])
    assert result.mapped == {"x": "a.weight", "y": "b.weight [rows 0:2], b.bias"}
    assert result.ignored == {"junk": "not needed"} and result.initialised == {"counter": "a counter"}
    # every source key is mapped or ignored, every target key provided or kept: nothing silent
    assert set(result.mapped) | set(result.ignored) == set(source)
    assert set(result.state) | set(result.initialised) == set(TARGET)


def test_unknown_missing_and_mismatched_keys_are_all_listed_at_once():
    source = {"x": torch.ones(4, 3), "stray": torch.ones(1)}
    plan = {"a.weight": Source.of("x"), "b.weight": Source.of("absent"), "nowhere": Source.of("x")}
    with pytest.raises(CheckpointConversionError) as info:
        remap(source, plan, TARGET, source_name="ckpt.pth", message="cannot convert")
    error = info.value
    assert str(error).startswith("ckpt.pth: cannot convert")
    assert error.unknown == ["stray"]
    assert "absent (for b.weight)" in error.missing
    assert "b.bias (no rule provides it)" in error.missing and "counter (no rule provides it)" in error.missing
    assert "nowhere (planned, but the target model has no such tensor)" in error.missing
    assert error.mismatched == [("x", (4, 3), (4, 2))]


def test_qkv_fuse_and_split_round_trip():
    q, k, v = torch.randn(3, 5, 5).unbind(0)
    fused = fuse_qkv(q, k, v)
    assert fused.shape == (15, 5) and torch.equal(fused[5:10], k)
    for a, b in zip(split_qkv(fused), (q, k, v)):
        assert torch.equal(a, b)
    bias = torch.arange(9.0)
    assert [t.tolist() for t in split_qkv(bias)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_patch_kernel_padding():
    kernel = torch.randn(2, 3, 14, 14)
    padded = pad_patch_kernel(kernel, 16)
    assert padded.shape == (2, 3, 16, 16) and torch.equal(padded[:, :, 1:15, 1:15], kernel)
    assert padded[:, :, 0].abs().sum() == 0 and padded[:, :, :, 15].abs().sum() == 0
    assert pad_patch_kernel(kernel, 14) is kernel
    with pytest.raises(CheckpointConversionError, match="larger"):
        pad_patch_kernel(kernel, 12)


def test_position_table_resampling_is_2d_and_keeps_the_prefix():
    grid = torch.arange(16 * 12, dtype=torch.float32).reshape(1, 16, 12, 1).expand(1, 16, 12, 3)
    table = torch.cat([torch.full((1, 1, 3), 7.0), grid.reshape(1, 192, 3)], dim=1)
    assert resize_position_table(table, (16, 12), (16, 12)) is table
    out = resize_position_table(table, (16, 12), (24, 18))
    assert out.shape == (1, 1 + 24 * 18, 3) and torch.equal(out[:, 0], table[:, 0])
    expected = torch.nn.functional.interpolate(grid.permute(0, 3, 1, 2), size=(24, 18), mode="bicubic",
                                               align_corners=False).permute(0, 2, 3, 1).reshape(1, -1, 3)
    torch.testing.assert_close(out[:, 1:], expected)
    with pytest.raises(ValueError, match="expected 1 \\+ 16 x 11"):
        resize_position_table(table, (16, 11), (8, 6))
