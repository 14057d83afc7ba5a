"""Conversion tests on synthetic checkpoints built from the documented original layout (VITPOSE_REFERENCE.md 2.1).

Shapes are tiny (1-2 blocks) except where the family needs its real width (ViTPose+-S, D=384 with part_features 96,
to check that pf comes from the weights and the head count from the size).
"""

from __future__ import annotations

import json
import os

import pytest
import torch
import yaml

from vitpose_plus.conversion.checkpoint_io import CheckpointConversionError, load_state_dict_file
from vitpose_plus.conversion.convert_folders import from_transformers_folder, split_model_folder, to_transformers_folder
from vitpose_plus.conversion.convert_mae import (
    convert_mae_checkpoint,
    pad_patch_kernel,
    read_mae_state_dict,
    resize_position_table,
)
from vitpose_plus.conversion.convert_original import (
    IGNORE_SPLIT_EXPERT,
    IGNORE_SPLIT_HEAD,
    convert_original,
    convert_original_checkpoint,
    convert_original_state_dict,
)
from vitpose_plus.conversion.model_card import ModelCardInfo, render_model_card
from vitpose_plus.conversion.reference_forward import VerificationError, verify_against_reference
from vitpose_plus.modeling import VitPosePlusForPoseEstimation

PLUS_KEYPOINTS = (17, 14, 16, 17, 17, 133)


# ---------------------------------------------------------------------------------------------------------- builders


def _head(state: dict, prefix: str, dim: int, k: int, decoder: str, gen: torch.Generator, channels: int = 256) -> None:
    def rnd(*shape, std=0.05):
        return torch.randn(*shape, generator=gen) * std

    if decoder == "classic":
        for index, (cin, cout) in ((0, (dim, channels)), (3, (channels, channels))):
            state[f"{prefix}.deconv_layers.{index}.weight"] = rnd(cin, cout, 4, 4, std=(4 * cin) ** -0.5)
            bn = f"{prefix}.deconv_layers.{index + 1}"
            state[f"{bn}.weight"] = 1 + rnd(cout, std=0.1)
            state[f"{bn}.bias"] = rnd(cout, std=0.1)
            state[f"{bn}.running_mean"] = rnd(cout, std=0.1)
            state[f"{bn}.running_var"] = 0.5 + torch.rand(cout, generator=gen)
            state[f"{bn}.num_batches_tracked"] = torch.tensor(1234)
        state[f"{prefix}.final_layer.weight"] = rnd(k, channels, 1, 1, std=channels**-0.5)
    else:
        state[f"{prefix}.final_layer.weight"] = rnd(k, dim, 3, 3, std=(9 * dim) ** -0.5)
    state[f"{prefix}.final_layer.bias"] = rnd(k, std=0.1)


def make_original_state(
    dim: int = 48,
    depth: int = 2,
    experts: int = 0,
    part_features: int = 0,
    keypoints: tuple[int, ...] = (17,),
    decoder: str = "classic",
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """An original-layout state dict (`backbone.*`, `keypoint_head.*`, `associate_keypoint_heads.{j}.*`)."""
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape, std=0.1):
        return torch.randn(*shape, generator=gen) * std

    hidden = 4 * dim
    state = {
        "backbone.pos_embed": rnd(1, 193, dim, std=0.5),  # slot 0 non-zero, as in trained weights
        "backbone.patch_embed.proj.weight": rnd(dim, 3, 16, 16, std=(3 * 256) ** -0.5),
        "backbone.patch_embed.proj.bias": rnd(dim),
        "backbone.last_norm.weight": 1 + rnd(dim),
        "backbone.last_norm.bias": rnd(dim),
    }
    for i in range(depth):
        p = f"backbone.blocks.{i}"
        for norm in ("norm1", "norm2"):
            state[f"{p}.{norm}.weight"] = 1 + rnd(dim)
            state[f"{p}.{norm}.bias"] = rnd(dim)
        state[f"{p}.attn.qkv.weight"] = rnd(3 * dim, dim, std=2 * dim**-0.5)
        state[f"{p}.attn.qkv.bias"] = rnd(3 * dim)
        state[f"{p}.attn.proj.weight"] = rnd(dim, dim, std=dim**-0.5)
        state[f"{p}.attn.proj.bias"] = rnd(dim)
        state[f"{p}.mlp.fc1.weight"] = rnd(hidden, dim, std=dim**-0.5)
        state[f"{p}.mlp.fc1.bias"] = rnd(hidden)
        shared = dim - part_features if experts else dim
        state[f"{p}.mlp.fc2.weight"] = rnd(shared, hidden, std=hidden**-0.5)
        state[f"{p}.mlp.fc2.bias"] = rnd(shared)
        for e in range(experts):
            state[f"{p}.mlp.experts.{e}.weight"] = rnd(part_features, hidden, std=hidden**-0.5)
            state[f"{p}.mlp.experts.{e}.bias"] = rnd(part_features)
    for j, k in enumerate(keypoints):
        _head(state, "keypoint_head" if j == 0 else f"associate_keypoint_heads.{j - 1}", dim, k, decoder, gen)
    return state


