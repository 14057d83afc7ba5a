"""Loading every released format: rows per image, the original top-down filter, format checks, the data check."""

import json
import os

import numpy as np
import pytest
from helpers import (
    coco_dict,
    detections_list,
    mpii_entries,
    write_fixture,
    write_images,
    write_json,
    write_mpii_mat,
)

from vitpose_plus.data import resolve_dataset_spec
from vitpose_plus.data.check import DatasetFiles, check_dataset_files, dataset_files_from_run
from vitpose_plus.data.datasets import (
    flatten_top_down,
    load_keypoint_dataset,
    top_down_index,
    top_down_instances,
)
from vitpose_plus.modeling.dataset_specs import get_dataset_spec
from vitpose_plus.modeling.keypoint_codecs import sanitize_box

# fixture -> (images, annotations, top-down instances, K)
EXPECTED = {"coco": (3, 6, 6, 17), "ochuman": (3, 6, 6, 17), "aic": (3, 6, 6, 14), "ap10k": (3, 6, 6, 17),
            "apt36k": (3, 6, 6, 17), "coco_wholebody": (3, 6, 6, 133), "mpii": (3, 4, 4, 16)}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_every_format_loads_one_row_per_image(tmp_path, kind):
    files = write_fixture(kind, tmp_path)
    ds, stats = load_keypoint_dataset(files["annotations"], files["images"], kind, return_stats=True)
    images, annotations, kept, k = EXPECTED[kind]
    assert (len(ds), stats.num_images, stats.num_annotations, stats.num_top_down) == (images, images, annotations,
                                                                                      kept)
    row = ds[0]
    assert set(row) == {"image", "image_id", "file_name", "width", "height", "dataset", "format", "instances"}
    assert row["dataset"] == kind and row["format"] == kind and (row["width"], row["height"]) == (320, 240)
    assert row["image"].size == (320, 240)
    assert all(len(kp) == 3 * k for r in ds for kp in r["instances"]["keypoints"])
    assert sum(len(top_down_instances(r, kind)) for r in ds) == kept


def test_coco_skips_are_kept_in_rows_and_counted_with_ids(tmp_path):
    data = coco_dict(num_images=2, seed=20, extras=True, keypointless=True)
    write_images(tmp_path, [img["file_name"] for img in data["images"]])
    ds, stats = load_keypoint_dataset(write_json(tmp_path / "ann.json", data), tmp_path, "coco", return_stats=True)
    ids = [a["id"] for a in data["annotations"][-6:]]  # crowd, no keypoints, zeros, num_keypoints 0, empty, area 0
    assert stats.skipped == {"crowd": [ids[0]], "no_keypoints": [ids[1]], "all_zero_keypoints": [ids[2]],
                             "num_keypoints_zero": [ids[3]], "empty_box": [ids[4]], "area_not_positive": [ids[5]]}
    assert stats.num_annotations == len(data["annotations"]) == stats.num_top_down + 6
    first = ds[0]["instances"]
    assert first["annotation_id"][-6:] == ids  # kept for bottom-up use, in file order
    assert first["top_down_skip"][-6:] == ["crowd", "no_keypoints", "all_zero_keypoints", "num_keypoints_zero",
                                           "empty_box", "area_not_positive"]
    assert json.loads(first["segmentation"][-6]) == {"counts": [0, 10], "size": [240, 320]}
    assert first["segmentation"][0] == "" and first["iscrowd"][-6] == 1
    assert first["keypoints"][-5] == [0.0] * 51  # no keypoints key: zeros
    kept = top_down_instances(ds[0])
    assert [i.annotation_id for i in kept] == first["annotation_id"][:len(kept)]
    for inst in kept:
        raw = next(a for a in data["annotations"] if a["id"] == inst.annotation_id)
        assert inst.bbox == pytest.approx(sanitize_box(raw["bbox"], 320, 240))
        np.testing.assert_allclose(inst.keypoints.reshape(-1), raw["keypoints"], rtol=1e-6)
        assert inst.center is None and inst.category_id == 1
    assert "skips: 1 crowd, 1 area_not_positive, 1 empty_box" in stats.summary()


