"""Evaluation per protocol against the original: xtcocotools reference numbers, independent computations, oracle.

The `REF_*` constants were produced by `tests/xtcocotools_reference.py` (the original's pipeline transcribed, scored
by the real xtcocotools 1.14.3 with numpy 1.26) on the fixtures of `tests/helpers.py`:

    /work/notes/xtcocotools-venv/bin/python tests/xtcocotools_reference.py

Each list is xtcocotools' `stats`: AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl.
"""

import contextlib
import io
import json

import numpy as np
import pytest
from helpers import (
    REFERENCE_NOISE,
    aic_dict,
    ap10k_dict,
    clean_box,
    coco_dict,
    detections_list,
    mpii_entries,
    noisy_keypoints,
    oracle_records,
    wholebody_dict,
    write_fixture,
    write_json,
    write_mpii_mat,
)

from vitpose_plus.data.specs import resolve_dataset_spec
from vitpose_plus.evaluation.ground_truth import crop_targets, load_ground_truth
from vitpose_plus.evaluation.metrics import COCO_STAT_NAMES, coco_keypoint_ap, oks_nms
from vitpose_plus.evaluation.protocols import metric_names, resolve_protocol
from vitpose_plus.evaluation.records import instance_score, prediction_record
from vitpose_plus.evaluation.scoring import score_predictions

REF_IDS_FROM_ZERO = [0.846911834041, 1.0, 1.0, 0.885148514851, -1.0, 0.885714285714, 1.0, 1.0, 0.885714285714, -1.0]
REF_SCORE_ZERO_DETECTIONS_NUM_TARGETS = 11
REF_SCORE_ZERO_DETECTIONS = [0.712010058149, 0.85698569857, 0.85698569857, 0.850495049505, -1.0, 0.755555555556,
                             0.888888888889, 0.888888888889, 0.85, -1.0]
REF_GT_BOXES_WITH_SKIPS = [0.546204620462, 0.663366336634, 0.663366336634, 0.652475247525, -1.0, 0.577777777778,
                           0.666666666667, 0.666666666667, 0.65, -1.0]
REF_GT_BOXES_WITH_SKIPS_NUM_TARGETS = 6
REF_TIE_KEEP = [1]
REF_TIE_AP = [0.8, 1.0, 1.0, 0.8, -1.0, 0.8, 1.0, 1.0, 0.8, -1.0]
REF_AP10K = [0.850165016502, 1.0, 1.0, 0.850165016502, -1.0, 0.85, 1.0, 1.0, 0.85, -1.0]
REF_AP10K_FIRST_CATEGORY_ONLY = [0.128547854785, 0.150165016502, 0.150165016502, 0.283498349835, -1.0,
                                 0.283333333333, 0.333333333333, 0.333333333333, 0.283333333333, -1.0]
REF_AIC = [0.880363036304, 1.0, 1.0, 0.880363036304, -1.0, 0.883333333333, 1.0, 1.0, 0.883333333333, -1.0]
REF_WHOLEBODY = {
    "body": [1.0, 1.0, 1.0, 1.0, -1.0, 1.0, 1.0, 1.0, 1.0, -1.0],
    "foot": [0.96699669967, 0.96699669967, 0.96699669967, 1.0, -1.0, 1.0, 1.0, 1.0, 1.0, -1.0],
    "face": [0.725940594059, 0.90099009901, 0.90099009901, 0.825742574257, -1.0, 0.825, 1.0, 1.0, 0.825, -1.0],
    "lefthand": [0.90099009901, 0.90099009901, 0.90099009901, 1.0, -1.0, 1.0, 1.0, 1.0, 1.0, -1.0],
    "righthand": [1.0, 1.0, 1.0, 1.0, -1.0, 1.0, 1.0, 1.0, 1.0, -1.0],
    "wholebody": [0.916831683168, 1.0, 1.0, 0.933663366337, -1.0, 0.933333333333, 1.0, 1.0, 0.933333333333, -1.0],
}


def _stats(metrics, prefix=""):
    return [metrics[prefix + name] for name in COCO_STAT_NAMES]


