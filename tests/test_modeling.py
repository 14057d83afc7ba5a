"""Model behaviour: shapes, routed experts, merging, flip test, loss, save/load, interop, bad input."""

from __future__ import annotations

import json
import math
import textwrap

import pytest
import torch
import torch.nn.functional as F
from helpers import make_model, run_without_package, tiny_config, tiny_plus_config

from vitpose_plus import VitPosePlusConfig, VitPosePlusForPoseEstimation, VitPosePlusModel
from vitpose_plus.modeling import PRESETS
from vitpose_plus.modeling.modeling_vitpose_plus import count_parameters

MIXED_INDEX = torch.tensor([2, 0, 1, 0, 2, 1])


# ----------------------------------------------------------------------------------------------- independent reference
def reference_heatmaps(model: VitPosePlusForPoseEstimation, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The original ViTPose+ computation written out with functional ops over the model's parameters: every expert
    and every head on the whole batch, expert outputs masked by (index == e), the sample's own head selected."""
    cfg = model.config
    p = dict(model.named_parameters())
    p.update(dict(model.named_buffers()))
    dim, heads = cfg.hidden_size, cfg.num_attention_heads
    tokens = F.conv2d(x, p["backbone.embeddings.patch_embeddings.weight"],
                      p["backbone.embeddings.patch_embeddings.bias"], stride=16, padding=2)
    batch, _, gh, gw = tokens.shape
    tokens = tokens.flatten(2).transpose(1, 2)
    pos = p["backbone.embeddings.position_embeddings"]
    tokens = tokens + pos[:, 1:] + pos[:, :1]
    for i in range(cfg.num_hidden_layers):
        pre = f"backbone.layers.{i}."
        h = F.layer_norm(tokens, (dim,), p[pre + "norm1.weight"], p[pre + "norm1.bias"], cfg.layer_norm_eps)
        qkv = F.linear(h, p[pre + "attention.qkv.weight"], p[pre + "attention.qkv.bias"])
        q, k, v = qkv.reshape(batch, -1, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) * (dim // heads) ** -0.5, dim=-1)
        a = (attn @ v).transpose(1, 2).reshape(batch, -1, dim)
        tokens = tokens + F.linear(a, p[pre + "attention.proj.weight"], p[pre + "attention.proj.bias"])
        h = F.layer_norm(tokens, (dim,), p[pre + "norm2.weight"], p[pre + "norm2.bias"], cfg.layer_norm_eps)
        h = F.gelu(F.linear(h, p[pre + "mlp.fc1.weight"], p[pre + "mlp.fc1.bias"]))
        out = F.linear(h, p[pre + "mlp.fc2.weight"], p[pre + "mlp.fc2.bias"])
        if cfg.num_experts > 1:
            expert_sum = 0
            for e in range(cfg.num_experts):
                mask = (index == e).view(-1, 1, 1).to(h.dtype)
                expert_sum = expert_sum + F.linear(h, p[pre + f"mlp.experts.{e}.weight"],
                                                   p[pre + f"mlp.experts.{e}.bias"]) * mask
            out = torch.cat([out, expert_sum], dim=-1)
        tokens = tokens + out
    tokens = F.layer_norm(tokens, (dim,), p["backbone.layernorm.weight"], p["backbone.layernorm.bias"],
                          cfg.layer_norm_eps)
    fmap = tokens.transpose(1, 2).reshape(batch, dim, gh, gw)
    result = None
    for d in range(cfg.num_datasets):
        pre = f"heads.{d}."
        y = fmap
        if cfg.decoder_type == "classic":
            for j in range(len(cfg.deconv_channels)):
                b = f"{pre}deconv_layers.{j}."
                y = F.conv_transpose2d(y, p[b + "deconv.weight"], stride=2, padding=1)
                y = F.batch_norm(y, p[b + "batchnorm.running_mean"], p[b + "batchnorm.running_var"],
                                 p[b + "batchnorm.weight"], p[b + "batchnorm.bias"], False, 0.0, 1e-5)
                y = F.relu(y)
            y = F.conv2d(y, p[pre + "conv.weight"], p[pre + "conv.bias"])
        else:
            y = F.interpolate(F.relu(y), scale_factor=4, mode="bilinear", align_corners=False)
            y = F.conv2d(y, p[pre + "conv.weight"], p[pre + "conv.bias"], padding=1)
        if result is None:
            result = y.new_zeros(batch, cfg.max_num_keypoints, *y.shape[-2:])
        rows = index == d
        result[rows, : y.shape[1]] = y[rows]
    return result


# ----------------------------------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("decoder_type", ["classic", "simple"])
def test_heatmap_shapes_and_reference(decoder_type, pixel_values):
    model = make_model(tiny_config(decoder_type=decoder_type))
    with torch.no_grad():
        out = model(pixel_values)
        expected = reference_heatmaps(model, pixel_values, torch.zeros(6, dtype=torch.long))
    assert out.heatmaps.shape == (6, 17, 16, 12)
    torch.testing.assert_close(out.heatmaps, expected, atol=1e-5, rtol=0)


def test_backbone_feature_map_and_patch_padding(pixel_values):
    config = tiny_config()
    model = VitPosePlusModel(config).eval()
    assert model.embeddings.patch_embeddings.padding == (2, 2)
    out = model(pixel_values, output_hidden_states=True, output_attentions=True)
    assert out.feature_map.shape == (6, 32, 4, 3)
    assert out.last_hidden_state.shape == (6, 12, 32)
    torch.testing.assert_close(out.feature_map.flatten(2).transpose(1, 2), out.last_hidden_state)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    assert out.attentions[0].shape == (6, 4, 12, 12)
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(6, 4, 12), atol=1e-5, rtol=0)


def test_published_parameter_counts():
    # Exact counts from the reference (section 1.6), BatchNorm buffers excluded; built on the meta device.
    expected = {
        "vitpose-small": 24_290_577,
        "vitpose-small-simple": 21_722_513,
        "vitpose-base": 89_994_513,
        "vitpose-large": 308_544_785,
        "vitpose-huge": 637_208_849,
        "vitpose-base-simple": 85_912_337,
        "vitpose-large-simple": 303_453_201,
        "vitpose-huge-simple": 631_107_857,
        "vitpose-plus-small": 46_306_646,
        "vitpose-plus-base": 146_422_742,
        "vitpose-plus-large": 460_674_774,
        "vitpose-plus-huge": 930_917_078,
    }
    assert set(expected) == set(PRESETS)
    for name, count in expected.items():
        with torch.device("meta"):
            model = VitPosePlusForPoseEstimation(VitPosePlusConfig.from_preset(name))
        assert count_parameters(model) == count, name
    plus_small = VitPosePlusConfig.from_preset("vitpose-plus-small")
    assert plus_small.part_features == 96 and plus_small.num_attention_heads == 12
    assert plus_small.dataset_names == ["coco", "aic", "mpii", "ap10k", "apt36k", "coco_wholebody"]
    assert [len(d["keypoint_names"]) for d in plus_small.datasets] == [17, 14, 16, 17, 17, 133]
    assert [d["use_udp"] for d in plus_small.datasets] == [True, False, True, False, False, False]


# ----------------------------------------------------------------------------------------------------------- experts
@pytest.mark.parametrize("decoder_type", ["classic", "simple"])
def test_routed_experts_equal_masked_formula(decoder_type, pixel_values):
    model = make_model(tiny_plus_config(decoder_type=decoder_type))
    with torch.no_grad():
        routed = model(pixel_values, dataset_index=MIXED_INDEX).heatmaps
        masked = reference_heatmaps(model, pixel_values, MIXED_INDEX)
    torch.testing.assert_close(routed, masked, atol=1e-5, rtol=0)
    # Channels beyond a sample's own keypoint count are exactly zero.
    assert routed[MIXED_INDEX == 1, 14:].abs().max() == 0
    assert routed[MIXED_INDEX == 2, 16:].abs().max() == 0


def test_mixed_batch_equals_per_sample(pixel_values):
    model = make_model(tiny_plus_config())
    with torch.no_grad():
        batch = model(pixel_values, dataset_index=MIXED_INDEX).heatmaps
        for n in range(6):
            single = model(pixel_values[n : n + 1], dataset_index=int(MIXED_INDEX[n])).heatmaps
            torch.testing.assert_close(batch[n : n + 1], single, atol=1e-5, rtol=0)


def test_dataset_index_forms_agree(pixel_values):
    model = make_model(tiny_plus_config())
    with torch.no_grad():
        by_tensor = model(pixel_values, dataset_index=torch.full((6,), 1)).heatmaps
        by_int = model(pixel_values, dataset_index=1).heatmaps
        by_name = model(pixel_values, dataset_index="aic").heatmaps
        by_list = model(pixel_values, dataset_index=["aic"] * 6).heatmaps
    assert torch.equal(by_tensor, by_int) and torch.equal(by_int, by_name) and torch.equal(by_name, by_list)


def test_shared_expert_routing(pixel_values):
    # Two datasets routed to one expert must see the same backbone features.
    config = tiny_plus_config(datasets=["coco", {**tiny_plus_config().datasets[1], "expert_index": 0}, "mpii"])
    model = make_model(config)
    with torch.no_grad():
        features_a = model.backbone(pixel_values, dataset_index=torch.zeros(6, dtype=torch.long)).feature_map
        features_b = model.backbone(pixel_values, dataset_index=torch.ones(6, dtype=torch.long)).feature_map
        mixed = model.backbone(pixel_values, dataset_index=MIXED_INDEX).feature_map
        own = model.backbone(pixel_values, dataset_index=torch.full((6,), 2)).feature_map
    torch.testing.assert_close(features_a, features_b, atol=0, rtol=0)
    torch.testing.assert_close(mixed[MIXED_INDEX != 2], features_a[MIXED_INDEX != 2], atol=1e-5, rtol=0)
    torch.testing.assert_close(mixed[MIXED_INDEX == 2], own[MIXED_INDEX == 2], atol=1e-5, rtol=0)


@pytest.mark.parametrize("dataset", ["coco", "aic", "mpii"])
def test_merge_experts_is_exact(dataset, pixel_values):
    model = make_model(tiny_plus_config())
    dense = model.merge_experts(dataset)
    assert dense.config.num_experts == 1 and dense.config.dataset_names == [dataset]
    assert len(dense.heads) == 1
    assert dense.backbone.layers[0].mlp.fc2.weight.shape == (32, 128)
    with torch.no_grad():
        moe = model(pixel_values, dataset_index=dataset).heatmaps
        merged = dense(pixel_values).heatmaps
    k = dense.config.max_num_keypoints
    assert (moe[:, :k] - merged).abs().max() <= 1e-6
    per_keypoint = model.config.deconv_channels[-1] + 1  # final 1x1 conv: weights + bias per keypoint
    assert count_parameters(dense) == count_parameters(model.merge_experts("coco")) - per_keypoint * (17 - k)


# ----------------------------------------------------------------------------------------------------------- flip test
def test_flip_test_matches_manual_flip(pixel_values):
    model = make_model(tiny_plus_config())
    with torch.no_grad():
        fused = model(pixel_values, dataset_index=MIXED_INDEX, flip_test=True).heatmaps
        plain = model(pixel_values, dataset_index=MIXED_INDEX).heatmaps
        mirrored = model(pixel_values.flip(-1), dataset_index=MIXED_INDEX).heatmaps
    for n in range(6):
        d = int(MIXED_INDEX[n])
        spec = model.config.dataset_spec(d)
        k = spec.num_keypoints
        back = mirrored[n, :k].clone()
        for a, b in spec.flip_pairs:  # swap channels, then mirror columns
            back[[a, b]] = back[[b, a]]
        back = back.flip(-1)
        if not spec.use_udp:  # AIC: the original shifts the flipped heatmap one column right
            back[:, :, 1:] = back[:, :, :-1].clone()
        torch.testing.assert_close(fused[n, :k], (plain[n, :k] + back) / 2, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------------------------------------- loss
def original_loss(heatmaps, labels, weights, index, keypoints):
    """The original ViTPose+ loss: every head on the whole batch, targets masked by dataset, per-head JointsMSE
    averaged over all N samples, summed over heads."""
    total = 0.0
    for d, k in enumerate(keypoints):
        mask = (index == d).float()[:, None]
        w = (weights[:, :k] * mask)[:, :, None, None]
        total = total + ((heatmaps[:, :k] * w - labels[:, :k] * w) ** 2).mean()
    return total


def test_loss_equals_original_weighting(pixel_values):
    model = make_model(tiny_plus_config())
    generator = torch.Generator().manual_seed(5)
    labels = torch.rand(6, 17, 16, 12, generator=generator)
    weights = (torch.rand(6, 17, generator=generator) > 0.3).float()
    with torch.no_grad():
        out = model(pixel_values, dataset_index=MIXED_INDEX, labels=labels, label_weights=weights)
    # Predictions for the masked formula: each sample's own head output (padded channels never count).
    expected = original_loss(out.heatmaps, labels, weights, MIXED_INDEX, [17, 14, 16])
    torch.testing.assert_close(out.loss, torch.as_tensor(expected), atol=1e-7, rtol=1e-6)


def test_loss_no_visible_keypoints_is_zero_not_nan(pixel_values):
    model = make_model(tiny_config())
    labels = torch.rand(6, 17, 16, 12)
    out = model(pixel_values, labels=labels, label_weights=torch.zeros(6, 17))
    assert out.loss.item() == 0.0
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_loss_falls_on_fixed_batch(pixel_values):
    torch.manual_seed(0)
    model = VitPosePlusForPoseEstimation(tiny_plus_config()).train()
    labels = torch.zeros(6, 17, 16, 12)
    labels[:, :, 7, 5] = 1.0  # a peak per keypoint
    weights = torch.ones(6, 17)
    optimizer = torch.optim.AdamW(model.layer_decay_parameter_groups(1e-3, 0.0, 1.0))
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = model(pixel_values, dataset_index=MIXED_INDEX, labels=labels, label_weights=weights).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_experts_get_gradient_only_from_their_samples(pixel_values):
    model = make_model(tiny_plus_config()).train()
    loss = model(pixel_values[:2], dataset_index=torch.tensor([0, 2]), labels=torch.rand(2, 17, 16, 12)).loss
    loss.backward()
    mlp = model.backbone.layers[0].mlp
    assert mlp.experts[1].weight.grad is None  # AIC expert never ran
    assert mlp.experts[0].weight.grad.abs().sum() > 0 and mlp.experts[2].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.heads[1].parameters())


# ----------------------------------------------------------------------------------------------------------- runtime
def test_gradient_checkpointing_same_gradients(pixel_values):
    config = tiny_plus_config(drop_path_rate=0.2)
    labels = torch.rand(6, 17, 16, 12, generator=torch.Generator().manual_seed(1))
    grads = []
    for checkpointing in (False, True):
        model = make_model(config).train()
        for module in model.modules():  # BatchNorm batch statistics would differ between runs otherwise
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()
        if checkpointing:
            enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
            enable()
            assert all(layer.gradient_checkpointing for layer in model.backbone.layers)
        torch.manual_seed(7)  # same drop-path draws
        model(pixel_values, dataset_index=MIXED_INDEX, labels=labels).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5, msg=name)


