"""MAE pre-training model: sin-cos tables, patches, masking, loss, 2-D table rebuilding, save/load, remote code."""

from __future__ import annotations

import json
import math
import textwrap

import pytest
import torch
import torch.nn.functional as F
from helpers import run_without_package

from vitpose_plus.modeling import (
    VitPosePlusConfig,
    VitPosePlusForMaskedImageModeling,
    VitPosePlusMAEConfig,
    VitPosePlusModel,
)
from vitpose_plus.modeling.modeling_vitpose_plus_mae import (
    build_2d_sincos_position_table,
    patch_coverage,
    patchify,
    random_masking,
    unpatchify,
)

TINY_MAE = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": (64, 48),
    "decoder_hidden_size": 16,
    "decoder_num_hidden_layers": 2,
    "decoder_num_attention_heads": 4,
}


def tiny_mae(seed: int = 0, **overrides) -> VitPosePlusForMaskedImageModeling:
    """A 2-block width-32 encoder on 64x48 inputs (grid 4x3, 12 patches, 3 visible), decoder width 16; every
    trainable weight perturbed so that parity tests see non-trivial values."""
    torch.manual_seed(seed)
    model = VitPosePlusForMaskedImageModeling(VitPosePlusMAEConfig(**{**TINY_MAE, **overrides}))
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    return model.eval()


def sincos_reference(dim: int, rows: int, cols: int) -> torch.Tensor:
    """MAE's table written out per entry: token r * cols + c; channel j in quarter q = j // (dim/4), k = j % (dim/4):
    q0 sin(c w_k), q1 cos(c w_k), q2 sin(r w_k), q3 cos(r w_k), w_k = 10000^(-k / (dim/4)); zero cls row first."""
    quarter = dim // 4
    out = torch.zeros(1 + rows * cols, dim, dtype=torch.float64)
    for r in range(rows):
        for c in range(cols):
            for j in range(dim):
                q, k = divmod(j, quarter)
                pos = c if q < 2 else r
                angle = pos * 10000.0 ** (-k / quarter)
                out[1 + r * cols + c, j] = math.sin(angle) if q % 2 == 0 else math.cos(angle)
    return out


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(3, 3, 64, 48, generator=torch.Generator().manual_seed(7))


# ----------------------------------------------------------------------------------------------------------- tables
def test_sincos_table_rectangular_grid_matches_independent_formula():
    table = build_2d_sincos_position_table(24, 16, 12)
    assert table.shape == (1 + 16 * 12, 24) and table.dtype == torch.float32
    torch.testing.assert_close(table.double(), sincos_reference(24, 16, 12), atol=1e-7, rtol=0)
    # Token (r=2, c=5): the first half encodes the column, the second half the row (MAE's meshgrid(w, h) order).
    token = table[1 + 2 * 12 + 5]
    assert token[0].item() == pytest.approx(math.sin(5.0), abs=1e-7)
    assert token[12].item() == pytest.approx(math.sin(2.0), abs=1e-7)
    assert torch.count_nonzero(table[0]) == 0


def test_sincos_table_matches_transformers_vit_mae_layout():
    from transformers.models.vit_mae.modeling_vit_mae import build_2d_sinusoidal_position_embedding

    hf = build_2d_sinusoidal_position_embedding(16, 12, embed_dim=32, cls_token=True, dtype=torch.float64)
    hf = torch.cat([hf[:, 16:], hf[:, :16]], dim=1)  # transformers rotates the halves into MAE's layout
    torch.testing.assert_close(build_2d_sincos_position_table(32, 16, 12).double(), hf, atol=1e-7, rtol=0)


def test_model_tables_are_frozen_sincos_with_zero_slot():
    model = tiny_mae(seed=3)
    enc = model.backbone.embeddings.position_embeddings
    dec = model.decoder.position_embeddings
    assert enc.shape == (1, 13, 32) and dec.shape == (1, 13, 16)
    assert not enc.requires_grad and not dec.requires_grad
    torch.testing.assert_close(enc[0].double(), sincos_reference(32, 4, 3), atol=1e-7, rtol=0)
    torch.testing.assert_close(dec[0].double(), sincos_reference(16, 4, 3), atol=1e-7, rtol=0)
    names = [n for group in model.pretraining_parameter_groups() for n in group["param_names"]]
    assert "backbone.embeddings.position_embeddings" not in names and "decoder.position_embeddings" not in names


