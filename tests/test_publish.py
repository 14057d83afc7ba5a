"""publish: the assembled Hub folder loads with trust_remote_code in a fresh process; --push needs a token."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch
from helpers import make_model, run_without_package, tiny_plus_config

from vitpose_plus.cli import main
from vitpose_plus.hub_cards import publish
from vitpose_plus.hub_cards.publish import REMOTE_CODE_FILES, assemble_publish_folder, push_folder
from vitpose_plus.modeling import VitPosePlusImageProcessor

INDEX = torch.tensor([2, 0, 1, 1, 0, 2])


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("src") / "model"
    make_model(tiny_plus_config()).save_pretrained(folder)
    return folder


def test_publish_folder_loads_in_fresh_process(model_folder, tmp_path, pixel_values, capsys):
    out = tmp_path / "hub"
    assert main(["publish", "--model", str(model_folder), "--repo-id", "acme/tiny-plus", "--output", str(out)]) == 0
    assert "not pushed" in capsys.readouterr().out
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", *REMOTE_CODE_FILES} <= files
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForPoseEstimation"] == "modeling_vitpose_plus.VitPosePlusForPoseEstimation"
    assert "acme/tiny-plus" in (out / "README.md").read_text()

    from vitpose_plus.file_io import load_model_folder

    model = load_model_folder(model_folder)
    with torch.no_grad():
        expected = model(pixel_values, dataset_index=INDEX).heatmaps
    image = (np.random.default_rng(0).random((80, 60, 3)) * 255).astype(np.uint8)
    boxes = [[[5.0, 6.0, 30.0, 50.0]]]
    expected_pixels = VitPosePlusImageProcessor.from_pretrained(out)(image, boxes=boxes)["pixel_values"]
    torch.save({"x": pixel_values, "image": torch.from_numpy(image)}, tmp_path / "inputs.pt")
    script = textwrap.dedent(
        f"""
        import sys, torch
        from transformers import AutoImageProcessor, AutoModel, AutoModelForPoseEstimation
        folder = {str(out)!r}
        model = AutoModelForPoseEstimation.from_pretrained(folder, trust_remote_code=True).eval()
        backbone = AutoModel.from_pretrained(folder, trust_remote_code=True)
        processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
        assert not any(name.startswith("vitpose_plus") for name in sys.modules), "vitpose_plus was imported"
        assert type(backbone).__name__ == "VitPosePlusModel", type(backbone)
        assert type(processor).__name__ == "VitPosePlusImageProcessor", type(processor)
        inputs = torch.load({str(tmp_path / "inputs.pt")!r})
        with torch.no_grad():
            heatmaps = model(inputs["x"], dataset_index=torch.tensor({INDEX.tolist()})).heatmaps
        pixels = processor(inputs["image"].numpy(), boxes={boxes!r})["pixel_values"]
        with torch.no_grad():
            one = model(pixels, dataset_index=0)
        poses = processor.post_process_pose_estimation(one, {boxes!r})
        torch.save({{"heatmaps": heatmaps, "pixels": pixels, "keypoints": poses[0][0]["keypoints"]}},
                   {str(tmp_path / "out.pt")!r})
        """
    )
    run_without_package(script, tmp_path)
    got = torch.load(tmp_path / "out.pt")
    torch.testing.assert_close(got["heatmaps"], expected, atol=0, rtol=0)
    torch.testing.assert_close(got["pixels"], expected_pixels, atol=0, rtol=0)
    with torch.no_grad():
        local = VitPosePlusImageProcessor.from_pretrained(out).post_process_pose_estimation(
            model(expected_pixels, dataset_index=0), boxes
        )
    torch.testing.assert_close(got["keypoints"], local[0][0]["keypoints"], atol=0, rtol=0)


def test_push_without_token_fails_before_network(model_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # no stored token either

    def no_network(*args, **kwargs):
        raise AssertionError("the Hub was contacted")

    monkeypatch.setattr("huggingface_hub.HfApi", no_network)
    args = ["publish", "--model", str(model_folder), "--repo-id", "acme/tiny", "--output", str(tmp_path / "o")]
    assert main([*args, "--push"]) == 1
    assert "Cannot push to 'acme/tiny': no Hugging Face token" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before assembling
    with pytest.raises(RuntimeError, match="no Hugging Face token"):
        push_folder(tmp_path, "acme/tiny")


def test_push_network_error_names_the_repo(tmp_path, monkeypatch):
    class FailingApi:
        def __init__(self, token=None):
            self.token = token

        def create_repo(self, *args, **kwargs):
            raise ConnectionError("offline")

    monkeypatch.setattr("huggingface_hub.HfApi", FailingApi)
    with pytest.raises(RuntimeError, match="Cannot push to 'acme/tiny': ConnectionError: offline"):
        push_folder(tmp_path, "acme/tiny", token="hf_fake")


def test_publish_bad_arguments(model_folder, tmp_path):
    with pytest.raises(ValueError, match="must look like 'org/name'"):
        assemble_publish_folder(model_folder, tmp_path / "o", "no-slash")
    with pytest.raises(ValueError, match="--variant must be one of"):
        assemble_publish_folder(model_folder, tmp_path / "o", "acme/x", variant="vitpose-tiny")
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        assemble_publish_folder(tmp_path, tmp_path / "o", "acme/x")
    assert publish.check_repo_id("acme/vitpose-plus-base") == "acme/vitpose-plus-base"


def test_publish_card_results_for_a_variant(tmp_path):
    from vitpose_plus.modeling import VitPosePlusConfig, VitPosePlusForPoseEstimation

    # A tiny stand-in saved under a catalog variant: the card quotes that variant's paper results.
    config = VitPosePlusConfig.from_preset("vitpose-plus-small", hidden_size=32, num_hidden_layers=1,
                                           num_attention_heads=2, part_features=8, image_size=(64, 48),
                                           deconv_channels=(8, 8))
    folder = tmp_path / "m"
    VitPosePlusForPoseEstimation(config).save_pretrained(folder)
    assemble_publish_folder(folder, tmp_path / "o", "acme/vp", variant="vitpose-plus-small")
    text = (tmp_path / "o" / "README.md").read_text()
    assert "value: 75.8" in text and "| 5 | COCO-WholeBody (`coco_wholebody`) | 133 | 5 |" in text
