"""Bottom-up targets and geometry (`modeling/bottom_up_codec.py`) against hand-computed values and a transcription of
the original mmpose 0.x formulas."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from vitpose_plus.modeling import bottom_up_codec
from vitpose_plus.modeling.bottom_up_codec import (
    BottomUpTargetEncoder,
    encode_joints,
    generate_heatmaps,
    multi_scale_size,
    three_point_affine_transform,
    transform_joints,
)


def _gaussian_map(cx: int, cy: int, width: int, height: int, sigma: float = 2.0) -> np.ndarray:
    """Hand-built target: exp(-d^2 / (2 sigma^2)) within 3 sigma + 1 pixels of the integer centre, 0 elsewhere."""
    radius = int(3 * sigma + 1)
    out = np.zeros((height, width))
    for y in range(height):
        for x in range(width):
            if abs(x - cx) <= radius and abs(y - cy) <= radius:
                out[y, x] = math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
    return out


# ----------------------------------------------------------------------------------------------------------- heatmaps
def test_heatmap_peak_sits_on_the_truncated_joint():
    joints = np.array([[[10.7, 20.2, 2.0]]], dtype=np.float32)
    hm = generate_heatmaps(joints, 1, (48, 64))
    assert hm.shape == (1, 64, 48) and hm.dtype == np.float32
    # int() truncation: the peak is on (10, 20), not on the rounded (11, 20)
    assert hm[0, 20, 10] == 1.0
    np.testing.assert_allclose(hm[0], _gaussian_map(10, 20, 48, 64), rtol=1e-6, atol=1e-7)
    # the window is 15 pixels wide: x in 3..17
    assert hm[0, 20, 17] == pytest.approx(math.exp(-49 / 8), rel=1e-6) and hm[0, 20, 18] == 0
    assert hm[0, 20, 3] == pytest.approx(math.exp(-49 / 8), rel=1e-6) and hm[0, 20, 2] == 0


def test_heatmap_maximum_over_persons_visibility_and_bounds():
    joints = np.array(
        [
            [[10.0, 10.0, 1.0], [5.0, 5.0, 0.0]],  # keypoint 1 unlabelled: nothing drawn
            [[12.0, 10.0, 2.0], [-0.5, 3.0, 2.0]],  # int(-0.5) == 0: drawn at x = 0 (the original's truncation)
            [[1.0, 1.0, 2.0], [-1.2, 3.0, 2.0]],  # int(-1.2) == -1: skipped
            [[0.0, 0.0, 0.0], [48.0, 3.0, 2.0]],  # x == W: skipped
        ],
        dtype=np.float32,
    )
    hm = generate_heatmaps(joints, 2, (48, 64))
    expected0 = np.maximum(np.maximum(_gaussian_map(10, 10, 48, 64), _gaussian_map(12, 10, 48, 64)),
                           _gaussian_map(1, 1, 48, 64))
    np.testing.assert_allclose(hm[0], expected0, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(hm[1], _gaussian_map(0, 3, 48, 64), rtol=1e-6, atol=1e-7)
    assert hm[0, 10, 11] == pytest.approx(math.exp(-1 / 8), rel=1e-6)  # between the two peaks: max, not sum


def test_heatmap_window_rounding_for_half_integer_sigma():
    # sigma 1.5: window 12 px, ul = round(x - 5.5) with numpy's half-to-even rounding, Gaussian centre 5.5 in it.
    hm = generate_heatmaps(np.array([[[10.0, 10.0, 1.0]]], np.float32), 1, (32, 32), sigma=1.5)
    # ul = round(4.5) = 4, br = round(16.5) = 16: columns 4..15; pixel 4 + a holds exp(-(a - 5.5)^2 ...)
    row = hm[0, 10]
    assert np.count_nonzero(row) == 12 and row[4] > 0 and row[3] == 0 and row[15] > 0 and row[16] == 0
    # pixel 10 is a = 6 in the window, row 10 is b = 6: exp(-(0.5^2 + 0.5^2) / (2 * 2.25))
    assert row[10] == pytest.approx(math.exp(-0.5 / 4.5), rel=1e-6)
    assert row[9] == pytest.approx(math.exp(-0.5 / 4.5), rel=1e-6)  # a = 5: the peak lies between pixels 9 and 10


# ----------------------------------------------------------------------------------------------------------- joints
def test_joint_encoding_hand_computed():
    # K = 3 on an 8 x 6 (W x H) map: index = k * 48 + y * 8 + x, visible joints packed in keypoint order.
    joints = np.array(
        [
            [[2.7, 1.2, 2.0], [0.0, 0.0, 0.0], [7.9, 5.5, 1.0]],
            [[-0.3, 2.0, 2.0], [8.0, 1.0, 2.0], [3.0, 6.0, 2.0]],  # x = 8 and y = 6 out of bounds
            [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 0.0]],  # nothing visible
        ],
        dtype=np.float32,
    )
    encoded = encode_joints(joints, 3, (8, 6), max_num_people=4)
    assert encoded.shape == (4, 3, 2) and encoded.dtype == np.int64
    assert encoded[0].tolist() == [[0 * 48 + 1 * 8 + 2, 1], [2 * 48 + 5 * 8 + 7, 1], [0, 0]]
    assert encoded[1].tolist() == [[0 * 48 + 2 * 8 + 0, 1], [0, 0], [0, 0]]  # int(-0.3) == 0 is in bounds
    assert encoded[2].tolist() == [[0, 0]] * 3 and encoded[3].tolist() == [[0, 0]] * 3


def test_joint_encoding_keeps_the_first_max_num_people():
    joints = np.tile(np.array([[[1.0, 1.0, 1.0]]], np.float32), (31, 1, 1))
    joints[:, 0, 0] = np.arange(31) % 8
    encoded = encode_joints(joints, 1, (8, 8), max_num_people=30)
    assert encoded.shape == (30, 1, 2)
    assert encoded[:, 0, 0].tolist() == [8 + (i % 8) for i in range(30)]


def test_target_encoder_combines_both_and_checks_shapes():
    encoder = BottomUpTargetEncoder(2, (16, 12), sigma=2, max_num_people=5)
    joints = np.array([[[3.0, 4.0, 1.0], [15.5, 11.9, 1.0]]], np.float32)
    out = encoder.encode(joints)
    assert out["heatmaps"].shape == (2, 12, 16) and out["joints"].shape == (5, 2, 2)
    assert out["heatmaps"][1, 11, 15] == 1.0
    assert out["joints"][0].tolist() == [[4 * 16 + 3, 1], [192 + 11 * 16 + 15, 1]]
    assert encoder.encode(np.zeros((0, 2, 3), np.float32))["heatmaps"].sum() == 0
    with pytest.raises(ValueError, match=r"joints must have shape \(num_people, 2, 3\)"):
        encoder.encode(np.zeros((1, 3, 3)))


def _original_heatmap_generator(joints, num_joints, output_res, sigma):
    """mmpose 0.x `HeatmapGenerator.__call__` (non-UDP, square `output_res` generalised to `(W, H)`), transcribed."""
    width, height = output_res
    size = 6 * sigma + 3
    x = np.arange(0, size, 1, np.float32)
    y = x[:, None]
    x0 = y0 = 3 * sigma + 1
    g = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))
    hms = np.zeros((num_joints, height, width), dtype=np.float32)
    for p in joints:
        for idx, pt in enumerate(p):
            if pt[2] > 0:
                x, y = int(pt[0]), int(pt[1])
                if x < 0 or y < 0 or x >= width or y >= height:
                    continue
                ul = int(np.round(x - 3 * sigma - 1)), int(np.round(y - 3 * sigma - 1))
                br = int(np.round(x + 3 * sigma + 2)), int(np.round(y + 3 * sigma + 2))
                c, d = max(0, -ul[0]), min(br[0], width) - ul[0]
                a, b = max(0, -ul[1]), min(br[1], height) - ul[1]
                cc, dd = max(0, ul[0]), min(br[0], width)
                aa, bb = max(0, ul[1]), min(br[1], height)
                hms[idx, aa:bb, cc:dd] = np.maximum(hms[idx, aa:bb, cc:dd], g[a:b, c:d])
    return hms


def _original_joints_encoder(joints, num_joints, output_res, max_num_people):
    """mmpose 0.x `JointsEncoder.__call__` (`tag_per_joint=True`), transcribed, with the persons capped."""
    width, height = output_res
    visible_nodes = np.zeros((max_num_people, num_joints, 2), dtype=np.float32)
    for i in range(min(len(joints), max_num_people)):
        tot = 0
        for idx, pt in enumerate(joints[i]):
            x, y = int(pt[0]), int(pt[1])
            if pt[2] > 0 and 0 <= y < height and 0 <= x < width:
                visible_nodes[i][tot] = (idx * width * height + y * width + x, 1)
                tot += 1
    return visible_nodes


@pytest.mark.parametrize("seed", range(4))
def test_targets_equal_the_original_loops_on_random_joints(seed):
    # The codec's per-joint loop runs on Python scalars (the data pipeline's hot path); it must stay bit-identical
    # to the original's numpy loop, including truncation of negative coordinates and half-to-even window rounding.
    rng = np.random.default_rng(seed)
    for _ in range(200):
        people, k = int(rng.integers(0, 6)), int(rng.integers(1, 20))
        width, height = int(rng.integers(4, 80)), int(rng.integers(4, 80))
        joints = np.zeros((people, k, 3), np.float32)
        joints[..., 0] = rng.uniform(-10, width + 10, (people, k))
        joints[..., 1] = rng.uniform(-10, height + 10, (people, k))
        joints[..., 2] = rng.integers(0, 3, (people, k))
        if rng.random() < 0.3:
            joints[..., :2] = np.round(joints[..., :2] * 2) / 2  # half-integers and exact integers
        sigma = float(rng.choice([1.0, 1.5, 2.0, 2.5, 3.0]))
        np.testing.assert_array_equal(generate_heatmaps(joints, k, (width, height), sigma),
                                      _original_heatmap_generator(joints, k, (width, height), sigma))
        np.testing.assert_array_equal(encode_joints(joints, k, (width, height), 4),
                                      _original_joints_encoder(joints, k, (width, height), 4).astype(np.int64))


# ----------------------------------------------------------------------------------------------------------- geometry
def _original_affine(center, scale, rot, output_size, inv=False):
    """Transcription of mmpose 0.x `get_affine_transform` (float32 points, cv2.getAffineTransform)."""
    scale_tmp = np.asarray(scale) * 200.0
    src_w = scale_tmp[0]
    dst_w, dst_h = output_size
    rot_rad = np.pi * rot / 180
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    src_dir = [0.0 * cs - src_w * -0.5 * sn, 0.0 * sn + src_w * -0.5 * cs]

    def third(a, b):
        d = a - b
        return b + np.array([-d[1], d[0]], dtype=np.float32)

    src = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = np.asarray(center) + src_dir
    src[2] = third(src[0], src[1])
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + np.array([0.0, dst_w * -0.5])
    dst[2] = third(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(np.float32(dst), np.float32(src))
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


@pytest.mark.parametrize(
    "center, scale, rot, size",
    [
        ((320.0, 240.0), (3.2, 3.2), 0.0, (128, 128)),
        ((321.0, 240.0), (3.3, 2.4), 0.0, (704, 512)),
        ((100.5, 33.3), (1.1, 2.0), -29.9, (512, 512)),
        ((411.0, 97.0), (2.5, 2.5), 17.25, (128, 128)),
    ],
)
def test_three_point_affine_equals_the_original(center, scale, rot, size, monkeypatch):
    scale = np.asarray(scale, dtype=np.float32)
    for inverse in (False, True):
        ours = three_point_affine_transform(center, scale, rot, size, inverse=inverse)
        np.testing.assert_array_equal(ours, _original_affine(np.asarray(center), scale, rot, size, inverse))
        # the numpy solve used without OpenCV agrees to float64 rounding
        monkeypatch.setattr(bottom_up_codec, "cv2", None)
        solved = three_point_affine_transform(center, scale, rot, size, inverse=inverse)
        monkeypatch.undo()
        np.testing.assert_allclose(solved, ours, atol=1e-9, rtol=0)
    # the box centre goes to the output centre, the scale is output_width / (200 scale_x)
    matrix = three_point_affine_transform(center, scale, rot, size)
    np.testing.assert_allclose(transform_joints(np.asarray(center), matrix), [size[0] / 2, size[1] / 2], atol=1e-4)
    assert math.hypot(*matrix[0, :2]) == pytest.approx(size[0] / (200 * float(scale[0])), rel=1e-6)


@pytest.mark.parametrize(
    "width, height, scale, min_scale, size, center, image_scale",
    [
        (640, 480, 1.0, 1.0, (704, 512), (320, 240), (704 / 512 * 480 / 200, 2.4)),  # 682.7 -> 704
        (427, 640, 1.0, 1.0, (512, 768), (214, 320), (2.135, 768 / 512 * 427 / 200)),  # round(213.5) = 214
        (641, 500, 1.0, 1.0, (704, 512), (320, 250), (704 / 512 * 500 / 200, 2.5)),  # round(320.5) = 320
        (512, 512, 1.0, 1.0, (512, 512), (256, 256), (2.56, 2.56)),
        (640, 480, 2.0, 1.0, (1408, 1024), (320, 240), (704 / 512 * 480 / 200, 2.4)),
        (640, 480, 1.0, 0.5, (768, 512), (320, 240), (768 / 512 * 480 / 200, 2.4)),  # 341.3 -> 384 at scale 0.5
    ],
)
def test_multi_scale_size_hand_computed(width, height, scale, min_scale, size, center, image_scale):
    got_size, got_center, got_scale = multi_scale_size(width, height, (512, 512), scale, min_scale)
    assert got_size == size
    assert got_center.tolist() == list(center)
    np.testing.assert_allclose(got_scale, image_scale, rtol=1e-12)


def test_multi_scale_size_rejects_empty_images():
    with pytest.raises(ValueError, match="Image size must be positive"):
        multi_scale_size(0, 10)
