"""Synthetic keypoint data for offline runs: articulated figures rendered with OpenCV, written as COCO.

`make_synthetic_dataset(spec, num_images, seed, out_dir)` renders images with one to `max_instances` figures on a
textured background and writes `out_dir/images/*.jpg` plus `out_dir/annotations.json` (COCO keypoints format), so
that the whole path JSON -> `load_keypoint_dataset` -> training -> COCO evaluation runs without any download.

Figure families (picked from the spec name):

* human (`coco`, `aic`, `mpii`): frontal stick-and-blob person, torso polygon, head with eyes/nose/ears; left and right
  limbs have different hues so that left/right is learnable;
* quadruped (`ap10k`, `apt36k`): side view, body ellipse, head, tail, four two-segment legs; near legs drawn over
  the body, far legs behind it and darker;
* hand (`SYNTHETIC_HAND_SPEC`, 21 keypoints in the COCO-WholeBody hand order): palm polygon and five fingers with
  one colour each.

Pose (joint angles), size, rotation, limb thickness and colours vary per instance. Visibility follows COCO: 2 when
the keypoint pixel shows the figure itself or background, 1 when a later figure or an occluder covers it, 0 (with
x = y = 0) when it falls outside the image (truncation). Boxes and areas come from each figure's own mask (clipped to
the image). Everything is deterministic given `seed`: image `i` uses `np.random.default_rng([seed, i])`.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import cv2
import numpy as np

from vitpose_plus.file_io import write_json
from vitpose_plus.modeling.dataset_specs import KeypointDatasetSpec, get_dataset_spec


def _synthetic_hand_spec() -> KeypointDatasetSpec:
    """A 21-keypoint hand (COCO-WholeBody hand order) drawn by this module; non-UDP like WholeBody."""
    names = ("wrist",) + tuple(f"{f}{j}" for f in ("thumb", "index", "middle", "ring", "pinky") for j in range(1, 5))
    # Each finger is a chain from the wrist: wrist-1-2-3-4.
    skeleton = tuple((0 if j == 0 else 1 + 4 * f + j - 1, 1 + 4 * f + j) for f in range(5) for j in range(4))
    return KeypointDatasetSpec(
        name="synthetic_hand",
        keypoint_names=names,
        skeleton=skeleton,
        sigmas=(0.05,) + (0.04,) * 20,
        use_udp=False,
        use_half_body=False,
        source_dataset_name="synthetic_hand",
    )


SYNTHETIC_HAND_SPEC = _synthetic_hand_spec()
"""The synthetic data's third layout (besides the built-in human and quadruped layouts)."""
SYNTHETIC_SPECS: dict[str, KeypointDatasetSpec] = {SYNTHETIC_HAND_SPEC.name: SYNTHETIC_HAND_SPEC}
"""Layouts only the synthetic generator has, by name (`vitpose_plus.data.resolve_dataset_spec` resolves them)."""
_HAND_NAMES = SYNTHETIC_HAND_SPEC.keypoint_names

# Name of each spec keypoint in the human figure model (the figure has a superset of joints).
_HUMAN_ALIASES = {"upper_neck": "neck", "thorax": "thorax", "pelvis": "pelvis", "head_top": "head_top"}


