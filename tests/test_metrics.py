"""Keypoint metrics (evaluation/metrics.py, the evaluate module): COCO AP equals pycocotools, OKS-NMS, PCKh."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vitpose_plus.evaluation import COCO_KEYPOINTS_METRIC_PATH
from vitpose_plus.evaluation.metrics import apply_oks_nms, coco_keypoint_ap, oks_nms, pckh


def _toy_coco(num_images=4, k=17, seed=0):
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for i in range(1, num_images + 1):
        images.append({"id": i, "width": 200, "height": 200})
        for _ in range(2):
            x, y = rng.uniform(10, 100, 2)
            kps = np.zeros((k, 3))
            kps[:, 0] = x + rng.uniform(0, 60, k)
            kps[:, 1] = y + rng.uniform(0, 80, k)
            kps[:, 2] = 2
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                                "bbox": [x, y, 60, 80], "area": 60 * 80.0, "keypoints": kps.reshape(-1).tolist(),
                                "num_keypoints": k})
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}


def _noisy_predictions(gt, scale, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for ann in gt["annotations"]:
        kps = np.asarray(ann["keypoints"]).reshape(-1, 3).copy()
        kps[:, :2] += rng.normal(0, scale, (len(kps), 2))
        kps[:, 2] = rng.uniform(0.3, 1.0, len(kps))
        out.append({"image_id": ann["image_id"], "keypoints": kps.reshape(-1).tolist(),
                    "score": float(rng.uniform(0.5, 1)), "area": ann["area"] * 1.5})
    return out


def test_coco_ap_equals_pycocotools_and_perfect_is_one():
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from vitpose_plus.modeling import get_dataset_spec

    gt = _toy_coco()
    sigmas = get_dataset_spec("ap10k").sigmas
    perfect = [{**p, "keypoints": a["keypoints"]} for p, a in zip(_noisy_predictions(gt, 0), gt["annotations"])]
    assert coco_keypoint_ap(gt, perfect, sigmas)["AP"] == pytest.approx(1.0)
    preds = _noisy_predictions(gt, 4.0)
    ours = coco_keypoint_ap(gt, preds, sigmas)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(gt))
        coco.createIndex()
        dt = coco.loadRes([{k: v for k, v in p.items() if k != "area"} | {"category_id": 1} for p in preds])
        ev = COCOeval(coco, dt, "keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert 0.05 < ours["AP"] < 0.95
    assert [ours[k] for k in ("AP", "AP50", "AP75", "APm", "APl", "AR")] == pytest.approx(list(ev.stats[:6]), abs=0)


def test_evaluate_metric_module_matches_direct_computation():
    import evaluate

    gt = _toy_coco(k=17)
    preds = _noisy_predictions(gt, 3.0)
    metric = evaluate.load(COCO_KEYPOINTS_METRIC_PATH)
    by_image = {}
    for p in preds:
        entry = by_image.setdefault(p["image_id"], {"image_id": p["image_id"], "keypoints": [], "scores": [],
                                                     "areas": []})
        entry["keypoints"].append(p["keypoints"])
        entry["scores"].append(p["score"])
        entry["areas"].append(p["area"])
    references = []
    for image in gt["images"]:
        anns = [a for a in gt["annotations"] if a["image_id"] == image["id"]]
        references.append({"image_id": image["id"], "keypoints": [a["keypoints"] for a in anns],
                           "bboxes": [a["bbox"] for a in anns], "areas": [a["area"] for a in anns]})
    predictions = [by_image[image["id"]] for image in gt["images"]]
    result = metric.compute(predictions=predictions, references=references, dataset="coco")
    from vitpose_plus.modeling import get_dataset_spec

    sigmas = get_dataset_spec("coco").sigmas
    direct = coco_keypoint_ap(gt, apply_oks_nms(preds, sigmas, 0.9), sigmas)
    assert result == pytest.approx(direct, abs=1e-12)
    assert 0.05 < result["AP"] < 1.0


def test_oks_nms_against_hand_computed_overlap():
    sigmas = np.full(2, 0.1)
    base = np.array([[10.0, 10.0], [20.0, 20.0]])
    shifted = base + np.array([1.0, 0.0])
    far = base + 50.0
    keypoints = np.stack([base, shifted, far])
    areas = np.array([100.0, 100.0, 100.0])
    # OKS(base, shifted) = mean(exp(-1 / (2 * 0.04 * 100))) = exp(-0.125) = 0.8825 -> kept at 0.9, dropped at 0.8.
    assert oks_nms(keypoints, np.array([0.9, 0.8, 0.7]), areas, sigmas, 0.9) == [0, 1, 2]
    assert oks_nms(keypoints, np.array([0.9, 0.8, 0.7]), areas, sigmas, 0.8) == [0, 2]


def test_pckh_against_hand_computed_values():
    truth = np.zeros((2, 3, 2))
    predicted = truth.copy()
    predicted[0, :, 0] = [1.0, 2.0, 6.0]  # head size 10: 0.1, 0.2, 0.6 -> two of three within 0.5
    predicted[1, :, 1] = [4.0, 5.0, 9.0]  # head size 10: 0.4, 0.5 (inclusive), 0.9 (not visible)
    visible = np.array([[True, True, True], [True, True, False]])
    assert pckh(predicted, truth, visible, np.array([10.0, 10.0])) == pytest.approx(4 / 5)
    assert pckh(predicted, truth, visible, np.array([10.0, 10.0]), threshold=0.15) == pytest.approx(1 / 5)
    assert pckh(predicted, truth, np.zeros((2, 3), bool), np.array([10.0, 10.0])) == 0.0