def test_wholebody_parts_in_the_original_order_invalid_parts_unlabelled(tmp_path):
    files = write_fixture("coco_wholebody", tmp_path)
    data = json.load(open(files["annotations"]))
    ds, stats = load_keypoint_dataset(files["annotations"], files["images"], "coco_wholebody", return_stats=True)
    rows = {aid: (r, i) for r in ds for i, aid in enumerate(r["instances"]["annotation_id"])}
    invalid = {"face": 0, "lefthand": 0, "foot": 0}
    for ann in data["annotations"]:
        row, i = rows[ann["id"]]
        kp = np.asarray(row["instances"]["keypoints"][i]).reshape(133, 3)
        expected = np.concatenate([np.reshape(ann[key], (-1, 3)) for key in
                                   ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")])
        np.testing.assert_allclose(kp, expected, rtol=1e-6)
        for part, sl in (("foot", slice(17, 23)), ("face", slice(23, 91)), ("lefthand", slice(91, 112))):
            if not ann[f"{part}_valid"]:
                invalid[part] += 1
                assert (kp[sl, 2] == 0).all()
        assert row["instances"]["num_keypoints"][i] == int((expected[:, 2] > 0).sum())
    assert stats.invalid_parts == {k: v for k, v in invalid.items() if v} and sum(invalid.values()) >= 2


def test_wholebody_top_down_filter_checks_body_keypoints_only(tmp_path):
    files = write_fixture("coco_wholebody", tmp_path)
    data = json.load(open(files["annotations"]))
    ann = data["annotations"][0]
    ann["keypoints"] = [0.0] * 51  # only face / hands / feet labelled: the original skips it
    ann["num_keypoints"] = 0
    data["annotations"][1]["num_keypoints"] = 0  # ignored for WholeBody
    ds, stats = load_keypoint_dataset(write_json(tmp_path / "wb.json", data), files["images"], "coco_wholebody",
                                      return_stats=True)
    assert stats.skipped == {"all_zero_keypoints": [ann["id"]]}


def test_aic_without_area_and_iscrowd(tmp_path):
    files = write_fixture("aic", tmp_path)
    data = json.load(open(files["annotations"]))
    ds = load_keypoint_dataset(files["annotations"], files["images"], "aic")
    inst = ds[0]["instances"]
    box = data["annotations"][0]["bbox"]
    assert inst["area"][0] == pytest.approx(box[2] * box[3] * 0.53, rel=1e-6)  # xtcocotools' use_area=False scale
    assert inst["iscrowd"] == [0] and inst["top_down_skip"] == [""]


def test_ap10k_keeps_each_instance_species(tmp_path):
    files = write_fixture("ap10k", tmp_path)
    data = json.load(open(files["annotations"]))
    ds = load_keypoint_dataset(files["annotations"], files["images"], "ap10k")
    assert [c for r in ds for c in r["instances"]["category_id"]] == [a["category_id"] for a in data["annotations"]]
    assert {inst.category_id for r in ds for inst in top_down_instances(r)} == {1, 2, 7}


def test_mpii_json_to_crop_parameters_as_the_original(tmp_path):
    files = write_fixture("mpii", tmp_path)
    entries = json.load(open(files["annotations"]))
    ds = load_keypoint_dataset(files["annotations"], files["images"], "mpii")
    assert [r["file_name"] for r in ds] == ["mpii_000.jpg", "mpii_001.jpg", "mpii_002.jpg"]  # two share an image
    assert ds[0]["instances"]["annotation_id"] == [0, 1] and (ds[0]["width"], ds[0]["height"]) == (320, 240)
    inst = top_down_instances(ds[0], "mpii")[1]
    entry = entries[1]
    s = entry["scale"]
    # center_y += 15 s, scale *= 1.25, then center -= 1 (MATLAB 1-based -> 0-based); joints -= 1
    np.testing.assert_allclose(inst.center, [entry["center"][0] - 1, entry["center"][1] + 15 * s - 1], rtol=1e-6)
    np.testing.assert_allclose(inst.scale, [1.25 * s, 1.25 * s], rtol=1e-6)
    vis = np.asarray(entry["joints_vis"]) > 0
    np.testing.assert_allclose(inst.keypoints[vis, :2], np.asarray(entry["joints"])[vis] - 1, rtol=1e-6)
    assert inst.bbox == pytest.approx([inst.center[0] - 100 * s, inst.center[1] - 100 * s, 200 * s, 200 * s])


def test_ochuman_without_num_keypoints_keeps_what_the_original_keeps(tmp_path):
    files = write_fixture("ochuman", tmp_path)
    data = json.load(open(files["annotations"]))
    ann = data["annotations"][0]
    kp = np.asarray(ann["keypoints"]).reshape(-1, 3)
    kp[:, 2] = 0  # no labelled keypoint, but coordinates: max(keypoints) > 0 and no num_keypoints field -> kept
    ann["keypoints"] = kp.reshape(-1).tolist()
    assert "num_keypoints" not in ann
    ds, stats = load_keypoint_dataset(write_json(tmp_path / "oc.json", data), files["images"], "ochuman",
                                      return_stats=True)
    assert stats.num_top_down == 6 and ds[0]["dataset"] == "ochuman"
    assert resolve_dataset_spec("ochuman").keypoint_names == get_dataset_spec("coco").keypoint_names


def test_formats_are_checked_against_the_file(tmp_path):
    coco = write_fixture("coco", tmp_path / "c")
    mpii = write_fixture("mpii", tmp_path / "m")
    with pytest.raises(ValueError, match=r"format 'coco' expects a COCO-style dict .* MPII entries"):
        load_keypoint_dataset(mpii["annotations"], mpii["images"], "coco")
    with pytest.raises(ValueError, match=r"format 'mpii' expects the original's JSON list"):
        load_keypoint_dataset(coco["annotations"], coco["images"], "mpii")
    with pytest.raises(ValueError, match=r"has no 'foot_kpts': not a COCO-WholeBody v1.0 annotation"):
        load_keypoint_dataset(coco["annotations"], coco["images"], "coco_wholebody")
    wrong_k = r"annotation id 1 \(dataset 'aic', K=14\): 'keypoints' has 51 values, expected 42"
    with pytest.raises(ValueError, match=wrong_k):
        load_keypoint_dataset(coco["annotations"], coco["images"], "aic")
    with pytest.raises(ValueError, match=r"Unknown annotation format 'yaml'"):
        load_keypoint_dataset(coco["annotations"], coco["images"], "coco", format="yaml")


def test_instances_are_listed_without_touching_the_image(tmp_path):
    files = write_fixture("coco", tmp_path)
    ds = load_keypoint_dataset(files["annotations"], files["images"], "coco")
    os.remove(os.path.join(files["images"], "img_000.jpg"))  # listing must not open it
    meta = ds.select_columns(["image_id", "width", "height", "instances"])
    assert len(top_down_instances(meta[0])) == 1
    index = top_down_index(ds)
    assert index.tolist() == [[0, 0], [1, 0], [1, 1], [2, 0], [2, 1], [2, 2]]


def test_flat_view_and_save_to_disk(tmp_path):
    from datasets import load_from_disk

    files = write_fixture("mpii", tmp_path / "m")
    flat = flatten_top_down(load_keypoint_dataset(files["annotations"], files["images"], "mpii"))
    assert len(flat) == 4 and {"center", "scale"} <= set(flat.column_names)
    files = write_fixture("coco", tmp_path / "c")
    ds = load_keypoint_dataset(files["annotations"], files["images"], "coco")
    flat = flatten_top_down(ds)
    assert len(flat) == 6 and np.asarray(flat[0]["keypoints"]).shape == (17, 3) and "center" not in flat.column_names
    ds.save_to_disk(str(tmp_path / "saved"))
    again = load_from_disk(str(tmp_path / "saved"))
    assert again[2]["instances"]["annotation_id"] == ds[2]["instances"]["annotation_id"]
    np.testing.assert_array_equal(np.asarray(again[2]["image"]), np.asarray(ds[2]["image"]))


def test_resolve_dataset_spec_names_files_and_synthetic(tmp_path):
    assert resolve_dataset_spec("synthetic_hand").num_keypoints == 21
    with pytest.raises(ValueError, match="Unknown keypoint dataset 'synthetic_hand'"):
        get_dataset_spec("synthetic_hand")  # modeling does not know the synthetic generator
    (tmp_path / "s.json").write_text(json.dumps({"name": "paw", "keypoints": ["a", "b"], "sigmas": [0.1, 0.1]}))
    assert resolve_dataset_spec(str(tmp_path / "s.json")).name == "paw"
    with pytest.raises(ValueError, match=r"Unknown keypoint dataset 'nope'; known names are .*ochuman"):
        resolve_dataset_spec("nope")


# ------------------------------------------------------------------------------------------------ data check
def test_check_dataset_files_reports_counts_and_broken_images(tmp_path):
    coco = write_fixture("coco", tmp_path / "coco")
    mpii = write_fixture("mpii", tmp_path / "mpii")
    dets = write_json(tmp_path / "dets.json", detections_list(json.load(open(coco["annotations"]))))
    report = check_dataset_files([
        DatasetFiles("coco", coco["annotations"], coco["images"], detections=dets, split="val"),
        {"name": "mpii", "annotations": mpii["annotations"], "images": mpii["images"], "split": "val"},
    ])
    assert report.ok, report.errors
    table = report.table_rows()
    assert table[0][:6] == ["dataset", "split", "format", "images", "annotations", "kept"]
    assert table[1][:6] == ["coco", "val", "coco", "3", "6", "6"] and table[2][:6] == ["mpii", "val", "mpii", "3",
                                                                                     "4", "4"]
    assert "| coco | val | coco | 3 | 6 | 6 |" in report.format_table()

    jpeg = open(os.path.join(coco["images"], "img_001.jpg"), "rb").read()
    open(os.path.join(coco["images"], "img_001.jpg"), "wb").write(jpeg[: len(jpeg) // 2])  # truncated
    open(os.path.join(coco["images"], "img_002.jpg"), "wb").close()  # 0 bytes
    os.remove(os.path.join(mpii["images"], "mpii_gt_val.mat"))
    bad = check_dataset_files([DatasetFiles("coco", coco["annotations"], coco["images"]),
                               DatasetFiles("aic", coco["annotations"], coco["images"]),
                               DatasetFiles("mpii", mpii["annotations"], mpii["images"], split="val")])
    errors = "\n".join(bad.errors)
    assert "img_001.jpg' is truncated" in errors and "img_002.jpg' is empty (0 bytes)" in errors
    assert "aic (train): " in errors and "expected 42" in errors
    assert "mpii (val): MPII ground-truth file" in errors and "mpii_gt_val.mat' does not exist" in errors
    with pytest.raises(ValueError, match="Data check failed"):
        bad.raise_for_errors()


def test_data_check_reads_run_datasets():
    class Split:
        def __init__(self, annotations, images, detections=None):
            self.annotations, self.images, self.detections = annotations, images, detections

    class Dataset:
        name, spec = "coco", None
        train, val = Split("a.json", "imgs"), Split("b.json", "imgs", "d.json")

    files = dataset_files_from_run([Dataset()])
    assert [(f.split, f.annotations, f.detections) for f in files] == [("train", "a.json", None),
                                                                        ("val", "b.json", "d.json")]
    report = check_dataset_files(files)
    assert not report.ok and "annotation file 'a.json' does not exist" in report.errors[0]


def test_mpii_mat_written_in_the_original_structure_reads_back(tmp_path):
    from scipy.io import loadmat

    _, arrays = mpii_entries()
    path = write_mpii_mat(tmp_path / "mpii_gt_val.mat", arrays)
    raw = loadmat(path)
    assert raw["dataset_joints"].shape == (1, 16) and raw["pos_gt_src"].shape == (16, 2, 4)
    assert np.where(raw["dataset_joints"] == "head")[1][0] == 9  # the lookup the original does


def test_the_training_loop_trains_and_evaluates_every_format(tmp_path):
    """Two optimizer steps of a tiny seven-expert model on the seven fixtures, then the final evaluation of each
    (its protocol from the dataset name; MPII finds mpii_gt_val.mat next to its annotation file)."""
    import yaml

    from vitpose_plus.training.config import load_training_config
    from vitpose_plus.training.train import train

    kinds = ["coco", "aic", "mpii", "ap10k", "apt36k", "coco_wholebody", "ochuman"]
    datasets = []
    for kind in kinds:
        files = write_fixture(kind, tmp_path / kind)
        split = {"annotations": files["annotations"], "images": files["images"]}
        datasets.append({"name": kind, "train": split, "val": split})
    config = {
        "runtime": {"output_dir": str(tmp_path / "run"), "log_every": 1, "save_every": 0, "eval_every": 0,
                    "trackers": [], "eval_batch_size": 8},
        "model": {"overrides": {"image_size": [64, 48], "hidden_size": 32, "num_hidden_layers": 1,
                                "num_attention_heads": 4, "num_experts": 7, "part_features": 8,
                                "deconv_channels": [16, 16]}},
        "optimization": {"batch_size": 4, "max_steps": 2, "learning_rate": 1e-3, "warmup_steps": 1},
        "datasets": datasets,
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = train(load_training_config(str(tmp_path / "config.yaml")), progress=False)
    assert result.step == 2 and set(result.metrics) == set(kinds)
    assert set(result.metrics["mpii"]) >= {"PCKh", "PCKh@0.1", "Head"}
    assert "lefthand_AP" in result.metrics["coco_wholebody"]
    assert all(np.isfinite(v) for m in result.metrics.values() for v in m.values())