def figure_family(spec: KeypointDatasetSpec) -> str:
    """`"human"`, `"quadruped"` or `"hand"` for a spec, from its keypoint names."""
    names = set(spec.keypoint_names)
    if names <= set(_HAND_NAMES):
        return "hand"
    if "Root of tail" in names:
        return "quadruped"
    human = {"nose", "left_eye", "right_eye", "left_ear", "right_ear", "neck", "head_top", "thorax", "pelvis"}
    human |= {f"{s}_{p}" for s in ("left", "right") for p in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")}
    if {_HUMAN_ALIASES.get(n, n) for n in names} <= human:
        return "human"
    raise ValueError(
        f"No synthetic figure for dataset {spec.name!r}: supported are human layouts (coco, aic, mpii), quadrupeds "
        f"(ap10k, apt36k) and SYNTHETIC_HAND_SPEC."
    )


def _rot(v: np.ndarray, degrees: float) -> np.ndarray:
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _jitter_color(rng: np.random.Generator, base: Sequence[int], amount: int = 30) -> tuple[int, int, int]:
    return tuple(int(np.clip(b + rng.integers(-amount, amount + 1), 0, 255)) for b in base)


# ----------------------------------------------------------------------------------------------- figure models
# Each model returns joints (name -> (x, y) in figure units, figure extent about 1) and draw ops in z order:
# ("limb", a, b, thickness, colour), ("poly", [names], colour), ("disc", name, radius, colour).
def _human(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], list[tuple]]:
    up = _rot(np.array([0.0, -1.0]), rng.normal(0, 8))
    side = np.array([-up[1], up[0]])  # the person's left (viewer's right for a frontal view)
    j: dict[str, np.ndarray] = {"pelvis": np.zeros(2)}
    j["thorax"] = up * 0.30
    j["neck"] = up * 0.36
    head = up * 0.45
    yaw = rng.uniform(-0.02, 0.02)
    j["head_top"] = head + up * 0.07
    j["nose"] = head - up * 0.01 + side * yaw
    for s, name in ((1, "left"), (-1, "right")):
        j[f"{name}_eye"] = head + up * 0.018 + side * (s * 0.03 + yaw)
        j[f"{name}_ear"] = head + side * s * 0.068
        j[f"{name}_shoulder"] = j["thorax"] + up * 0.02 + side * s * rng.uniform(0.10, 0.13)
        j[f"{name}_hip"] = side * s * rng.uniform(0.07, 0.10)
        arm = _rot(-up, -s * rng.uniform(5, 150))
        j[f"{name}_elbow"] = j[f"{name}_shoulder"] + arm * 0.15 * rng.uniform(0.9, 1.1)
        fore = _rot(arm, -s * rng.choice([-1, 1]) * rng.uniform(0, 120))
        j[f"{name}_wrist"] = j[f"{name}_elbow"] + fore * 0.14 * rng.uniform(0.9, 1.1)
        leg = _rot(-up, -s * rng.uniform(-8, 40))
        j[f"{name}_knee"] = j[f"{name}_hip"] + leg * 0.21 * rng.uniform(0.9, 1.1)
        shin = _rot(leg, s * rng.choice([-1, 1]) * rng.uniform(0, 90))
        j[f"{name}_ankle"] = j[f"{name}_knee"] + shin * 0.21 * rng.uniform(0.9, 1.1)
    arm_t, leg_t = rng.uniform(0.045, 0.07), rng.uniform(0.06, 0.085)
    col = {
        "torso": _jitter_color(rng, (70, 90, 200)), "head": _jitter_color(rng, (230, 190, 150), 20),
        "left_arm": _jitter_color(rng, (240, 60, 60)), "right_arm": _jitter_color(rng, (60, 200, 60)),
        "left_leg": _jitter_color(rng, (240, 150, 30)), "right_leg": _jitter_color(rng, (30, 190, 220)),
    }
    ops: list[tuple] = [("poly", ["left_shoulder", "right_shoulder", "right_hip", "left_hip"], col["torso"])]
    for name in ("left", "right"):
        ops += [("limb", f"{name}_hip", f"{name}_knee", leg_t, col[f"{name}_leg"]),
                ("limb", f"{name}_knee", f"{name}_ankle", leg_t * 0.85, col[f"{name}_leg"])]
    ops += [("limb", "thorax", "neck", 0.05, col["head"]), ("disc", "_head", 0.07, col["head"])]
    j["_head"] = head
    for name in ("left", "right"):
        ops += [("limb", f"{name}_shoulder", f"{name}_elbow", arm_t, col[f"{name}_arm"]),
                ("limb", f"{name}_elbow", f"{name}_wrist", arm_t * 0.85, col[f"{name}_arm"])]
    ops += [("disc", "left_eye", 0.012, (20, 20, 120)), ("disc", "right_eye", 0.012, (120, 20, 20)),
            ("disc", "nose", 0.012, (200, 30, 30)), ("disc", "left_ear", 0.015, (150, 100, 60)),
            ("disc", "right_ear", 0.015, (60, 100, 150))]
    return j, ops


