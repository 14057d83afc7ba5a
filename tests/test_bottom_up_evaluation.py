"""Bottom-up evaluation (`vitpose_plus.evaluation.bottom_up`, `vitpose-plus evaluate --task bottom-up`) and
prediction (`vitpose-plus predict --task bottom-up`): whole images, grouping, COCO scoring."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from helpers import BottomUpOracle, write_bottom_up_fixture, write_images
from test_bottom_up_modeling import bottom_up_config, make_bottom_up

from vitpose_plus.cli import main
from vitpose_plus.evaluation.bottom_up import evaluate_bottom_up, predict_bottom_up_split, score_bottom_up_split
from vitpose_plus.file_io import save_model_folder
from vitpose_plus.modeling import VitPosePlusBottomUpConfig, VitPosePlusBottomUpImageProcessor


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return write_bottom_up_fixture(tmp_path_factory.mktemp("bottom_up_coco"))


def oracle_config() -> VitPosePlusBottomUpConfig:
    return bottom_up_config(image_size=(256, 256), datasets=["coco"])


def image_joints(data: dict, image_ids: list[int], offset: float = 0.0) -> list[np.ndarray]:
    """`(P, 17, 3)` ground-truth joints per image (image pixels = input pixels for the fixture's sizes)."""
    out = []
    for image_id in image_ids:
        people = [np.asarray(a["keypoints"], dtype=np.float64).reshape(17, 3) for a in data["annotations"]
                  if a["image_id"] == image_id]
        joints = np.stack(people) if people else np.zeros((0, 17, 3))
        joints[..., :2] += offset
        out.append(joints)
    return out


def test_oracle_scores_ap_1(fixture):
    data = json.loads(open(fixture["annotations"]).read())
    config = oracle_config()
    processor = VitPosePlusBottomUpImageProcessor.from_model_config(config)
    ids = sorted(image["id"] for image in data["images"])
    oracle = BottomUpOracle(config, image_joints(data, ids))
    result = evaluate_bottom_up(oracle, processor, fixture["annotations"], fixture["images"], "coco", batch_size=2,
                                flip_test=True, progress=False)
    assert result.metrics["AP"] == pytest.approx(1.0) and result.metrics["AR"] == pytest.approx(1.0)
    assert result.protocol == "coco" and result.num_boxes == len(data["annotations"])  # one person each, no extra
    # batches of two images of different sizes were padded to the larger one
    assert oracle.calls == [(2, 3, 256, 384), (2, 3, 320, 384)]
    by_id = {a["id"]: np.asarray(a["keypoints"]).reshape(17, 3) for a in data["annotations"]}
    for record in result.results:  # each grouped person lies on one annotation's labelled keypoints
        kp = np.asarray(record["keypoints"]).reshape(17, 3)
        errors = [np.abs(kp[gt[:, 2] > 0, :2] - gt[gt[:, 2] > 0, :2]).max() for gt in by_id.values()]
        # Within half a map pixel (2 input px): the 4x bilinear projection of a sampled Gaussian peaks at a map
        # sample, so the grouping's argmax (+ its quarter-pixel adjustment) quantises to the 1/4-resolution grid.
        assert min(errors) <= 2.0
        assert record["category_id"] == 1 and 0.5 < record["score"] <= 1.0
    # shifting every keypoint by 6 px (OKS 0.86 for the eyes at area 20000) is seen by the metric
    shifted = BottomUpOracle(config, image_joints(data, ids, offset=6.0))
    worse = evaluate_bottom_up(shifted, processor, fixture["annotations"], fixture["images"], "coco", batch_size=2,
                               flip_test=False, progress=False)
    assert worse.metrics["AP50"] == pytest.approx(1.0) and worse.metrics["AP"] < 0.8


def test_sharded_prediction_scores_like_one_process(fixture):
    data = json.loads(open(fixture["annotations"]).read())
    config = oracle_config()
    processor = VitPosePlusBottomUpImageProcessor.from_model_config(config)
    ids = sorted(image["id"] for image in data["images"])
    records, prepared = [], None
    for rank in range(2):
        oracle = BottomUpOracle(config, image_joints(data, ids[rank::2]))
        prepared, part = predict_bottom_up_split(oracle, processor, fixture["annotations"], fixture["images"], "coco",
                                                 batch_size=1, flip_test=False, progress=False, shard=(rank, 2))
        assert {r["image_id"] for r in part} <= set(ids[rank::2])
        records += part
    whole = BottomUpOracle(config, image_joints(data, ids))
    _, single = predict_bottom_up_split(whole, processor, fixture["annotations"], fixture["images"], "coco",
                                        batch_size=3, flip_test=False, progress=False)
    assert sorted(r["target_id"] for r in records) == sorted(r["target_id"] for r in single)
    assert score_bottom_up_split(prepared, records).metrics == score_bottom_up_split(prepared, single).metrics
    # OKS-NMS is off by default; at 0.9 it keeps these well-separated persons
    assert score_bottom_up_split(prepared, records, 0.9).metrics["AP"] == pytest.approx(1.0)


def test_evaluate_rejects_what_bottom_up_cannot_score(fixture, tmp_path):
    from helpers import write_fixture

    mpii = write_fixture("mpii", tmp_path / "mpii")
    model = make_bottom_up(bottom_up_config(image_size=(64, 64), datasets=["mpii"]))
    with pytest.raises(ValueError, match="PCKh"):
        evaluate_bottom_up(model, VitPosePlusBottomUpImageProcessor.from_model_config(model.config),
                           mpii["annotations"], mpii["images"], "mpii", progress=False)


# ----------------------------------------------------------------------------------------------- commands
@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A tiny random bottom-up model that groups persons on any image (detection threshold below every peak)."""
    model = make_bottom_up(bottom_up_config(image_size=(128, 128), datasets=["coco"]))
    processor = VitPosePlusBottomUpImageProcessor.from_model_config(model.config, detection_threshold=-1.0,
                                                                    max_num_people=4)
    folder = tmp_path_factory.mktemp("bu_model") / "model"
    save_model_folder(model, folder, processor=processor)
    return folder, model, processor


def test_evaluate_command_bottom_up(fixture, model_folder, capsys):
    folder = model_folder[0]
    args = ["evaluate", "--model", str(folder), "--dataset", "coco", "--annotations", fixture["annotations"],
            "--images", fixture["images"], "--no-progress", "--batch-size", "2"]
    assert main([*args, "--task", "bottom-up", "--no-flip-test"]) == 0
    out = capsys.readouterr().out
    assert "bottom-up" in out and "OKS-NMS off" in out and "| AP |" in out
    assert main(args) == 0  # the task defaults to the model's kind
    assert "bottom-up" in capsys.readouterr().out
    assert main([*args, "--task", "top-down"]) == 1
    assert "is a bottom-up model" in capsys.readouterr().err
    assert main([*args, "--detections", fixture["annotations"]]) == 1
    assert "takes no boxes" in capsys.readouterr().err
    assert main([*args, "--scales", "0.5"]) == 1
    assert "include 1" in capsys.readouterr().err


def test_predict_command_bottom_up_writes_every_person(model_folder, tmp_path, capsys):
    folder, model, processor = model_folder
    images = tmp_path / "images"
    write_images(images, ["a.jpg", "b.png"], size=(150, 100))
    out = tmp_path / "out"
    assert main(["predict", "--model", str(folder), "--image", str(images), "--output", str(out), "--task",
                 "bottom-up", "--no-progress"]) == 0
    assert "instance(s) in 2 image(s) [coco]" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["a.png", "b.png", "keypoints.json"]
    results = json.loads((out / "keypoints.json").read_text())
    from vitpose_plus.file_io import read_image

    expected = []
    for name in ("a.jpg", "b.png"):
        image = read_image(images / name)
        with torch.no_grad():
            found = processor.post_process_bottom_up(model(**processor(image)), [image.shape[:2]])[0]
        expected += [(name, person) for person in found]
    assert 0 < len(results) == len(expected)
    for record, (name, person) in zip(results, expected):
        assert record["file_name"] == name and record["category_id"] == 1
        kp = np.asarray(record["keypoints"]).reshape(17, 3)
        np.testing.assert_allclose(kp[:, :2], person["keypoints"].numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(kp[:, 2], person["scores"].numpy(), atol=1e-6, rtol=0)
        assert record["score"] == pytest.approx(person["score"])
        xy = kp[:, :2]
        np.testing.assert_allclose(record["bbox"], [*xy.min(0), *(xy.max(0) - xy.min(0))], atol=1e-4)
    picture = read_image(out / "a.png")
    assert picture.shape == (100, 150, 3) and not np.array_equal(picture, read_image(images / "a.jpg"))
    assert main(["predict", "--model", str(folder), "--image", str(images), "--output", str(tmp_path / "o2"),
                 "--no-progress", "--boxes", str(out / "keypoints.json")]) == 1
    assert "takes no --boxes" in capsys.readouterr().err

