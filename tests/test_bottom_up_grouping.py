"""Associative-embedding grouping (`modeling/bottom_up_grouping.py`) on constructed heatmaps and tags with known
answers, following the original mmpose 0.x `HeatmapParser` step by step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitpose_plus.modeling.bottom_up_grouping import (
    COCO_JOINT_ORDER,
    GroupingParams,
    aggregate_outputs,
    joint_order,
    match_by_tag,
    parse,
    transform_preds,
)

K = 17
BACKGROUND_TAG = 50.0  # far from every person's tag: refinement never picks background pixels


def _draw(heatmaps, tags, k, x, y, peak, tag, right=0.0, left=0.0, down=0.0, up=0.0):
    """A peak at (x, y) with the given 4-neighbours, and the person's tag on the 3x3 patch around it."""
    heatmaps[k, y, x] = peak
    heatmaps[k, y, x + 1], heatmaps[k, y, x - 1] = right, left
    heatmaps[k, y + 1, x], heatmaps[k, y - 1, x] = down, up
    tags[k, y - 1 : y + 2, x - 1 : x + 2] = tag


def _scene(size: int = 64):
    heatmaps = np.zeros((K, size, size), np.float32)
    tags = np.full((K, size, size), BACKGROUND_TAG, np.float32)
    return heatmaps, tags


def _parse(heatmaps, tags, **params):
    return parse(torch.from_numpy(heatmaps), torch.from_numpy(tags)[..., None], GroupingParams(K, **params))


def test_joint_order_is_the_originals():
    assert joint_order(17) == [0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16] == list(COCO_JOINT_ORDER)
    assert joint_order(14) == list(range(14))


def test_two_persons_with_quarter_offsets():
    heatmaps, tags = _scene()
    for k in range(K):
        # person A: right and lower neighbours higher -> +0.25 on both axes; person B: symmetric -> -0.25
        _draw(heatmaps, tags, k, 10, 10 + 2 * k, 0.9, 0.0, right=0.5, left=0.3, down=0.5, up=0.3)
        _draw(heatmaps, tags, k, 40, 10 + 2 * k, 0.8, 3.0, right=0.4, left=0.4, down=0.4, up=0.4)
    people, scores = _parse(heatmaps, tags)
    assert people.shape == (2, K, 4)
    ys = 10 + 2 * np.arange(K)
    # A (higher nose score) was created first; adjust gives x + 0.25 + 0.5 and y + 0.25 + 0.5
    np.testing.assert_array_equal(people[0, :, 0], np.full(K, 10.75, np.float32))
    np.testing.assert_array_equal(people[0, :, 1], (ys + 0.75).astype(np.float32))
    np.testing.assert_array_equal(people[1, :, 0], np.full(K, 40.25, np.float32))
    np.testing.assert_array_equal(people[1, :, 1], (ys + 0.25).astype(np.float32))
    np.testing.assert_allclose(people[:, :, 2], [[0.9] * K, [0.8] * K], rtol=1e-6)
    np.testing.assert_array_equal(people[:, :, 3], [[0.0] * K, [3.0] * K])
    assert scores == pytest.approx([0.9, 0.8], rel=1e-6)


def test_three_persons_and_a_missing_keypoint_recovered_by_refinement():
    heatmaps, tags = _scene()
    for k in range(K):
        y = 5 + 3 * k
        _draw(heatmaps, tags, k, 8, y, 0.9, 0.0)
        _draw(heatmaps, tags, k, 28, y, 0.8, 3.0)
        if k == 0:
            # person C's nose is below the detection threshold (0.1): it is not grouped, refinement finds it
            _draw(heatmaps, tags, k, 48, y, 0.05, 6.0)
        else:
            _draw(heatmaps, tags, k, 48, y, 0.7, 6.0)
    people, scores = _parse(heatmaps, tags)
    assert people.shape == (3, K, 4)
    # C starts at the left eye (its first detected keypoint), after A and B, through the 1e10 padding column
    np.testing.assert_array_equal(people[:, 1, 3], [0.0, 3.0, 6.0])
    # symmetric (zero) neighbours: x - 0.25 + 0.5
    np.testing.assert_array_equal(people[2, 0, :3], np.array([48.25, 5.25, 0.05], np.float32))
    np.testing.assert_array_equal(people[2, 0, 3], 0.0)  # refinement does not write a tag
    np.testing.assert_array_equal(people[2, 1:, 0], np.full(K - 1, 48.25, np.float32))
    # the person score is taken before refinement: the missing nose counts as 0
    assert scores == pytest.approx([0.9, 0.8, 0.7 * 16 / 17], rel=1e-6)

    unrefined, _ = parse(torch.from_numpy(heatmaps), torch.from_numpy(tags)[..., None], GroupingParams(K),
                         refine=False)
    np.testing.assert_array_equal(unrefined[2, 0], np.zeros(4, np.float32))


