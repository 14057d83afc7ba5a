"""Conversion of original checkpoints (conversion/convert_original.py) on synthetic checkpoints in the documented
original layout (VITPOSE_REFERENCE.md 2.1), checked against the independent reference forward.

Shapes are tiny (1-2 blocks) except where the family needs its real width (ViTPose+-S, D=384 with part_features 96,
to check that pf comes from the weights and the head count from the size).
"""

from __future__ import annotations

import pytest
import torch
from helpers import PLUS_KEYPOINTS, make_original_state, model_split, save_pth

from vitpose_plus.conversion.checkpoint_io import load_state_dict_file
from vitpose_plus.conversion.convert_original import (
    IGNORE_SPLIT_EXPERT,
    IGNORE_SPLIT_HEAD,
    convert_original,
    convert_original_state_dict,
)
from vitpose_plus.conversion.reference_forward import VerificationError, verify_against_reference
from vitpose_plus.conversion.state_dict_tools import CheckpointConversionError
from vitpose_plus.modeling import VitPosePlusForPoseEstimation


@pytest.fixture(scope="module")
def plus_small_state() -> dict[str, torch.Tensor]:
    """ViTPose+-S widths: D=384, 6 experts of 96 (the released pf, not the config's 192), six heads; one block."""
    return make_original_state(dim=384, depth=1, experts=6, part_features=96, keypoints=PLUS_KEYPOINTS, seed=1)


@pytest.fixture(scope="module")
def plus_small(plus_small_state):
    return convert_original_state_dict(plus_small_state, source="vitpose+_small.pth")


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
        convert_original(path, num_attention_heads=12)
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
