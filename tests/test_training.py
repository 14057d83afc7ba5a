"""Training loop, resume, config validation, metrics and the transformers.Trainer integration (tiny and fast)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml

from vitpose_plus import VitPosePlusForPoseEstimation
from vitpose_plus.evaluation import COCO_KEYPOINTS_METRIC_PATH
from vitpose_plus.evaluation.metrics import apply_oks_nms, coco_keypoint_ap, oks_nms, pckh
from vitpose_plus.training.config import load_training_config
from vitpose_plus.training.data_pipeline import KeypointCollator, MixedSampler
from vitpose_plus.training.train import TrainingDiverged, lr_factor, train

TINY_MODEL = {
    "image_size": [64, 48],
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 4,
    "num_experts": 2,
    "part_features": 8,
    "deconv_channels": [16, 16],
}


def write_config(tmp_path, **sections) -> str:
    config = {
        "runtime": {"output_dir": str(tmp_path / "run"), "log_every": 1, "save_every": 3, "eval_every": 0,
                    "trackers": [], "eval_batch_size": 16},
        "model": {"overrides": TINY_MODEL},
        "optimization": {"batch_size": 4, "max_steps": 6, "learning_rate": 1e-3, "warmup_steps": 2,
                         "schedule": "cosine"},
        "datasets": [
            {"name": "coco", "synthetic": {"train_images": 6, "val_images": 3, "seed": 0, "image_size": [96, 96]}},
            {"name": "ap10k", "synthetic": {"train_images": 6, "val_images": 0, "seed": 1, "image_size": [96, 96]}},
        ],
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def final_weights(output_dir) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    checkpoints = sorted((output_dir / "checkpoints").iterdir(), key=lambda p: int(p.name.split("_")[1]))
    return load_file(str(checkpoints[-1] / "model.safetensors"))


def test_short_run_loss_falls_and_writes_outputs(tmp_path):
    config = load_training_config(write_config(
        tmp_path, optimization={"max_steps": 12, "learning_rate": 3e-3, "schedule": "step", "milestones": [10]}))
    result = train(config, progress=False)
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 12 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
    assert set(result["metrics"]) == {"coco"}  # ap10k has no val split
    assert 0.0 <= result["metrics"]["coco"]["AP"] <= 1.0
    model = VitPosePlusForPoseEstimation.from_pretrained(run / "model")
    assert model.config.dataset_names == ["coco", "ap10k"] and model.config.num_experts == 2
    assert (run / "model" / "preprocessor_config.json").exists()
    assert (run / "learning_curve.png").stat().st_size > 10_000
    assert json.loads((run / "final_metrics.json").read_text())["coco"]["AP"] == result["metrics"]["coco"]["AP"]


def test_resume_equals_uninterrupted_run(tmp_path):
    straight = load_training_config(write_config(tmp_path / "a"))
    train(straight, progress=False)
    interrupted = load_training_config(write_config(tmp_path / "b"))
    first = train(interrupted, progress=False, stop_after=4)  # "killed" after step 4; last checkpoint at step 4
    assert first["step"] == 4 and first["model_dir"] is None
    resumed = train(load_training_config(write_config(tmp_path / "b")), resume=True, progress=False)
    assert resumed["step"] == 6
    a, b = final_weights(tmp_path / "a" / "run"), final_weights(tmp_path / "b" / "run")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    logged = [json.loads(line)["step"] for line in (tmp_path / "b" / "run" / "log.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert logged == [1, 2, 3, 4, 5, 6]  # no lost or repeated step


def test_nan_loss_stops_with_clear_message(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = VitPosePlusForPoseEstimation.compute_loss

    def poisoned(self, *args, **kwargs):
        calls["n"] += 1
        loss = original(self, *args, **kwargs)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(VitPosePlusForPoseEstimation, "compute_loss", poisoned)
    config = load_training_config(write_config(tmp_path))
    with pytest.raises(TrainingDiverged, match=r"The loss is nan at step 4 .*last good checkpoint is .*step_3"):
        train(config, progress=False)
    assert (tmp_path / "run" / "checkpoints" / "step_3" / "model.safetensors").exists()


def test_config_validation_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['learning_rat'\]"):
        load_training_config(write_config(tmp_path, optimization={"learning_rat": 1.0}))
    with pytest.raises(ValueError, match=r"datasets\[0\]\.train\.annotations = .*missing\.json' does not exist"):
        load_training_config(write_config(tmp_path, datasets=[
            {"name": "coco", "train": {"annotations": "missing.json", "images": "."}}]))
    with pytest.raises(ValueError, match=r"needs 'train' files or 'synthetic'"):
        load_training_config(write_config(tmp_path, datasets=[{"name": "coco"}]))
    with pytest.raises(ValueError, match=r"schedule must be 'step' or 'cosine'"):
        load_training_config(write_config(tmp_path, optimization={"schedule": "linear"}))
    with pytest.raises(ValueError, match=r"Cannot read training config"):
        load_training_config(tmp_path / "nope.yaml")


def test_keypoint_count_mismatch_fails_at_start(tmp_path):
    from vitpose_plus.data.synthetic import make_synthetic_dataset

    annotations = make_synthetic_dataset("coco", 2, 0, tmp_path / "coco_data", image_size=(96, 96))
    path = write_config(tmp_path, datasets=[
        {"name": "aic", "train": {"annotations": annotations, "images": str(tmp_path / "coco_data")}}])
    expected = r"annotations.json: annotation id 1 \(dataset 'aic', K=14\): 'keypoints' has 51 values, expected 42"
    with pytest.raises(ValueError, match=expected):
        train(load_training_config(path), progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_lr_schedule_warmup_step_and_cosine():
    config = load_training_config(None)  # the default synthetic run parses and validates
    opt = config.optimization
    opt.warmup_steps, opt.warmup_ratio, opt.schedule, opt.milestones, opt.gamma = 10, 0.001, "step", [20, 30], 0.1
    assert lr_factor(0, opt, 40) == pytest.approx(0.001)
    assert lr_factor(5, opt, 40) == pytest.approx(1 - 0.5 * 0.999)
    assert lr_factor(10, opt, 40) == 1.0 and lr_factor(25, opt, 40) == pytest.approx(0.1)
    assert lr_factor(35, opt, 40) == pytest.approx(0.01)
    opt.schedule, opt.warmup_steps, opt.min_lr_ratio = "cosine", 0, 0.0
    assert lr_factor(20, opt, 40) == pytest.approx(0.5) and lr_factor(40, opt, 40) == pytest.approx(0.0)


def test_mixed_sampler_is_deterministic_and_proportional():
    sampler = MixedSampler([30, 10], seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(40)) and first == list(sampler)
    sampler.epoch = 1
    second = list(sampler)
    assert sorted(second) == list(range(40, 80)) and [c - 40 for c in second] != first
    weighted = MixedSampler([30, 10], seed=3, ratios=[1, 3])
    codes = np.asarray(list(weighted))
    share_second = np.mean(codes >= 30)
    assert 0.6 < share_second < 0.9  # 3:1 ratio towards the smaller dataset


def test_collator_pads_to_max_keypoints():
    samples = [
        {"pixel_values": np.zeros((3, 8, 6), np.float32), "labels": np.ones((14, 2, 2), np.float32),
         "label_weights": np.ones(14, np.float32), "dataset_index": 1},
        {"pixel_values": np.zeros((3, 8, 6), np.float32), "labels": np.ones((17, 2, 2), np.float32),
         "label_weights": np.ones(17, np.float32), "dataset_index": 0},
    ]
    batch = KeypointCollator(17)(samples)
    assert batch["labels"].shape == (2, 17, 2, 2) and batch["labels"][0, 14:].abs().sum() == 0
    assert batch["label_weights"][0].tolist() == [1.0] * 14 + [0.0] * 3
    assert batch["dataset_index"].tolist() == [1, 0]


# ------------------------------------------------------------------------------------------------------ metrics
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


# ------------------------------------------------------------------------------------------------------ Trainer
def test_trainer_runs_a_few_steps_with_compute_metrics(tmp_path):
    from vitpose_plus import VitPosePlusConfig
    from vitpose_plus.data.datasets import flatten_top_down, load_keypoint_dataset
    from vitpose_plus.data.synthetic import make_synthetic_dataset
    from vitpose_plus.training.trainer_example import build_trainer

    annotations = make_synthetic_dataset("coco", 4, 0, tmp_path / "data", image_size=(96, 96))
    rows = flatten_top_down(load_keypoint_dataset(annotations, tmp_path / "data", "coco"))
    config = VitPosePlusConfig(**{k: v for k, v in TINY_MODEL.items() if k not in ("num_experts", "part_features")},
                               datasets=["coco"])
    torch.manual_seed(0)
    model = VitPosePlusForPoseEstimation(config)
    trainer = build_trainer(model, "coco", rows, rows, str(tmp_path / "out"), max_steps=3,
                            per_device_train_batch_size=4, per_device_eval_batch_size=4, learning_rate=1e-3,
                            logging_steps=1, save_strategy="no", use_cpu=True)
    result = trainer.train()
    assert result.global_step == 3 and math.isfinite(result.training_loss)
    metrics = trainer.evaluate()
    assert math.isfinite(metrics["eval_loss"]) and 0.0 <= metrics["eval_coco_AP"] <= 1.0
    assert metrics["eval_AP"] == metrics["eval_coco_AP"]


@pytest.mark.parametrize("recipe", ["vitpose_plus_small_six_datasets", "vitpose_plus_base_six_datasets",
                                    "vitpose_plus_large_six_datasets", "vitpose_plus_huge_six_datasets",
                                    "finetune_coco", "finetune_custom_keypoints"])
def test_shipped_recipes_parse_and_name_the_missing_files(recipe):
    import os

    from vitpose_plus.training.config import CONFIG_DIR

    with pytest.raises(ValueError, match=r"= '/path/to/.*' does not exist"):
        load_training_config(os.path.join(CONFIG_DIR, f"{recipe}.yaml"))


def test_pckh_against_hand_computed_values():
    truth = np.zeros((2, 3, 2))
    predicted = truth.copy()
    predicted[0, :, 0] = [1.0, 2.0, 6.0]  # head size 10: 0.1, 0.2, 0.6 -> two of three within 0.5
    predicted[1, :, 1] = [4.0, 5.0, 9.0]  # head size 10: 0.4, 0.5 (inclusive), 0.9 (not visible)
    visible = np.array([[True, True, True], [True, True, False]])
    assert pckh(predicted, truth, visible, np.array([10.0, 10.0])) == pytest.approx(4 / 5)
    assert pckh(predicted, truth, visible, np.array([10.0, 10.0]), threshold=0.15) == pytest.approx(1 / 5)
    assert pckh(predicted, truth, np.zeros((2, 3), bool), np.array([10.0, 10.0])) == 0.0
