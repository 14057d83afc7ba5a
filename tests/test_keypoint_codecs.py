"""Codec formulas against hand-computed values and loop transcriptions of the original mmpose 0.x code."""

import math

import cv2
import numpy as np
import pytest
import torch

from vitpose_plus.modeling.keypoint_codecs import (
    MSRAHeatmap,
    UDPHeatmap,
    box_to_center_scale,
    codec_for,
    flip_back_heatmaps,
    flip_keypoints,
    gaussian_targets,
    get_affine_transform,
    get_udp_warp_matrix,
    heatmap_to_image_coords,
    mpii_center_scale,
    opencv_gaussian_kernel,
    sanitize_box,
    transform_points,
    warp_image,
)

UDP, MSRA = UDPHeatmap(), MSRAHeatmap()


def encode_heatmaps(keypoints, visibility=None, use_udp=True, sigma=2.0):
    return gaussian_targets(keypoints, visibility, use_udp, sigma=sigma)


def decode_heatmaps(heatmaps, use_udp=True, kernel_size=11):
    return UDPHeatmap(blur_kernel_size=kernel_size).decode(heatmaps) if use_udp else MSRA.decode(heatmaps)


def test_box_to_center_scale_hand_values():
    c, s = box_to_center_scale([10, 20, 100, 200])  # taller than 3:4 (width / height of 256x192) -> width 150
    np.testing.assert_allclose(c, [60, 120])
    np.testing.assert_allclose(s, [150 / 200 * 1.25, 200 / 200 * 1.25])
    c, s = box_to_center_scale([[0, 0, 300, 100]])  # wider -> height 400
    np.testing.assert_allclose(s, [[300 / 200 * 1.25, 400 / 200 * 1.25]])


def test_mpii_center_scale_and_sanitize():
    c, s = mpii_center_scale([100, 200], 2.0)
    np.testing.assert_allclose(c, [99, 200 + 30 - 1])
    np.testing.assert_allclose(s, [2.5, 2.5])
    assert sanitize_box([-5, 10, 50, 20], 40, 100) == [0.0, 10.0, 39.0, 19.0]
    assert sanitize_box([10, 10, 0, 20], 100, 100) is None
    assert sanitize_box([10, 10, -3, 20], 100, 100) is None


def test_udp_warp_maps_box_edges_to_0_and_size_minus_1():
    c, s = box_to_center_scale([37.0, 11.0, 120.0, 160.0])  # exactly 3:4
    m = get_udp_warp_matrix(c, s, 0.0)
    half = 100 * s
    pts = np.array([c - half, c + half, c, [c[0] - half[0], c[1] + half[1]]])
    np.testing.assert_allclose(transform_points(pts, m), [[0, 0], [191, 255], [95.5, 127.5], [0, 255]], atol=1e-9)


def test_udp_rotation_formula():
    c, s, t = np.array([50.0, 80.0]), np.array([0.7, 0.9]), 30.0
    m = get_udp_warp_matrix(c, s, t)
    p = np.array([70.0, 60.0])
    dx, dy = p - c
    th = math.radians(t)
    sx, sy = 191 / (200 * s[0]), 255 / (200 * s[1])
    expected = [
        sx * (math.cos(th) * dx - math.sin(th) * dy) + 95.5,
        sy * (math.sin(th) * dx + math.cos(th) * dy) + 127.5,
    ]
    np.testing.assert_allclose(transform_points(p, m), expected, atol=1e-9)


def _original_affine(center, scale, rot, output_size, inv=False):
    """mmpose 0.x get_affine_transform (3 points + cv2.getAffineTransform), transcribed."""
    scale_tmp = np.asarray(scale) * 200.0
    r = np.pi * rot / 180
    sn, cs = np.sin(r), np.cos(r)
    src_dir = np.array([-(scale_tmp[0] * -0.5) * sn, scale_tmp[0] * -0.5 * cs])
    dst_dir = np.array([0.0, output_size[0] * -0.5])

    def third(a, b):
        d = a - b
        return b + np.array([-d[1], d[0]], dtype=np.float32)

    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + src_dir
    src[2] = third(src[0], src[1])
    dst[0] = [output_size[0] * 0.5, output_size[1] * 0.5]
    dst[1] = dst[0] + dst_dir
    dst[2] = third(dst[0], dst[1])
    return cv2.getAffineTransform(dst, src) if inv else cv2.getAffineTransform(src, dst)