def model_split(state: dict[str, torch.Tensor], out: str) -> dict[str, torch.Tensor]:
    """The original tools/model_split.py, bugs included (experts kept; coco.pth keeps every associate head)."""
    names = ["coco", "aic", "mpii", "ap10k", "apt36k", "wholebody"]
    index = names.index(out)
    new = dict(state)
    for key in list(new):
        if key.endswith("mlp.fc2.weight") or key.endswith("mlp.fc2.bias"):
            param = key.rsplit(".", 1)[1]
            expert = key.replace(f"fc2.{param}", f"experts.{index}.{param}")
            new[key] = torch.cat([state[key], state[expert]], dim=0)
    if index > 0:
        prefix = f"associate_keypoint_heads.{index - 1}."
        for key in list(new):
            if key.startswith(prefix):
                new["keypoint_head." + key[len(prefix) :]] = state[key]
        for key in list(new):
            if key.startswith("associate_keypoint_heads."):
                new.pop(key)
    return new


def save_pth(state: dict, path, wrap: str | None = "state_dict") -> str:
    obj = {wrap: state, "meta": {"epoch": 210}} if wrap else state
    torch.save(obj, path)
    return str(path)


@pytest.fixture(scope="module")
def plus_small_state() -> dict[str, torch.Tensor]:
    """ViTPose+-S widths: D=384, 6 experts of 96 (the released pf, not the config's 192), six heads; one block."""
    return make_original_state(dim=384, depth=1, experts=6, part_features=96, keypoints=PLUS_KEYPOINTS, seed=1)


@pytest.fixture(scope="module")
def plus_small(plus_small_state):
    return convert_original_state_dict(plus_small_state, source="vitpose+_small.pth")


# ---------------------------------------------------------------------------------------------------------- original


def test_dense_classic_converts_exactly(tmp_path):
    state = make_original_state()
    state["backbone.cls_token"] = torch.zeros(1, 1, 48)  # some files carry it (ViTPose #34)
    path = save_pth({"module." + k: v for k, v in state.items()}, tmp_path / "vitpose-b.pth")
    result = convert_original(path, num_attention_heads=12, verify=True)
    config = result.model.config
    assert (config.hidden_size, config.num_hidden_layers, config.num_experts) == (48, 2, 1)
    assert config.decoder_type == "classic" and config.dataset_names == ["coco"]
    assert config.layer_norm_eps == 1e-6 and config.patch_padding == 2
    assert max(result.verification.values()) < 1e-4
    assert set(result.ignored) == {
        "backbone.cls_token",
        "keypoint_head.deconv_layers.1.num_batches_tracked",
        "keypoint_head.deconv_layers.4.num_batches_tracked",
    }
    assert len(result.mapped) + len(result.ignored) == len(state)
    ours = result.model.state_dict()
    assert torch.equal(ours["backbone.layers.1.attention.qkv.weight"], state["backbone.blocks.1.attn.qkv.weight"])
    assert torch.equal(
        ours["heads.0.deconv_layers.1.batchnorm.running_var"], state["keypoint_head.deconv_layers.4.running_var"]
    )


def test_dense_simple_and_multi_head(tmp_path):
    state = make_original_state(dim=48, depth=1, keypoints=(17, 14, 16), decoder="simple", seed=2)
    path = save_pth(state, tmp_path / "vitpose_base_coco_aic_mpii.pth", wrap=None)
    result = convert_original(path, num_attention_heads=12, verify=True)
    config = result.model.config
    assert config.decoder_type == "simple" and config.final_conv_kernel == 3
    assert config.dataset_names == ["coco", "aic", "mpii"]
    assert result.head_prefixes == ["keypoint_head", "associate_keypoint_heads.0", "associate_keypoint_heads.1"]
    assert set(result.verification) == {"coco", "aic", "mpii"}
    assert result.ignored == {}


def test_plus_small_six_heads_part_features_from_weights(plus_small, plus_small_state):
    config = plus_small.model.config
    assert plus_small.preset == "vitpose-plus-small"
    assert config.num_attention_heads == 12 and config.num_experts == 6 and config.part_features == 96
    assert config.dataset_names == ["coco", "aic", "mpii", "ap10k", "apt36k", "coco_wholebody"]
    assert [config.expert_of(d) for d in range(6)] == list(range(6))
    assert [len(d["keypoint_names"]) for d in config.datasets] == list(PLUS_KEYPOINTS)
    diffs = verify_against_reference(plus_small.model, plus_small_state, plus_small.head_prefixes, batch_size=1)
    assert set(diffs) == set(config.dataset_names) and max(diffs.values()) < 1e-4


