"""Test helpers: small annotation files in each released format, deterministic predictions, and the oracle.

The JSON builders (`*_dict`, `mpii_*`, `box_prediction`, `detections_list`) need only numpy and the standard library,
so `tests/xtcocotools_reference.py` can import them inside the xtcocotools environment to compute reference numbers.
Everything that needs the package (images, `.mat` files, the oracle) imports it inside the function.

Fixture layouts (the released formats):

* COCO / OCHuman: `{"images", "annotations", "categories"}`, 17 keypoints;
* AIC: COCO-style, 14 keypoints, no `area` and no `iscrowd` (as `aic_train.json` / `aic_val.json`);
* COCO-WholeBody v1.0: `keypoints` (17) + `foot_kpts` (6) + `face_kpts` (68) + `lefthand_kpts` (21) +
  `righthand_kpts` (21), `*_valid` flags and part boxes; invalid parts all zeros;
* AP-10K / APT-36K: COCO-style with several species categories;
* MPII: the original's JSON list plus `mpii_gt_val.mat` (`dataset_joints`, `jnt_missing`, `pos_gt_src`,
  `headboxes_src`).

`grid_keypoints` places keypoints where the crop of their box maps them exactly onto heatmap pixels (inside the
padded box), so that the oracle (`oracle_records`) decodes them without quantisation: AP 1.0 / PCKh 100.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the package and torch are imported inside the functions that need them
    import torch

    from vitpose_plus import VitPosePlusConfig, VitPosePlusForPoseEstimation

IMAGE_SIZE = (192, 256)  # model input (width, height)
HEATMAP_SIZE = (48, 64)
PADDING = 1.25
IMAGE_WH = (320, 240)  # fixture image (width, height)
MPII_MAT_JOINTS = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head", "rwri", "relb",
                   "rsho", "lsho", "lelb", "lwri")
WHOLEBODY_PARTS = (("keypoints", 17), ("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21),
                   ("righthand_kpts", 21))


# ----------------------------------------------------------------------------------------------- geometry
def clean_box(box: Sequence[float], width: int, height: int) -> list[float]:
    """The original's GT box sanitising (w - 1), transcribed."""
    x, y, w, h = box
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    return [x1, y1, x2 - x1, y2 - y1]


