"""Associative-embedding grouping: heatmaps and tags of a whole image to persons (mmpose 0.x `HeatmapParser`).

The steps and their order follow the original (`mmpose/core/post_processing/group.py`, `bottom_up_eval.py` and the
`AssociativeEmbedding` detector) with the AE test settings (`nms_kernel=5`, `max_num_people=30`,
`detection_threshold=0.1`, `tag_threshold=1`, `use_detection_val=True`, `ignore_too_much=False`, `adjust=True`,
`refine=True`, non-UDP):

1. `aggregate_outputs`: per test scale, heatmaps (already averaged with the flipped pass by the model) and tags
   (the plain and, with flip test, the flipped-back tags) are resized to the base input size when `project2image`
   (bilinear, `align_corners=False`); heatmaps are averaged over scales, tags come from scale 1 only and are stacked
   along a last axis of size L (2 with flip test);
2. `top_k`: 5x5 max-pool NMS, then the 30 best peaks per keypoint with their tags;
3. `match_by_tag`: keypoints visited in the original order (`joint_order`: for K = 17 the COCO order with the hips
   before the elbows); each peak above the detection threshold joins the person whose mean tag is nearest, with the
   cost `round(tag distance) * 100 - score` and the tag threshold, solved by `scipy.optimize.linear_sum_assignment`
   (the original's Munkres; same optimum, see `match_by_tag` on ties);
4. `adjust_keypoints`: quarter-pixel shift towards the higher neighbour plus 0.5;
5. person score = mean keypoint score over all K keypoints (missing ones count as 0), taken before refinement;
6. `refine_keypoints`: missing keypoints are filled in at the maximum of `heatmap - round(tag distance)`;
7. `transform_preds`: back to image coordinates with the resize `center` / `scale`.

Persons are kept in the original's order (order of creation). Only numpy, torch and the standard library are imported
at module level (scipy lazily, in `match_by_tag`) so that this file can travel with the modeling code to the Hub.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

COCO_JOINT_ORDER: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)
"""The original visits COCO keypoints head, shoulders, hips, then the limbs (`_Params.joint_order`, 0-based)."""

_PAD_COST = 1e10


@dataclass
class GroupingParams:
    """Test-time settings of the original `HeatmapParser` (`test_cfg` of the AE configs).

    Args:
        num_keypoints: K.
        max_num_people: peaks kept per keypoint (top-k) and the number of persons a peak can be matched to.
        detection_threshold: peaks with a score `<=` this are ignored.
        tag_threshold: a peak joins a person only when its tag distance is `<` this.
        use_detection_val: matching cost `round(distance) * 100 - score` (else the raw distance).
        ignore_too_much: skip a keypoint type entirely once `max_num_people` persons exist.
        nms_kernel: max-pool window of the peak NMS (padding `(nms_kernel - 1) // 2`).
    """

    num_keypoints: int
    max_num_people: int = 30
    detection_threshold: float = 0.1
    tag_threshold: float = 1.0
    use_detection_val: bool = True
    ignore_too_much: bool = False
    nms_kernel: int = 5

    @property
    def joint_order(self) -> list[int]:
        return joint_order(self.num_keypoints)


def joint_order(num_keypoints: int) -> list[int]:
    """Order in which keypoint types are grouped: the COCO order for any K = 17 layout (the original tests only
    `num_joints == 17`, so AP-10K gets it too), `0..K-1` otherwise."""
    return list(COCO_JOINT_ORDER) if num_keypoints == 17 else list(range(num_keypoints))


# --------------------------------------------------------------------------------------------- aggregation
def aggregate_outputs(
    heatmaps_per_scale: Sequence[torch.Tensor],
    tags_per_scale: Sequence[Sequence[torch.Tensor]],
    scale_factors: Sequence[float],
    base_size: Sequence[int] | None,
    project2image: bool = True,
    align_corners: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine test scales (and the flipped pass) into one heatmap and tag stack (the original `aggregate_*`).

    Args:
        heatmaps_per_scale: per scale, `(N, K, h_s, w_s)` heatmaps (flip-averaged when flip test was used).
        tags_per_scale: per scale, a list of `(N, K, h_s, w_s)` tag maps: `[tags]` or `[tags, flipped_tags]`.
        scale_factors: the test scale of each entry; entries are processed from the largest scale down, as the
            original; tags are taken from the scale-1 entry (or the only one).
        base_size: `(width, height)` of the scale-1 input, the size everything is projected to with `project2image`.
        project2image: resize the maps to `base_size` first (bilinear).
        align_corners: of the bilinear resizes.

    Returns:
        `heatmaps` `(N, K, H, W)` and `tags` `(N, K, H, W, L)` (L = number of tag maps of the scale-1 entry).
    """
    if not heatmaps_per_scale or not len(heatmaps_per_scale) == len(tags_per_scale) == len(scale_factors):
        raise ValueError("Give one heatmap tensor, one list of tag tensors and one scale factor per test scale.")
    order = sorted(range(len(scale_factors)), key=lambda i: scale_factors[i], reverse=True)
    projected = (int(base_size[1]), int(base_size[0])) if project2image and base_size else None

    def resize(maps: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
        if size is None or tuple(maps.shape[-2:]) == size:
            return maps
        return F.interpolate(maps, size=size, mode="bilinear", align_corners=align_corners)

    heatmaps, tags = [], []
    for i in order:
        heatmaps.append(resize(heatmaps_per_scale[i].float(), projected))
        if scale_factors[i] == 1 or len(scale_factors) == 1:
            tags.extend(resize(t.float(), projected) for t in tags_per_scale[i])
    if not tags:
        raise ValueError(f"Multi-scale test needs a scale-1 entry for the tags, got scales {list(scale_factors)}.")
    target = tuple(heatmaps[0].shape[-2:])
    heatmap_sum = 0
    for maps in heatmaps:
        heatmap_sum = heatmap_sum + resize(maps, target)
    averaged = heatmap_sum / len(heatmaps)
    stacked = torch.stack([resize(t, tuple(tags[0].shape[-2:])) for t in tags], dim=-1)
    if tuple(stacked.shape[2:4]) != target:  # tags from scale 1, heatmaps at the largest scale
        stacked = torch.stack(
            [resize(stacked[..., i], target) for i in range(stacked.shape[-1])], dim=-1
        )
    return averaged, stacked


# --------------------------------------------------------------------------------------------- peaks
def nms_heatmaps(heatmaps: torch.Tensor, kernel: int = 5) -> torch.Tensor:
    """Keep only pixels equal to the maximum of their `kernel x kernel` neighbourhood (others set to 0)."""
    pooled = F.max_pool2d(heatmaps, kernel, stride=1, padding=(kernel - 1) // 2)
    return heatmaps * torch.eq(pooled, heatmaps).float()


def top_k(
    heatmaps: torch.Tensor, tags: torch.Tensor, params: GroupingParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The `max_num_people` best NMS peaks per keypoint (the original `HeatmapParser.top_k`).

    Args:
        heatmaps: `(N, K, H, W)`.
        tags: `(N, K, H, W, L)`.

    Returns:
        `tag_k` `(N, K, M, L)` float32, `loc_k` `(N, K, M, 2)` int64 `(x, y)`, `val_k` `(N, K, M)` float32.
    """
    peaks = nms_heatmaps(heatmaps, params.nms_kernel)
    n, k, h, w = peaks.shape
    count = min(params.max_num_people, h * w)
    val_k, ind = peaks.reshape(n, k, -1).topk(count, dim=2)
    flat_tags = tags.reshape(n, k, h * w, -1)
    tag_k = torch.stack([torch.gather(flat_tags[..., i], 2, ind) for i in range(flat_tags.shape[3])], dim=3)
    loc_k = torch.stack((ind % w, ind // w), dim=3)
    return tag_k.cpu().numpy(), loc_k.cpu().numpy(), val_k.cpu().numpy()


# --------------------------------------------------------------------------------------------- matching
def _linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError as err:  # scipy is a dependency of the package; a bare remote-code environment may lack it
        raise ImportError(
            "Bottom-up grouping needs scipy (scipy.optimize.linear_sum_assignment): pip install scipy"
        ) from err
    return linear_sum_assignment(cost)


def match_by_tag(tag_k: np.ndarray, loc_k: np.ndarray, val_k: np.ndarray, params: GroupingParams) -> np.ndarray:
    """Group the peaks of one image into persons (the original `_match_by_tag`).

    Keypoint types are visited in `params.joint_order`. Peaks with a score `<= detection_threshold` are dropped. The
    first type with peaks starts one person per peak. Each later type is matched to the first `max_num_people`
    persons by minimum total cost, cost `round(||tag - person mean tag||) * 100 - score` (padded with 1e10 columns
    when there are more peaks than persons); a matched peak joins its person when its tag distance is
    `< tag_threshold`, every other peak starts a new person.

    As in the original, persons are keyed by the first tag value of the peak that created them: a new peak whose
    first tag value equals an existing key lands in that person (overwriting that keypoint and restarting its tag
    list), and persons keep their order of creation.

    Ties: the original solves the assignment with Munkres, this uses `scipy.optimize.linear_sum_assignment`; both
    return a minimum-cost assignment, but when several assignments have the same cost (equal scores and equal
    rounded distances) they may pick different ones. The tests pin down such a case.

    Args:
        tag_k: `(K, M, L)` tags of the peaks; loc_k: `(K, M, 2)` `(x, y)`; val_k: `(K, M)` scores.

    Returns:
        `(P, K, 3 + L)` float32 persons: `(x, y, score, tags...)` per keypoint, zeros where a keypoint is missing.
    """
    num_tags = tag_k.shape[2]
    default = np.zeros((params.num_keypoints, 3 + num_tags), dtype=np.float32)
    joint_dict: dict[float, np.ndarray] = {}
    tag_dict: dict[float, list[np.ndarray]] = {}
    for i, idx in enumerate(params.joint_order):
        tags = tag_k[idx]
        # (M, 3 + L) float64, as the original's concatenation of int64 locations and float32 values
        joints = np.concatenate((loc_k[idx], val_k[idx, :, None], tags), axis=1)
        mask = joints[:, 2] > params.detection_threshold
        tags, joints = tags[mask], joints[mask]
        if joints.shape[0] == 0:
            continue
        if i == 0 or len(joint_dict) == 0:
            for tag, joint in zip(tags, joints):
                key = float(tag[0])
                joint_dict.setdefault(key, np.copy(default))[idx] = joint
                tag_dict[key] = [tag]
            continue
        grouped_keys = list(joint_dict)[: params.max_num_people]
        grouped_tags = [np.mean(tag_dict[key], axis=0) for key in grouped_keys]
        if params.ignore_too_much and len(grouped_keys) == params.max_num_people:
            continue
        diff = joints[:, None, 3:] - np.array(grouped_tags)[None, :, :]
        distance = np.linalg.norm(diff, ord=2, axis=2)
        cost = np.round(distance) * 100 - joints[:, 2:3] if params.use_detection_val else np.copy(distance)
        num_added, num_grouped = cost.shape
        if num_added > num_grouped:
            padding = np.zeros((num_added, num_added - num_grouped), dtype=np.float32) + _PAD_COST
            cost = np.concatenate((cost, padding), axis=1)
        rows, cols = _linear_sum_assignment(cost)
        for row, col in zip(rows.tolist(), cols.tolist()):
            if row < num_added and col < num_grouped and distance[row][col] < params.tag_threshold:
                key = grouped_keys[col]
                joint_dict[key][idx] = joints[row]
                tag_dict[key].append(tags[row])
            else:
                key = float(tags[row][0])
                joint_dict.setdefault(key, np.copy(default))[idx] = joints[row]
                tag_dict[key] = [tags[row]]
    if not joint_dict:
        return np.zeros((0, params.num_keypoints, 3 + num_tags), dtype=np.float32)
    return np.array([joint_dict[key] for key in joint_dict]).astype(np.float32)


# --------------------------------------------------------------------------------------------- refinement
def adjust_keypoints(people: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
    """Quarter-pixel shift towards the higher neighbour, then `+ 0.5` (the original non-UDP `adjust`).

    For every keypoint with a score `> 0`: `y += 0.25` if the pixel below is strictly higher than the pixel above
    (else `y -= 0.25`), the same for `x` with the right and left neighbours (indices clamped to the map), then both
    coordinates get `+ 0.5`.

    Args:
        people: `(P, K, 3 + L)` persons (modified in place and returned).
        heatmaps: `(K, H, W)` heatmaps of the image.
    """
    _, height, width = heatmaps.shape
    for person in people:
        for joint_id, joint in enumerate(person):
            if joint[2] > 0:
                x, y = joint[0], joint[1]
                xx, yy = int(x), int(y)
                hm = heatmaps[joint_id]
                y = y + 0.25 if hm[min(height - 1, yy + 1), xx] > hm[max(0, yy - 1), xx] else y - 0.25
                x = x + 0.25 if hm[yy, min(width - 1, xx + 1)] > hm[yy, max(0, xx - 1)] else x - 0.25
                person[joint_id, 0:2] = (x + 0.5, y + 0.5)
    return people


def refine_keypoints(heatmaps: torch.Tensor, tags: torch.Tensor, keypoints: np.ndarray) -> np.ndarray:
    """Fill in the missing keypoints of one person (the original non-UDP `refine`).

    The person's mean tag is taken over its detected keypoints (the tag at the truncated, clipped coordinates). For
    every missing keypoint type (score 0) the candidate is the first arg-max of `heatmap - round(||tag - mean
    tag||)`; the keypoint takes `(x + 0.5 +- 0.25, y + 0.5 +- 0.25, heatmap value)` (quarter shift as in
    `adjust_keypoints`) when that value is `> 0`. Detected keypoints are left unchanged, as are the tags. Only the
    missing types are evaluated (the original computes all and discards the others), with the same float32 steps.

    Args:
        heatmaps: `(K, H, W)` float32 tensor; tags: `(K, H, W, L)` float32 tensor; keypoints: `(K, 3 + L)`
            (modified in place and returned).
    """
    num_keypoints, height, width = heatmaps.shape
    detected = []
    for i in range(num_keypoints):
        if keypoints[i, 2] > 0:
            x, y = keypoints[i][:2].astype(int)
            detected.append(tags[i, np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)].numpy())
    missing = np.flatnonzero(keypoints[:, 2] == 0)
    if not detected or len(missing) == 0:
        return keypoints
    mean_tag = torch.from_numpy(np.mean(detected, axis=0))
    rows = torch.from_numpy(missing)
    distance = ((tags[rows] - mean_tag) ** 2).sum(dim=3).sqrt()
    best = (heatmaps[rows] - torch.round(distance)).reshape(len(missing), -1).argmax(dim=1).tolist()
    for i, flat in zip(missing.tolist(), best):
        y, x = divmod(flat, width)
        hm = heatmaps[i]
        value = float(hm[y, x])
        if not value > 0:
            continue
        fx = x + 0.5 + (0.25 if hm[y, min(width - 1, x + 1)] > hm[y, max(0, x - 1)] else -0.25)
        fy = y + 0.5 + (0.25 if hm[min(height - 1, y + 1), x] > hm[max(0, y - 1), x] else -0.25)
        keypoints[i, :3] = (fx, fy, value)
    return keypoints


def parse(
    heatmaps: torch.Tensor,
    tags: torch.Tensor,
    params: GroupingParams,
    adjust: bool = True,
    refine: bool = True,
) -> tuple[np.ndarray, list[float]]:
    """Group one image's maps into persons (the original `HeatmapParser.parse` for batch size 1).

    Args:
        heatmaps: `(K, H, W)` aggregated heatmaps; tags: `(K, H, W, L)` aggregated tags.

    Returns:
        `people` `(P, K, 3 + L)` float32 in heatmap pixels (`x, y, score, tags`), and the person scores (mean of the
        K keypoint scores after `adjust`, before `refine`, as the original).
    """
    if heatmaps.ndim != 3 or tags.ndim != 4 or tuple(tags.shape[:3]) != tuple(heatmaps.shape):
        raise ValueError(
            f"Expected heatmaps (K, H, W) and tags (K, H, W, L), got {tuple(heatmaps.shape)} and {tuple(tags.shape)}."
        )
    if heatmaps.shape[0] != params.num_keypoints:
        raise ValueError(f"Got {heatmaps.shape[0]} heatmaps for {params.num_keypoints} keypoints.")
    tag_k, loc_k, val_k = top_k(heatmaps[None], tags[None], params)
    people = match_by_tag(tag_k[0], loc_k[0], val_k[0], params)
    heatmap_np = heatmaps.detach().float().cpu().numpy()
    if adjust:
        people = adjust_keypoints(people, heatmap_np)
    scores = [float(person[:, 2].mean()) for person in people]
    if refine and len(people):
        heatmap_t, tag_t = torch.from_numpy(heatmap_np), tags.detach().float().cpu()
        for person in people:
            refine_keypoints(heatmap_t, tag_t, person)
    return people, scores


def transform_preds(
    coords: np.ndarray, center: Sequence[float], scale: Sequence[float], output_size: Sequence[int]
) -> np.ndarray:
    """Heatmap to image coordinates (the original non-UDP `transform_preds`): `x * 200 s_w / W + c_x - 100 s_w`.

    Args:
        coords: `(K, >= 2)` coordinates in heatmap pixels; only the first two columns are used.
        center, scale: the resize `center` and `scale` (`multi_scale_size`).
        output_size: `(width, height)` of the heatmaps the coordinates refer to.

    Returns:
        `(K, 2)` float32 image coordinates.
    """
    scale_px = np.asarray(scale, dtype=np.float64) * 200.0
    center = np.asarray(center, dtype=np.float64)
    out = np.empty((coords.shape[0], 2), dtype=np.float32)
    out[:, 0] = coords[:, 0] * (scale_px[0] / output_size[0]) + center[0] - scale_px[0] * 0.5
    out[:, 1] = coords[:, 1] * (scale_px[1] / output_size[1]) + center[1] - scale_px[1] * 0.5
    return out


__all__ = [
    "COCO_JOINT_ORDER",
    "GroupingParams",
    "adjust_keypoints",
    "aggregate_outputs",
    "joint_order",
    "match_by_tag",
    "nms_heatmaps",
    "parse",
    "refine_keypoints",
    "top_k",
    "transform_preds",
]