def test_adjust_off_keeps_integer_peaks():
    heatmaps, tags = _scene()
    _draw(heatmaps, tags, 0, 12, 20, 0.9, 1.0, right=0.5)
    people, scores = parse(torch.from_numpy(heatmaps), torch.from_numpy(tags)[..., None], GroupingParams(K),
                           adjust=False, refine=False)
    assert people.shape == (1, K, 4)
    np.testing.assert_array_equal(people[0, 0], np.array([12, 20, 0.9, 1.0], np.float32))
    assert scores == pytest.approx([0.9 / K])


# ----------------------------------------------------------------------------------------------------------- matching
def _peaks(entries, k=2, m=4, tag_dim=1):
    """Build (tag_k, loc_k, val_k) from {keypoint: [(x, y, score, tag...), ...]} (sorted by score as top-k is)."""
    tag_k = np.zeros((k, m, tag_dim), np.float32)
    loc_k = np.zeros((k, m, 2), np.int64)
    val_k = np.zeros((k, m), np.float32)
    for j, peaks in entries.items():
        for i, (x, y, score, *tag) in enumerate(peaks):
            loc_k[j, i] = (x, y)
            val_k[j, i] = score
            tag_k[j, i] = tag
    return tag_k, loc_k, val_k


def test_tag_threshold_starts_a_new_person():
    # keypoint 1's second peak is nearest to person A (distance 1.2 -> cost 100 - 0.6) but not within the threshold 1
    inp = _peaks({0: [(1, 1, 0.9, 0.0), (5, 5, 0.8, 3.0)], 1: [(2, 2, 0.7, 3.1), (6, 6, 0.6, 1.2)]})
    people = match_by_tag(*inp, GroupingParams(2))
    assert people.shape == (3, 2, 4)
    np.testing.assert_allclose(people[1, 1], [2, 2, 0.7, 3.1], rtol=1e-6)  # joined B
    np.testing.assert_allclose(people[2], [[0, 0, 0, 0], [6, 6, 0.6, 1.2]], rtol=1e-6)  # a person of its own
    np.testing.assert_array_equal(people[0, 1], [0, 0, 0, 0])


def test_assignment_tie_two_by_two():
    # Both keypoint-1 peaks have the same score and are within rounded distance 0 of both persons, so both
    # assignments cost -0.7 - 0.7. Munkres (the original, munkres 1.1.4) and linear_sum_assignment both return the
    # identity for this tie: the first peak joins the first person.
    inp = _peaks({0: [(1, 1, 0.9, 0.0), (5, 5, 0.8, 0.4)], 1: [(2, 2, 0.7, 0.3), (6, 6, 0.7, 0.1)]})
    people = match_by_tag(*inp, GroupingParams(2))
    assert people.shape == (2, 2, 4)
    np.testing.assert_allclose(people[0, 1], [2, 2, 0.7, 0.3], rtol=1e-6)
    np.testing.assert_allclose(people[1, 1], [6, 6, 0.7, 0.1], rtol=1e-6)


def test_assignment_tie_with_more_peaks_than_persons():
    # Three keypoint-1 peaks of equal score, all within rounded distance 0 of both persons: every assignment of two
    # of them to the persons and one to a new person has the same cost. The original's Munkres (munkres 1.1.4)
    # returns [(0, 2), (1, 1), (2, 0)]: peak 0 starts a new person, peak 1 joins B, peak 2 joins A.
    # linear_sum_assignment returns [(0, 0), (1, 1), (2, 2)]: peak 0 joins A, peak 1 joins B, peak 2 starts a new
    # person. Both are optimal; this implementation gives the latter, pinned here.
    inp = _peaks({0: [(1, 1, 0.9, 0.0), (5, 5, 0.8, 0.2)], 1: [(2, 2, 0.5, 0.1), (6, 6, 0.5, 0.15), (9, 9, 0.5, 0.3)]})
    people = match_by_tag(*inp, GroupingParams(2))
    assert people.shape == (3, 2, 4)
    np.testing.assert_allclose(people[0, 1], [2, 2, 0.5, 0.1], rtol=1e-6)
    np.testing.assert_allclose(people[1, 1], [6, 6, 0.5, 0.15], rtol=1e-6)
    np.testing.assert_allclose(people[2], [[0, 0, 0, 0], [9, 9, 0.5, 0.3]], rtol=1e-6)


