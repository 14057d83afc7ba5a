"""VitPosePlusImageProcessor: crops, decoding, save/load and AutoImageProcessor."""

import numpy as np
import pytest
import torch
from transformers import AutoImageProcessor

from vitpose_plus.modeling.configuration_vitpose_plus import VitPosePlusConfig
from vitpose_plus.modeling.image_processing_vitpose_plus import VitPosePlusImageProcessor
from vitpose_plus.modeling.keypoint_codecs import (
    box_to_center_scale,
    gaussian_targets,
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
    with pytest.raises(ValueError, match="2 images but 1 lists of boxes; give one list per image"):
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
        hms.append(gaussian_targets(np.c_[crop_pts, np.full(17, 2)], use_udp=use_udp)[0])
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
    assert [d["name"] for d in cfg["datasets"]] == ["ap10k"] and cfg["datasets"][0]["use_udp"] is False
    assert cfg["blur_kernel_size"] == 11 and cfg["sigma"] == 2.0 and cfg["heatmap_size"] == {"height": 64, "width": 48}
    loaded = VitPosePlusImageProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == proc.to_dict()
    auto = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(auto, VitPosePlusImageProcessor) and auto.padding_factor == 1.3
    image = np.zeros((50, 50, 3), np.uint8)
    box = [[0, 0, 20, 20]]
    torch.testing.assert_close(auto(image, box)["pixel_values"], proc(image, box)["pixel_values"])


def test_datasets_by_index_name_or_spec_from_any_module_copy():
    config = VitPosePlusConfig(datasets=["coco", "ap10k"])
    proc = VitPosePlusImageProcessor.from_model_config(config)
    hm = torch.zeros(1, 17, 64, 48)
    hm[0, :, 30, 20] = 1.0

    class ForeignSpec:  # a spec object from another module copy (trust_remote_code loads modules separately)
        def __init__(self, spec):
            self.spec = spec

        def to_dict(self):
            return self.spec.to_dict()

    results = [proc.post_process_pose_estimation(hm, [[[0, 0, 96, 128]]], dataset=d)[0][0]
               for d in (1, "ap10k", config.dataset_spec(1), ForeignSpec(config.dataset_spec(1)),
                         config.dataset_spec(1).to_dict())]
    for result in results:
        assert result["keypoint_names"] == list(config.dataset_spec(1).keypoint_names) and result["dataset"] == "ap10k"
        torch.testing.assert_close(result["keypoints"], results[0]["keypoints"])
    with pytest.raises(ValueError, match=r"out of range; the datasets are \['coco', 'ap10k'\]"):
        proc.post_process_pose_estimation(hm, [[[0, 0, 96, 128]]], dataset=2)


def test_mixed_dataset_batch_post_processed_in_one_call():
    config = VitPosePlusConfig(datasets=["coco", "aic"])
    proc = VitPosePlusImageProcessor.from_model_config(config)
    hm = torch.rand(3, 17, 64, 48)
    boxes = [[[0, 0, 96, 128], [10, 10, 50, 60]], [[5, 5, 40, 40]]]
    mixed = proc.post_process_pose_estimation(hm, boxes, dataset=torch.tensor([0, 1, 1]))
    assert [len(r["keypoints"]) for per in mixed for r in per] == [17, 14, 14]
    alone = proc.post_process_pose_estimation(hm[1:2], [[boxes[0][1]]], dataset="aic")[0][0]
    torch.testing.assert_close(mixed[0][1]["keypoints"], alone["keypoints"])
    # transformers' VitPose convention: bbox as corners with x2 = x + w - 1
    torch.testing.assert_close(mixed[0][1]["bbox"], torch.tensor([10.0, 10.0, 59.0, 69.0]))
    assert mixed[1][0]["labels"].tolist() == list(range(14))


def test_processor_from_model_config_takes_sizes_and_datasets():
    from helpers import tiny_plus_config

    config = tiny_plus_config()
    processor = VitPosePlusImageProcessor.from_model_config(config, dataset="aic", blur_kernel_size=5)
    assert processor.size == {"height": 64, "width": 48} and processor.heatmap_size == {"height": 16, "width": 12}
    assert [d["name"] for d in processor.datasets] == ["coco", "aic", "mpii"] and processor.dataset == 1
    assert all("expert_index" not in d for d in processor.datasets)
    assert processor.codec().blur_kernel_size == 5 and not processor.codec().use_udp
    assert VitPosePlusImageProcessor.from_model_config(config).dataset == 0


def test_standard_call_time_arguments(image):
    proc = VitPosePlusImageProcessor()
    boxes = [[10.0, 20.0, 60.0, 80.0]]
    base = proc(image, boxes)["pixel_values"]
    plain = proc(image, boxes, image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0])["pixel_values"]
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(base, (plain - mean[:, None, None]) / std[:, None, None], atol=1e-5, rtol=0)
    small = proc(image, boxes, size={"height": 128, "width": 96})["pixel_values"]
    assert small.shape == (1, 3, 128, 96) and proc.size == {"height": 256, "width": 192}
    chw = proc(np.ascontiguousarray(image.transpose(2, 0, 1)), boxes, input_data_format="channels_first")
    torch.testing.assert_close(chw["pixel_values"], base)
    with pytest.raises(ValueError, match=r"Unknown arguments \['colour'\]"):
        proc(image, boxes, colour=1)


def test_pixel_values_are_validated(image):
    proc = VitPosePlusImageProcessor()
    boxes = [[10.0, 20.0, 60.0, 80.0]]
    unit = image.astype(np.float32) / 255
    with pytest.raises(ValueError, match=r"values in \[0, 1\].*do_rescale=False"):
        proc(unit, boxes)
    torch.testing.assert_close(proc(unit, boxes, do_rescale=False)["pixel_values"],
                               proc(image.astype(np.float32), boxes)["pixel_values"], atol=1e-4, rtol=0)
    nan = image.astype(np.float32)
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="Image 0 has NaN"):
        proc(nan, boxes)
    with pytest.raises(ValueError, match=r"Box 0 of image 0, \[500.0, 5.0, 10.0, 10.0\].*outside the 160x120"):
        proc(image, [[500.0, 5.0, 10.0, 10.0]])
