"""VitPosePlusImageProcessor: crops, decoding, save/load and AutoImageProcessor."""

import numpy as np
import pytest
import torch
from transformers import AutoImageProcessor

from vitpose_plus.modeling.configuration_vitpose_plus import VitPosePlusConfig
from vitpose_plus.modeling.image_processing_vitpose_plus import VitPosePlusImageProcessor
from vitpose_plus.modeling.keypoint_codecs import (
    box_to_center_scale,
    encode_heatmaps,
    get_affine_transform,
    get_udp_warp_matrix,
    transform_points,
)


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return (rng.random((120, 160, 3)) * 255).astype(np.uint8)


def test_pixel_values_are_normalised_udp_crops(image):
    proc = VitPosePlusImageProcessor()
    boxes = [[10.0, 20.0, 60.0, 80.0], [50.0, 5.0, 90.0, 40.0]]
    out = proc(image, boxes)["pixel_values"]
    assert out.shape == (2, 3, 256, 192) and out.dtype == torch.float32
    import cv2

    c, s = box_to_center_scale(boxes[1])
    crop = cv2.warpAffine(image, get_udp_warp_matrix(c, s), (192, 256), flags=cv2.INTER_LINEAR)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expected = ((crop / 255.0 - mean) / std).transpose(2, 0, 1)
    np.testing.assert_allclose(out[1].numpy(), expected, atol=1e-5)
    torch_out = VitPosePlusImageProcessor(crop_backend="torch")(image, boxes)["pixel_values"]
    assert (torch_out - out).abs().max() <= 1 / 255 / 0.224 + 1e-5  # at most one grey level apart


def test_batched_images_and_dataset_geometry(image):
    proc = VitPosePlusImageProcessor()
    gray = image[..., 0]
    rgba = np.concatenate([image, np.full_like(image[..., :1], 9)], -1)
    out = proc([image, gray, rgba], [[[0, 0, 50, 50]], [[0, 0, 50, 50], [10, 10, 20, 30]], []])["pixel_values"]
    assert out.shape == (3, 3, 256, 192)
    np.testing.assert_allclose(out[0], proc(rgba, [[0, 0, 50, 50]])["pixel_values"][0])
    udp = proc(image, [[10, 10, 60, 80]])["pixel_values"]
    non_udp = proc(image, [[10, 10, 60, 80]], dataset="ap10k")["pixel_values"]
    assert (udp - non_udp).abs().max() > 0.1  # different crop geometry per dataset
    with pytest.raises(ValueError, match="one list of boxes per image"):
        proc([image, image], [[[0, 0, 5, 5]]])
    with pytest.raises(ValueError, match="positive width and height"):
        proc(image, [[0, 0, 0, 5]])


@pytest.mark.parametrize("dataset", ["coco", "ap10k"])
def test_post_process_recovers_keypoints(dataset):
    proc = VitPosePlusImageProcessor()
    boxes = [[[30.0, 40.0, 90.0, 120.0]], [[5.0, 5.0, 40.0, 40.0], [100.0, 20.0, 30.0, 60.0]]]
    flat = [b for per in boxes for b in per]
    rng = np.random.default_rng(1)
    hms, truth = [], []
    use_udp = dataset == "coco"
    for box in flat:
        c, s = box_to_center_scale(box)
        pts = np.c_[rng.uniform(box[0] + 5, box[0] + box[2] - 5, 17), rng.uniform(box[1] + 5, box[1] + box[3] - 5, 17)]
        m = get_udp_warp_matrix(c, s) if use_udp else get_affine_transform(c, s)
        crop_pts = transform_points(pts, m)
        hms.append(encode_heatmaps(np.c_[crop_pts, np.full(17, 2)], use_udp=use_udp)[0])
        truth.append(pts)
    padded = torch.zeros(3, 133, 64, 48)
    padded[:, :17] = torch.from_numpy(np.stack(hms))
    results = proc.post_process_pose_estimation(padded, boxes, dataset=dataset)
    assert [len(r) for r in results] == [1, 2]
    got = np.stack([r["keypoints"].numpy() for per in results for r in per])
    err = np.abs(got - np.stack(truth))
    # UDP: DARK recovers sub-pixel positions; MSRA targets are integer-centred: within one quarter stride ± rounding
    assert err.max() < (0.3 if use_udp else 2.5) * max(b[3] for b in flat) / 256 * 4
    first = results[0][0]
    assert first["keypoint_names"][0] in ("nose", "L_Eye") and first["scores"].shape == (17,)
    peaks = hms[0].max(axis=(1, 2))  # instance score = mean keypoint score above 0.2
    assert first["score"] == pytest.approx(peaks[peaks > 0.2].mean(), rel=1e-5)
    kept = proc.post_process_pose_estimation(padded, boxes, dataset=dataset, threshold=2.0)
    assert kept[0][0]["keypoints"].shape == (0, 2)


def test_save_load_and_auto_class(tmp_path):
    proc = VitPosePlusImageProcessor(dataset="ap10k", padding_factor=1.3)
    proc.save_pretrained(tmp_path)
    assert (tmp_path / "preprocessor_config.json").exists()
    import json

    cfg = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert cfg["auto_map"]["AutoImageProcessor"].endswith("VitPosePlusImageProcessor")
    assert cfg["dataset"]["name"] == "ap10k" and cfg["dataset"]["use_udp"] is False
    loaded = VitPosePlusImageProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == proc.to_dict()
    auto = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(auto, VitPosePlusImageProcessor) and auto.padding_factor == 1.3
    image = np.zeros((50, 50, 3), np.uint8)
    box = [[0, 0, 20, 20]]
    torch.testing.assert_close(auto(image, box)["pixel_values"], proc(image, box)["pixel_values"])


def test_dataset_from_model_config():
    config = VitPosePlusConfig(datasets=["coco", "ap10k"])
    proc = VitPosePlusImageProcessor()
    hm = torch.zeros(1, 17, 64, 48)
    hm[0, :, 30, 20] = 1.0
    for i in range(2):
        out = proc.post_process_pose_estimation(hm, [[[0, 0, 96, 128]]], dataset=config.dataset_spec(i))
        assert out[0][0]["keypoint_names"] == list(config.dataset_spec(i).keypoint_names)
    with pytest.raises(ValueError, match="dataset_spec"):
        proc.post_process_pose_estimation(hm, [[[0, 0, 96, 128]]], dataset=1)


def test_processor_from_model_config_takes_size_and_dataset():
    from conftest import tiny_plus_config

    config = tiny_plus_config()
    processor = VitPosePlusImageProcessor.from_model_config(config, dataset="aic")
    assert processor.size == {"height": 64, "width": 48}
    assert processor.dataset["name"] == "aic" and processor.dataset["use_udp"] is False
    assert "expert_index" not in processor.dataset
    assert VitPosePlusImageProcessor.from_model_config(config).dataset["name"] == "coco"