def _quadruped(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], list[tuple]]:
    f = float(rng.choice([-1.0, 1.0]))  # facing right (+1) shows the right side, left (-1) the left side
    near, far = ("R", "L") if f > 0 else ("L", "R")
    j: dict[str, np.ndarray] = {}
    j["Root of tail"] = np.array([-f * 0.45, 0.0])
    j["Neck"] = np.array([f * 0.33, -0.10 + rng.uniform(-0.05, 0.05)])
    head_dir = _rot(np.array([f, 0.3]), f * rng.uniform(-35, 25))
    j["Nose"] = j["Neck"] + head_dir * 0.26
    eye_base = j["Neck"] + head_dir * 0.15 + np.array([0.0, -0.045])
    j[f"{near}_Eye"] = eye_base + np.array([f * 0.015, 0.005])
    j[f"{far}_Eye"] = eye_base + np.array([-f * 0.015, -0.012])
    offsets = {near: np.zeros(2), far: np.array([f * 0.06, -0.025])}
    for s in ("L", "R"):
        o = offsets[s]
        j[f"{s}_Shoulder"] = j["Neck"] + np.array([-f * 0.06, 0.13]) + o
        j[f"{s}_Hip"] = j["Root of tail"] + np.array([f * 0.08, 0.10]) + o
        for top, mid, paw in (("Shoulder", "Elbow", "F_Paw"), ("Hip", "Knee", "B_Paw")):
            upper = _rot(np.array([0.0, 1.0]), rng.uniform(-30, 30))
            j[f"{s}_{mid}"] = j[f"{s}_{top}"] + upper * 0.2 * rng.uniform(0.9, 1.1)
            lower = _rot(upper, rng.uniform(-35, 35))
            j[f"{s}_{paw}"] = j[f"{s}_{mid}"] + lower * 0.2 * rng.uniform(0.9, 1.1)
    body = _jitter_color(rng, (150, 110, 70))
    leg_col = {"L": _jitter_color(rng, (230, 70, 160)), "R": _jitter_color(rng, (70, 200, 120))}
    dark = {k: tuple(int(c * 0.7) for c in v) for k, v in leg_col.items()}
    t = rng.uniform(0.06, 0.09)
    j["_tail"] = j["Root of tail"] + _rot(np.array([-f, 0.2]), f * rng.uniform(-40, 40)) * 0.22
    ops: list[tuple] = []
    for s in (far,):
        for a, b, c in (("Shoulder", "Elbow", "F_Paw"), ("Hip", "Knee", "B_Paw")):
            ops += [("limb", f"{s}_{a}", f"{s}_{b}", t, dark[s]), ("limb", f"{s}_{b}", f"{s}_{c}", t * 0.8, dark[s])]
    ops += [("limb", "Root of tail", "_tail", 0.035, body),
            ("limb", "Root of tail", "Neck", rng.uniform(0.2, 0.26), body),
            ("limb", "Neck", "Nose", 0.1, _jitter_color(rng, (170, 130, 90)))]
    for a, b, c in (("Shoulder", "Elbow", "F_Paw"), ("Hip", "Knee", "B_Paw")):
        ops += [("limb", f"{near}_{a}", f"{near}_{b}", t, leg_col[near]),
                ("limb", f"{near}_{b}", f"{near}_{c}", t * 0.8, leg_col[near])]
    ops += [("disc", f"{near}_Eye", 0.014, (20, 20, 20)), ("disc", f"{far}_Eye", 0.011, (90, 40, 40)),
            ("disc", "Nose", 0.018, (40, 20, 20))]
    return j, ops


