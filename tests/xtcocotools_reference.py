"""Reference numbers for tests/test_evaluation.py, computed with the real xtcocotools and the original pipeline.

Not a test and not a test dependency: run it in an environment with numpy and xtcocotools (1.14.3 was used, with
numpy 1.26) and paste the printed constants into the tests:

    /path/to/xtcocotools-venv/bin/python tests/xtcocotools_reference.py

The fixtures come from tests/helpers.py (numpy-only builders). The original's pipeline is transcribed here from
ViTPose (mmpose 0.x): the top-down GT loader filters and sanitising (`_load_coco_keypoint_annotation_kernel` and its
WholeBody variant), the detection loader (`category_id == 1`, `score >= det_bbox_thr`), `_xywh2cs` (float32),
the rescoring (box score x mean keypoint score above 0.2), `oks_nms` / `oks_iou`, the results writers (first category
for COCO/AIC/WholeBody, each instance's category for AP-10K, the WholeBody part split) and xtcocotools' `COCOeval`
with the dataset's `iouType`, sigmas and `use_area`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helpers  # noqa: E402

SPECS = json.load(open(os.path.join(os.path.dirname(__file__), "..", "modeling", "keypoint_specs.json")))


def sigmas(name):
    return np.array(SPECS[name]["sigmas"], dtype=np.float64)


# ----------------------------------------------------------------------------------------------- the original
def xywh2cs(x, y, w, h):
    aspect_ratio = 192 / 256
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w / 200.0, h / 200.0], dtype=np.float32)
    return center, scale * 1.25


def gt_targets(data, wholebody=False):
    """The original GT-box path: (image_id, bbox_id, clean box, annotation) per kept annotation."""
    anns_by_image = {}
    for ann in data["annotations"]:
        anns_by_image.setdefault(ann["image_id"], []).append(ann)
    out = []
    for img in data["images"]:
        width, height = img["width"], img["height"]
        objs = [a for a in anns_by_image.get(img["id"], []) if a.get("iscrowd", 0) == 0]
        valid = []
        for obj in objs:
            if "bbox" not in obj:
                continue
            x, y, w, h = obj["bbox"]
            x1 = max(0, x)
            y1 = max(0, y)
            x2 = min(width - 1, x1 + max(0, w - 1))
            y2 = min(height - 1, y1 + max(0, h - 1))
            if ("area" not in obj or obj["area"] > 0) and x2 > x1 and y2 > y1:
                obj = dict(obj, clean_bbox=[x1, y1, x2 - x1, y2 - y1])
                valid.append(obj)
        bbox_id = 0
        for obj in valid:
            if "keypoints" not in obj:
                continue
            if max(obj["keypoints"]) == 0:
                continue
            if not wholebody and "num_keypoints" in obj and obj["num_keypoints"] == 0:
                continue
            out.append((img["id"], bbox_id, obj["clean_bbox"], obj))
            bbox_id += 1
    return out


def det_targets(detections, det_bbox_thr=0.0):
    out = []
    for bbox_id, det in enumerate(d for d in detections if d["category_id"] == 1):
        if det["score"] < det_bbox_thr:
            continue
        out.append((det["image_id"], bbox_id, det["bbox"][:4], det))
    return out


def oks_iou(g, d, a_g, a_d, sigmas=None, vis_thr=None):
    vars = (sigmas * 2) ** 2
    xg = g[0::3]
    yg = g[1::3]
    ious = np.zeros(len(d), dtype=np.float32)
    for n_d in range(0, len(d)):
        xd = d[n_d, 0::3]
        yd = d[n_d, 1::3]
        dx = xd - xg
        dy = yd - yg
        e = (dx ** 2 + dy ** 2) / vars / ((a_g + a_d[n_d]) / 2 + np.spacing(1)) / 2
        ious[n_d] = np.sum(np.exp(-e)) / len(e) if len(e) != 0 else 0.0
    return ious


def oks_nms(kpts_db, thr, sigmas=None):
    if len(kpts_db) == 0:
        return []
    scores = np.array([k["score"] for k in kpts_db])
    kpts = np.array([k["keypoints"].flatten() for k in kpts_db])
    areas = np.array([k["area"] for k in kpts_db])
    order = scores.argsort()[::-1]
    keep = []
    while len(order) > 0:
        i = order[0]
        keep.append(i)
        oks_ovr = oks_iou(kpts[i], kpts[order[1:]], areas[i], areas[order[1:]], sigmas)
        inds = np.where(oks_ovr <= thr)[0]
        order = order[inds + 1]
    return keep


def original_results(targets, predict, sigma, category_of, wholebody=False, nms=True):
    """Rescoring, per-image sort by bbox_id, OKS-NMS and the results writer of the original."""
    kpts = {}
    for image_id, bbox_id, box, source in targets:
        center, scale = xywh2cs(*box)
        preds = predict(box, source).astype(np.float32)
        box_score = source.get("score", 1.0) if "score" in source and "keypoints" not in source else 1
        kpts.setdefault(image_id, []).append({
            "keypoints": preds, "area": np.prod(scale * 200.0), "score": box_score, "image_id": image_id,
            "bbox_id": bbox_id, "category": category_of(source)})
    results = []
    for image_id, img_kpts in kpts.items():
        img_kpts = sorted(img_kpts, key=lambda x: x["bbox_id"])
        for n_p in img_kpts:
            box_score = n_p["score"]
            kpt_score = 0
            valid_num = 0
            for n_jt in range(len(n_p["keypoints"])):
                t_s = n_p["keypoints"][n_jt][2]
                if t_s > 0.2:
                    kpt_score = kpt_score + t_s
                    valid_num = valid_num + 1
            if valid_num != 0:
                kpt_score = kpt_score / valid_num
            n_p["score"] = kpt_score * box_score
        keep = oks_nms(img_kpts, 0.9, sigmas=sigma) if nms else range(len(img_kpts))
        for i in keep:
            kp = img_kpts[i]["keypoints"].reshape(-1)
            res = {"image_id": image_id, "category_id": img_kpts[i]["category"], "score": float(img_kpts[i]["score"])}
            if wholebody:
                cuts = np.cumsum([0, 17, 6, 68, 21, 21]) * 3
                for j, key in enumerate(("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")):
                    res[key] = kp[cuts[j]:cuts[j + 1]].tolist()
            else:
                res["keypoints"] = kp.tolist()
            results.append(res)
    return results


def xtcoco(data, results, iou_type, sigma, use_area=True):
    import contextlib
    import io
    import warnings

    from xtcocotools.coco import COCO
    from xtcocotools.cocoeval import COCOeval

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = os.path.join(tmp, "gt.json")
        json.dump(data, open(path, "w"))
        coco = COCO(path)
        evaluator = COCOeval(coco, coco.loadRes(json.loads(json.dumps(results))), iou_type, sigma, use_area=use_area)
        evaluator.params.useSegm = None
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [round(float(v), 12) for v in evaluator.stats]


def noisy_for(dataset):
    def predict(box, ann):
        return helpers.noisy_keypoints(_all_keypoints(ann), seed=ann["id"], noise=helpers.REFERENCE_NOISE[dataset])

    return predict


def _all_keypoints(ann):
    if "foot_kpts" in ann:
        return ann["keypoints"] + ann["foot_kpts"] + ann["face_kpts"] + ann["lefthand_kpts"] + ann["righthand_kpts"]
    return ann["keypoints"]


def main():
    out = {}
    # 1. ground-truth ids starting at 0: the ground truth's own keypoints (perturbed) as results, no NMS.
    data = helpers.coco_dict(num_images=4, first_id=0, seed=10)
    results = [{"image_id": a["image_id"], "category_id": 1, "score": round(0.5 + 0.1 * (a["id"] % 5), 3),
                "keypoints": helpers.noisy_keypoints(a["keypoints"], seed=a["id"], noise=2.0).reshape(-1).tolist()}
               for a in data["annotations"]]
    out["ids_from_zero"] = xtcoco(data, results, "keypoints", sigmas("coco"))

    # 2. detections with score 0 (kept by score >= det_bbox_thr = 0.0), whole pipeline with OKS-NMS.
    data = helpers.coco_dict(num_images=3, seed=11, extras=True)
    dets = helpers.detections_list(data)

    by_id = {a["id"]: a for a in data["annotations"]}

    def from_box(box, det):  # near the annotation the box was made from
        return helpers.noisy_keypoints(by_id[det["annotation_id"]]["keypoints"], seed=dets.index(det), noise=2.0)

    targets = det_targets(dets)
    out["score_zero_detections_num_targets"] = len(targets)
    out["score_zero_detections"] = xtcoco(data, original_results(targets, from_box, sigmas("coco"), lambda s: 1),
                                          "keypoints", sigmas("coco"))

    # 3. ground-truth boxes of a file with area-0, crowd, empty-box and keypoint-less annotations.
    data = helpers.coco_dict(num_images=3, seed=12, extras=True)
    targets = gt_targets(data)
    out["gt_boxes_with_skips"] = xtcoco(data, original_results(targets, noisy_for("coco"), sigmas("coco"), lambda s: 1),
                                        "keypoints", sigmas("coco"))
    out["gt_boxes_with_skips_num_targets"] = len(targets)

    # 4. an exact score tie in OKS-NMS: the original keeps the later record.
    data = helpers.coco_dict(num_images=1, seed=13)
    ann = data["annotations"][0]
    exact = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3).copy()
    exact[:, 2] = 0.8
    shifted = exact.copy()
    shifted[:, 0] += 4.0
    center, scale = xywh2cs(*helpers.clean_box(ann["bbox"], *helpers.IMAGE_WH))
    records = [{"keypoints": exact.astype(np.float32), "score": 0.8, "area": np.prod(scale * 200.0)},
               {"keypoints": shifted.astype(np.float32), "score": 0.8, "area": np.prod(scale * 200.0)}]
    keep = oks_nms(records, 0.9, sigmas("coco"))
    out["tie_keep"] = [int(i) for i in keep]
    results = [{"image_id": ann["image_id"], "category_id": 1, "score": 0.8,
                "keypoints": records[i]["keypoints"].reshape(-1).tolist()} for i in keep]
    out["tie_ap"] = xtcoco(data, results, "keypoints", sigmas("coco"))

    # 5. AP-10K with three species: each result with its GT box's category, all categories evaluated.
    data = helpers.ap10k_dict()
    targets = gt_targets(data)
    own = original_results(targets, noisy_for("ap10k"), sigmas("ap10k"), lambda s: s["category_id"])
    out["ap10k"] = xtcoco(data, own, "keypoints", sigmas("ap10k"))
    stamped = original_results(targets, noisy_for("ap10k"), sigmas("ap10k"), lambda s: data["categories"][0]["id"])
    out["ap10k_first_category_only"] = xtcoco(data, stamped, "keypoints", sigmas("ap10k"))

    # 6. AIC: no area, use_area=False.
    data = helpers.aic_dict()
    targets = gt_targets(data)
    out["aic"] = xtcoco(data, original_results(targets, noisy_for("aic"), sigmas("aic"), lambda s: 1), "keypoints",
                        sigmas("aic"), use_area=False)

    # 7. COCO-WholeBody: body, foot, face, left hand, right hand, whole body.
    data = helpers.wholebody_dict()
    targets = gt_targets(data, wholebody=True)
    sigma = sigmas("coco_wholebody")
    results = original_results(targets, noisy_for("coco_wholebody"), sigma, lambda s: 1, wholebody=True)
    cuts = np.cumsum([0, 17, 6, 68, 21, 21])
    for j, name in enumerate(("body", "foot", "face", "lefthand", "righthand")):
        out[f"wholebody_{name}"] = xtcoco(data, results, f"keypoints_{name}", sigma[cuts[j]:cuts[j + 1]])
    out["wholebody"] = xtcoco(data, results, "keypoints_wholebody", sigma)

    for key, value in out.items():
        print(f"{key.upper()} = {value!r}")


if __name__ == "__main__":
    main()