@pytest.mark.parametrize("rot", [0.0, 25.0, -70.0])
def test_non_udp_affine_matches_original_three_point_form(rot):
    c, s = np.array([60.0, 120.0]), np.array([0.9375, 1.25])
    np.testing.assert_allclose(get_affine_transform(c, s, rot), _original_affine(c, s, rot, (192, 256)), atol=2e-5)
    np.testing.assert_allclose(
        get_affine_transform(c, s, rot, inverse=True), _original_affine(c, s, rot, (192, 256), True), atol=2e-5
    )
    np.testing.assert_allclose(MSRA.crop_matrix(c, s, rot), get_affine_transform(c, s, rot, (256, 192)))
    np.testing.assert_allclose(UDP.crop_matrix(c, s, rot), get_udp_warp_matrix(c, s, rot, (256, 192)))
    # centre -> (96, 128), single scale 192 / (200 s_w)
    np.testing.assert_allclose(transform_points(c, get_affine_transform(c, s, 0)), [96, 128], atol=1e-9)


def test_warp_image_cv2_and_torch_agree():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur((rng.random((300, 200, 3)) * 255).astype(np.uint8), (7, 7), 0)
    m = get_udp_warp_matrix([100, 150], [0.8, 1.1], 25)
    a = warp_image(img, m, backend="cv2").astype(np.float64)
    b = warp_image(img, m, backend="torch").astype(np.float64)
    # cv2 quantises interpolation weights to 1/32 px; on uint8 the crops differ by at most one grey level.
    assert np.abs(a - b).max() <= 1.0 and np.abs(a - b).mean() < 0.01
    assert (a == 0).any()  # the padded box leaves the image: constant-zero border
    af = warp_image(img.astype(np.float32), m, backend="cv2")
    bf = warp_image(img.astype(np.float32), m, backend="torch")
    assert np.abs(af - bf).max() < 0.05


def _original_target(joints, vis, use_udp, image_size=(192, 256), heatmap_size=(48, 64), sigma=2.0):
    """mmpose 0.x TopDownGenerateTarget (gaussian, per joint loops), transcribed."""
    k = len(joints)
    w, h = heatmap_size
    target = np.zeros((k, h, w), np.float32)
    weight = np.zeros(k, np.float32)
    tmp = sigma * 3
    image_size, heatmap_size = np.array(image_size, float), np.array(heatmap_size, float)
    stride = (image_size - 1) / (heatmap_size - 1) if use_udp else image_size / heatmap_size
    for j in range(k):
        weight[j] = min(1, vis[j])
        mu_x = int(joints[j][0] / stride[0] + 0.5)
        mu_y = int(joints[j][1] / stride[1] + 0.5)
        ul = [int(mu_x - tmp), int(mu_y - tmp)]
        br = [int(mu_x + tmp + 1), int(mu_y + tmp + 1)]
        if ul[0] >= w or ul[1] >= h or br[0] < 0 or br[1] < 0:
            weight[j] = 0
        if weight[j] <= 0.5:
            continue
        size = 2 * tmp + 1
        x = np.arange(0, size, 1, np.float32)
        y = x[:, None]
        x0 = y0 = size // 2
        if use_udp:
            x0 += joints[j][0] / stride[0] - mu_x
            y0 += joints[j][1] / stride[1] - mu_y
        g = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))
        g_x = max(0, -ul[0]), min(br[0], w) - ul[0]
        g_y = max(0, -ul[1]), min(br[1], h) - ul[1]
        img_x = max(0, ul[0]), min(br[0], w)
        img_y = max(0, ul[1]), min(br[1], h)
        target[j][img_y[0]:img_y[1], img_x[0]:img_x[1]] = g[g_y[0]:g_y[1], g_x[0]:g_x[1]]
    return target, weight


