"""`VitPosePlusForBottomUpPoseEstimation`: heads and routing, flip test, padding, experts, initialisation from a
top-down model, saving and the auto classes (in-process and with trust_remote_code in a fresh process)."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch
from helpers import make_model, randomize_batchnorm, run_without_package, tiny_config
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import AutoImageProcessor, AutoModel, AutoModelForPoseEstimation

from vitpose_plus.modeling import (
    VitPosePlusBottomUpConfig,
    VitPosePlusBottomUpImageProcessor,
    VitPosePlusBottomUpModel,
    VitPosePlusForBottomUpPoseEstimation,
    VitPosePlusForPoseEstimation,
    VitPosePlusImageProcessor,
)
from vitpose_plus.modeling.keypoint_codecs import flip_back_heatmaps

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": (64, 64),
        "deconv_channels": (16, 16)}
MIXED_INDEX = torch.tensor([1, 0, 2, 1, 0, 2])


def bottom_up_config(**overrides) -> VitPosePlusBottomUpConfig:
    return VitPosePlusBottomUpConfig(**{**TINY, **overrides})


def plus_config(**overrides) -> VitPosePlusBottomUpConfig:
    """Three datasets with 17, 14 and 17 keypoints (COCO, AIC, AP-10K), one expert each."""
    return bottom_up_config(num_experts=3, part_features=8, datasets=["coco", "aic", "ap10k"], **overrides)


def make_bottom_up(config: VitPosePlusBottomUpConfig, seed: int = 0) -> VitPosePlusForBottomUpPoseEstimation:
    torch.manual_seed(seed)
    model = VitPosePlusForBottomUpPoseEstimation(config)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # far from the init (std 0.001 heads) so that parity tests see non-trivial values
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    randomize_batchnorm(model, seed)
    return model.eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(6, 3, 64, 64, generator=torch.Generator().manual_seed(7))


# ----------------------------------------------------------------------------------------------------------- heads
def test_heads_give_heatmaps_then_tags(images):
    model = make_bottom_up(plus_config())
    with torch.no_grad():
        out = model(images, dataset_index=MIXED_INDEX)
        assert out.heatmaps.shape == out.tags.shape == (6, 17, 16, 16) and out.flipped_tags is None
        features = model.backbone(images, dataset_index=MIXED_INDEX).feature_map
        for i, dataset in enumerate(MIXED_INDEX.tolist()):
            k = model.config.dataset_spec(dataset).num_keypoints
            raw = model.heads[dataset](features[i : i + 1])
            assert raw.shape[1] == 2 * k
            torch.testing.assert_close(out.heatmaps[i, :k], raw[0, :k], atol=1e-6, rtol=0)
            torch.testing.assert_close(out.tags[i, :k], raw[0, k:], atol=1e-6, rtol=0)
            assert not out.heatmaps[i, k:].any() and not out.tags[i, k:].any()


def test_state_dict_backbone_keys_equal_the_top_down_model():
    bottom_up = VitPosePlusForBottomUpPoseEstimation(plus_config())
    top_down = VitPosePlusForPoseEstimation(
        tiny_config(num_experts=3, part_features=8, datasets=["coco", "aic", "ap10k"], image_size=(64, 64))
    )
    ours, theirs = bottom_up.state_dict(), top_down.state_dict()
    assert set(ours) == set(theirs)  # same names everywhere, heads included
    for name, tensor in ours.items():
        if name.startswith("heads.") and name.endswith((".conv.weight", ".conv.bias")):
            assert tensor.shape[0] == 2 * theirs[name].shape[0], name  # K heatmaps + K tags
        else:
            assert tensor.shape == theirs[name].shape, name


def test_mixed_batch_equals_per_sample(images):
    model = make_bottom_up(plus_config())
    with torch.no_grad():
        mixed = model(images, dataset_index=MIXED_INDEX, flip_test=True)
        for i, dataset in enumerate(MIXED_INDEX.tolist()):
            single = model(images[i : i + 1], dataset_index=dataset, flip_test=True)
            for field in ("heatmaps", "tags", "flipped_tags"):
                torch.testing.assert_close(getattr(mixed, field)[i : i + 1], getattr(single, field), atol=1e-5,
                                           rtol=1e-5)


def test_flip_test_matches_manual_flip(images):
    model = make_bottom_up(plus_config())
    with torch.no_grad():
        out = model(images, dataset_index=MIXED_INDEX, flip_test=True)
        plain = model(images, dataset_index=MIXED_INDEX)
        mirrored = model(images.flip(-1), dataset_index=MIXED_INDEX)
    torch.testing.assert_close(out.tags, plain.tags, atol=1e-5, rtol=1e-5)
    for i, dataset in enumerate(MIXED_INDEX.tolist()):
        spec = model.config.dataset_spec(dataset)
        k, perm = spec.num_keypoints, spec.flip_permutation()
        # flip back: reverse the width and swap left/right channels (e.g. COCO left_eye 1 <-> right_eye 2), no shift
        back_tags = mirrored.tags[i : i + 1, :k].flip(-1)[:, perm]
        torch.testing.assert_close(out.flipped_tags[i : i + 1, :k], back_tags, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            out.flipped_tags[i : i + 1, :k], flip_back_heatmaps(mirrored.tags[i : i + 1, :k], perm, shift=False),
            atol=1e-5, rtol=1e-5,
        )
        expected = (plain.heatmaps[i : i + 1, :k] + mirrored.heatmaps[i : i + 1, :k].flip(-1)[:, perm]) / 2
        torch.testing.assert_close(out.heatmaps[i : i + 1, :k], expected, atol=1e-5, rtol=1e-5)
    assert model.config.dataset_spec(0).flip_permutation()[1:3] == [2, 1]


def test_padded_batch_equals_one_by_one():
    model = make_bottom_up(plus_config())
    gen = torch.Generator().manual_seed(3)
    sizes = [(64, 64), (64, 128), (128, 64), (64, 128)]
    singles = [torch.randn(1, 3, h, w, generator=gen) for h, w in sizes]
    batch = torch.zeros(4, 3, 128, 128)
    mask = torch.zeros(4, 128, 128, dtype=torch.long)
    for i, (image, (h, w)) in enumerate(zip(singles, sizes)):
        batch[i, :, :h, :w] = image[0]
        mask[i, :h, :w] = 1
    index = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        out = model(batch, dataset_index=index, pixel_mask=mask, flip_test=True)
        assert out.heatmaps.shape == (4, 17, 32, 32)
        for i, (image, (h, w)) in enumerate(zip(singles, sizes)):
            single = model(image, dataset_index=int(index[i]), flip_test=True)
            for field in ("heatmaps", "tags", "flipped_tags"):
                got = getattr(out, field)[i]
                torch.testing.assert_close(got[:, : h // 4, : w // 4], getattr(single, field)[0], atol=1e-5, rtol=1e-5)
                assert not got[:, h // 4 :].any() and not got[:, :, w // 4 :].any()
        # an all-ones mask changes nothing
        full = model(batch, dataset_index=index, pixel_mask=torch.ones_like(mask))
        torch.testing.assert_close(full.heatmaps, model(batch, dataset_index=index).heatmaps, atol=0, rtol=0)


def test_merge_experts_is_exact(images):
    model = make_bottom_up(plus_config())
    for dataset in (0, 1, 2):
        dense = model.merge_experts(dataset)
        assert isinstance(dense, VitPosePlusForBottomUpPoseEstimation)
        assert dense.config.num_experts == 1 and dense.config.dataset_names == [model.config.dataset_names[dataset]]
        k = model.config.dataset_spec(dataset).num_keypoints
        with torch.no_grad():
            routed = model(images, dataset_index=dataset, flip_test=True)
            merged = dense(images, flip_test=True)
        assert merged.heatmaps.shape[1] == k
        for field in ("heatmaps", "tags", "flipped_tags"):
            torch.testing.assert_close(getattr(merged, field), getattr(routed, field)[:, :k], atol=1e-6, rtol=0)


def test_other_input_sizes_interpolate_the_position_table():
    model = make_bottom_up(bottom_up_config())
    assert model.config.interpolate_pos_encoding
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 128))
    assert out.heatmaps.shape == (1, 17, 16, 32)
    assert model.config.heatmap_size == (16, 16) and model.config.heatmap_size_for(64, 128) == (16, 32)
    assert VitPosePlusBottomUpConfig().heatmap_size == (128, 128)


def test_training_step_and_no_person_images():
    model = make_bottom_up(plus_config()).train()
    x = torch.randn(3, 3, 64, 64)
    joints = torch.zeros(3, 30, 17, 2, dtype=torch.long)
    joints[0, 0, 0] = torch.tensor([5, 1])
    joints[0, 1, 0] = torch.tensor([200, 1])
    out = model(x, dataset_index=torch.tensor([0, 1, 2]), labels=torch.zeros(3, 17, 16, 16),
                label_mask=torch.ones(3, 16, 16), label_joints=joints)
    assert torch.isfinite(out.loss) and out.push_loss > 0 and out.pull_loss == 0
    out.loss.backward()
    assert model.heads[1].conv.weight.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_bad_inputs_raise_clear_errors(images):
    model = make_bottom_up(bottom_up_config())
    mask = torch.ones(6, 64, 64, dtype=torch.long)
    mask[0, 10, 10] = 0
    with pytest.raises(ValueError, match="pixel_mask of image 0 must be 1 on a non-empty top-left rectangle"):
        model(images, pixel_mask=mask)
    mask = torch.ones(6, 64, 64, dtype=torch.long)
    mask[0, 32:] = 0
    with pytest.raises(ValueError, match="pixel_mask with padded images is for inference"):
        model(images, pixel_mask=mask, labels=torch.zeros(6, 17, 16, 16))
    with pytest.raises(ValueError, match=r"pixel_mask must have shape \(batch_size, height, width\)"):
        model(images, pixel_mask=mask[:, :10])
    with pytest.raises(StrictDataclassClassValidationError, match="ae_loss_type"):
        bottom_up_config(ae_loss_type="square")
    with pytest.raises(StrictDataclassClassValidationError, match="max_num_people"):
        bottom_up_config(max_num_people=0)


# ----------------------------------------------------------------------------------------------------------- init
def test_from_top_down_copies_the_backbone_and_resizes_the_position_table(tmp_path):
    top_down = make_model(tiny_config(num_experts=3, part_features=8, datasets=["coco", "aic", "ap10k"]))
    model = VitPosePlusForBottomUpPoseEstimation.from_top_down(top_down, image_size=(64, 64))
    assert isinstance(model.config, VitPosePlusBottomUpConfig) and model.config.image_size == [64, 64]
    assert model.config.dataset_names == ["coco", "aic", "ap10k"] and model.config.num_experts == 3
    ours, theirs = model.state_dict(), top_down.state_dict()
    key = "backbone.embeddings.position_embeddings"
    for name, tensor in theirs.items():
        if name.startswith("backbone.") and name != key:
            assert torch.equal(ours[name], tensor), name
    # 4x3 grid -> 4x4: bicubic on the patch slots, slot 0 kept
    source = theirs[key][:, 1:].reshape(1, 4, 3, -1).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(source, size=(4, 4), mode="bicubic", align_corners=False)
    torch.testing.assert_close(ours[key][:, 1:], expected.permute(0, 2, 3, 1).reshape(1, 16, -1), atol=1e-7, rtol=0)
    assert torch.equal(ours[key][:, :1], theirs[key][:, :1])
    # a saved folder works the same
    top_down.save_pretrained(tmp_path / "td")
    again = VitPosePlusForBottomUpPoseEstimation.from_top_down(tmp_path / "td", image_size=(64, 64))
    assert all(torch.equal(again.state_dict()[n], t) for n, t in ours.items() if n.startswith("backbone."))


# ----------------------------------------------------------------------------------------------------------- saving
def test_save_load_and_auto_classes_in_process(tmp_path, images):
    model = make_bottom_up(plus_config())
    model.save_pretrained(tmp_path / "bu")
    VitPosePlusBottomUpImageProcessor.from_model_config(model.config).save_pretrained(tmp_path / "bu")
    config = json.loads((tmp_path / "bu" / "config.json").read_text())
    assert config["model_type"] == "vitpose_plus_bottom_up"
    assert config["auto_map"] == {
        "AutoConfig": "configuration_vitpose_plus_bottom_up.VitPosePlusBottomUpConfig",
        "AutoModel": "modeling_vitpose_plus_bottom_up.VitPosePlusBottomUpModel",
        "AutoModelForPoseEstimation": "modeling_vitpose_plus_bottom_up.VitPosePlusForBottomUpPoseEstimation",
    }
    for name in ("modeling_vitpose_plus_bottom_up.py", "configuration_vitpose_plus_bottom_up.py",
                 "modeling_vitpose_plus.py", "image_processing_vitpose_plus_bottom_up.py", "bottom_up_grouping.py"):
        assert (tmp_path / "bu" / name).exists(), name
    top_down = make_model(tiny_config())
    top_down.save_pretrained(tmp_path / "td")
    VitPosePlusImageProcessor.from_model_config(top_down.config).save_pretrained(tmp_path / "td")

    loaded = AutoModelForPoseEstimation.from_pretrained(tmp_path / "bu").eval()
    assert type(loaded) is VitPosePlusForBottomUpPoseEstimation
    assert type(AutoModelForPoseEstimation.from_pretrained(tmp_path / "td")) is VitPosePlusForPoseEstimation
    assert type(AutoModel.from_pretrained(tmp_path / "bu")) is VitPosePlusBottomUpModel
    assert type(AutoImageProcessor.from_pretrained(tmp_path / "bu")) is VitPosePlusBottomUpImageProcessor
    assert type(AutoImageProcessor.from_pretrained(tmp_path / "td")) is VitPosePlusImageProcessor
    with torch.no_grad():
        for field in ("heatmaps", "tags"):
            torch.testing.assert_close(getattr(loaded(images, dataset_index=MIXED_INDEX), field),
                                       getattr(model(images, dataset_index=MIXED_INDEX), field), atol=0, rtol=0)


def test_trust_remote_code_in_fresh_process(tmp_path):
    model = make_bottom_up(bottom_up_config(image_size=(128, 128)))
    processor = VitPosePlusBottomUpImageProcessor.from_model_config(model.config, detection_threshold=-1.0)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (100, 150, 3), dtype=np.uint8), rng.integers(0, 256, (90, 60, 3), dtype=np.uint8)]
    np.save(tmp_path / "img0.npy", images[0])
    np.save(tmp_path / "img1.npy", images[1])
    inputs = processor(images)
    with torch.no_grad():
        out = model(**inputs, flip_test=True)
    expected = processor.post_process_bottom_up(out, [(100, 150), (90, 60)])
    assert len(expected[0]) > 0 and len(expected[1]) > 0
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "vitpose_plus" or name.startswith("vitpose_plus."):
                    raise ImportError("vitpose_plus is not importable in this process")
        sys.meta_path.insert(0, Block())
        import numpy as np, torch
        from transformers import AutoImageProcessor, AutoModelForPoseEstimation
        folder = {str(folder)!r}
        model = AutoModelForPoseEstimation.from_pretrained(folder, trust_remote_code=True).eval()
        processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
        assert type(model).__name__ == "VitPosePlusForBottomUpPoseEstimation", type(model)
        assert type(processor).__name__ == "VitPosePlusBottomUpImageProcessor", type(processor)
        images = [np.load({str(tmp_path / "img0.npy")!r}), np.load({str(tmp_path / "img1.npy")!r})]
        inputs = processor(images)
        with torch.no_grad():
            out = model(**inputs, flip_test=True)
        people = processor.post_process_bottom_up(out, [(100, 150), (90, 60)])
        torch.save({{"heatmaps": out.heatmaps, "tags": out.tags, "flipped_tags": out.flipped_tags,
                    "pixels": inputs["pixel_values"], "people": people}}, {str(tmp_path / "out.pt")!r})
        """
    )
    run_without_package(script, tmp_path)
    got = torch.load(tmp_path / "out.pt", weights_only=False)
    torch.testing.assert_close(got["pixels"], inputs["pixel_values"], atol=0, rtol=0)
    for field in ("heatmaps", "tags", "flipped_tags"):
        torch.testing.assert_close(got[field], getattr(out, field), atol=0, rtol=0)
    for remote, local in zip(got["people"], expected):
        assert len(remote) == len(local)
        for a, b in zip(remote, local):
            torch.testing.assert_close(a["keypoints"], b["keypoints"], atol=0, rtol=0)
            torch.testing.assert_close(a["scores"], b["scores"], atol=0, rtol=0)
            assert a["score"] == b["score"]