def _noisy_records(gt, targets, noise):
    """The reference script's predictions: each target's annotation keypoints plus seeded noise."""
    by_id = {inst.annotation_id: inst for inst in gt.annotations.instances()}
    records = []
    for target in targets:
        kp = noisy_keypoints(by_id[target.source_id].keypoints, seed=target.source_id, noise=noise)
        records.append(prediction_record(target, kp[:, :2], kp[:, 2]))
    return records


# ------------------------------------------------------------------------------------------------ edge cases
def test_annotation_ids_starting_at_zero_match_xtcocotools():
    data = coco_dict(num_images=4, first_id=0, seed=10)
    assert min(a["id"] for a in data["annotations"]) == 0
    results = [{"image_id": a["image_id"], "category_id": 1, "score": round(0.5 + 0.1 * (a["id"] % 5), 3),
                "keypoints": noisy_keypoints(a["keypoints"], seed=a["id"], noise=2.0).reshape(-1).tolist()}
               for a in data["annotations"]]
    sigmas = resolve_dataset_spec("coco").sigmas
    ours = coco_keypoint_ap(data, results, sigmas)
    assert _stats(ours) == pytest.approx(REF_IDS_FROM_ZERO, abs=1e-9)
    # plain pycocotools never matches the annotation with id 0 (its "unmatched" marker): a different AP
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = json.loads(json.dumps(data))
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert abs(ev.stats[0] - REF_IDS_FROM_ZERO[0]) > 0.01


def test_score_zero_detections_are_kept_as_the_original():
    data = coco_dict(num_images=3, seed=11, extras=True)
    dets = detections_list(data)
    assert sum(d["score"] == 0 for d in dets) >= 3
    gt = load_ground_truth(data, "coco", "coco")
    targets = crop_targets(gt, dets)
    assert len(targets) == REF_SCORE_ZERO_DETECTIONS_NUM_TARGETS  # every category-1 box, score 0 included
    assert all(t.category_id == 1 for t in targets) and {t.box_score for t in targets} >= {0.0}
    by_id = {a["id"]: a for a in data["annotations"]}

    def records(kept_targets):
        out = []
        for t in kept_targets:
            kp = noisy_keypoints(by_id[dets[t.source_id]["annotation_id"]]["keypoints"], seed=t.source_id, noise=2.0)
            out.append(prediction_record(t, kp[:, :2], kp[:, 2]))
        return out

    assert _stats(score_predictions(gt, records(targets)).metrics) == pytest.approx(REF_SCORE_ZERO_DETECTIONS,
                                                                                    abs=1e-9)
    dropped = crop_targets(gt, dets, det_bbox_thr=1e-6)  # the earlier `score > 0` rule
    assert len(dropped) < len(targets)
    assert score_predictions(gt, records(dropped)).metrics["AP"] != pytest.approx(REF_SCORE_ZERO_DETECTIONS[0])


def test_ground_truth_boxes_follow_the_original_filters():
    data = coco_dict(num_images=3, seed=12, extras=True)
    gt = load_ground_truth(data, "coco", "coco")
    targets = crop_targets(gt)
    assert len(targets) == REF_GT_BOXES_WITH_SKIPS_NUM_TARGETS
    extras = {a["id"] for a in data["annotations"][-5:]}  # crowd, zero keypoints, num_keypoints 0, empty box, area 0
    assert not extras & {t.source_id for t in targets}
    for t in targets:
        ann = next(a for a in data["annotations"] if a["id"] == t.source_id)
        assert list(t.bbox) == pytest.approx(clean_box(ann["bbox"], 320, 240)) and t.box_score == 1.0
    metrics = score_predictions(gt, _noisy_records(gt, targets, REFERENCE_NOISE["coco"])).metrics
    assert _stats(metrics) == pytest.approx(REF_GT_BOXES_WITH_SKIPS, abs=1e-9)