def test_pretraining_parameter_groups_follow_mae():
    model = tiny_mae()
    decay, no_decay = model.pretraining_parameter_groups(weight_decay=0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert "decoder.mask_token" in decay["param_names"]  # 3-D: MAE's add_weight_decay decays it
    assert "backbone.layers.0.norm1.weight" in no_decay["param_names"]
    assert "backbone.layers.0.attention.qkv.bias" in no_decay["param_names"]
    assert "backbone.layers.0.attention.qkv.weight" in decay["param_names"]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(decay["param_names"]) | set(no_decay["param_names"]) == trainable
    assert not set(decay["param_names"]) & set(no_decay["param_names"])


# ---------------------------------------------------------------------------------------------------------- patches
def test_patchify_matches_the_padded_patch_convolution():
    """Each patch equals the window the padded conv reads for its token: an identity kernel (768 = 16*16*3 output
    channels, one per input value) turns the conv output into the raw windows."""
    x = torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(0))
    patches = patchify(x, 16, 2)
    assert patches.shape == (2, 16 * 12, 768)
    eye = torch.eye(3 * 16 * 16).reshape(3 * 16 * 16, 3, 16, 16)  # output channel (c, i, j) reads x[c, i, j]
    windows = F.conv2d(x, eye, stride=16, padding=2)  # (2, 768, 16, 12)
    windows = windows.reshape(2, 3, 16, 16, 16 * 12).permute(0, 4, 2, 3, 1).reshape(2, 192, 768)  # (i, j, c)
    torch.testing.assert_close(patches, windows, atol=0, rtol=0)
    # Token (r, c) sees input rows 16 r - 2 .. 16 r + 13: patch (1, 0) starts with x[:, 14, 0] at (i=0, j=2).
    torch.testing.assert_close(patches[:, 12].reshape(2, 16, 16, 3)[:, 0, 2], x[:, :, 14, 0], atol=0, rtol=0)


def test_patchify_unpatchify_round_trip_at_256x192():
    x = torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(1))
    patches = patchify(x, 16, 2)
    back = unpatchify(patches, (256, 192), 16, 2)
    coverage = patch_coverage((256, 192), 16, 2)
    assert coverage.shape == (256, 192)
    assert coverage[:254, :190].all() and not coverage[254:].any() and not coverage[:, 190:].any()
    torch.testing.assert_close(back, x * coverage, atol=0, rtol=0)
    torch.testing.assert_close(patchify(back, 16, 2), patches, atol=0, rtol=0)
    # Square inputs and no padding: the plain MAE layout.
    y = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(unpatchify(patchify(y, 16, 0), (224, 224), 16, 0), y, atol=0, rtol=0)
    mae_layout = y.reshape(1, 3, 14, 16, 14, 16).permute(0, 2, 4, 3, 5, 1).reshape(1, 196, 768)
    torch.testing.assert_close(patchify(y, 16, 0), mae_layout, atol=0, rtol=0)
    with pytest.raises(ValueError, match="do not fit a 256x192 image"):
        unpatchify(patches[:, :-1], (256, 192), 16, 2)


