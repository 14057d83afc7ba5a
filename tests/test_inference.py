"""Inference: predict CLI and PosePipeline (given boxes, whole image, detector), drawing, bad input."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from helpers import make_model, tiny_config, tiny_plus_config

from vitpose_plus.cli import main
from vitpose_plus.inference import ObjectDetector, PosePipeline, draw_pose, load_boxes_file
from vitpose_plus.modeling import VitPosePlusImageProcessor

BOXES = [[10.0, 12.0, 40.0, 70.0], [45.0, 30.0, 30.0, 60.0]]


def synthetic_image(height: int = 120, width: int = 90, seed: int = 0) -> np.ndarray:
    """A smooth RGB uint8 image with a bright figure-like blob."""
    rng = np.random.default_rng(seed)
    image = (rng.random((height, width, 3)) * 60).astype(np.uint8)
    cv2.ellipse(image, (width // 2, height // 2), (width // 5, height // 3), 0, 0, 360, (220, 180, 140), -1)
    return image


@pytest.fixture(scope="module")
def plus_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plus") / "model"
    make_model(tiny_plus_config()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "000000000139.png"
    cv2.imwrite(str(path), cv2.cvtColor(synthetic_image(), cv2.COLOR_RGB2BGR))
    return path


def expected_keypoints(folder, image: np.ndarray, boxes, dataset: str) -> list[dict]:
    """Direct processor + model computation (the reference for the pipeline)."""
    from vitpose_plus.file_io import load_model_folder

    model = load_model_folder(folder)
    spec = model.config.dataset_spec(dataset)
    processor = VitPosePlusImageProcessor(size={"height": 64, "width": 48})
    pixel_values = processor(image, boxes=[boxes], dataset=spec)["pixel_values"]
    with torch.no_grad():
        heatmaps = model(pixel_values, dataset_index=dataset).heatmaps
    return processor.post_process_pose_estimation(heatmaps, [boxes], dataset=spec)[0]


def test_predict_cli_boxes_file(plus_folder, image_file, tmp_path, capsys):
    boxes_file = tmp_path / "boxes.json"
    boxes_file.write_text(json.dumps([{"bbox": BOXES[0], "score": 0.9}, BOXES[1]]))
    out = tmp_path / "out"
    args = ["predict", "--model", str(plus_folder), "--image", str(image_file), "--boxes", str(boxes_file)]
    assert main([*args, "--dataset", "aic", "--output", str(out)]) == 0
    assert "2 instance(s) in 1 image(s) [aic]" in capsys.readouterr().out
    records = json.loads((out / "keypoints.json").read_text())
    assert len(records) == 2
    expected = expected_keypoints(plus_folder, synthetic_image(), BOXES, "aic")
    for record, ref, box_score in zip(records, expected, (0.9, 1.0)):
        assert record["image_id"] == 139 and record["category_id"] == 1
        assert record["file_name"] == "000000000139.png"
        kps = np.asarray(record["keypoints"]).reshape(14, 3)
        np.testing.assert_allclose(kps[:, :2], ref["keypoints"].numpy(), atol=1e-3)
        np.testing.assert_allclose(kps[:, 2], ref["scores"].numpy(), atol=1e-4)
        assert record["score"] == pytest.approx(ref["score"] * box_score, abs=1e-5)
    picture = cv2.imread(str(out / "000000000139.png"))
    assert picture.shape == (120, 90, 3)
    # The coco-format file loads with pycocotools (the COCO results format).
    from pycocotools.coco import COCO

    gt = COCO()
    gt.dataset = {
        "images": [{"id": 139, "width": 90, "height": 120}],
        "annotations": [],
        "categories": [{"id": 1, "name": "person", "keypoints": [], "skeleton": []}],
    }
    gt.createIndex()
    assert len(gt.loadRes(str(out / "keypoints.json")).anns) == 2


def test_predict_whole_image_without_boxes(plus_folder, image_file, tmp_path):
    out = tmp_path / "out"
    assert main(["predict", "--model", str(plus_folder), "--image", str(image_file), "--output", str(out)]) == 0
    (record,) = json.loads((out / "keypoints.json").read_text())
    assert record["bbox"] == [0.0, 0.0, 90.0, 120.0] and len(record["keypoints"]) == 17 * 3  # first dataset: coco


def test_pipeline_batching_and_flip(plus_folder):
    images = [synthetic_image(seed=0), synthetic_image(100, 140, seed=1)]
    boxes = [BOXES, [[5.0, 5.0, 50.0, 80.0]]]
    one = PosePipeline.from_pretrained(plus_folder, dataset="mpii", batch_size=1).predict(images, boxes)
    many = PosePipeline.from_pretrained(plus_folder, dataset="mpii", batch_size=32).predict(images, boxes)
    assert [len(r) for r in one] == [2, 1]
    for a, b in zip(sum(one, []), sum(many, [])):
        np.testing.assert_allclose(a.keypoints, b.keypoints, rtol=1e-4, atol=1e-3)  # float batch-size effects
        np.testing.assert_allclose(a.keypoint_scores, b.keypoint_scores, atol=1e-5)
        assert a.keypoint_names == b.keypoint_names and len(a.keypoint_names) == 16
    flipped = PosePipeline.from_pretrained(plus_folder, dataset="mpii", flip_test=True)(images[0], BOXES)
    assert len(flipped) == 2 and not np.allclose(flipped[0].keypoint_scores, one[0][0].keypoint_scores)


def test_predict_folder_and_video(plus_folder, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("7.jpg", "b.png"):
        cv2.imwrite(str(folder / name), synthetic_image())
    out = tmp_path / "out"
    assert main(["predict", "--model", str(plus_folder), "--image", str(folder), "--output", str(out)]) == 0
    records = json.loads((out / "keypoints.json").read_text())
    # not every stem is a number: ids are positions, unique (the stem 7 and the position 1 of b.png never collide)
    assert [r["image_id"] for r in records] == [0, 1] and (out / "7.png").is_file() and (out / "b.png").is_file()

    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (90, 120))
    for seed in range(3):
        writer.write(synthetic_image(seed=seed))
    writer.release()
    out = tmp_path / "video_out"
    assert main(["predict", "--model", str(plus_folder), "--image", str(video), "--output", str(out)]) == 0
    records = json.loads((out / "keypoints.json").read_text())
    assert [r["image_id"] for r in records] == [0, 1, 2]
    capture = cv2.VideoCapture(str(out / "clip.mp4"))
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (120, 90, 3)


# ------------------------------------------------------------------------------------------------------ detector
def tiny_detector(folder, labels=("person", "dog")) -> None:
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessor

    config = YolosConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=[64, 64],
        num_detection_tokens=3, id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
    )
    torch.manual_seed(0)
    model = YolosForObjectDetection(config)
    with torch.no_grad():  # every query votes "person" (class 0) with a fixed box
        model.class_labels_classifier.layers[-1].bias.copy_(torch.tensor([4.0] + [0.0] * len(labels)))
    model.save_pretrained(folder)
    YolosImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(folder)


def test_detector_boxes(plus_folder, image_file, tmp_path):
    tiny_detector(tmp_path / "det")
    detector = ObjectDetector(str(tmp_path / "det"), labels=["person"], threshold=0.5)
    (boxes, scores), = detector([synthetic_image()])
    assert boxes.shape == (3, 4) and np.all(scores > 0.5)
    # The zero-initialised box head predicts (cx, cy, w, h) = (0.5, 0.5, 0.5, 0.5) of the image.
    np.testing.assert_allclose(boxes[0], [22.5, 30.0, 45.0, 60.0], atol=0.05)
    pipe = PosePipeline.from_pretrained(plus_folder, detector=detector)
    instances = pipe(synthetic_image())
    assert len(instances) == 3 and instances[0].box_score == pytest.approx(float(scores[0]))
    out = tmp_path / "out"
    args = ["predict", "--model", str(plus_folder), "--image", str(image_file), "--detector", str(tmp_path / "det")]
    assert main([*args, "--output", str(out)]) == 0
    assert len(json.loads((out / "keypoints.json").read_text())) == 3
    with pytest.raises(ValueError, match=r"no class named \['cat'\].*'dog', 'person'"):
        ObjectDetector(str(tmp_path / "det"), labels=["cat"])


def test_detector_that_is_not_a_detector(tmp_path, plus_folder):
    from transformers import ViTConfig, ViTModel

    ViTModel(ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                       image_size=32)).save_pretrained(tmp_path / "vit")
    with pytest.raises(ValueError, match="is a 'vit' model, not an object detector"):
        ObjectDetector(str(tmp_path / "vit"))
    with pytest.raises(ValueError, match="not an object detector"):
        ObjectDetector(str(plus_folder))


# ------------------------------------------------------------------------------------------------------ drawing
def test_draw_pose_colours_and_threshold():
    from vitpose_plus.modeling import get_dataset_spec

    spec = get_dataset_spec("coco")
    image = np.zeros((200, 160, 3), np.uint8)
    keypoints = np.stack([np.linspace(20, 140, 17), np.linspace(20, 180, 17)], axis=1)
    instance = {"keypoints": keypoints, "keypoint_scores": np.ones(17), "bbox": [10, 10, 140, 180], "score": 0.8}
    picture = draw_pose(image, [instance], spec, show_scores=False)
    assert picture.shape == image.shape and picture.dtype == np.uint8 and not np.array_equal(picture, image)
    x, y = keypoints[0].round().astype(int)
    assert tuple(picture[y, x]) == tuple(spec.keypoint_colors[0])  # full score: the spec's colour, opaque
    hidden = draw_pose(image, [{**instance, "keypoint_scores": np.zeros(17)}], spec, draw_boxes=False)
    assert np.array_equal(hidden, image)  # nothing above the threshold, no box: nothing drawn
    with pytest.raises(ValueError, match="5 keypoints and 17 scores but dataset .aic. has 14 keypoints"):
        draw_pose(image, [{**instance, "keypoints": keypoints[:5]}], get_dataset_spec("aic"))


# ------------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not valid JSON"),
        ('{"bbox": [1, 2, 3, 4]}', "single box object"),
        ("[[1, 2, 3]]", r"box #0: expected boxes of 4 numbers"),
        ('[[1, 2, "a", 4]]', r"box #0: boxes must be numbers"),
        ("[[1, 2, 3, NaN]]", r"box #0: box \[1.0, 2.0, 3.0, nan\] \(x, y, w, h\) must be finite"),
        ('[{"box": [1, 2, 3, 4]}]', "needs a 'bbox' key"),
        ("[[1, 2, -3, 4]]", "must be finite with a positive width and height"),
        ('{"a.png": 5}', "image 'a.png': expected a list of boxes"),
        ("3", "expected a list of"),
    ],
)
def test_bad_boxes_file(tmp_path, content, message):
    path = tmp_path / "boxes.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        load_boxes_file(path)
    assert "boxes.json" in str(info.value)


def test_predict_cli_errors(plus_folder, image_file, tmp_path, capsys):
    base = ["predict", "--model", str(plus_folder), "--output", str(tmp_path / "out")]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    assert main([*base, "--image", str(broken)]) == 1
    assert "broken.jpg" in capsys.readouterr().err
    assert main([*base, "--image", str(tmp_path / "missing.png")]) == 1
    assert "missing.png' does not exist" in capsys.readouterr().err
    assert main([*base, "--image", str(image_file), "--dataset", "ap10k"]) == 1
    assert "no dataset 'ap10k'; its datasets are ['coco', 'aic', 'mpii']" in capsys.readouterr().err
    keyed = tmp_path / "keyed.json"
    keyed.write_text(json.dumps({"other.png": [BOXES[0]]}))
    assert main([*base, "--image", str(image_file), "--boxes", str(keyed)]) == 1
    assert "no entry for image '000000000139.png'" in capsys.readouterr().err


def test_boxes_keyed_by_file_name(tmp_path):
    folder = tmp_path / "model"
    make_model(tiny_config()).save_pretrained(folder)
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), synthetic_image())
    keyed = tmp_path / "keyed.json"
    keyed.write_text(json.dumps({"a": [[10, 12, 50, 82]]}))  # by stem, xyxy
    out = tmp_path / "out"
    args = ["predict", "--model", str(folder), "--image", str(image), "--boxes", str(keyed), "--box-format", "xyxy"]
    assert main([*args, "--output", str(out)]) == 0
    (record,) = json.loads((out / "keypoints.json").read_text())
    assert record["bbox"] == [10.0, 12.0, 40.0, 70.0]