def test_sdpa_and_eager_agree(pixel_values):
    config = tiny_plus_config()
    model = make_model(config)
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        sdpa = model(pixel_values, dataset_index=MIXED_INDEX).heatmaps
        model.set_attn_implementation("eager")
        assert model.config._attn_implementation == "eager"
        eager = model(pixel_values, dataset_index=MIXED_INDEX).heatmaps
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=0)


def test_drop_path_is_per_sample_and_off_in_eval(pixel_values):
    model = make_model(tiny_config(drop_path_rate=0.5, num_hidden_layers=3))
    rates = [layer.drop_path.drop_prob for layer in model.backbone.layers]
    assert rates == pytest.approx([0.0, 0.25, 0.5])
    with torch.no_grad():
        assert torch.equal(model(pixel_values).heatmaps, model(pixel_values).heatmaps)
        model.train()
        torch.manual_seed(0)
        a = model.backbone(pixel_values).feature_map
        torch.manual_seed(1)
        b = model.backbone(pixel_values).feature_map
    assert not torch.allclose(a, b)


def test_windowed_attention(pixel_values):
    base = make_model(tiny_config())
    # One window of exactly the grid's size (4x4 tokens, no padding) is global attention.
    config = tiny_config(image_size=(64, 64), window_size=4, global_attention_indexes=[1])
    windowed = make_model(config)
    square = torch.randn(2, 3, 64, 64)
    glob = make_model(tiny_config(image_size=(64, 64)))
    with torch.no_grad():
        torch.testing.assert_close(windowed(square).heatmaps, glob(square).heatmaps, atol=1e-5, rtol=0)
    assert windowed.backbone.layers[0].attention.window_size == 4
    assert windowed.backbone.layers[1].attention.window_size is None
    # Real windows at 2x input size: attention maps are per window, output shape unchanged.
    big = make_model(tiny_config(image_size=(128, 96), window_size=2, global_attention_indexes=[1]))
    out = big.backbone(torch.randn(1, 3, 128, 96), output_attentions=True)
    assert out.feature_map.shape == (1, 32, 8, 6)
    assert out.attentions[0].shape == (12, 4, 4, 4) and out.attentions[1].shape == (1, 4, 48, 48)
    assert base.backbone.layers[0].attention.window_size is None