# ---------------------------------------------------------------------------------------------------------- masking
def test_random_masking_shapes_and_determinism():
    tokens = torch.randn(4, 12, 8)
    noise = torch.rand(4, 12, generator=torch.Generator().manual_seed(2))
    visible, mask, ids_restore, ids_keep = random_masking(tokens, 0.75, noise)
    assert visible.shape == (4, 3, 8) and mask.shape == (4, 12) and ids_restore.shape == (4, 12)
    assert torch.equal(mask.sum(1), torch.full((4,), 9.0))
    for b in range(4):
        kept = torch.argsort(noise[b])[:3]  # the three smallest noise values stay visible
        assert torch.equal(ids_keep[b], kept)
        torch.testing.assert_close(visible[b], tokens[b, kept], atol=0, rtol=0)
        expected = torch.ones(12)
        expected[kept] = 0
        assert torch.equal(mask[b], expected)
        assert torch.equal(torch.sort(ids_restore[b]).values, torch.arange(12))
    again = random_masking(tokens, 0.75, noise.clone())
    assert all(torch.equal(a, b) for a, b in zip(again, (visible, mask, ids_restore, ids_keep)))
    with pytest.raises(ValueError, match=r"noise must have shape \(batch_size, num_patches\) = \(4, 12\)"):
        random_masking(tokens, 0.75, torch.rand(4, 11))
    with pytest.raises(ValueError, match="leaves no visible patch"):
        random_masking(tokens, 0.99, None)