def test_oks_nms_breaks_exact_ties_like_the_original():
    data = coco_dict(num_images=1, seed=13)
    gt = load_ground_truth(data, "coco", "coco")
    (target,) = crop_targets(gt)
    exact = np.asarray(data["annotations"][0]["keypoints"], dtype=np.float64).reshape(-1, 3)
    shifted = exact.copy()
    shifted[:, 0] += 4.0
    scores = np.full(17, 0.8)
    records = [dict(prediction_record(target, exact[:, :2], scores), target_id=0),
               dict(prediction_record(target, shifted[:, :2], scores), target_id=1)]
    assert records[0]["score"] == records[1]["score"] == pytest.approx(0.8)
    keypoints = np.stack([np.asarray(r["keypoints"]).reshape(-1, 3) for r in records])
    keep = oks_nms(keypoints, [0.8, 0.8], [target.padded_area] * 2, resolve_dataset_spec("coco").sigmas, 0.9)
    assert keep == REF_TIE_KEEP  # the later record, as scores.argsort()[::-1]
    assert _stats(score_predictions(gt, records).metrics) == pytest.approx(REF_TIE_AP, abs=1e-9)
    assert oks_nms(keypoints, [0.8, 0.9], [target.padded_area] * 2, resolve_dataset_spec("coco").sigmas) == [1]
    assert oks_nms(keypoints, [0.9, 0.8], [target.padded_area] * 2, resolve_dataset_spec("coco").sigmas) == [0]


def test_ap10k_results_carry_their_species_and_all_species_are_scored():
    data = ap10k_dict()
    assert len({a["category_id"] for a in data["annotations"]}) == 3
    gt = load_ground_truth(data, "ap10k", "ap10k")
    targets = crop_targets(gt)
    assert [t.category_id for t in targets] == [a["category_id"] for a in data["annotations"]]
    records = _noisy_records(gt, targets, REFERENCE_NOISE["ap10k"])
    assert _stats(score_predictions(gt, records).metrics) == pytest.approx(REF_AP10K, abs=1e-9)
    stamped = [dict(r, category_id=1) for r in records]  # what the earlier code did: the first category for all
    assert _stats(score_predictions(gt, stamped).metrics) == pytest.approx(REF_AP10K_FIRST_CATEGORY_ONLY, abs=1e-9)


# ------------------------------------------------------------------------------------------------ independent AP
def _independent_oks(gt_kp, gt_box, area, dt_kp, sigmas):
    """OKS as the COCO definition (labelled GT keypoints; none labelled: distance outside the doubled box)."""
    var = (2 * np.asarray(sigmas)) ** 2
    g, d = np.asarray(gt_kp).reshape(-1, 3), np.asarray(dt_kp).reshape(-1, 3)
    labelled = g[:, 2] > 0
    if labelled.any():
        dx, dy = d[:, 0] - g[:, 0], d[:, 1] - g[:, 1]
    else:
        x, y, w, h = gt_box
        dx = np.maximum(0, x - w - d[:, 0]) + np.maximum(0, d[:, 0] - (x + 2 * w))
        dy = np.maximum(0, y - h - d[:, 1]) + np.maximum(0, d[:, 1] - (y + 2 * h))
    e = (dx**2 + dy**2) / var / (area + np.spacing(1)) / 2
    e = e[labelled] if labelled.any() else e
    return float(np.exp(-e).mean())


def _independent_ap(gts, dts, sigmas):
    """COCO keypoint AP (all areas, 20 detections per image, one category, no crowd) written from its definition:
    greedy matching by score at each OKS threshold, ground truths without labelled keypoints ignored, 101-point
    interpolated precision."""
    thresholds = np.linspace(0.5, 0.95, 10)
    aps = []
    images = sorted({g["image_id"] for g in gts})
    for t in thresholds:
        scores, tps, ignored, positives = [], [], [], 0
        for image in images:
            g_img = sorted((g for g in gts if g["image_id"] == image), key=lambda g: g["ignore"])
            d_img = sorted((d for d in dts if d["image_id"] == image), key=lambda d: -d["score"])[:20]
            positives += sum(not g["ignore"] for g in g_img)
            taken = [False] * len(g_img)
            for d in d_img:
                best, match = min(t, 1 - 1e-10), -1
                for j, g in enumerate(g_img):
                    if taken[j]:
                        continue
                    if match > -1 and not g_img[match]["ignore"] and g["ignore"]:
                        break
                    oks = _independent_oks(g["keypoints"], g["bbox"], g["area"], d["keypoints"], sigmas)
                    if oks >= best:
                        best, match = oks, j
                scores.append(d["score"])
                if match >= 0:
                    taken[match] = True
                tps.append(match >= 0)
                ignored.append(match >= 0 and g_img[match]["ignore"])
        order = np.argsort(-np.asarray(scores), kind="mergesort")
        tp = np.asarray(tps)[order] & ~np.asarray(ignored)[order]
        fp = ~np.asarray(tps)[order] & ~np.asarray(ignored)[order]
        tp_sum, fp_sum = np.cumsum(tp), np.cumsum(fp)
        recall = tp_sum / positives
        precision = tp_sum / np.maximum(tp_sum + fp_sum, np.spacing(1))
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        idx = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
        aps.append(np.mean([precision[i] if i < len(precision) else 0.0 for i in idx]))
    return float(np.mean(aps))


