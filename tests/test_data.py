"""The data layer (vitpose_plus.data): loading into per-image rows, synthetic data, bad input."""

import copy
import json
import logging

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from vitpose_plus.data.datasets import flatten_top_down, load_keypoint_dataset, top_down_instances
from vitpose_plus.data.synthetic import SYNTHETIC_HAND_SPEC, make_synthetic_dataset
from vitpose_plus.file_io import decode_image
from vitpose_plus.modeling.dataset_specs import get_dataset_spec


@pytest.fixture(scope="module")
def coco_synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_coco")
    return make_synthetic_dataset("coco", 6, seed=3, out_dir=out), str(out)


def _ap_of_ground_truth(ann_path, spec):
    gt = COCO(ann_path)
    results = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in gt.dataset["annotations"] if a["num_keypoints"] > 0
    ]
    dt = gt.loadRes(results)
    ev = COCOeval(gt, dt, "keypoints")
    ev.params.kpt_oks_sigmas = np.array(spec.sigmas)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats[0]


@pytest.mark.parametrize("spec", ["coco", "ap10k", SYNTHETIC_HAND_SPEC])
def test_synthetic_ground_truth_scores_ap_1(tmp_path, spec):
    path = make_synthetic_dataset(spec, 5, seed=0, out_dir=tmp_path)
    spec = get_dataset_spec(spec)
    assert _ap_of_ground_truth(path, spec) == pytest.approx(1.0)
    data = json.load(open(path))
    vis = np.array([a["keypoints"][2::3] for a in data["annotations"]])
    assert set(np.unique(vis)) <= {0, 1, 2} and (vis == 2).any()
    for a in data["annotations"]:  # truncated keypoints are (0, 0, 0)
        kp = np.array(a["keypoints"]).reshape(-1, 3)
        assert (kp[kp[:, 2] == 0, :2] == 0).all()
        assert ((kp[kp[:, 2] > 0, :2] >= 0) & (kp[kp[:, 2] > 0, :2] <= 255)).all()


def test_synthetic_is_deterministic_and_varied(tmp_path):
    a = make_synthetic_dataset("coco", 4, seed=7, out_dir=tmp_path / "a")
    b = make_synthetic_dataset("coco", 4, seed=7, out_dir=tmp_path / "b")
    c = make_synthetic_dataset("coco", 4, seed=8, out_dir=tmp_path / "c")
    assert open(a).read() == open(b).read() != open(c).read()
    img_a = open(tmp_path / "a" / "images" / "000001.jpg", "rb").read()
    assert img_a == open(tmp_path / "b" / "images" / "000001.jpg", "rb").read()
    data = json.load(open(a))
    sizes = [ann["bbox"][3] for ann in data["annotations"]]
    assert len(data["images"]) == 4 and max(sizes) > 1.3 * min(sizes)


def test_load_synthetic_into_datasets(coco_synth, tmp_path):
    ann, root = coco_synth
    ds, stats = load_keypoint_dataset(ann, root, "coco", return_stats=True)
    data = json.load(open(ann))
    kept = [a for a in data["annotations"] if a["num_keypoints"] > 0]
    assert len(ds) == len(data["images"]) == stats.num_images  # one row per image
    assert stats.num_top_down == len(kept) and stats.num_annotations == len(data["annotations"])
    assert stats.num_top_down + stats.num_skipped == stats.num_annotations
    row = ds[0]
    assert set(row) == {"image", "image_id", "file_name", "width", "height", "dataset", "format", "instances"}
    assert len(row["instances"]["keypoints"][0]) == 51 and row["dataset"] == "coco"
    assert row["image"].size == (256, 256)
    flat = flatten_top_down(ds)
    assert len(flat) == len(kept) and np.asarray(flat[0]["keypoints"]).shape == (17, 3)
    flat.save_to_disk(str(tmp_path / "saved"))
    from datasets import load_from_disk

    again = load_from_disk(str(tmp_path / "saved"))
    assert again[0]["annotation_id"] == flat[0]["annotation_id"]
    np.testing.assert_array_equal(np.asarray(again[0]["image"]), np.asarray(flat[0]["image"]))


def test_mpii_format(tmp_path):
    img = np.full((300, 300, 3), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "a.jpg"), img)
    joints = [[100.0 + i, 150.0 + i] for i in range(16)]
    entry = {"image": "a.jpg", "center": [150.0, 140.0], "scale": 1.0, "joints": joints, "joints_vis": [1] * 16}
    path = tmp_path / "mpii.json"
    path.write_text(json.dumps([entry]))
    (instance,) = top_down_instances(load_keypoint_dataset(path, tmp_path, "mpii")[0])
    np.testing.assert_allclose(instance.center, [149.0, 140.0 + 15 - 1])
    np.testing.assert_allclose(instance.scale, [1.25, 1.25])
    np.testing.assert_allclose(instance.keypoints[0], [99.0, 149.0, 1.0])