def test_forward_deterministic_with_noise_and_shapes(images):
    model = tiny_mae()
    noise = torch.rand(3, 12, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        first = model(images, noise=noise, output_hidden_states=True, output_attentions=True)
        second = model(images, noise=noise, output_hidden_states=True, output_attentions=True)
        other = model(images, noise=torch.rand(3, 12, generator=torch.Generator().manual_seed(5)))
    assert first.logits.shape == (3, 12, 16 * 16 * 3)
    assert first.mask.shape == (3, 12) and first.ids_restore.shape == (3, 12)
    assert first.last_hidden_state.shape == (3, 3, 32)
    assert len(first.hidden_states) == 3 and first.hidden_states[0].shape == (3, 3, 32)
    assert len(first.attentions) == 2 and first.attentions[0].shape == (3, 4, 3, 3)
    assert torch.equal(first.logits, second.logits) and torch.equal(first.loss, second.loss)
    assert not torch.equal(first.mask, other.mask)
    as_tuple = model(images, noise=noise, return_dict=False)
    assert len(as_tuple) == 5  # loss, logits, mask, ids_restore, last_hidden_state
    torch.testing.assert_close(as_tuple[0], first.loss, atol=1e-6, rtol=0)


def test_encoder_is_the_vitpose_backbone(images):
    """With nothing masked and the identity order, the MAE encoder computes exactly `VitPosePlusModel` with the
    same `backbone.*` weights (the stored position table, slot 0 added to every token)."""
    model = tiny_mae(mask_ratio=0.0)
    with torch.no_grad():
        model.backbone.embeddings.position_embeddings[:, 0].normal_()  # slot 0 must be added to every token
    pose_config = VitPosePlusConfig(**{k: v for k, v in TINY_MAE.items() if not k.startswith("decoder_")})
    backbone = VitPosePlusModel(pose_config).eval()
    state = {k[len("backbone."):]: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    backbone.load_state_dict(state, strict=True)
    noise = torch.arange(12.0).expand(3, 12)
    with torch.no_grad():
        ours = model(images, noise=noise).last_hidden_state
        expected = backbone(images).last_hidden_state
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------------------- loss
def _reference_loss(x: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor, norm_pix: bool) -> torch.Tensor:
    """MAE's forward_loss by hand: per masked patch, the mean squared error to the (normalised) padded window."""
    padded = F.pad(x, (2, 2, 2, 2))
    total, count = 0.0, 0
    for b in range(x.shape[0]):
        for t in range(mask.shape[1]):
            if mask[b, t] == 0:
                continue
            r, c = divmod(t, 3)
            window = padded[b, :, 16 * r : 16 * r + 16, 16 * c : 16 * c + 16].permute(1, 2, 0).reshape(-1).double()
            if norm_pix:
                window = (window - window.mean()) / (window.var(unbiased=True) + 1e-6).sqrt()
            total += float(((logits[b, t].detach().double() - window) ** 2).mean())
            count += 1
    return torch.tensor(total / count, dtype=torch.float64)


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_loss_only_on_masked_patches(images, norm_pix_loss):
    model = tiny_mae(norm_pix_loss=norm_pix_loss)
    noise = torch.rand(3, 12, generator=torch.Generator().manual_seed(6))
    out = model(images, noise=noise)
    torch.testing.assert_close(out.loss.double(), _reference_loss(images, out.logits, out.mask, norm_pix_loss),
                               atol=1e-6, rtol=1e-6)
    # Changing the predictions of visible patches changes nothing; their gradient is zero.
    logits = out.logits.detach().clone().requires_grad_(True)
    changed = logits + 100.0 * (1 - out.mask).unsqueeze(-1)
    loss = model.masked_patch_loss(images, changed, out.mask)
    torch.testing.assert_close(loss, out.loss.detach(), atol=1e-6, rtol=1e-6)
    loss.backward()
    visible = out.mask == 0
    assert logits.grad[visible].abs().max() == 0 and logits.grad[~visible].abs().max() > 0


def test_loss_backward_reaches_encoder_and_decoder_not_tables(images):
    model = tiny_mae().train()
    model(images).loss.backward()
    assert model.backbone.layers[0].attention.qkv.weight.grad.abs().sum() > 0
    assert model.backbone.embeddings.patch_embeddings.weight.grad.abs().sum() > 0
    assert model.decoder.mask_token.grad.abs().sum() > 0
    assert model.backbone.embeddings.position_embeddings.grad is None
    assert model.decoder.position_embeddings.grad is None


def test_reconstruct_patches_undoes_norm_pix(images):
    model = tiny_mae()
    target = model.patchify(images)
    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
    normalised = (target - mean) / (var + 1e-6).sqrt()
    torch.testing.assert_close(model.reconstruct_patches(images, normalised), target, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------------------- other input sizes
def test_rebuilt_tables_for_another_grid_are_2d_sincos():
    model = tiny_mae()
    with torch.no_grad():
        model.backbone.embeddings.position_embeddings[:, 0] = 0.5  # slot 0 still added to every token
    enc, dec = model.position_tables((6, 4))
    assert enc.shape == (1, 24, 32) and dec.shape == (1, 24, 16)
    torch.testing.assert_close(enc[0].double(), sincos_reference(32, 6, 4)[1:] + 0.5, atol=1e-6, rtol=0)
    torch.testing.assert_close(dec[0].double(), sincos_reference(16, 6, 4)[1:], atol=1e-6, rtol=0)


def test_interpolate_pos_encoding_equals_a_model_built_for_that_size():
    """A 64x48 model on 96x64 inputs (grid 6x4) computes what the same weights built for 96x64 compute."""
    small = tiny_mae()
    large = VitPosePlusForMaskedImageModeling(VitPosePlusMAEConfig(**{**TINY_MAE, "image_size": (96, 64)})).eval()
    tables = ("backbone.embeddings.position_embeddings", "decoder.position_embeddings")
    state = {k: v for k, v in small.state_dict().items() if k not in tables}
    missing, unexpected = large.load_state_dict(state, strict=False)
    assert sorted(missing) == sorted(tables) and not unexpected
    x = torch.randn(2, 3, 96, 64, generator=torch.Generator().manual_seed(8))
    noise = torch.rand(2, 24, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        ours = small(x, noise=noise, interpolate_pos_encoding=True)
        expected = large(x, noise=noise)
    assert ours.logits.shape == (2, 24, 768) and ours.mask.sum() == 2 * 18
    torch.testing.assert_close(ours.logits, expected.logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.loss, expected.loss, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="does not match the model's 64x48"):
        small(x)


def test_square_input_size():
    model = tiny_mae(image_size=(64, 64))
    assert model.config.grid_size == (4, 4)
    out = model(torch.randn(1, 3, 64, 64))
    assert out.logits.shape == (1, 16, 768) and out.mask.sum() == 12


def test_config_validation_names_the_field():
    with pytest.raises(Exception, match="num_experts"):
        VitPosePlusMAEConfig(**TINY_MAE, num_experts=2, part_features=8)
    with pytest.raises(Exception, match="mask_ratio"):
        VitPosePlusMAEConfig(**TINY_MAE, mask_ratio=1.0)
    with pytest.raises(Exception, match="window_size"):
        VitPosePlusMAEConfig(**TINY_MAE, window_size=2)
    with pytest.raises(Exception, match="decoder_hidden_size"):
        VitPosePlusMAEConfig(**{**TINY_MAE, "decoder_hidden_size": 18, "decoder_num_attention_heads": 3})
    config = VitPosePlusMAEConfig.from_preset("vitpose-plus-base")
    assert (config.hidden_size, config.num_experts, config.drop_path_rate, config.decoder_hidden_size) == (
        768, 1, 0.0, 512)
    assert config.grid_size == (16, 12) and config.num_visible_patches == 48


def test_decoder_follows_the_attention_implementation(images):
    model = tiny_mae()
    noise = torch.rand(3, 12, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        sdpa = model(images, noise=noise).logits
        model.set_attn_implementation("eager")
        assert model.decoder.layers[0].attention.config._attn_implementation == "eager"
        eager = model(images, noise=noise).logits
    torch.testing.assert_close(eager, sdpa, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------- save and load
def test_save_load_round_trip_and_auto_class(tmp_path, images):
    from transformers import AutoConfig, AutoModel, AutoModelForPreTraining

    model = tiny_mae()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "vitpose_plus_mae"
    assert config["auto_map"]["AutoConfig"] == "configuration_vitpose_plus_mae.VitPosePlusMAEConfig"
    assert config["auto_map"]["AutoModelForPreTraining"] == (
        "modeling_vitpose_plus_mae.VitPosePlusForMaskedImageModeling")
    assert config["auto_map"]["AutoModel"] == "modeling_vitpose_plus_mae.VitPosePlusMAEEncoder"
    assert "AutoModelForPoseEstimation" not in config["auto_map"]
    assert (tmp_path / "modeling_vitpose_plus_mae.py").is_file()
    assert isinstance(AutoConfig.from_pretrained(tmp_path), VitPosePlusMAEConfig)
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
    assert type(loaded) is VitPosePlusForMaskedImageModeling
    assert not loaded.backbone.embeddings.position_embeddings.requires_grad
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, atol=0, rtol=0, msg=name)
    noise = torch.rand(3, 12, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        torch.testing.assert_close(loaded(images, noise=noise).logits, model(images, noise=noise).logits,
                                   atol=0, rtol=0)
    encoder = AutoModel.from_pretrained(tmp_path).eval()  # the encoder alone: a ViTPose backbone
    assert type(encoder).__name__ == "VitPosePlusMAEEncoder" and isinstance(encoder, VitPosePlusModel)
    with torch.no_grad():
        torch.testing.assert_close(encoder(images).feature_map, model.backbone(images).feature_map, atol=0, rtol=0)


def test_trust_remote_code_in_fresh_process(tmp_path, images):
    model = tiny_mae()
    folder = tmp_path / "mae"
    model.save_pretrained(folder)
    noise = torch.rand(3, 12, generator=torch.Generator().manual_seed(12))
    torch.save({"x": images, "noise": noise}, tmp_path / "inputs.pt")
    with torch.no_grad():
        expected = model(images, noise=noise)
    script = textwrap.dedent(
        f"""
        import sys, torch
        from transformers import AutoModel, AutoModelForPreTraining
        model = AutoModelForPreTraining.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        encoder = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True)
        assert type(encoder).__name__ == "VitPosePlusMAEEncoder", type(encoder)
        assert not any(name.startswith("vitpose_plus") for name in sys.modules), "vitpose_plus was imported"
        assert type(model).__name__ == "VitPosePlusForMaskedImageModeling", type(model)
        assert type(model.config).__name__ == "VitPosePlusMAEConfig", type(model.config)
        inputs = torch.load({str(tmp_path / "inputs.pt")!r})
        with torch.no_grad():
            out = model(inputs["x"], noise=inputs["noise"])
        torch.save({{"logits": out.logits, "loss": out.loss}}, {str(tmp_path / "out.pt")!r})
        """
    )
    run_without_package(script, tmp_path)
    out = torch.load(tmp_path / "out.pt")
    torch.testing.assert_close(out["logits"], expected.logits, atol=0, rtol=0)
    torch.testing.assert_close(out["loss"], expected.loss, atol=0, rtol=0)