def test_verification_catches_a_wrong_mapping(plus_small, plus_small_state):
    model = VitPosePlusForPoseEstimation(plus_small.model.config).eval()
    model.load_state_dict(plus_small.model.state_dict())
    with torch.no_grad():  # swap two experts: only the reference comparison can notice
        layer = model.backbone.layers[0].mlp
        w1, w2 = layer.experts[1].weight.clone(), layer.experts[2].weight.clone()
        layer.experts[1].weight.copy_(w2)
        layer.experts[2].weight.copy_(w1)
    with pytest.raises(VerificationError, match="aic"):
        verify_against_reference(model, plus_small_state, plus_small.head_prefixes, batch_size=1)


@pytest.mark.parametrize("dataset", ["coco", "aic", "coco_wholebody"])
def test_model_split_outputs_with_leftovers(plus_small, plus_small_state, dataset):
    split = model_split(plus_small_state, "wholebody" if dataset == "coco_wholebody" else dataset)
    result = convert_original_state_dict(split, source=f"/ckpts/{dataset}.pth")
    config = result.model.config
    assert config.num_experts == 1 and config.dataset_names == [dataset]
    assert result.layout.is_split_output
    expert_keys = [k for k in split if ".mlp.experts." in k]
    assert expert_keys and all(result.ignored[k] == IGNORE_SPLIT_EXPERT for k in expert_keys)
    heads_left = [k for k in split if k.startswith("associate_keypoint_heads.")]
    assert bool(heads_left) == (dataset == "coco")  # model_split.py keeps them in coco.pth only
    assert all(result.ignored[k] == IGNORE_SPLIT_HEAD for k in heads_left)
    assert max(verify_against_reference(result.model, split, result.head_prefixes).values()) < 1e-4
    # the same as our own split of the full ViTPose+ model
    ours = plus_small.model.merge_experts(dataset).state_dict()
    theirs = result.model.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(ours[key], theirs[key]), key


def test_split_apt36k_needs_file_name_or_datasets(plus_small_state):
    split = model_split(plus_small_state, "apt36k")
    assert convert_original_state_dict(split, source="apt36k.pth").model.config.dataset_names == ["apt36k"]
    assert convert_original_state_dict(split, source="x.pth", datasets=["ap10k"]).model.config.dataset_names == [
        "ap10k"
    ]


@pytest.mark.parametrize(
    "corrupt, key",
    [
        (
            lambda s: s.__setitem__("backbone.blocks.0.attn.extra_scale", torch.ones(1)),
            "backbone.blocks.0.attn.extra_scale",
        ),
        (lambda s: s.pop("backbone.blocks.1.norm1.weight"), "backbone.blocks.1.norm1.weight"),
        (
            lambda s: s.__setitem__("backbone.blocks.1.attn.proj.weight", torch.zeros(48, 40)),
            "backbone.blocks.1.attn.proj.weight",
        ),
        (lambda s: s.pop("keypoint_head.deconv_layers.4.running_mean"), "keypoint_head.deconv_layers.4.running_mean"),
    ],
    ids=["extra", "missing", "shape", "missing-buffer"],
)
def test_bad_keys_stop_the_conversion(tmp_path, corrupt, key):
    state = make_original_state()
    corrupt(state)
    path = save_pth(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointConversionError) as info:
        convert_original_checkpoint(path, num_attention_heads=12)
    assert key in str(info.value) and "bad.pth" in str(info.value)


def test_head_count_is_required_for_unknown_widths():
    with pytest.raises(CheckpointConversionError, match="--variant NAME .* or --num-attention-heads N"):
        convert_original_state_dict(make_original_state(depth=1))


def test_variant_must_match_the_shapes():
    with pytest.raises(CheckpointConversionError, match="does not match the checkpoint"):
        convert_original_state_dict(make_original_state(depth=1), variant="vitpose-base")


def test_unsafe_pickle_is_opt_in(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "meta": {"cls": argparse_namespace()}}, path)
    with pytest.raises(CheckpointConversionError, match="--allow-unsafe-pickle"):
        load_state_dict_file(path)
    assert set(load_state_dict_file(path, allow_unsafe_pickle=True)) == {"a"}


def argparse_namespace():
    import argparse

    return argparse.Namespace(x=1)


# ---------------------------------------------------------------------------------------------------------- folders


def test_round_trip_original_ours_transformers_ours_dense(tmp_path):
    state = make_original_state(depth=1, seed=3)
    model = convert_original_state_dict(state, num_attention_heads=12).model
    model.save_pretrained(tmp_path / "ours")
    to_transformers_folder(tmp_path / "ours", tmp_path / "hf")
    hf_config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert hf_config["model_type"] == "vitpose" and (tmp_path / "hf" / "preprocessor_config.json").is_file()
    back = from_transformers_folder(tmp_path / "hf", tmp_path / "back")
    a, b = model.state_dict(), back.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(a[key], b[key]), key
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        assert torch.equal(model(x).heatmaps, back(x).heatmaps)