def test_aic_uses_box_area_times_0_53_as_xtcocotools_use_area_false():
    data = aic_dict()
    assert all("area" not in a and "iscrowd" not in a for a in data["annotations"])
    gt = load_ground_truth(data, "aic", "aic")
    assert resolve_protocol(None, "aic").use_area is False
    scored = score_predictions(gt, _noisy_records(gt, crop_targets(gt), REFERENCE_NOISE["aic"]))
    assert _stats(scored.metrics) == pytest.approx(REF_AIC, abs=1e-9)
    sigmas = resolve_dataset_spec("aic").sigmas
    gts = [{"image_id": a["image_id"], "keypoints": a["keypoints"], "bbox": a["bbox"],
            "area": a["bbox"][2] * a["bbox"][3] * 0.53, "ignore": not any(v > 0 for v in a["keypoints"][2::3])}
           for a in data["annotations"]]
    assert _independent_ap(gts, scored.results, sigmas) == pytest.approx(scored.metrics["AP"], abs=1e-12)
    # with the (absent) area replaced by the full box area the AP would differ: the 0.53 matters
    gts_full = [dict(g, area=g["area"] / 0.53) for g in gts]
    assert _independent_ap(gts_full, scored.results, sigmas) != pytest.approx(scored.metrics["AP"], abs=1e-3)


def test_wholebody_reports_every_part_with_its_own_sigmas():
    data = wholebody_dict()
    assert any(not a["face_valid"] for a in data["annotations"])
    gt = load_ground_truth(data, "coco_wholebody", "coco_wholebody")
    scored = score_predictions(gt, _noisy_records(gt, crop_targets(gt), REFERENCE_NOISE["coco_wholebody"]))
    assert set(scored.metrics) == set(metric_names(resolve_protocol("coco_wholebody", "")))
    for part, reference in REF_WHOLEBODY.items():
        prefix = "" if part == "wholebody" else f"{part}_"
        assert _stats(scored.metrics, prefix) == pytest.approx(reference, abs=1e-9), part
    # independent AP per part from the results as the original writes them (part fields)
    sigmas = np.asarray(resolve_dataset_spec("coco_wholebody").sigmas)
    fields = {"body": ["keypoints"], "foot": ["foot_kpts"], "face": ["face_kpts"], "lefthand": ["lefthand_kpts"],
              "righthand": ["righthand_kpts"]}
    fields["wholebody"] = [f[0] for f in fields.values()]
    starts = np.cumsum([0, 17, 6, 68, 21, 21])
    spans = dict(zip(fields, [slice(a, b) for a, b in zip(starts[:-1], starts[1:])]), wholebody=slice(0, 133))
    for part, keys in fields.items():
        gts = []
        for a in data["annotations"]:
            kp = sum((a[k] for k in keys), [])
            gts.append({"image_id": a["image_id"], "keypoints": kp, "bbox": a["bbox"], "area": a["area"],
                        "ignore": not any(v > 0 for v in kp[2::3])})
        dts = [{"image_id": r["image_id"], "score": r["score"], "keypoints": sum((r[k] for k in keys), [])}
               for r in scored.results]
        prefix = "" if part == "wholebody" else f"{part}_"
        assert _independent_ap(gts, dts, sigmas[spans[part]]) == pytest.approx(scored.metrics[prefix + "AP"],
                                                                                abs=1e-12), part