def test_position_interpolation(pixel_values):
    model = make_model(tiny_config())
    big = torch.randn(2, 3, 128, 96)
    with pytest.raises(ValueError, match=r"128x96 does not match the model's 64x48"):
        model(big)
    with torch.no_grad():
        out = model(big, interpolate_pos_encoding=True).heatmaps
        same = model(pixel_values, interpolate_pos_encoding=True).heatmaps
        plain = model(pixel_values).heatmaps
    assert out.shape == (2, 17, 32, 24)
    assert torch.equal(same, plain)
    table = model.backbone.embeddings.interpolated_position_table(8, 6)
    pos = model.backbone.embeddings.position_embeddings
    grid = pos[:, 1:].reshape(1, 4, 3, 32).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(8, 6), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    torch.testing.assert_close(table, expected.reshape(1, 48, 32) + pos[:, :1])


def test_freezing_and_layer_decay_groups():
    model = VitPosePlusForPoseEstimation(tiny_plus_config(freeze_attention=True))
    layer = model.backbone.layers[0]
    assert not any(p.requires_grad for p in layer.attention.parameters())
    assert not layer.norm1.weight.requires_grad and layer.norm2.weight.requires_grad
    assert all(p.requires_grad for p in layer.mlp.parameters())
    frozen_ffn = VitPosePlusForPoseEstimation(tiny_plus_config(freeze_ffn=True))
    assert not any(p.requires_grad for p in frozen_ffn.backbone.layers[1].mlp.parameters())
    assert all(p.requires_grad for p in frozen_ffn.backbone.layers[1].attention.parameters())

    groups = frozen_ffn.layer_decay_parameter_groups(learning_rate=1e-3, weight_decay=0.1, layer_decay=0.5)
    by_name = {name: g for g in groups for name in g["param_names"]}
    assert "backbone.layers.0.mlp.fc1.weight" not in by_name  # frozen parameters are left out
    L = 2
    assert by_name["backbone.embeddings.patch_embeddings.weight"]["lr"] == pytest.approx(1e-3 * 0.5 ** (L + 1))
    assert by_name["backbone.embeddings.position_embeddings"]["weight_decay"] == 0.0
    assert by_name["backbone.embeddings.patch_embeddings.bias"]["weight_decay"] == 0.0
    assert by_name["backbone.layers.0.attention.qkv.weight"]["lr"] == pytest.approx(1e-3 * 0.5**2)
    assert by_name["backbone.layers.0.attention.qkv.weight"]["weight_decay"] == 0.1
    assert by_name["backbone.layers.1.norm1.weight"]["weight_decay"] == 0.0
    assert by_name["backbone.layers.1.attention.proj.weight"]["lr"] == pytest.approx(1e-3 * 0.5)
    assert by_name["backbone.layernorm.weight"]["lr"] == pytest.approx(1e-3)
    assert by_name["heads.2.conv.weight"]["lr"] == pytest.approx(1e-3)
    assert by_name["heads.2.conv.weight"]["weight_decay"] == 0.1
    total = sum(len(g["params"]) for g in groups)
    assert total == sum(1 for p in frozen_ffn.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------------------------------------- save/load
def test_save_and_load_round_trip(tmp_path, pixel_values):
    model = make_model(tiny_plus_config())
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "vitpose_plus"
    assert config["auto_map"]["AutoModel"] == "modeling_vitpose_plus.VitPosePlusModel"
    assert config["auto_map"]["AutoModelForPoseEstimation"] == "modeling_vitpose_plus.VitPosePlusForPoseEstimation"
    assert [d["name"] for d in config["datasets"]] == ["coco", "aic", "mpii"]
    for module_file in ("modeling_vitpose_plus.py", "configuration_vitpose_plus.py", "dataset_specs.py"):
        assert (tmp_path / module_file).exists()
    loaded = VitPosePlusForPoseEstimation.from_pretrained(tmp_path).eval()
    assert loaded.config.dataset_spec("aic") == model.config.dataset_spec("aic")
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(pixel_values, dataset_index=MIXED_INDEX).heatmaps,
            model(pixel_values, dataset_index=MIXED_INDEX).heatmaps,
            atol=0,
            rtol=0,
        )
    from transformers import AutoModel, AutoModelForPoseEstimation

    assert isinstance(AutoModelForPoseEstimation.from_pretrained(tmp_path), VitPosePlusForPoseEstimation)
    backbone = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(backbone, VitPosePlusModel)
    with torch.no_grad():
        torch.testing.assert_close(
            backbone(pixel_values, dataset_index=MIXED_INDEX).feature_map,
            model.backbone(pixel_values, dataset_index=MIXED_INDEX).feature_map,
            atol=0,
            rtol=0,
        )


