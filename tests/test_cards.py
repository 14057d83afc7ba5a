"""Model cards: every catalog card renders, carries the paper's results and passes metadata validation."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml
from helpers import make_model, run_without_package, tiny_plus_config
from PIL import Image

from vitpose_plus.cli import main
from vitpose_plus.hub_cards.cards import ModelCardInfo, render_model_card, validate_model_card
from vitpose_plus.hub_cards.catalog_cards import card_info_for_variant, catalog_cards
from vitpose_plus.hub_cards.publish import assemble_publish_folder

COCO_AP = {
    "vitpose-small": 73.8, "vitpose-base": 75.8, "vitpose-large": 78.3, "vitpose-huge": 79.1,
    "vitpose-plus-small": 75.8, "vitpose-plus-base": 77.0, "vitpose-plus-large": 78.6, "vitpose-plus-huge": 79.4,
}  # fmt: skip


@pytest.fixture(scope="module")
def cards():
    return {name: render_model_card(info) for name, info in catalog_cards(org="acme").items()}


def _meta(text: str) -> dict:
    return yaml.safe_load(text.split("---")[1])


def test_every_catalog_card_renders_and_validates(cards):
    assert len(cards) == 8 + 4 * 6
    for name, text in cards.items():
        data = validate_model_card(text, source=name)
        meta = _meta(text)
        assert meta["license"] == "apache-2.0" and meta["library_name"] == "transformers", name
        assert meta["pipeline_tag"] == "keypoint-detection" and "vitpose" in meta["tags"], name
        assert data.eval_results, name
        for section in ("## Usage", "## Limitations", "## Dataset index", "@inproceedings{xu2022vitpose", "acme/"):
            assert section in text, (name, section)
        assert "$" not in text.replace("$ ", ""), name  # no unfilled placeholder


def test_paper_results_in_model_index(cards):
    for variant, value in COCO_AP.items():
        meta = _meta(cards[variant])
        coco = [r for r in meta["model-index"][0]["results"] if r["dataset"]["type"] == "coco"]
        assert coco[0]["metrics"][0] == {"type": "AP", "value": value, "name": "COCO AP (OKS, 56-AP detector boxes)"}
    assert len(_meta(cards["vitpose-plus-large"])["model-index"][0]["results"]) == 6
    split = _meta(cards["vitpose-plus-small-ap10k"])
    assert split["model-index"][0]["results"][0]["metrics"][0]["value"] == 71.4
    assert split["base_model"] == "acme/vitpose-plus-small" and split["datasets"] == ["ap-10k"]
    assert _meta(cards["vitpose-plus-huge-coco-wholebody"])["model-index"][0]["results"][0]["metrics"][0][
        "value"
    ] == 61.2
    assert _meta(cards["vitpose-large"])["base_model"] == "facebook/vit-mae-large"


def test_dataset_index_table_for_vitpose_plus(cards):
    text = cards["vitpose-plus-base"]
    assert "| dataset_index | dataset | keypoints | expert |" in text
    assert "| 5 | COCO-WholeBody (`coco_wholebody`) | 133 | 5 |" in text
    assert "| 1 | AI Challenger (`aic`) | 14 | 1 |" in text
    assert "parameters | 146,422,742" in text  # MoE + six heads, reference section 1.6
    assert "A single dataset, `coco` (17 keypoints)" in cards["vitpose-base"]
    assert "parameters | 89,994,513" in cards["vitpose-plus-base-coco"]  # a split model has the dense size
    assert "parameters | 308,544,785" in cards["vitpose-large"]


def test_validation_rejects_bad_metadata():
    good = render_model_card(card_info_for_variant("vitpose-base"))
    with pytest.raises(ValueError, match="does not start with a YAML"):
        validate_model_card(good.split("---", 2)[2])
    with pytest.raises(ValueError, match=r"lacks \['license'\]"):
        validate_model_card(good.replace("license: apache-2.0\n", ""))
    with pytest.raises(ValueError, match="pipeline_tag is 'image-classification'"):
        validate_model_card(good.replace("pipeline_tag: keypoint-detection", "pipeline_tag: image-classification"))
    with pytest.raises(ValueError, match="invalid card metadata"):
        validate_model_card(good.replace("  - task:\n      type: keypoint-detection\n", "  - task:\n"))  # no task type
    plain = render_model_card(ModelCardInfo(title="t", description="d", datasets=["coco"], num_keypoints=[17]))
    assert validate_model_card(plain).eval_results is None
    with pytest.raises(ValueError, match="split models exist for ViTPose\\+ variants only"):
        card_info_for_variant("vitpose-base", "aic")
    with pytest.raises(ValueError, match="Unknown catalog variant"):
        card_info_for_variant("vitpose-tiny")


def test_export_cards_cli(tmp_path, capsys):
    assert main(["export", "cards", "--output", str(tmp_path), "--org", "acme"]) == 0
    assert "rendered and validated 32 model cards" in capsys.readouterr().out
    assert (tmp_path / "vitpose-plus-huge-apt36k" / "README.md").is_file()


def _code_blocks(card: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", card, flags=re.S)


def test_card_usage_code_runs_as_written(tmp_path):
    """Every snippet of a published card's Usage section runs as written: the transformers-only ones in a process
    where vitpose_plus cannot be imported, the package and shell ones with it. The folder sits at `acme/tiny-plus`
    under the working directory, where `from_pretrained("acme/tiny-plus")` finds it before any Hub lookup."""
    source = tmp_path / "source"
    make_model(tiny_plus_config()).save_pretrained(source)
    repo = tmp_path / "acme" / "tiny-plus"
    assemble_publish_folder(source, repo, repo_id="acme/tiny-plus")
    card = (repo / "README.md").read_text()
    image = (np.random.default_rng(0).random((400, 320, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "people.jpg")
    (tmp_path / "boxes.json").write_text("[[50.0, 30.0, 120.0, 300.0]]")

    python_blocks = _code_blocks(card, "python")
    shell_blocks = _code_blocks(card, "bash")
    assert len(python_blocks) == 3 and len(shell_blocks) == 1
    outputs = []
    for block in python_blocks:
        if "vitpose_plus" in block:
            result = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True,
                                    timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            assert result.returncode == 0, result.stderr[-3000:]
        else:
            result = run_without_package(block, tmp_path)
        outputs.append(result.stdout)
    assert outputs[1].startswith("torch.Size([17, 2])")  # the pipeline: 17 COCO keypoints for the one box
    bin_dir = os.path.dirname(sys.executable)
    for line in shell_blocks[0].strip().splitlines():
        result = subprocess.run(line, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                                env={**os.environ, "HF_HUB_OFFLINE": "1", "PATH": f"{bin_dir}:{os.environ['PATH']}"})
        assert result.returncode == 0, f"{line}\n{result.stderr[-3000:]}"
    (record,) = json.loads((tmp_path / "out" / "keypoints.json").read_text())
    assert len(record["keypoints"]) == 17 * 3
    assert (tmp_path / "coco.onnx").stat().st_size > 0

    # The transformers-only snippet and the pipeline give the package's keypoints for the same box.
    from vitpose_plus.inference import PosePipeline

    (expected,) = PosePipeline.from_pretrained(repo)(image_from_jpeg(tmp_path / "people.jpg"),
                                                     boxes=[[50.0, 30.0, 120.0, 300.0]])
    np.testing.assert_allclose(np.asarray(record["keypoints"]).reshape(17, 3)[:, :2], expected.keypoints, atol=1e-3)


def image_from_jpeg(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))