# ------------------------------------------------------------------------------------------------ MPII
def test_mpii_pckh_against_hand_counted_values(tmp_path):
    entries, arrays = mpii_entries()
    ann = write_json(tmp_path / "mpii_val.json", entries)
    write_mpii_mat(tmp_path / "mpii_gt_val.mat", arrays)  # found next to the annotation file, as the original
    gt = load_ground_truth(ann, "mpii", "mpii")
    targets = crop_targets(gt)
    assert [t.target_id for t in targets] == list(range(len(entries)))
    heads = arrays["headboxes_src"]
    head_size = 0.6 * np.linalg.norm(heads[1] - heads[0], axis=0)  # (N,)
    visible = 1 - arrays["jnt_missing"]  # (16, N)
    names = list(arrays["dataset_joints"])
    head, lwri = names.index("head"), names.index("lwri")
    records = []
    for t in reversed(targets):  # any order: scored in annotation order
        pred = arrays["pos_gt_src"][:, :, t.target_id] - 1.0  # 0-based
        pred[head, 0] += 0.4 * head_size[t.target_id]  # within 0.5 head sizes, not within 0.1
        pred[lwri, 1] += 0.6 * head_size[t.target_id]  # outside 0.5
        records.append(prediction_record(t, pred, np.ones(16)))
    metrics = score_predictions(gt, records).metrics
    counted = np.delete(visible, [6, 7], axis=0)  # pelvis and thorax are left out of the mean
    total = counted.sum()
    assert visible[head].sum() > 0 and visible[lwri].sum() > 0
    assert metrics["Head"] == pytest.approx(100.0)
    assert metrics["Wrist"] == pytest.approx(50.0)  # (left 0 + right 100) / 2
    assert metrics["PCKh"] == pytest.approx(100.0 * (total - visible[lwri].sum()) / total)
    assert metrics["PCKh@0.1"] == pytest.approx(100.0 * (total - visible[lwri].sum() - visible[head].sum()) / total,
                                                abs=1e-4)  # the original accumulates PCKh@0.1 in float32
    assert list(metrics) == list(metric_names(resolve_protocol("mpii", "")))
    with pytest.raises(ValueError, match=r"one prediction per annotated entry .* missing targets \[0\]"):
        score_predictions(gt, records[:-1])


def test_mpii_needs_its_mat_file(tmp_path):
    entries, arrays = mpii_entries()
    ann = write_json(tmp_path / "mpii_val.json", entries)
    with pytest.raises(ValueError, match=r"mpii_gt_val.mat.*--mpii-gt-mat"):
        load_ground_truth(ann, "mpii", "mpii")
    short = dict(arrays, jnt_missing=arrays["jnt_missing"][:, :2], pos_gt_src=arrays["pos_gt_src"][..., :2],
                 headboxes_src=arrays["headboxes_src"][..., :2])
    write_mpii_mat(tmp_path / "other.mat", short)
    with pytest.raises(ValueError, match=r"other.mat has 2 entries but .*mpii_val.json has 4"):
        load_ground_truth(ann, "mpii", "mpii", mpii_gt_mat=tmp_path / "other.mat")


# ------------------------------------------------------------------------------------------------ oracle
ORACLE_CASES = [  # (fixture, protocol, model head)
    ("coco", "coco", "coco"), ("ochuman", "ochuman", "coco"), ("aic", "aic", "aic"), ("ap10k", "ap10k", "ap10k"),
    ("apt36k", "apt36k", "apt36k"), ("coco_wholebody", "coco_wholebody", "coco_wholebody"), ("mpii", "mpii", "mpii"),
]


@pytest.mark.parametrize("kind, protocol, head", ORACLE_CASES)
def test_oracle_reaches_the_ceiling_through_the_real_evaluation_path(tmp_path, kind, protocol, head):
    """Ground-truth keypoints rendered as heatmaps at the processor's crop, decoded and scored: AP 1.0 / PCKh 100.

    Every fixture keypoint lies inside its padded box, on a heatmap pixel of its crop (`helpers.grid_keypoints`).
    Off the pixel grid the ceiling is lower for the non-UDP datasets: MSRA targets sit on integer heatmap pixels,
    so decoding is off by up to 2 image pixels per 4-pixel stride (WholeBody face AP then falls below 1).
    """
    files = write_fixture(kind, tmp_path)
    gt = load_ground_truth(files["annotations"], protocol, head, files["images"], files.get("mpii_gt_mat"))
    targets = crop_targets(gt)
    records = oracle_records(gt, targets)
    assert all(r["score"] > 0.9 for r in records)
    metrics = score_predictions(gt, records).metrics
    if protocol == "mpii":
        assert [metrics[name] for name in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "PCKh",
                                           "PCKh@0.1")] == pytest.approx([100.0] * 9)
        return
    keys = ["AP", "AP50", "AP75", "AR"]
    if protocol == "coco_wholebody":
        parts = ("body", "foot", "face", "lefthand", "righthand")
        keys += [f"{part}_{name}" for part in parts for name in ("AP", "AR")]
    assert [metrics[key] for key in keys] == pytest.approx([1.0] * len(keys))