def test_equal_first_tags_merge_into_one_person():
    # The original keys persons by the first tag value of the peak that created them: two nose peaks with exactly
    # the same tag become one person, the later (lower-scored) peak overwriting the earlier one.
    inp = _peaks({0: [(1, 1, 0.9, 2.0), (30, 30, 0.8, 2.0)], 1: [(2, 2, 0.7, 2.1)]})
    people = match_by_tag(*inp, GroupingParams(2))
    assert people.shape == (1, 2, 4)
    np.testing.assert_allclose(people[0], [[30, 30, 0.8, 2.0], [2, 2, 0.7, 2.1]], rtol=1e-6)


def test_ignore_too_much_and_max_num_people():
    inp = _peaks({0: [(1, 1, 0.9, 0.0), (5, 5, 0.8, 3.0), (9, 9, 0.7, 6.0)], 1: [(2, 2, 0.7, 0.1), (6, 6, 0.6, 6.1)]})
    # with max_num_people = 2 only the first two persons are candidates: the peak of tag 6.1 starts a new person
    people = match_by_tag(*inp, GroupingParams(2, max_num_people=2))
    assert people.shape == (4, 2, 4)
    np.testing.assert_allclose(people[3, 1], [6, 6, 0.6, 6.1], rtol=1e-6)
    # ignore_too_much skips keypoint 1 entirely once max_num_people persons exist
    people = match_by_tag(*inp, GroupingParams(2, max_num_people=2, ignore_too_much=True))
    assert people.shape == (3, 2, 4)
    assert not people[:, 1].any()


def test_flip_tags_add_a_tag_dimension():
    # With flip test the tags have L = 2 (plain and flipped-back); the distance is the L2 norm over both. The second
    # peak is 0.4 from A in the first dimension but 1.4 away in the flipped one: it joins nobody.
    inp = _peaks({0: [(1, 1, 0.9, 0.0, 0.0)], 1: [(2, 2, 0.7, 0.4, 1.4)]}, tag_dim=2)
    people = match_by_tag(*inp, GroupingParams(2))
    assert people.shape == (2, 2, 5)
    np.testing.assert_allclose(people[1, 1], [2, 2, 0.7, 0.4, 1.4], rtol=1e-6)
    inp = _peaks({0: [(1, 1, 0.9, 0.0, 0.0)], 1: [(2, 2, 0.7, 0.4, 0.6)]}, tag_dim=2)
    assert match_by_tag(*inp, GroupingParams(2)).shape == (1, 2, 5)


def test_assignment_equals_munkres_on_random_costs():
    munkres = pytest.importorskip("munkres")
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(0)
    for _ in range(20):
        rows, cols = rng.integers(1, 8, size=2)
        cost = rng.normal(size=(rows, cols))
        if rows > cols:
            cost = np.concatenate([cost, np.full((rows, rows - cols), 1e10)], axis=1)
        # which padding column a row lands on is itself a tie: compare "joins column c" / "starts a new person"
        expected = sorted((r, c if c < cols else -1) for r, c in munkres.Munkres().compute(cost.copy()))
        r, c = linear_sum_assignment(cost)
        assert sorted((i, j if j < cols else -1) for i, j in zip(r.tolist(), c.tolist())) == expected


# ----------------------------------------------------------------------------------------------------------- geometry
def test_transform_preds_hand_computed():
    # 640 x 480 image resized to 704 x 512: center (320, 240), scale (3.3, 2.4), projected maps of 704 x 512
    coords = np.array([[352.0, 256.0, 0.9], [0.0, 0.0, 0.5]], np.float32)
    out = transform_preds(coords, (320, 240), (3.3, 2.4), (704, 512))
    np.testing.assert_allclose(out, [[320.0, 240.0], [-10.0, 0.0]], atol=1e-4)
    assert out.dtype == np.float32 and out.shape == (2, 2)


