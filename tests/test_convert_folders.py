"""Conversions between model folders (conversion/convert_folders.py): split, to and from transformers' VitPose,
Hub files and model cards of converted models."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from helpers import PLUS_KEYPOINTS, make_original_state

from vitpose_plus.conversion.convert_folders import from_transformers_folder, split_model_folder, to_transformers_folder
from vitpose_plus.conversion.convert_original import convert_original_state_dict
from vitpose_plus.file_io import save_model_folder
from vitpose_plus.hub_cards.cards import ModelCardInfo, render_model_card
from vitpose_plus.modeling import VitPosePlusForPoseEstimation


@pytest.fixture(scope="module")
def plus_small_state() -> dict[str, torch.Tensor]:
    """ViTPose+-S widths: D=384, 6 experts of 96 (the released pf, not the config's 192), six heads; one block."""
    return make_original_state(dim=384, depth=1, experts=6, part_features=96, keypoints=PLUS_KEYPOINTS, seed=1)


@pytest.fixture(scope="module")
def plus_small(plus_small_state):
    return convert_original_state_dict(plus_small_state, source="vitpose+_small.pth")


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
    files = save_model_folder(
        plus_small.model,
        tmp_path / "plus",
        card=plus_small.card_info(),
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
    assert [d["name"] for d in processor["datasets"]] == ["ap10k"] and processor["datasets"][0]["use_udp"] is False
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
    text = render_model_card(plus_small.card_info())
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["license"] == "apache-2.0" and meta["pipeline_tag"] == "keypoint-detection"
    assert meta["library_name"] == "transformers"
    values = {r["dataset"]["name"]: r["metrics"][0]["value"] for r in meta["model-index"][0]["results"]}
    assert values["COCO val2017"] == 75.8 and values["COCO-WholeBody"] == 54.4 and len(values) == 6
    plain = render_model_card(ModelCardInfo(title="t", description="d", datasets=["coco"], num_keypoints=[17]))
    assert "No published results" in plain and "model-index" not in plain