def test_instance_rescoring_matches_the_original():
    assert instance_score(np.array([0.1, 0.2, 0.3, 0.9])) == pytest.approx(0.6)  # only scores > 0.2 count
    assert instance_score(np.array([0.1, 0.2])) == 0.0


def test_bad_records_and_detections_raise_clear_errors(tmp_path):
    data = coco_dict(num_images=1, seed=14)
    gt = load_ground_truth(data, "coco", "coco")
    (target,) = crop_targets(gt)
    good = prediction_record(target, np.zeros((17, 2)), np.ones(17))
    with pytest.raises(ValueError, match=r"has 6 keypoint values, expected 51"):
        score_predictions(gt, [dict(good, keypoints=[0.0] * 6)])
    with pytest.raises(ValueError, match=r"lacks \['area'\]"):
        score_predictions(gt, [{k: v for k, v in good.items() if k != "area"}])
    with pytest.raises(ValueError, match=r"category_id 5, not one of"):
        score_predictions(gt, [dict(good, category_id=5)])
    with pytest.raises(ValueError, match=r"detection #0 refers to image_id 99"):
        crop_targets(gt, [{"image_id": 99, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.5}])
    with pytest.raises(ValueError, match=r"detection #0 lacks \['score'\]"):
        crop_targets(gt, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]}])
    entries, arrays = mpii_entries()
    write_mpii_mat(tmp_path / "mpii_gt_val.mat", arrays)
    mpii = load_ground_truth(write_json(tmp_path / "mpii_val.json", entries), "mpii", "mpii")
    with pytest.raises(ValueError, match=r"takes no detections"):
        crop_targets(mpii, [{"image_id": 0}])
    with pytest.raises(ValueError, match=r"Unknown evaluation protocol 'nope'"):
        resolve_protocol("nope", "coco")



# ------------------------------------------------------------------------------------------------ with a model
SIX = ["coco", "aic", "mpii", "ap10k", "apt36k", "coco_wholebody"]


@pytest.fixture(scope="module")
def six_dataset_model():
    from helpers import make_model, tiny_config

    return make_model(tiny_config(num_experts=6, part_features=8, datasets=SIX))


@pytest.mark.parametrize("kind, protocol, head", ORACLE_CASES)
def test_evaluate_keypoints_runs_every_protocol_with_the_processor_crops(tmp_path, six_dataset_model, kind, protocol,
                                                                         head):
    import torch

    from vitpose_plus.evaluation.evaluate import evaluate_keypoints
    from vitpose_plus.file_io import read_image
    from vitpose_plus.modeling import VitPosePlusImageProcessor

    files = write_fixture(kind, tmp_path)
    model = six_dataset_model
    processor = VitPosePlusImageProcessor.from_model_config(model.config, head)
    seen = []
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs.get("pixel_values", args[0]
                                                                                                if args else None)),
                                           with_kwargs=True)
    try:
        result = evaluate_keypoints(model, processor, files["annotations"], files["images"], head, protocol=protocol,
                                    mpii_gt_mat=files.get("mpii_gt_mat"), progress=False, batch_size=4)
    finally:
        hook.remove()
    assert result.protocol == protocol and list(result.metrics) == list(metric_names(resolve_protocol(protocol, "")))
    assert all(np.isfinite(v) for v in result.metrics.values())
    gt = load_ground_truth(files["annotations"], protocol, head, files["images"], files.get("mpii_gt_mat"))
    targets = crop_targets(gt, input_size=processor.input_size)
    assert result.num_boxes == len(targets)
    if protocol != "mpii":  # box crops: exactly the processor's own crops of the same boxes
        first = targets[0].image_id
        boxes = [list(t.bbox) for t in targets if t.image_id == first]
        expected = processor(read_image(gt.image_paths[first]), boxes=boxes)["pixel_values"]
        torch.testing.assert_close(seen[0][:len(boxes)], expected, rtol=0, atol=0)