@pytest.mark.parametrize("sigma", [2.0, 1.5, 2.5, 3.0])
@pytest.mark.parametrize("use_udp", [True, False])
def test_encode_matches_original_loops(use_udp, sigma):
    # sigma 1.5 and 2.5 give a non-integer 3 sigma: the original keeps it as a float, truncates mu +- 3 sigma toward
    # zero and centres the window array on floor((2r + 1) / 2), which shifts windows near the left/top border.
    rng = np.random.default_rng(1)
    joints = np.concatenate([rng.uniform(-30, 220, (40, 2)), [[-40.0, 100.0], [250.0, 10.0], [-1.0, -2.0],
                                                              [5.0, 7.0], [1.0, 250.0]]])
    vis = rng.integers(0, 3, len(joints)).astype(float)
    vis[-5:] = 2
    hm, w = encode_heatmaps(joints, vis, use_udp=use_udp, sigma=sigma)
    ref_hm, ref_w = _original_target(joints, vis, use_udp, sigma=sigma)
    np.testing.assert_array_equal(w, ref_w)
    np.testing.assert_allclose(hm, ref_hm, atol=1e-6)
    if sigma <= 2:
        assert w[-5] == 0 and w[-4] == 0  # window entirely outside the map
    codec = codec_for(use_udp, sigma=sigma)
    np.testing.assert_allclose(codec.encode(joints, vis)[0], ref_hm, atol=1e-6)


def test_udp_peak_at_subpixel_mu():
    hm, _ = encode_heatmaps(np.array([[95.5, 127.5, 2]]), use_udp=True)
    # mu = (95.5 * 47 / 191, 127.5 * 63 / 255) = (23.5, 31.5): four equal maxima around the sub-pixel centre
    np.testing.assert_allclose(hm[0, 31:33, 23:25], np.exp(-0.5 / 8), rtol=1e-6)