def test_trust_remote_code_in_fresh_process(tmp_path, pixel_values):
    model = make_model(tiny_plus_config())
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    torch.save(pixel_values, tmp_path / "pixels.pt")
    with torch.no_grad():
        expected = model(pixel_values, dataset_index=MIXED_INDEX).heatmaps
    script = textwrap.dedent(
        f"""
        import sys, torch
        from transformers import AutoModel, AutoModelForPoseEstimation
        model = AutoModelForPoseEstimation.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        backbone = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True)
        assert not any(name.startswith("vitpose_plus") for name in sys.modules), "vitpose_plus was imported"
        assert type(backbone).__name__ == "VitPosePlusModel", type(backbone)
        x = torch.load({str(tmp_path / "pixels.pt")!r})
        with torch.no_grad():
            out = model(x, dataset_index=torch.tensor({MIXED_INDEX.tolist()})).heatmaps
        torch.save(out, {str(tmp_path / "out.pt")!r})
        """
    )
    run_without_package(script, tmp_path)
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), expected, atol=0, rtol=0)


# ----------------------------------------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors(pixel_values):
    model = make_model(tiny_plus_config())
    with pytest.raises(ValueError, match=r"pass dataset_index"):
        model(pixel_values)
    with pytest.raises(ValueError, match=r"dataset_index 3 is out of range.*indices 0\.\.2"):
        model(pixel_values, dataset_index=torch.tensor([0, 1, 2, 3, 0, 0]))
    with pytest.raises(ValueError, match=r"[Dd]ataset index -1 is out of range"):
        model(pixel_values, dataset_index=-1)
    with pytest.raises(ValueError, match=r"Unknown dataset 'ap10k'; this model has the datasets \['coco', 'aic'"):
        model(pixel_values, dataset_index="ap10k")
    with pytest.raises(ValueError, match=r"shape \(batch_size,\) = \(6,\), got \(4,\)"):
        model(pixel_values, dataset_index=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"must hold integers"):
        model(pixel_values, dataset_index=torch.zeros(6))
    with pytest.raises(ValueError, match=r"\(batch_size, 3, height, width\), got \(6, 1, 64, 48\)"):
        model(pixel_values[:, :1], dataset_index=0)
    with pytest.raises(ValueError, match=r"Input image size 32x48 does not match"):
        model(pixel_values[:, :, :32], dataset_index=0)
    with pytest.raises(ValueError, match=r"labels must have shape .*\(6, 17, 16, 12\), got \(6, 14, 16, 12\)"):
        model(pixel_values, dataset_index=0, labels=torch.zeros(6, 14, 16, 12))
    with pytest.raises(ValueError, match=r"label_weights must have shape .*\(6, 17\), got \(6, 16\)"):
        model(pixel_values, dataset_index=0, labels=torch.zeros(6, 17, 16, 12), label_weights=torch.ones(6, 16))
    with pytest.raises(ValueError, match=r"Unknown dataset 'horse'"):
        model.merge_experts("horse")