def test_evaluate_command_with_protocol_and_mpii_mat(tmp_path, six_dataset_model, capsys):
    from vitpose_plus.cli import main

    six_dataset_model.save_pretrained(tmp_path / "model")
    mpii = write_fixture("mpii", tmp_path / "mpii")
    mat = tmp_path / "elsewhere.mat"
    (tmp_path / "mpii" / "mpii_gt_val.mat").rename(mat)
    assert main(["evaluate", "--model", str(tmp_path / "model"), "--dataset", "mpii", "--annotations",
                 mpii["annotations"], "--images", mpii["images"], "--mpii-gt-mat", str(mat)]) == 0
    out = capsys.readouterr().out
    assert "mpii (mpii protocol): 4 instances (annotated center/scale)" in out
    assert "| Head | Shoulder | Elbow | Wrist | Hip | Knee | Ankle | PCKh | PCKh@0.1 |" in out
    wholebody = write_fixture("coco_wholebody", tmp_path / "wb")
    ochuman = write_fixture("ochuman", tmp_path / "oc")
    assert main(["evaluate", "--model", str(tmp_path / "model"), "--dataset", "coco_wholebody", "--annotations",
                 wholebody["annotations"], "--images", wholebody["images"], "--output",
                 str(tmp_path / "wb.json")]) == 0
    out = capsys.readouterr().out
    assert "| body |" in out and "| righthand |" in out
    written = json.load(open(tmp_path / "wb.json"))
    assert set(written[0]) == {"image_id", "category_id", "score", "keypoints", "foot_kpts", "face_kpts",
                               "lefthand_kpts", "righthand_kpts"} and len(written[0]["face_kpts"]) == 204
    assert main(["evaluate", "--model", str(tmp_path / "model"), "--dataset", "coco", "--protocol", "ochuman",
                 "--annotations", ochuman["annotations"], "--images", ochuman["images"]]) == 0
    assert "coco (ochuman protocol): 6 instances (ground-truth boxes)" in capsys.readouterr().out


# ------------------------------------------------------------------------------------- evaluate, end to end
@pytest.mark.parametrize("perfect_first", [True, False])
def test_evaluate_keypoints_against_hand_computed_ap(tmp_path, perfect_first):
    """`evaluate_keypoints` end to end (files, crops, model, decoding, rescoring, OKS-NMS, COCO AP) on two images
    with one person each: one predicted exactly, one 40 px off (OKS ~ 0), with instance scores 1.0 and 0.8.

    By hand, at every OKS threshold: the perfect one ranked first gives precision 1 up to recall 1/2 and recall never
    reaches 1, so AP = 51/101 (COCO interpolates at 101 recall points, 0, 0.01, ..., 0.5 included) and AR = 1/2;
    ranked second, the precision at recall 1/2 is 1/2, so AP = 51/202.
    """
    from helpers import OracleModel, oracle_heatmaps, oracle_processor, write_images

    from vitpose_plus.evaluation.evaluate import evaluate_keypoints

    data = coco_dict(num_images=2)
    first_per_image = {}
    for ann in data["annotations"]:
        first_per_image.setdefault(ann["image_id"], ann)
    data["annotations"] = list(first_per_image.values())
    annotations = write_json(tmp_path / "val.json", data)
    write_images(tmp_path / "images", [image["file_name"] for image in data["images"]])
    gt = load_ground_truth(annotations, "coco", "coco", tmp_path / "images")
    heatmaps = oracle_heatmaps(gt, crop_targets(gt))
    assert heatmaps.shape[0] == 2
    heatmaps[1] = np.roll(heatmaps[1], 10, axis=-1)  # 10 heatmap pixels = 40 image pixels at stride 4
    heatmaps[1 if perfect_first else 0] *= 0.8  # the lower instance score
    result = evaluate_keypoints(OracleModel(heatmaps), oracle_processor(gt.spec), annotations, tmp_path / "images",
                                "coco", flip_test=False, progress=False)
    expected_ap = 51 / 101 if perfect_first else 51 / 202
    assert result.metrics["AP"] == pytest.approx(expected_ap, abs=1e-9)
    assert result.metrics["AP50"] == pytest.approx(expected_ap, abs=1e-9)
    assert result.metrics["AR"] == pytest.approx(0.5, abs=1e-9)