@pytest.mark.parametrize("kernel", [3, 5, 7, 9, 11, 13])
def test_blur_kernels_are_opencvs(kernel):
    # cv2.GaussianBlur(hm, (k, k), 0), as the original calls it: fixed kernels for k <= 9, the sigma formula above.
    np.testing.assert_allclose(opencv_gaussian_kernel(kernel).numpy(),
                               cv2.getGaussianKernel(kernel, 0, cv2.CV_64F).ravel(), atol=1e-7)
    hm = np.random.default_rng(2).random((32, 24)).astype(np.float32)
    ref = cv2.GaussianBlur(hm, (kernel, kernel), 0)
    k = opencv_gaussian_kernel(kernel).numpy()
    ours = cv2.sepFilter2D(hm.astype(np.float64), -1, k, k, borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    if kernel == 11:  # transformers' sigma 0.8 would differ by far more than this tolerance
        assert np.abs(cv2.GaussianBlur(hm, (11, 11), 0.8) - ref).max() > 0.05


def _original_dark_udp(coords, hms, kernel=11):
    """mmpose 0.x post_dark_udp, transcribed (cv2 blur, flat-index gathers)."""
    hms = hms.copy()
    b, k, h, w = hms.shape
    for heatmaps in hms:
        for heatmap in heatmaps:
            cv2.GaussianBlur(heatmap, (kernel, kernel), 0, heatmap)
    np.clip(hms, 0.001, 50, hms)
    np.log(hms, hms)
    pad = np.pad(hms, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge").flatten()
    index = coords[..., 0] + 1 + (coords[..., 1] + 1) * (w + 2)
    index += (w + 2) * (h + 2) * np.arange(0, b * k).reshape(-1, k)
    index = index.astype(int).reshape(-1, 1)
    i_, ix1, iy1 = pad[index], pad[index + 1], pad[index + w + 2]
    ix1y1, ix1_y1_ = pad[index + w + 3], pad[index - w - 3]
    ix1_, iy1_ = pad[index - 1], pad[index - 2 - w]
    dx, dy = 0.5 * (ix1 - ix1_), 0.5 * (iy1 - iy1_)
    der = np.concatenate([dx, dy], axis=1).reshape(b, k, 2, 1)
    dxx, dyy = ix1 - 2 * i_ + ix1_, iy1 - 2 * i_ + iy1_
    dxy = 0.5 * (ix1y1 - ix1 - iy1 + i_ + i_ - ix1_ - iy1_ + ix1_y1_)
    hess = np.concatenate([dxx, dxy, dxy, dyy], axis=1).reshape(b, k, 2, 2)
    hess = np.linalg.inv(hess + np.finfo(np.float32).eps * np.eye(2))
    return coords - np.einsum("ijmn,ijnk->ijmk", hess, der).squeeze(-1)


@pytest.mark.parametrize("kernel", [5, 11])
def test_dark_udp_matches_original_on_noisy_heatmaps(kernel):
    rng = np.random.default_rng(3)
    kps = np.stack([np.c_[rng.uniform(10, 180, 17), rng.uniform(10, 245, 17), np.full(17, 2)] for _ in range(3)])
    hms = np.stack([encode_heatmaps(k, use_udp=True)[0] for k in kps])
    hms = (hms + rng.normal(0, 0.02, hms.shape)).astype(np.float32)
    flat = hms.reshape(3, 17, -1)
    idx = flat.argmax(-1)
    coords = np.stack([idx % 48, idx // 48], -1).astype(np.float64)
    ref = _original_dark_udp(coords, hms, kernel)
    got, scores = decode_heatmaps(torch.from_numpy(hms), use_udp=True, kernel_size=kernel)
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-4)
    np.testing.assert_allclose(scores.numpy(), flat.max(-1), rtol=1e-6)


def test_udp_roundtrip_recovers_subpixel_keypoints():
    rng = np.random.default_rng(4)
    kps = np.c_[rng.uniform(20, 170, 50), rng.uniform(20, 235, 50)]
    hm, _ = encode_heatmaps(kps, np.full(50, 2.0), use_udp=True)
    coords, _ = decode_heatmaps(torch.from_numpy(hm)[None], use_udp=True)
    expected = kps * np.array([47 / 191, 63 / 255])
    assert np.abs(coords[0].numpy() - expected).max() < 0.05


def test_quarter_offset_and_msra_roundtrip():
    hm = np.zeros((1, 1, 64, 48), np.float32)
    hm[0, 0, 10, 20] = 1.0
    hm[0, 0, 10, 21] = 0.5  # right neighbour higher -> +0.25 x
    hm[0, 0, 9, 20] = 0.3  # upper neighbour higher -> -0.25 y
    coords, scores = decode_heatmaps(torch.from_numpy(hm), use_udp=False)
    np.testing.assert_allclose(coords[0, 0].numpy(), [20.25, 9.75])
    hm2 = np.zeros((1, 1, 64, 48), np.float32)
    hm2[0, 0, 1, 20] = 1.0
    hm2[0, 0, 1, 21] = 0.5  # py = 1 is not strictly inside: no shift
    np.testing.assert_allclose(decode_heatmaps(torch.from_numpy(hm2), use_udp=False)[0][0, 0].numpy(), [20, 1])
    kps = np.array([[40.0, 60.0, 2], [101.0, 33.0, 2]])
    msra, _ = encode_heatmaps(kps, use_udp=False)
    c, _ = decode_heatmaps(torch.from_numpy(msra)[None], use_udp=False)
    # centred on int(x / 4 + 0.5); a symmetric integer-centred Gaussian gets no quarter shift
    np.testing.assert_allclose(c[0].numpy(), [[10, 15], [25, 8]])


def test_zero_heatmap_gives_minus_one():
    coords, scores = decode_heatmaps(torch.zeros(1, 2, 64, 48), use_udp=True)
    assert (coords == -1).all() and (scores == 0).all()


def test_heatmap_to_image_inverse_conventions():
    c, s = np.array([[60.0, 120.0]]), np.array([[0.9375, 1.25]])
    pts = np.array([[[0.0, 0.0], [47.0, 63.0], [23.5, 31.5]]])
    out = heatmap_to_image_coords(pts, c, s, (64, 48), use_udp=True)
    np.testing.assert_allclose(out[0], [[60 - 93.75, 120 - 125], [60 + 93.75, 120 + 125], [60, 120]])
    out = heatmap_to_image_coords(np.array([[[24.0, 32.0]]]), c, s, (64, 48), use_udp=False)
    np.testing.assert_allclose(out[0, 0], [60, 120])
    # the UDP inverse undoes the UDP crop + stride exactly
    m = get_udp_warp_matrix(c[0], s[0])
    p = np.array([33.3, 140.7])
    hm_pt = transform_points(p, m) * np.array([47 / 191, 63 / 255])
    np.testing.assert_allclose(heatmap_to_image_coords(hm_pt[None, None], c, s, (64, 48), True)[0, 0], p, atol=1e-9)
    # same for the non-UDP crop with stride 4
    m = get_affine_transform(c[0], s[0])
    hm_pt = transform_points(p, m) / 4
    np.testing.assert_allclose(heatmap_to_image_coords(hm_pt[None, None], c, s, (64, 48), False)[0, 0], p, atol=1e-9)


def test_flip_keypoints_twice_is_identity_and_swaps_pairs():
    rng = np.random.default_rng(5)
    kp = np.c_[rng.uniform(0, 99, (17, 2)), rng.integers(1, 3, 17)]
    pairs = [(1, 2), (3, 4), (5, 6)]
    once = flip_keypoints(kp, 100, pairs)
    assert once[1, 0] == pytest.approx(99 - kp[2, 0]) and once[1, 1] == kp[2, 1]
    np.testing.assert_allclose(flip_keypoints(once, 100, pairs), kp)
    hm = torch.rand(2, 4, 8, 6)
    perm = [1, 0, 3, 2]
    torch.testing.assert_close(flip_back_heatmaps(flip_back_heatmaps(hm, perm, False), perm, False), hm)
    shifted = flip_back_heatmaps(hm, perm, True)
    torch.testing.assert_close(shifted[..., 1:], hm[:, perm].flip(-1)[..., :-1])
    torch.testing.assert_close(MSRA.flip_back(hm, perm), shifted)
    torch.testing.assert_close(UDP.flip_back(hm, perm), flip_back_heatmaps(hm, perm, False))


def test_bf16_and_grad_heatmaps_decode():
    hm = torch.from_numpy(encode_heatmaps(np.array([[50.0, 70.0, 2]]))[0])[None].requires_grad_(True)
    c32, _ = decode_heatmaps(hm)
    c16, _ = decode_heatmaps(hm.detach().to(torch.bfloat16))
    assert torch.allclose(c32, c16, atol=0.1)


def test_nan_heatmaps_decode_to_nan_not_made_up_coordinates():
    hm = torch.rand(1, 2, 64, 48)
    hm[0, 1, 3, 4] = float("nan")
    coords, scores = UDP.decode(hm)
    assert torch.isnan(scores[0, 1]) and torch.isnan(coords[0, 1]).all() and torch.isfinite(coords[0, 0]).all()


def test_codec_for_follows_the_spec_and_sizes():
    from vitpose_plus.modeling import get_dataset_spec

    coco, aic = codec_for(get_dataset_spec("coco"), (128, 96)), codec_for({"use_udp": False}, (128, 96), (32, 24))
    assert isinstance(coco, UDPHeatmap) and coco.heatmap_size == (32, 24) and coco.input_size == (128, 96)
    assert isinstance(aic, MSRAHeatmap) and aic.to_dict()["type"] == "msra"
    with pytest.raises(ValueError, match="positive odd"):
        UDPHeatmap(blur_kernel_size=4)