def _hand(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], list[tuple]]:
    up = _rot(np.array([0.0, -1.0]), rng.normal(0, 10))
    side = np.array([-up[1], up[0]]) * rng.choice([-1.0, 1.0])  # thumb side (mirrored hands too)
    j: dict[str, np.ndarray] = {"wrist": np.zeros(2)}
    base_offsets = {"index": 0.12, "middle": 0.04, "ring": -0.04, "pinky": -0.11}
    lengths = {"thumb": (0.16, 0.12, 0.10), "index": (0.18, 0.11, 0.09), "middle": (0.2, 0.12, 0.1),
               "ring": (0.18, 0.11, 0.09), "pinky": (0.14, 0.09, 0.08)}
    j["thumb1"] = up * 0.12 + side * 0.12
    for name, off in base_offsets.items():
        j[f"{name}1"] = up * (0.42 - abs(off) * 0.4) + side * off
    # Finger directions: angle toward the thumb side (degrees), jittered; the thumb points out sideways.
    angles = {"thumb": rng.uniform(45, 75), "index": rng.uniform(8, 20), "middle": rng.uniform(-5, 5),
              "ring": rng.uniform(-18, -8), "pinky": rng.uniform(-32, -18)}
    colors = {"thumb": (230, 60, 60), "index": (240, 170, 30), "middle": (60, 200, 60), "ring": (40, 140, 240),
              "pinky": (190, 60, 220)}
    ops: list[tuple] = [("poly", ["wrist", "thumb1", "index1", "middle1", "ring1", "pinky1"],
                         _jitter_color(rng, (225, 185, 150), 20))]
    for name in ("thumb", "index", "middle", "ring", "pinky"):
        t = math.radians(angles[name])
        d = up * math.cos(t) + side * math.sin(t)
        for k, length in enumerate(lengths[name]):
            j[f"{name}{k + 2}"] = j[f"{name}{k + 1}"] + d * length * rng.uniform(0.9, 1.1)
            d = _rot(d, rng.uniform(-15, 15))
        c = _jitter_color(rng, colors[name], 20)
        t = rng.uniform(0.055, 0.075)
        ops += [("limb", f"{name}{k}", f"{name}{k + 1}", t * (1 - 0.1 * k), c) for k in range(1, 4)]
    return j, ops


_FAMILIES = {"human": (_human, (90, 200)), "quadruped": (_quadruped, (110, 200)), "hand": (_hand, (90, 170))}