def test_round_trip_plus_through_transformers_is_the_split(plus_small, tmp_path):
    plus_small.model.save_pretrained(tmp_path / "plus")
    to_transformers_folder(tmp_path / "plus", tmp_path / "hf", dataset="mpii")
    back = from_transformers_folder(tmp_path / "hf", tmp_path / "back")
    split = plus_small.model.merge_experts("mpii").state_dict()
    for key, value in back.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, split[key]), key


def test_split_folder_and_hub_files(plus_small, tmp_path):
    from vitpose_plus.conversion.hub_folder import save_hub_folder
    from vitpose_plus.conversion.model_card import card_info_for_conversion

    files = save_hub_folder(
        plus_small.model,
        tmp_path / "plus",
        card=card_info_for_conversion(plus_small),
        max_shard_size="20MB",
        report=plus_small.to_dict(),
    )
    assert "model.safetensors.index.json" in files and "README.md" in files and "conversion_report.json" in files
    config = json.loads((tmp_path / "plus" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForPoseEstimation"].endswith("VitPosePlusForPoseEstimation")
    assert [d["name"] for d in config["datasets"]] == plus_small.model.config.dataset_names
    assert (tmp_path / "plus" / "modeling_vitpose_plus.py").is_file()
    dense = split_model_folder(tmp_path / "plus", "ap10k", tmp_path / "ap10k")
    processor = json.loads((tmp_path / "ap10k" / "preprocessor_config.json").read_text())
    assert processor["dataset"]["name"] == "ap10k" and processor["dataset"]["use_udp"] is False
    reloaded = VitPosePlusForPoseEstimation.from_pretrained(tmp_path / "ap10k").eval()
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        full = plus_small.model(x, dataset_index=3).heatmaps[:, :17]
        torch.testing.assert_close(reloaded(x).heatmaps, full, atol=1e-5, rtol=1e-5)
    assert dense.config.dataset_names == ["ap10k"]
    card = (tmp_path / "ap10k" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == 71.4  # ViTPose+-S AP-10K


def test_model_card_front_matter(plus_small):
    from vitpose_plus.conversion.model_card import card_info_for_conversion

    text = render_model_card(card_info_for_conversion(plus_small))
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["license"] == "apache-2.0" and meta["pipeline_tag"] == "keypoint-detection"
    assert meta["library_name"] == "transformers"
    values = {r["dataset"]["name"]: r["metrics"][0]["value"] for r in meta["model-index"][0]["results"]}
    assert values["COCO val2017"] == 75.8 and values["COCO-WholeBody"] == 54.4 and len(values) == 6
    plain = render_model_card(ModelCardInfo(title="t", description="d", datasets=["coco"], num_keypoints=[17]))
    assert "No published results" in plain and "model-index" not in plain


# ---------------------------------------------------------------------------------------------------------- MAE


def make_mae_state(dim: int = 48, depth: int = 1, patch: int = 16, grid: int = 14, seed: int = 4) -> dict:
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=gen)

    state = {
        "cls_token": rnd(1, 1, dim),
        "pos_embed": rnd(1, 1 + grid * grid, dim),
        "patch_embed.proj.weight": rnd(dim, 3, patch, patch),
        "patch_embed.proj.bias": rnd(dim),
        "norm.weight": rnd(dim),
        "norm.bias": rnd(dim),
        "mask_token": rnd(1, 1, dim),
        "decoder_embed.weight": rnd(32, dim),
        "decoder_pos_embed": rnd(1, 1 + grid * grid, 32),
        "decoder_blocks.0.norm1.weight": rnd(32),
    }
    for i in range(depth):
        p = f"blocks.{i}"
        for name, shape in [
            ("norm1.weight", (dim,)), ("norm1.bias", (dim,)), ("norm2.weight", (dim,)), ("norm2.bias", (dim,)),
            ("attn.qkv.weight", (3 * dim, dim)), ("attn.qkv.bias", (3 * dim,)),
            ("attn.proj.weight", (dim, dim)), ("attn.proj.bias", (dim,)),
            ("mlp.fc1.weight", (4 * dim, dim)), ("mlp.fc1.bias", (4 * dim,)),
            ("mlp.fc2.weight", (dim, 4 * dim)), ("mlp.fc2.bias", (dim,)),
        ]:  # fmt: skip
            state[f"{p}.{name}"] = rnd(*shape)
    return state


TINY_PLUS = {"hidden_size": 48, "num_hidden_layers": 1, "part_features": 12}


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
    const = resize_position_table(torch.full((1, 197, 4), 0.25), (16, 12))
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