# ------------------------------------------------------------------------------------------------ bad input
def _coco(tmp_path, k=17):
    cv2.imwrite(str(tmp_path / "img.png"), np.zeros((100, 80, 3), np.uint8))
    kps = [10.0, 20.0, 2] * k
    return {
        "images": [{"id": 1, "file_name": "img.png", "width": 80, "height": 100}],
        "annotations": [{"id": 5, "image_id": 1, "bbox": [5, 5, 40, 60], "keypoints": kps, "num_keypoints": k}],
    }


def _write(tmp_path, data):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["annotations"][0].pop("image_id"), "annotation id 5 has no 'image_id'"),
        (lambda d: d["annotations"][0].pop("bbox"), "annotation id 5 has no 'bbox'"),
        (lambda d: d["annotations"][0].update(keypoints=[1.0] * 50), "'keypoints' has 50 values, expected 51"),
        (lambda d: d["annotations"][0].update(image_id=9), "refers to image_id 9"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "'bbox' has 3 values, expected 4"),
        (lambda d: d["annotations"][0].update(keypoints=["a"] * 51), "must be a list of numbers"),
        (lambda d: d.pop("images"), "needs a list under 'images'"),
        (lambda d: d["images"][0].update(file_name="missing.png"), "missing.png"),
    ],
)
def test_malformed_annotations_raise_clear_errors(tmp_path, mutate, message):
    data = _coco(tmp_path)
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(ValueError, match=message) as info:
        load_keypoint_dataset(path, tmp_path, "coco")
    assert str(path) in str(info.value)


def test_invalid_json_and_unreadable_image(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_keypoint_dataset(bad, tmp_path, "coco")
    data = _coco(tmp_path)
    (tmp_path / "img.png").write_bytes(b"garbage, not a png")
    with pytest.raises(ValueError, match=r"img.png.*not a readable image"):
        load_keypoint_dataset(_write(tmp_path, data), tmp_path, "coco")
    with pytest.raises(ValueError, match="could not be decoded"):
        decode_image({"path": str(tmp_path / "img.png"), "bytes": None}, "annotation_id 5")


def test_skips_are_counted_with_ids(tmp_path, caplog):
    data = _coco(tmp_path)
    good = data["annotations"][0]
    zero_box = dict(copy.deepcopy(good), id=6, bbox=[5, 5, 0, 10])
    neg_box = dict(copy.deepcopy(good), id=7, bbox=[5, 5, -4, 10])
    no_kp = dict(copy.deepcopy(good), id=8, keypoints=[0] * 51, num_keypoints=0)
    no_kp_key = {k: v for k, v in good.items() if k != "keypoints"} | {"id": 9}
    data["annotations"] += [zero_box, neg_box, no_kp, no_kp_key]
    path = _write(tmp_path, data)
    with caplog.at_level(logging.WARNING):
        ds, stats = load_keypoint_dataset(path, tmp_path, "coco", return_stats=True)
    assert len(ds) == 1 and len(ds[0]["instances"]["annotation_id"]) == 5 and stats.num_top_down == 1
    assert stats.skipped == {"empty_box": [6, 7], "all_zero_keypoints": [8], "no_keypoints": [9]}
    assert "top-down skips: 2 empty_box, 1 no_keypoints, 1 all_zero_keypoints" in caplog.text


def test_box_is_sanitised_like_the_original(tmp_path):
    data = _coco(tmp_path)
    data["annotations"][0]["bbox"] = [-10, 50, 200, 100]
    ds = load_keypoint_dataset(_write(tmp_path, data), tmp_path, "coco")
    assert ds[0]["instances"]["bbox"][0] == [-10, 50, 200, 100]  # as in the file
    np.testing.assert_allclose(top_down_instances(ds[0])[0].bbox, [0, 50, 79, 49])


def test_grayscale_rgba_and_16bit_images_become_rgb(tmp_path):
    gray = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    out = decode_image(str(tmp_path / "g.png"))
    assert out.shape == (12, 10, 3) and (out[..., 0] == gray).all() and (out[..., 2] == gray).all()
    rgba = np.zeros((12, 10, 4), np.uint8)
    rgba[..., 2] = 200  # BGRA: red channel
    rgba[..., 3] = 7
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    out = decode_image(str(tmp_path / "a.png"))
    assert out.shape == (12, 10, 3) and (out[..., 0] == 200).all() and (out[..., 1:] == 0).all()
    g16 = (np.arange(120, dtype=np.uint16).reshape(12, 10) * 500)
    cv2.imwrite(str(tmp_path / "d.png"), g16)
    out = decode_image(str(tmp_path / "d.png"))
    np.testing.assert_array_equal(out[..., 1], np.rint(g16 / 257).astype(np.uint8))
    from PIL import Image

    pil16 = Image.open(tmp_path / "d.png")
    np.testing.assert_array_equal(decode_image(pil16)[..., 0], np.rint(g16 / 257).astype(np.uint8))
    assert decode_image(Image.fromarray(rgba[..., :3])).shape == (12, 10, 3)