# ----------------------------------------------------------------------------------------------- rendering
def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Low-frequency colour noise plus fine grain and a few thin distractor strokes: textured, not figure-like."""
    low = rng.uniform(50, 190, size=(rng.integers(3, 7), rng.integers(3, 7), 3)).astype(np.float32)
    low = 0.5 * low + 0.5 * low.mean(axis=2, keepdims=True)  # muted colours so that the figures stand out
    img = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 8, size=(height, width, 3)).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(2, 6)):
        color = tuple(int(v) for v in rng.integers(60, 200, 3))
        p1 = tuple(int(v) for v in rng.integers(0, (width, height)))
        p2 = tuple(int(v) for v in rng.integers(0, (width, height)))
        if rng.random() < 0.5:
            cv2.line(img, p1, p2, color, int(rng.integers(1, 3)), cv2.LINE_AA)
        else:
            cv2.circle(img, p1, int(rng.integers(5, 30)), color, 1, cv2.LINE_AA)
    return img


def _draw(img: np.ndarray, mask: np.ndarray, ops: list[tuple], pts: dict[str, np.ndarray], size: float) -> None:
    """Draw ops on `img` (anti-aliased) and on the instance `mask` (filled, value 1)."""
    def p(name: str) -> tuple[int, int]:
        return int(round(pts[name][0] * 16)), int(round(pts[name][1] * 16))

    for op in ops:
        if op[0] == "limb":
            _, a, b, thickness, color = op
            t = max(2, int(round(thickness * size)))
            for target, col, aa in ((img, color, cv2.LINE_AA), (mask, 1, cv2.LINE_8)):
                cv2.line(target, p(a), p(b), col, t, aa, shift=4)
        elif op[0] == "poly":
            _, names, color = op
            poly = np.array([p(n) for n in names], dtype=np.int32)
            cv2.fillPoly(img, [poly], color, cv2.LINE_AA, shift=4)
            cv2.fillPoly(mask, [poly], 1, cv2.LINE_8, shift=4)
        else:
            _, name, radius, color = op
            r = max(1, int(round(radius * size * 16)))
            cv2.circle(img, p(name), r, color, -1, cv2.LINE_AA, shift=4)
            cv2.circle(mask, p(name), r, 1, -1, cv2.LINE_8, shift=4)


def render_synthetic_image(
    spec: KeypointDatasetSpec, rng: np.random.Generator, image_size: Sequence[int] = (256, 256), max_instances: int = 3
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Render one image.

    Returns:
        `image` `(H, W, 3)` RGB uint8 and one dict per figure with `keypoints` `(K, 3)` (COCO visibility),
        `bbox` (xywh), `area` and `num_keypoints`.
    """
    height, width = int(image_size[0]), int(image_size[1])
    family = figure_family(spec)
    model, (min_size, max_size) = _FAMILIES[family]
    img = _background(rng, height, width)
    ids = np.zeros((height, width), dtype=np.uint8)  # which instance (1-based) or occluder (255) is on top
    num = int(rng.integers(1, max_instances + 1))
    instances = []
    for index in range(num):
        joints, ops = model(rng)
        scale = rng.uniform(min_size, max_size) * min(width, height) / 256.0
        angle = rng.normal(0, 20) if rng.random() < 0.7 else rng.uniform(-90, 90)
        names = list(joints)
        pts_arr = np.stack([joints[n] for n in names])
        pts_arr = pts_arr - (pts_arr.min(0) + pts_arr.max(0)) / 2
        centre = rng.uniform((0.15 * width, 0.15 * height), (0.85 * width, 0.85 * height))
        pts_arr = np.stack([_rot(v, angle) for v in pts_arr]) * scale + centre
        pts = dict(zip(names, pts_arr))
        mask = np.zeros((height, width), dtype=np.uint8)
        _draw(img, mask, ops, pts, scale)
        ids[mask > 0] = index + 1
        instances.append((pts, mask))
    if rng.random() < 0.35:  # an occluder on top of everything
        occ = np.zeros((height, width), dtype=np.uint8)
        color = tuple(int(v) for v in rng.integers(30, 220, 3))
        c = tuple(int(v) for v in rng.integers(0, (width, height)))
        axes = tuple(int(v) for v in rng.integers(10, 40, 2))
        if rng.random() < 0.5:
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(img, c, axes, angle, 0, 360, color, -1, cv2.LINE_AA)
            cv2.ellipse(occ, c, axes, angle, 0, 360, 1, -1)
        else:
            pt2 = (c[0] + 2 * axes[0], c[1] + 2 * axes[1])
            cv2.rectangle(img, c, pt2, color, -1)
            cv2.rectangle(occ, c, pt2, 1, -1)
        ids[occ > 0] = 255
    annotations = []
    for index, (pts, mask) in enumerate(instances):
        kps = np.zeros((spec.num_keypoints, 3), dtype=np.float64)
        for k, name in enumerate(spec.keypoint_names):
            x, y = pts[_HUMAN_ALIASES.get(name, name)] if family == "human" else pts[name]
            if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
                continue  # truncated: unlabelled (0, 0, 0)
            top = ids[int(round(y)), int(round(x))]
            kps[k] = (x, y, 1 if top > index + 1 else 2)  # covered by a later figure or the occluder
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            continue
        x0, y0 = float(xs.min()), float(ys.min())
        annotations.append({
            "keypoints": kps,
            "bbox": [x0, y0, float(xs.max()) - x0 + 1, float(ys.max()) - y0 + 1],
            "area": float(len(xs)),
            "num_keypoints": int((kps[:, 2] > 0).sum()),
        })
    return img, annotations