def test_aggregate_flip_and_scales():
    gen = torch.Generator().manual_seed(0)
    hm1, hm2 = torch.rand(1, 3, 8, 12, generator=gen), torch.rand(1, 3, 16, 24, generator=gen)
    tag1, ftag1, tag2 = (torch.rand(1, 3, 8, 12, generator=gen), torch.rand(1, 3, 8, 12, generator=gen),
                         torch.rand(1, 3, 16, 24, generator=gen))
    # project2image: everything to the base size (w, h) = (48, 32), heatmaps averaged, tags from scale 1 only
    heatmaps, tags = aggregate_outputs([hm1, hm2], [[tag1, ftag1], [tag2]], [1.0, 2.0], (48, 32), True, False)

    def up(t, size):
        return F.interpolate(t, size=size, mode="bilinear", align_corners=False)

    torch.testing.assert_close(heatmaps, (up(hm2, (32, 48)) + up(hm1, (32, 48))) / 2, atol=1e-7, rtol=0)
    torch.testing.assert_close(tags, torch.stack([up(tag1, (32, 48)), up(ftag1, (32, 48))], dim=-1), atol=0, rtol=0)
    # without projection the heatmaps go to the largest scale's size, and the scale-1 tags follow them
    heatmaps, tags = aggregate_outputs([hm1, hm2], [[tag1], [tag2]], [1.0, 2.0], (48, 32), False, False)
    torch.testing.assert_close(heatmaps, (hm2 + up(hm1, (16, 24))) / 2, atol=1e-7, rtol=0)
    torch.testing.assert_close(tags, up(tag1, (16, 24))[..., None], atol=1e-7, rtol=0)
    with pytest.raises(ValueError, match="scale-1 entry"):
        aggregate_outputs([hm2, hm2], [[tag2], [tag2]], [2.0, 0.5], None, False)


def test_no_detections_give_no_people():
    heatmaps, tags = _scene(16)
    people, scores = _parse(heatmaps, tags)
    assert people.shape == (0, K, 4) and scores == []
    with pytest.raises(ValueError, match="Got 3 heatmaps for 17 keypoints"):
        parse(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8, 1), GroupingParams(K))


def _original_refine(heatmap, tag, keypoints):
    """Transcription of the original `HeatmapParser.refine` (non-UDP), per keypoint type in numpy."""
    k, h, w = heatmap.shape
    tags = []
    for i in range(k):
        if keypoints[i, 2] > 0:
            x, y = keypoints[i][:2].astype(int)
            tags.append(tag[i, np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)])
    prev_tag = np.mean(tags, axis=0)
    results = []
    for _heatmap, _tag in zip(heatmap, tag):
        distance_tag = ((_tag - prev_tag[None, None, :]) ** 2).sum(axis=2) ** 0.5
        norm_heatmap = _heatmap - np.round(distance_tag)
        y, x = np.unravel_index(np.argmax(norm_heatmap), _heatmap.shape)
        xx, yy = x.copy(), y.copy()
        val = _heatmap[y, x]
        x, y = x + 0.5, y + 0.5
        x = x + 0.25 if _heatmap[yy, min(w - 1, xx + 1)] > _heatmap[yy, max(0, xx - 1)] else x - 0.25
        y = y + 0.25 if _heatmap[min(h - 1, yy + 1), xx] > _heatmap[max(0, yy - 1), xx] else y - 0.25
        results.append((x, y, val))
    results = np.array(results)
    for i in range(k):
        if results[i, 2] > 0 and keypoints[i, 2] == 0:
            keypoints[i, :3] = results[i, :3]
    return keypoints


@pytest.mark.parametrize("tag_dim", [1, 2])
def test_refine_equals_the_original_on_random_maps(tag_dim):
    from vitpose_plus.modeling.bottom_up_grouping import refine_keypoints

    rng = np.random.default_rng(tag_dim)
    for _ in range(10):
        heatmap = rng.random((5, 12, 16)).astype(np.float32) - 0.3
        tag = (rng.normal(size=(5, 12, 16, tag_dim)) * 1.5).astype(np.float32)
        keypoints = np.zeros((5, 3 + tag_dim), np.float32)
        for i in rng.choice(5, 2, replace=False):
            keypoints[i, :3] = (rng.uniform(-1, 17), rng.uniform(-1, 13), rng.uniform(0.1, 1))
        expected = _original_refine(heatmap, tag, keypoints.copy())
        got = refine_keypoints(torch.from_numpy(heatmap), torch.from_numpy(tag), keypoints.copy())
        np.testing.assert_array_equal(got, expected)