def test_config_validation_errors():
    with pytest.raises(ValueError, match="decoder_type"):
        tiny_config(decoder_type="fancy")
    with pytest.raises(ValueError, match=r"part_features"):
        tiny_config(num_experts=2, part_features=0, datasets=["coco", "aic"])
    with pytest.raises(ValueError, match=r"routes to expert 5"):
        tiny_config(num_experts=2, part_features=8, datasets=["coco", {**tiny_config().datasets[0], "name": "x",
                                                                        "expert_index": 5}])
    with pytest.raises(ValueError, match=r"Unknown preset 'vitpose-tiny'"):
        VitPosePlusConfig.from_preset("vitpose-tiny")
    with pytest.raises(ValueError, match=r"Unknown keypoint dataset 'zebra'"):
        tiny_config(datasets=["zebra"])
    with pytest.raises(ValueError, match=r"hidden_size.*multiple of `num_attention_heads`"):
        tiny_config(hidden_size=30)


def test_config_rejects_misspelt_fields_and_wrong_types():
    # A typo must not become a junk key while the real field keeps its default (the run would train another model).
    with pytest.raises(ValueError, match=r"'drop_path_rat' \(did you mean 'drop_path_rate'\?\)"):
        tiny_config(drop_path_rat=0.1)
    with pytest.raises(ValueError, match=r"'num_hiden_layers' \(did you mean 'num_hidden_layers'\?\)"):
        VitPosePlusConfig.from_preset("vitpose-base", num_hiden_layers=2)
    with pytest.raises(ValueError, match=r"hidden_size = '32' \(str\) does not have the expected type int"):
        tiny_config(hidden_size="32")
    with pytest.raises(ValueError, match=r"drop_path_rate.*\[0, 1\)"):
        tiny_config(drop_path_rate=1.5)
    # transformers' own keys still pass, and id2label follows the first dataset's keypoints (transformers' VitPose).
    config = tiny_config(attn_implementation="eager", output_attentions=True)
    assert config.id2label[0] == "nose" and config.label2id["right_ankle"] == 16 and config.num_labels == 17


def test_loss_is_finite_in_bf16_autocast(pixel_values):
    model = make_model(tiny_plus_config()).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(pixel_values, dataset_index=MIXED_INDEX, labels=torch.rand(6, 17, 16, 12))
    assert out.loss.dtype == torch.float32 and math.isfinite(out.loss.item())