def make_synthetic_dataset(
    spec: str | KeypointDatasetSpec,
    num_images: int,
    seed: int,
    out_dir: str | os.PathLike,
    image_size: Sequence[int] = (256, 256),
    max_instances: int = 3,
    jpeg_quality: int = 95,
    progress: bool = False,
) -> str:
    """Render `num_images` images with COCO keypoint annotations into `out_dir`.

    Writes `out_dir/images/{i:06d}.jpg` and `out_dir/annotations.json` (COCO: `images`, `annotations` with `id`,
    `image_id`, `category_id` 1, `bbox`, `area`, `keypoints`, `num_keypoints`, `iscrowd`, and `categories` with the
    keypoint names and 1-based skeleton). Deterministic by `seed`.

    Args:
        spec: a built-in human or quadruped dataset name, `SYNTHETIC_HAND_SPEC`, or a compatible spec.
        image_size: `(height, width)` of the images.
        max_instances: figures per image are drawn uniformly from 1..max_instances.
        progress: show a progress bar.

    Returns:
        Path of the annotation JSON (the image root is `out_dir`).
    """
    spec = SYNTHETIC_SPECS[spec] if isinstance(spec, str) and spec in SYNTHETIC_SPECS else get_dataset_spec(spec)
    figure_family(spec)  # fail early for unsupported layouts
    out_dir = os.fspath(out_dir)
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    from tqdm.auto import tqdm

    images, annotations = [], []
    for i in tqdm(range(int(num_images)), desc=f"render {spec.name}", unit="image", disable=not progress):
        rng = np.random.default_rng([int(seed), i])
        img, anns = render_synthetic_image(spec, rng, image_size, max_instances)
        file_name = f"images/{i:06d}.jpg"
        cv2.imwrite(os.path.join(out_dir, file_name), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        images.append({"id": i + 1, "file_name": file_name, "width": img.shape[1], "height": img.shape[0]})
        for ann in anns:
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": i + 1,
                "category_id": 1,
                "bbox": [round(v, 2) for v in ann["bbox"]],
                "area": ann["area"],
                "keypoints": [round(float(v), 3) if j % 3 != 2 else int(v)
                              for j, v in enumerate(ann["keypoints"].reshape(-1))],
                "num_keypoints": ann["num_keypoints"],
                "iscrowd": 0,
            })
    data = {
        "info": {"description": f"synthetic {spec.name} keypoints, seed {seed}"},
        "images": images,
        "annotations": annotations,
        "categories": [{
            "id": 1,
            "name": figure_family(spec),
            "supercategory": figure_family(spec),
            "keypoints": list(spec.keypoint_names),
            "skeleton": [[a + 1, b + 1] for a, b in spec.skeleton],
        }],
    }
    path = os.path.join(out_dir, "annotations.json")
    write_json(path, data, indent=None)  # atomically, and last: its presence means the set is complete
    return path


@contextlib.contextmanager
def synthetic_dataset(
    spec: str | KeypointDatasetSpec, num_images: int, seed: int, **kwargs: Any
) -> Iterator[Any]:
    """Generate a synthetic dataset in a temporary folder and yield it loaded as a `datasets.Dataset`.

    The folder (and the image files the dataset's lazy `Image` column points to) is removed on exit; call
    `dataset.flatten_indices()`/`save_to_disk` inside the block to keep it. Keyword arguments go to
    `make_synthetic_dataset`.
    """
    from .datasets import load_keypoint_dataset

    tmp = tempfile.mkdtemp(prefix="vitpose_synthetic_")
    try:
        ann = make_synthetic_dataset(spec, num_images, seed, tmp, **kwargs)
        yield load_keypoint_dataset(ann, tmp, spec)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = [
    "SYNTHETIC_HAND_SPEC",
    "SYNTHETIC_SPECS",
    "figure_family",
    "make_synthetic_dataset",
    "render_synthetic_image",
    "synthetic_dataset",
]