def center_scale(box: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """`_xywh2cs` with padding 1.25 and aspect 192/256, in float64."""
    x, y, w, h = (float(v) for v in box)
    aspect = IMAGE_SIZE[0] / IMAGE_SIZE[1]
    center = np.array([x + w * 0.5, y + h * 0.5])
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    return center, np.array([w, h]) / 200.0 * PADDING


def heatmap_to_image(grid: np.ndarray, center: np.ndarray, scale: np.ndarray, use_udp: bool) -> np.ndarray:
    """Image point of heatmap pixels `grid` `(N, 2)` for a crop (`transform_preds` with the UDP or plain divisor)."""
    size = np.asarray(scale) * 200.0
    div = np.asarray(HEATMAP_SIZE, dtype=np.float64) - (1.0 if use_udp else 0.0)
    return grid * size / div + np.asarray(center) - size * 0.5


def grid_keypoints(rng: np.random.Generator, center: np.ndarray, scale: np.ndarray, k: int, use_udp: bool,
                   visible: float = 0.85) -> np.ndarray:
    """`(K, 3)` keypoints on heatmap pixels at least 7 px from the heatmap border (so inside the padded box and
    with symmetric targets); about `visible` of them labelled (v = 2), the rest (0, 0, 0)."""
    grid = np.stack([rng.integers(7, HEATMAP_SIZE[0] - 7, k), rng.integers(7, HEATMAP_SIZE[1] - 7, k)], 1)
    points = heatmap_to_image(grid.astype(np.float64), center, scale, use_udp)
    labelled = rng.random(k) < visible
    labelled[rng.integers(k)] = True
    out = np.zeros((k, 3))
    out[labelled, :2] = points[labelled]
    out[labelled, 2] = 2
    return out


def _round(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


# ----------------------------------------------------------------------------------------------- COCO-style files
def _instances(rng: np.random.Generator, num: int, k: int, use_udp: bool) -> list[dict[str, Any]]:
    """`num` non-overlapping instances in a 320x240 image, keypoints grid-aligned for their cleaned boxes."""
    out = []
    for j in range(num):
        w, h = float(rng.uniform(50, 80)), float(rng.uniform(90, 140))
        x, y = 10.0 + j * 100.0 + float(rng.uniform(0, 10)), float(rng.uniform(5, IMAGE_WH[1] - h - 5))
        box = [round(x, 2), round(y, 2), round(w, 2), round(h, 2)]
        center, scale = center_scale(clean_box(box, *IMAGE_WH))
        kps = grid_keypoints(rng, center, scale, k, use_udp)
        out.append({"bbox": box, "keypoints": kps, "area": round(w * h * 0.7, 2)})
    return out


def coco_dict(num_images: int = 3, k: int = 17, first_id: int = 1, seed: int = 0, use_udp: bool = True,
              categories: Sequence[int] = (1,), extras: bool = False, num_keypoints_field: bool = True,
              area_field: bool = True, iscrowd_field: bool = True, keypointless: bool = False) -> dict[str, Any]:
    """A COCO-style keypoint file; image and annotation ids start at `first_id`.

    Instances cycle through `categories`. `extras` adds the annotations the top-down loader skips: a crowd region,
    one without keypoints, one with all-zero keypoints, one with `num_keypoints` 0 (but labelled values) and one
    with a box that is empty after sanitising; it also adds an annotation with `area` 0 but labelled keypoints.
    """
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for i in range(num_images):
        image_id = first_id + i
        images.append({"id": image_id, "file_name": f"img_{i:03d}.jpg", "width": IMAGE_WH[0],
                       "height": IMAGE_WH[1]})
        for inst in _instances(rng, 1 + i % 3, k, use_udp):
            kp = inst["keypoints"]
            ann = {"id": first_id + len(annotations), "image_id": image_id,
                   "category_id": int(categories[len(annotations) % len(categories)]), "bbox": inst["bbox"],
                   "keypoints": _round(kp)}
            if num_keypoints_field:
                ann["num_keypoints"] = int((kp[:, 2] > 0).sum())
            if area_field:
                ann["area"] = inst["area"]
            if iscrowd_field:
                ann["iscrowd"] = 0
            annotations.append(ann)
    if extras:
        image_id = first_id

        def add(**fields: Any) -> None:
            ann = {"id": first_id + len(annotations), "image_id": image_id, "category_id": int(categories[0]),
                   "bbox": [200.0, 20.0, 40.0, 60.0], "area": 2400.0, "iscrowd": 0, "num_keypoints": 0,
                   "keypoints": [0.0] * (3 * k)}
            ann.update(fields)
            annotations.append({key: value for key, value in ann.items() if value is not None})

        labelled = [210.0, 30.0, 2.0] * k
        add(iscrowd=1, segmentation={"counts": [0, 10], "size": [IMAGE_WH[1], IMAGE_WH[0]]})  # crowd
        if keypointless:
            add(keypoints=None, num_keypoints=None)  # no keypoints key
        add()  # all-zero keypoints
        add(keypoints=labelled)  # labelled values but num_keypoints 0
        add(bbox=[315.0, 100.0, 0.5, 30.0], keypoints=labelled, num_keypoints=k)  # empty after sanitising
        add(area=0.0, keypoints=labelled, num_keypoints=k)  # area 0, labelled: skipped by top-down, scored as GT
    return {"images": images, "annotations": annotations,
            "categories": [{"id": int(c), "name": f"category_{c}", "supercategory": "animal" if c != 1 else "person"}
                           for c in categories]}


def aic_dict(seed: int = 1) -> dict[str, Any]:
    """AIC as the original's `aic_val.json`: 14 keypoints, no `area`, no `iscrowd` (non-UDP geometry)."""
    return coco_dict(num_images=3, k=14, seed=seed, use_udp=False, area_field=False, iscrowd_field=False)


def ap10k_dict(seed: int = 2, categories: Sequence[int] = (1, 2, 7)) -> dict[str, Any]:
    """An AP-10K-like file with several species (categories 1, 2, 7); non-UDP."""
    data = coco_dict(num_images=3, k=17, seed=seed, use_udp=False, categories=categories)
    for cat in data["categories"]:
        cat["keypoints"] = [f"k{i}" for i in range(17)]
    return data


def ochuman_dict(seed: int = 3) -> dict[str, Any]:
    """OCHuman-like: COCO layout without `num_keypoints`; UDP (evaluated with the COCO head)."""
    return coco_dict(num_images=3, k=17, seed=seed, use_udp=True, num_keypoints_field=False)


def wholebody_dict(seed: int = 4) -> dict[str, Any]:
    """COCO-WholeBody v1.0: 133 grid-aligned keypoints split into the five part fields, some parts invalid (zeros,
    `*_valid` false), part boxes; non-UDP."""
    data = coco_dict(num_images=3, k=133, seed=seed, use_udp=False)
    for n, ann in enumerate(data["annotations"]):
        kp = np.asarray(ann.pop("keypoints")).reshape(133, 3)
        start = 0
        for key, count in WHOLEBODY_PARTS:
            part = kp[start:start + count].copy()
            name = key.replace("_kpts", "")
            if key != "keypoints":
                valid = not (n % 3 == 1 and key in ("face_kpts", "lefthand_kpts")) and not (n % 4 == 2 and key ==
                                                                                          "foot_kpts")
                if not valid:
                    part[:] = 0
                ann[f"{name}_valid"] = bool(valid)
                if key != "foot_kpts":
                    ann[f"{name}_box"] = [0.0, 0.0, 0.0, 0.0] if not valid else list(ann["bbox"])
            ann[key] = _round(part)
            start += count
        ann["num_keypoints"] = int((np.asarray(ann["keypoints"])[2::3] > 0).sum())
    return data


def detections_list(data: dict[str, Any], seed: int = 5) -> list[dict[str, Any]]:
    """Detector-style boxes for a COCO-style file: jittered GT boxes with scores in (0, 1), some with score
    exactly 0, a duplicate box, and one box of another category (to be ignored). Each box names the annotation it
    was made from (`annotation_id`, an extra key) so that tests can predict near that annotation."""
    rng = np.random.default_rng(seed)
    out = []
    for i, ann in enumerate(a for a in data["annotations"] if a.get("iscrowd", 0) == 0 and "keypoints" in a):
        x, y, w, h = ann["bbox"]
        jitter = rng.uniform(-4, 4, 4)
        box = [round(x + jitter[0], 2), round(y + jitter[1], 2), round(w + jitter[2], 2), round(h + jitter[3], 2)]
        score = 0.0 if i % 3 == 0 else round(float(rng.uniform(0.3, 0.99)), 4)
        out.append({"image_id": ann["image_id"], "category_id": 1, "bbox": box, "score": score,
                    "annotation_id": ann["id"]})  # an extra key both the original and we ignore (for the tests)
        if i == 1:
            out.append({"image_id": ann["image_id"], "category_id": 1, "bbox": [b + 1.0 for b in box],
                        "score": 0.0, "annotation_id": ann["id"]})
    out.append({"image_id": data["images"][0]["id"], "category_id": 2, "bbox": [5.0, 5.0, 50.0, 80.0],
                "score": 0.9})
    return out


def box_prediction(box: Sequence[float], k: int, seed: int) -> np.ndarray:
    """A deterministic `(K, 3)` prediction for a crop box: points at fixed fractions of the box, scores in [0, 1)."""
    rng = np.random.default_rng(seed)
    x, y, w, h = (float(v) for v in box)
    u, v = rng.uniform(0.1, 0.9, k), rng.uniform(0.1, 0.9, k)
    return np.stack([x + u * w, y + v * h, rng.uniform(0.0, 1.0, k)], 1)


def noisy_keypoints(keypoints: Sequence[float], seed: int, noise: float = 3.0) -> np.ndarray:
    """Ground-truth keypoints `[x, y, v] * K` plus Gaussian noise, with keypoint scores in (0.3, 1)."""
    rng = np.random.default_rng(seed)
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 3).copy()
    kp[:, :2] += rng.normal(0, noise, (len(kp), 2))
    kp[:, 2] = rng.uniform(0.3, 1.0, len(kp))
    return kp


# ----------------------------------------------------------------------------------------------- MPII
def mpii_entries(num: int = 4, seed: int = 6) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """The original's MPII JSON entries (1-based) and the matching `mpii_gt_val.mat` arrays.

    Joints are grid-aligned for the annotated crop (UDP, center_y + 15 s, scale x 1.25, center - 1), so that the
    oracle decodes them exactly. Two entries share an image.
    """
    rng = np.random.default_rng(seed)
    entries = []
    positions = np.zeros((16, 2, num))
    missing = np.zeros((16, num))
    heads = np.zeros((2, 2, num))
    for n in range(num):
        s = float(rng.uniform(0.5, 0.7))  # annotated scale: the person is about 200 s pixels tall
        crop_center = np.array([float(rng.uniform(120, 200)), float(rng.uniform(110, 130))])  # 0-based
        crop_scale = np.array([s, s]) * 1.25
        kps = grid_keypoints(rng, crop_center, crop_scale, 16, use_udp=True, visible=0.8)
        vis = (kps[:, 2] > 0).astype(int)
        joints = np.where(vis[:, None] > 0, kps[:, :2] + 1.0, 0.0)  # 1-based; unlabelled joints stay at 0
        center_json = crop_center + 1.0 - np.array([0.0, 15.0 * s])
        entries.append({"image": f"mpii_{n // 2 if n < 2 else n - 1:03d}.jpg", "center": _round(center_json),
                        "scale": s, "joints": joints.tolist(), "joints_vis": vis.tolist()})
        positions[:, :, n] = joints
        missing[:, n] = 1 - vis
        head_top = joints[9] if vis[9] else crop_center + 1.0
        heads[0, :, n] = head_top - np.array([12.0, 10.0]) * (1 + n * 0.1)
        heads[1, :, n] = head_top + np.array([12.0, 14.0]) * (1 + n * 0.1)
    return entries, {"dataset_joints": np.array(MPII_MAT_JOINTS), "jnt_missing": missing,
                     "pos_gt_src": positions, "headboxes_src": heads}


def write_mpii_mat(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> str:
    """Write `mpii_gt_val.mat` in the original's structure (`dataset_joints` a 1x16 cell array of names)."""
    from scipy.io import savemat

    cells = np.empty((1, 16), dtype=object)
    for i, name in enumerate(arrays["dataset_joints"]):
        cells[0, i] = np.array([str(name)])
    savemat(os.fspath(path), {"dataset_joints": cells, "jnt_missing": arrays["jnt_missing"],
                              "pos_gt_src": arrays["pos_gt_src"], "headboxes_src": arrays["headboxes_src"]})
    return os.fspath(path)


# ----------------------------------------------------------------------------------------------- writers
def write_images(folder: str | os.PathLike, file_names: Sequence[str], size: Sequence[int] = IMAGE_WH) -> None:
    """Small textured images (JPEG or PNG by extension)."""
    import cv2

    for i, name in enumerate(dict.fromkeys(file_names)):
        path = os.path.join(os.fspath(folder), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        rng = np.random.default_rng(i)
        img = rng.integers(0, 255, (int(size[1]) // 8, int(size[0]) // 8, 3)).astype(np.uint8)
        img = cv2.resize(img, (int(size[0]), int(size[1])), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(path, img)


def write_json(path: str | os.PathLike, data: Any) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    return os.fspath(path)


FIXTURE_BUILDERS = {
    "coco": lambda: coco_dict(),
    "ochuman": ochuman_dict,
    "aic": aic_dict,
    "ap10k": ap10k_dict,
    "apt36k": lambda: ap10k_dict(seed=7, categories=(3, 5)),
    "coco_wholebody": wholebody_dict,
}

REFERENCE_NOISE = {"coco": 2.0, "ap10k": 2.0, "aic": 0.6, "coco_wholebody": 0.6}
"""Noise (pixels) of `noisy_keypoints` per reference case: small for the small AIC / WholeBody sigmas."""


def write_fixture(kind: str, folder: str | os.PathLike) -> dict[str, str]:
    """Write one format's fixture (annotation file + images; MPII: JSON list, `.mat` and images) into `folder`.

    Returns `{"annotations", "images"}` (and `"mpii_gt_mat"` for MPII).
    """
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    if kind == "mpii":
        entries, arrays = mpii_entries()
        write_images(folder, [e["image"] for e in entries])
        return {"annotations": write_json(os.path.join(folder, "mpii_val.json"), entries), "images": folder,
                "mpii_gt_mat": write_mpii_mat(os.path.join(folder, "mpii_gt_val.mat"), arrays)}
    data = FIXTURE_BUILDERS[kind]()
    write_images(folder, [img["file_name"] for img in data["images"]])
    return {"annotations": write_json(os.path.join(folder, f"{kind}.json"), data), "images": folder}


# ----------------------------------------------------------------------------------------------- oracle
class OracleModel:
    """A "model" for `TopDownPredictor` that returns given heatmaps, in the order its crops are requested."""

    def __init__(self, heatmaps: np.ndarray):
        import torch

        self.heatmaps = torch.from_numpy(np.asarray(heatmaps, dtype=np.float32))
        self.position = 0

    def __call__(self, pixel_values: Any, dataset_index: Any = None, flip_test: bool = False) -> Any:
        count = pixel_values.shape[0]
        out = self.heatmaps[self.position : self.position + count]
        self.position += count
        return out


def oracle_processor(spec: Any) -> Any:
    """The image processor of the oracle: the fixtures' input size and the ground truth's dataset spec."""
    from vitpose_plus.modeling.image_processing_vitpose_plus import VitPosePlusImageProcessor

    return VitPosePlusImageProcessor(size={"height": IMAGE_SIZE[1], "width": IMAGE_SIZE[0]}, datasets=[spec])


def oracle_heatmaps(ground_truth: Any, targets: Sequence[Any]) -> np.ndarray:
    """Each target's annotated keypoints rendered as heatmap targets at the crop the image processor makes (its
    codec's `crop_matrix` and `encode`), in the order `predict_keypoints` crops them: `(N, K, h, w)`."""
    from vitpose_plus.modeling.keypoint_codecs import transform_points

    processor = oracle_processor(ground_truth.spec)
    codec = processor.codec(0)
    by_annotation = {inst.annotation_id: inst for inst in ground_truth.annotations.instances()}
    order: dict[int, list[Any]] = {}
    for target in targets:  # the order predict_keypoints crops them: images by first appearance, then targets
        order.setdefault(target.image_id, []).append(target)
    heatmaps = []
    for image_targets in order.values():
        for target in image_targets:
            if target.source == "ground_truth":  # the processor's crop of this box
                center, scale = processor.boxes_to_center_scale(np.asarray([target.bbox]))
                assert np.allclose(center[0], target.center) and np.allclose(scale[0], target.scale)
            keypoints = by_annotation[target.source_id].keypoints
            crop_points = transform_points(keypoints[:, :2], codec.crop_matrix(target.center, target.scale))
            heatmaps.append(codec.encode(crop_points, keypoints[:, 2])[0])
    return np.stack(heatmaps)


def oracle_records(ground_truth: Any, targets: Sequence[Any]) -> list[dict[str, Any]]:
    """Records of a perfect predictor through the real evaluation path: `oracle_heatmaps` returned by an
    `OracleModel` to the shared `TopDownPredictor` of `predict_keypoints`, which decodes and rescores them."""
    from vitpose_plus.evaluation.evaluate import predict_keypoints

    oracle = OracleModel(oracle_heatmaps(ground_truth, targets))
    return predict_keypoints(oracle, oracle_processor(ground_truth.spec), ground_truth.image_paths, targets,
                             ground_truth.spec.name, flip_test=False, progress=False)


# ----------------------------------------------------------------------------------------------- bottom-up
BOTTOM_UP_IMAGE_SIZES = ((256, 384), (256, 256), (320, 256))
"""(height, width) of the bottom-up fixture images: multiples of 64 with the short side 256, so the processor's
test resize (input 256) is the identity and image pixels are input pixels."""


def bottom_up_coco_dict(num_images: int = 3, k: int = 17, seed: int = 11) -> dict[str, Any]:
    """A COCO file for whole-image (bottom-up) evaluation: image `i` has the size `BOTTOM_UP_IMAGE_SIZES[i % 3]` and
    one to three persons in separate vertical strips (keypoints of different persons at least 40 px apart in x),
    keypoints at least 12 px from the top and bottom, about 15% unlabelled, `area` 20000 (an OKS scale that tolerates
    the quarter-pixel quantisation of the grouping, so a perfect oracle scores AP 1.0). A last image has no
    person."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for i in range(num_images + 1):
        height, width = BOTTOM_UP_IMAGE_SIZES[i % len(BOTTOM_UP_IMAGE_SIZES)]
        images.append({"id": 100 + i, "file_name": f"bu_{i:03d}.png", "width": width, "height": height})
        if i == num_images:
            break  # an image without persons: evaluated too (the original's test mode keeps every image)
        count = 1 + i % 3
        strip = width / count
        for p in range(count):
            x = rng.uniform(p * strip + 20, (p + 1) * strip - 20, k)
            kp = np.stack([x, rng.uniform(12, height - 12, k), np.full(k, 2.0)], 1)
            unlabelled = rng.random(k) < 0.15
            unlabelled[0] = False  # at least one labelled keypoint
            kp[unlabelled] = 0.0
            annotations.append({"id": 1000 + len(annotations), "image_id": 100 + i, "category_id": 1,
                                "bbox": [float(kp[:, 0].min()), 0.0, 40.0, float(height)], "area": 20000.0,
                                "iscrowd": 0, "num_keypoints": int((kp[:, 2] > 0).sum()),
                                "keypoints": _round(kp)})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}


def write_bottom_up_fixture(folder: str | os.PathLike, **kwargs: Any) -> dict[str, str]:
    """`bottom_up_coco_dict` as `annotations.json` with its PNG images in `folder`."""
    import cv2

    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    data = bottom_up_coco_dict(**kwargs)
    for n, image in enumerate(data["images"]):
        rng = np.random.default_rng(n)
        small = rng.integers(0, 255, (image["height"] // 8, image["width"] // 8, 3)).astype(np.uint8)
        cv2.imwrite(os.path.join(folder, image["file_name"]),
                    cv2.resize(small, (image["width"], image["height"]), interpolation=cv2.INTER_LINEAR))
    return {"annotations": write_json(os.path.join(folder, "annotations.json"), data), "images": folder}


class BottomUpOracle:
    """A perfect bottom-up "model" for `BottomUpPredictor`: maps drawn from the ground truth of the images it is
    asked about, in the order it is asked (`images`: per image, its `(P, K, 3)` joints in input pixels).

    Heatmaps: a unit Gaussian (sigma 1.5 map pixels) per labelled joint, centred where the processor's 4x bilinear
    projection (`align_corners=False`) puts input pixel `x - 0.5`, i.e. map coordinate `x / 4 - 0.5`, so that the
    grouping's peak plus its `+ 0.5` lands on `x` up to the map's quantisation (the projected map peaks at a map
    sample: within 2 input pixels). Tags: `3 p` for person `p` in a
    9x9-pixel window around each of its joints (the tag threshold is 1). With flip test the flipped tags equal the
    tags and the heatmaps are the averaged ones, as a symmetric model's would be.
    """

    def __init__(self, config: Any, joints: Sequence[np.ndarray], stride: int = 4):
        self.config = config
        self.joints = [np.asarray(j, dtype=np.float64).reshape(-1, config.max_num_keypoints, 3) for j in joints]
        self.stride = stride
        self.position = 0
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, pixel_values: Any, pixel_mask: Any = None, dataset_index: Any = None,
                 flip_test: bool = False) -> Any:
        import torch

        from vitpose_plus.modeling import VitPosePlusBottomUpOutput

        batch, _, height, width = pixel_values.shape
        self.calls.append(tuple(pixel_values.shape))
        k, h, w = self.config.max_num_keypoints, height // self.stride, width // self.stride
        heatmaps = np.zeros((batch, k, h, w), np.float32)
        tags = np.zeros((batch, k, h, w), np.float32)
        ys, xs = np.mgrid[0:h, 0:w]
        for b in range(batch):
            for p, person in enumerate(self.joints[self.position + b]):
                for j, (x, y, v) in enumerate(person):
                    if v <= 0:
                        continue
                    mx, my = x / self.stride - 0.5, y / self.stride - 0.5
                    blob = np.exp(-((xs - mx) ** 2 + (ys - my) ** 2) / (2 * 1.5**2)).astype(np.float32)
                    heatmaps[b, j] = np.maximum(heatmaps[b, j], blob)
                    cx, cy = int(round(mx)), int(round(my))
                    tags[b, j, max(0, cy - 4): cy + 5, max(0, cx - 4): cx + 5] = 3.0 * p
        self.position += batch
        tags_t = torch.from_numpy(tags)
        return VitPosePlusBottomUpOutput(heatmaps=torch.from_numpy(heatmaps), tags=tags_t,
                                         flipped_tags=tags_t.clone() if flip_test else None)


# ----------------------------------------------------------------------------------------------- models and checkpoints
# Tiny random-weight models and synthetic original/MAE checkpoints in the documented layouts (VITPOSE_REFERENCE.md
# 2.1, 2.7). torch and the package are imported inside the functions (see the module docstring).
PLUS_KEYPOINTS = (17, 14, 16, 17, 17, 133)


# ---------------------------------------------------------------------------------------------------------- models
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": (64, 48),
    "deconv_channels": (16, 16),
}


def tiny_config(**overrides) -> VitPosePlusConfig:
    """A 2-block, width-32 model on 64x48 crops (grid 4x3, heatmaps 16x12)."""
    from vitpose_plus import VitPosePlusConfig
    kwargs = {**TINY, **overrides}
    return VitPosePlusConfig(**kwargs)


def tiny_plus_config(**overrides) -> VitPosePlusConfig:
    """Tiny ViTPose+: three datasets with different keypoint counts (17, 14, 16), one expert each."""
    kwargs = {"num_experts": 3, "part_features": 8, "datasets": ["coco", "aic", "mpii"], **overrides}
    return tiny_config(**kwargs)


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Give BatchNorm layers non-trivial running statistics and affine parameters (eval-mode parity tests)."""
    import torch
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)


def make_model(config: VitPosePlusConfig, seed: int = 0) -> VitPosePlusForPoseEstimation:
    import torch

    from vitpose_plus import VitPosePlusForPoseEstimation
    torch.manual_seed(seed)
    model = VitPosePlusForPoseEstimation(config)
    # Trained weights are far from the init: perturb everything so that parity tests see non-trivial values
    # (the head init std 0.001 and zero biases would hide mistakes).
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    randomize_batchnorm(model, seed)
    return model.eval()


# ---------------------------------------------------------------------------------------------------------- checkpoints
def _head(state: dict, prefix: str, dim: int, k: int, decoder: str, gen: torch.Generator, channels: int = 256) -> None:
    import torch

    def rnd(*shape, std=0.05):
        return torch.randn(*shape, generator=gen) * std

    if decoder == "classic":
        for index, (cin, cout) in ((0, (dim, channels)), (3, (channels, channels))):
            state[f"{prefix}.deconv_layers.{index}.weight"] = rnd(cin, cout, 4, 4, std=(4 * cin) ** -0.5)
            bn = f"{prefix}.deconv_layers.{index + 1}"
            state[f"{bn}.weight"] = 1 + rnd(cout, std=0.1)
            state[f"{bn}.bias"] = rnd(cout, std=0.1)
            state[f"{bn}.running_mean"] = rnd(cout, std=0.1)
            state[f"{bn}.running_var"] = 0.5 + torch.rand(cout, generator=gen)
            state[f"{bn}.num_batches_tracked"] = torch.tensor(1234)
        state[f"{prefix}.final_layer.weight"] = rnd(k, channels, 1, 1, std=channels**-0.5)
    else:
        state[f"{prefix}.final_layer.weight"] = rnd(k, dim, 3, 3, std=(9 * dim) ** -0.5)
    state[f"{prefix}.final_layer.bias"] = rnd(k, std=0.1)


def make_original_state(
    dim: int = 48,
    depth: int = 2,
    experts: int = 0,
    part_features: int = 0,
    keypoints: tuple[int, ...] = (17,),
    decoder: str = "classic",
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """An original-layout state dict (`backbone.*`, `keypoint_head.*`, `associate_keypoint_heads.{j}.*`)."""
    import torch
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape, std=0.1):
        return torch.randn(*shape, generator=gen) * std

    hidden = 4 * dim
    state = {
        "backbone.pos_embed": rnd(1, 193, dim, std=0.5),  # slot 0 non-zero, as in trained weights
        "backbone.patch_embed.proj.weight": rnd(dim, 3, 16, 16, std=(3 * 256) ** -0.5),
        "backbone.patch_embed.proj.bias": rnd(dim),
        "backbone.last_norm.weight": 1 + rnd(dim),
        "backbone.last_norm.bias": rnd(dim),
    }
    for i in range(depth):
        p = f"backbone.blocks.{i}"
        for norm in ("norm1", "norm2"):
            state[f"{p}.{norm}.weight"] = 1 + rnd(dim)
            state[f"{p}.{norm}.bias"] = rnd(dim)
        state[f"{p}.attn.qkv.weight"] = rnd(3 * dim, dim, std=2 * dim**-0.5)
        state[f"{p}.attn.qkv.bias"] = rnd(3 * dim)
        state[f"{p}.attn.proj.weight"] = rnd(dim, dim, std=dim**-0.5)
        state[f"{p}.attn.proj.bias"] = rnd(dim)
        state[f"{p}.mlp.fc1.weight"] = rnd(hidden, dim, std=dim**-0.5)
        state[f"{p}.mlp.fc1.bias"] = rnd(hidden)
        shared = dim - part_features if experts else dim
        state[f"{p}.mlp.fc2.weight"] = rnd(shared, hidden, std=hidden**-0.5)
        state[f"{p}.mlp.fc2.bias"] = rnd(shared)
        for e in range(experts):
            state[f"{p}.mlp.experts.{e}.weight"] = rnd(part_features, hidden, std=hidden**-0.5)
            state[f"{p}.mlp.experts.{e}.bias"] = rnd(part_features)
    for j, k in enumerate(keypoints):
        _head(state, "keypoint_head" if j == 0 else f"associate_keypoint_heads.{j - 1}", dim, k, decoder, gen)
    return state


def model_split(state: dict[str, torch.Tensor], out: str) -> dict[str, torch.Tensor]:
    """The original tools/model_split.py, bugs included (experts kept; coco.pth keeps every associate head)."""
    import torch
    names = ["coco", "aic", "mpii", "ap10k", "apt36k", "wholebody"]
    index = names.index(out)
    new = dict(state)
    for key in list(new):
        if key.endswith("mlp.fc2.weight") or key.endswith("mlp.fc2.bias"):
            param = key.rsplit(".", 1)[1]
            expert = key.replace(f"fc2.{param}", f"experts.{index}.{param}")
            new[key] = torch.cat([state[key], state[expert]], dim=0)
    if index > 0:
        prefix = f"associate_keypoint_heads.{index - 1}."
        for key in list(new):
            if key.startswith(prefix):
                new["keypoint_head." + key[len(prefix) :]] = state[key]
        for key in list(new):
            if key.startswith("associate_keypoint_heads."):
                new.pop(key)
    return new


def save_pth(state: dict, path, wrap: str | None = "state_dict") -> str:
    import torch
    obj = {wrap: state, "meta": {"epoch": 210}} if wrap else state
    torch.save(obj, path)
    return str(path)


def make_mae_state(dim: int = 48, depth: int = 1, patch: int = 16, grid: int = 14, seed: int = 4) -> dict:
    import torch
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=gen)

    state = {
        "cls_token": rnd(1, 1, dim),
        "pos_embed": rnd(1, 1 + grid * grid, dim),
        "patch_embed.proj.weight": rnd(dim, 3, patch, patch),
        "patch_embed.proj.bias": rnd(dim),
        "norm.weight": rnd(dim),
        "norm.bias": rnd(dim),
        "mask_token": rnd(1, 1, dim),
        "decoder_embed.weight": rnd(32, dim),
        "decoder_pos_embed": rnd(1, 1 + grid * grid, 32),
        "decoder_blocks.0.norm1.weight": rnd(32),
    }
    for i in range(depth):
        p = f"blocks.{i}"
        for name, shape in [
            ("norm1.weight", (dim,)), ("norm1.bias", (dim,)), ("norm2.weight", (dim,)), ("norm2.bias", (dim,)),
            ("attn.qkv.weight", (3 * dim, dim)), ("attn.qkv.bias", (3 * dim,)),
            ("attn.proj.weight", (dim, dim)), ("attn.proj.bias", (dim,)),
            ("mlp.fc1.weight", (4 * dim, dim)), ("mlp.fc1.bias", (4 * dim,)),
            ("mlp.fc2.weight", (dim, 4 * dim)), ("mlp.fc2.bias", (dim,)),
        ]:  # fmt: skip
            state[f"{p}.{name}"] = rnd(*shape)
    return state


TINY_PLUS = {"hidden_size": 48, "num_hidden_layers": 1, "part_features": 12}


# ------------------------------------------------------------------------------------------ fresh processes
_BLOCK_PACKAGE = '''
import importlib.abc
import sys


class _PackageNotInstalled(importlib.abc.MetaPathFinder):
    """Makes `vitpose_plus` unimportable, as on a machine that only has torch, transformers and pillow."""

    def find_spec(self, name, path=None, target=None):
        if name == "vitpose_plus" or name.startswith("vitpose_plus."):
            raise ModuleNotFoundError(f"No module named {name!r} (the test runs without the package)")
        return None


sys.meta_path.insert(0, _PackageNotInstalled())
import torch

torch.set_num_threads(THREADS)
'''


def run_without_package(script: str, cwd: str | os.PathLike, timeout: float = 300) -> Any:
    """Run `script` in a fresh Python process in which `vitpose_plus` cannot be imported (a user who only loads a
    published folder with `trust_remote_code`), offline, with a private HF cache under `cwd`.

    The environment is passed through (thread settings such as `OMP_NUM_THREADS` included) and torch gets this
    process's intra-op thread count, so float reductions run in the same order and results compare exactly.
    Returns the `subprocess.CompletedProcess`; fails the test with the child's stderr when it exits non-zero.
    """
    import subprocess
    import sys
    import textwrap

    import torch

    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update({"HF_HUB_OFFLINE": "1", "HF_HOME": os.path.join(os.fspath(cwd), "hf_home")})
    code = _BLOCK_PACKAGE.replace("THREADS", str(torch.get_num_threads())) + textwrap.dedent(script)
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env=env)
    assert result.returncode == 0, f"the fresh process failed:\n{result.stderr[-4000:]}"
    return result


def write_yaml_config(tmp_path: Any, config: dict[str, Any], sections: dict[str, Any],
                      name: str = "config.yaml") -> str:
    """`config` with `sections` applied (a dict updates the section of that name, anything else replaces it), written
    as `tmp_path/name`; returns its path. The config writers of the training tests build on it."""
    import yaml

    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    os.makedirs(tmp_path, exist_ok=True)
    path = os.path.join(os.fspath(tmp_path), name)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle)
    return path
