"""`vitpose-plus train` with `model.task: bottom_up`: config checks, per-image data, a tiny run end to end through
`train()` (mixed datasets, saved folder, evaluation), and a remote-code load of the trained folder."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch
import yaml
from helpers import coco_dict, run_without_package, write_images, write_json, write_yaml_config

from vitpose_plus.evaluation.bottom_up import evaluate_bottom_up
from vitpose_plus.file_io import load_model_folder
from vitpose_plus.modeling import (
    VitPosePlusBottomUpImageProcessor,
    VitPosePlusForBottomUpPoseEstimation,
    get_dataset_spec,
)
from vitpose_plus.training.bottom_up_data import BottomUpTrainingDataset, build_bottom_up_training_data
from vitpose_plus.training.bottom_up_transforms import BottomUpTrainTransform
from vitpose_plus.training.config import load_training_config
from vitpose_plus.training.train import build_model_config, resolve_spec, train

TINY = {"image_size": [64, 64], "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
        "num_experts": 2, "part_features": 8, "deconv_channels": [16, 16]}


def write_config(tmp_path, **sections) -> str:
    config = {
        "runtime": {"output_dir": str(tmp_path / "run"), "log_every": 1, "save_every": 0, "trackers": [],
                    "eval_batch_size": 2, "flip_test": True},
        "model": {"task": "bottom_up", "overrides": TINY},
        "optimization": {"batch_size": 4, "max_steps": 4, "learning_rate": 1e-3, "warmup_steps": 1},
        "bottom_up": {"flip_prob": 0.5},
        "datasets": [
            {"name": "coco", "synthetic": {"train_images": 6, "val_images": 3, "seed": 0, "image_size": [96, 128]}},
            {"name": "ap10k", "synthetic": {"train_images": 6, "val_images": 2, "seed": 1, "image_size": [96, 96]}},
        ],
    }
    return write_yaml_config(tmp_path, config, sections)


# ----------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize(("sections", "message"), [
    ({"model": {"task": "bottomup"}}, "model.task = 'bottomup': expected one of"),
    ({"model": {"task": "top_down"}, "bottom_up": {"flip_prob": 0.0}}, "applies only to model.task: bottom_up"),
    ({"augmentation": {"rotation_factor": 10}}, "'augmentation' holds the top-down transform's settings"),
    ({"bottom_up": {"scale_range": [1.5, 0.75]}}, "bottom_up.scale_range"),
    ({"bottom_up": {"eval_scales": [0.5, 2.0]}}, "including 1"),
    ({"bottom_up": {"scale_type": "wide"}}, "'short' or 'long'"),
    ({"bottom_up": {"position_init": "mae"}}, "bottom_up.position_init = 'mae'"),
    ({"bottom_up": {"translation": 40}}, "unknown key 'translation' (did you mean 'translation_factor'?)"),
    ({"model": {"task": "bottom_up", "overrides": {**TINY, "image_size": [64, 48]}}}, "the bottom-up training input "
                                                                                     "is square"),
    ({"model": {"task": "bottom_up", "overrides": {**TINY, "sigmaa": 2}}}, "unknown field 'sigmaa'"),
    ({"model": {"task": "top_down", "overrides": {"sigma": 2}}, "bottom_up": {}}, "unknown field 'sigma'"),
])
def test_config_checks(tmp_path, sections, message):
    with pytest.raises(ValueError) as err:
        load_training_config(write_config(tmp_path, **sections))
    assert message in str(err.value)


def test_bottom_up_model_fields_are_accepted(tmp_path):
    config = load_training_config(write_config(tmp_path, model={"task": "bottom_up", "overrides": {
        **TINY, "sigma": 1.5, "max_num_people": 5, "ae_loss_type": "max"}}))
    model_config = build_model_config(config, [resolve_spec(d) for d in config.datasets])
    assert type(model_config).__name__ == "VitPosePlusBottomUpConfig"
    assert (model_config.sigma, model_config.max_num_people, model_config.ae_loss_type) == (1.5, 5, "max")
    assert model_config.dataset_names == ["coco", "ap10k"]


def test_sincos_position_init(tmp_path):
    from vitpose_plus.modeling.modeling_vitpose_plus_mae import build_2d_sincos_position_table
    from vitpose_plus.training.train import build_model

    config = load_training_config(write_config(tmp_path, bottom_up={"position_init": "sincos"}))
    model_config = build_model_config(config, [resolve_spec(d) for d in config.datasets])
    model = build_model(config, model_config)
    assert isinstance(model, VitPosePlusForBottomUpPoseEstimation) and model.training
    table = model.backbone.embeddings.position_embeddings
    assert table.requires_grad and table.shape == (1, 1 + 4 * 4, 32)  # 64x64 input: a 4x4 patch grid
    torch.testing.assert_close(table[0], build_2d_sincos_position_table(32, 4, 4), atol=0, rtol=0)
    assert not table[0, 0].any()  # slot 0 (added to every token) starts at zero, as MAE's cls position
    default = build_model(load_training_config(write_config(tmp_path / "b")), model_config)
    assert not torch.equal(default.backbone.embeddings.position_embeddings, table)


# ----------------------------------------------------------------------------------------------- data
def test_training_sample_is_the_transform_of_the_whole_image(tmp_path):
    """Every annotation of an image (crowds and persons without keypoints masking the loss) goes through
    BottomUpTrainTransform with the sample's seeded generator; images without annotations are not trained on."""
    from vitpose_plus.data import load_keypoint_dataset

    data = coco_dict(num_images=3, extras=True, seed=3)
    data["images"].append({"id": 99, "file_name": "empty.jpg", "width": 320, "height": 240})
    crowd = next(a for a in data["annotations"] if a["iscrowd"])
    crowd["segmentation"] = {"counts": [0, 40 * 240, 280 * 240], "size": [240, 320]}  # the left 40 columns
    write_images(tmp_path, [image["file_name"] for image in data["images"]])
    rows = load_keypoint_dataset(write_json(tmp_path / "ann.json", data), tmp_path, "coco")
    transform = BottomUpTrainTransform("coco", dataset_index=1, input_size=64, heatmap_size=16, flip_prob=0.0)
    dataset = BottomUpTrainingDataset(rows, transform, seed=5)
    assert len(dataset) == 3  # the image without annotations is left out
    sample = dataset[len(dataset) * 2 + 0]  # epoch 2, image 0 (the one with the extras)
    from vitpose_plus.file_io import read_image

    image = read_image(tmp_path / "img_000.jpg")
    instances = [{"keypoints": a["keypoints"], "iscrowd": a["iscrowd"], "num_keypoints": a["num_keypoints"],
                  **({"segmentation": a["segmentation"]} if "segmentation" in a else {})}
                 for a in data["annotations"] if a["image_id"] == 1]
    expected = transform(image, instances, rng=np.random.default_rng([5, 1, 2, 0]))
    assert set(sample) == {"pixel_values", "labels", "label_mask", "label_joints", "dataset_index"}
    for key in ("pixel_values", "labels", "label_mask", "label_joints"):
        np.testing.assert_array_equal(sample[key], expected[key])
    assert sample["dataset_index"] == 1
    assert 0 < sample["label_mask"].mean() < 1  # the crowd's left eighth of the image is masked out
    assert sample["label_joints"][..., 1].sum() > 0


def test_mixed_batches_hold_both_datasets(tmp_path):
    from vitpose_plus.training.train import materialise_synthetic

    config = load_training_config(write_config(tmp_path))
    materialise_synthetic(config, True)
    specs = [resolve_spec(d) for d in config.datasets]
    model_config = build_model_config(config, specs)
    data = build_bottom_up_training_data(config, model_config, specs)
    assert data.sizes == [6, 6]
    loader = torch.utils.data.DataLoader(data.dataset, batch_size=12, sampler=data.sampler,
                                         collate_fn=data.collate_fn)
    batch = next(iter(loader))
    assert sorted(batch["dataset_index"].tolist()) == [0] * 6 + [1] * 6
    assert batch["labels"].shape == (12, 17, 16, 16) and batch["label_joints"].shape == (12, 30, 17, 2)
    codes = list(iter(data.sampler))[:12]  # the batch is the collated samples of the sampler's codes
    manual = data.collate_fn([data.dataset[code] for code in codes])
    for key, value in batch.items():
        torch.testing.assert_close(value, manual[key], atol=0, rtol=0)


# ----------------------------------------------------------------------------------------------- the run
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("bottom_up_run")
    config = load_training_config(write_config(tmp_path))
    result = train(config, progress=False)
    return tmp_path / "run", config, result


def test_tiny_run_trains_saves_and_evaluates(trained):
    run, config, result = trained
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert set(result.metrics) == {"coco", "ap10k"} and all(0 <= m["AP"] <= 1 for m in result.metrics.values())
    model = load_model_folder(run / "model")
    assert isinstance(model, VitPosePlusForBottomUpPoseEstimation)
    assert model.config.dataset_names == ["coco", "ap10k"] and model.config.num_experts == 2
    processor = VitPosePlusBottomUpImageProcessor.from_pretrained(run / "model")
    assert processor.input_size == (64, 64) and processor.dataset["name"] == "coco"
    assert json.loads((run / "final_metrics.json").read_text()) == result.metrics
    saved = yaml.safe_load((run / "training_config.yaml").read_text())
    assert saved["model"]["task"] == "bottom_up" and saved["bottom_up"]["flip_prob"] == 0.5
    # the saved folder evaluates to the run's final metrics (same processor, flip test, no OKS-NMS)
    for name in ("coco", "ap10k"):
        val = config.datasets[[d.name for d in config.datasets].index(name)].val
        again = evaluate_bottom_up(model, processor, val.annotations, val.images, name, flip_test=True,
                                   progress=False)
        assert again.metrics == pytest.approx(result.metrics[name])


def test_remote_code_load_of_the_trained_folder(trained, tmp_path, capsys):
    """The trained folder, assembled for the Hub by `vitpose-plus publish`, loads and predicts with
    trust_remote_code in a process where vitpose_plus cannot be imported."""
    from vitpose_plus.cli import main
    from vitpose_plus.hub_cards.publish import BOTTOM_UP_REMOTE_CODE_FILES

    run = trained[0]
    folder = tmp_path / "hub"
    assert main(["publish", "--model", str(run / "model"), "--repo-id", "acme/tiny-bottom-up", "--output",
                 str(folder)]) == 0
    capsys.readouterr()
    assert set(BOTTOM_UP_REMOTE_CODE_FILES) <= {p.name for p in folder.iterdir()}
    model = load_model_folder(run / "model")
    processor = VitPosePlusBottomUpImageProcessor.from_pretrained(folder)
    image = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    np.save(tmp_path / "image.npy", image)
    inputs = processor(image)
    with torch.no_grad():
        expected = model(**inputs, dataset_index=1, flip_test=True)
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np, torch
        from transformers import AutoImageProcessor, AutoModelForPoseEstimation
        folder = {str(folder)!r}
        model = AutoModelForPoseEstimation.from_pretrained(folder, trust_remote_code=True).eval()
        processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
        assert type(model).__name__ == "VitPosePlusForBottomUpPoseEstimation", type(model)
        assert type(processor).__name__ == "VitPosePlusBottomUpImageProcessor", type(processor)
        assert not any(name.startswith("vitpose_plus") for name in sys.modules)
        inputs = processor(np.load({str(tmp_path / "image.npy")!r}))
        with torch.no_grad():
            out = model(**inputs, dataset_index="ap10k", flip_test=True)
        people = processor.post_process_bottom_up(out, [(90, 120)], dataset=model.config.dataset_spec(1))
        torch.save({{"heatmaps": out.heatmaps, "tags": out.tags, "people": people}}, {str(tmp_path / "out.pt")!r})
        """
    )
    run_without_package(script, tmp_path)
    got = torch.load(tmp_path / "out.pt", weights_only=False)
    torch.testing.assert_close(got["heatmaps"], expected.heatmaps, atol=0, rtol=0)
    torch.testing.assert_close(got["tags"], expected.tags, atol=0, rtol=0)
    local = processor.post_process_bottom_up(expected, [(90, 120)], dataset=get_dataset_spec("ap10k"))
    assert len(got["people"][0]) == len(local[0])
    for a, b in zip(got["people"][0], local[0]):
        torch.testing.assert_close(a["keypoints"], b["keypoints"], atol=0, rtol=0)


def test_shipped_bottom_up_coco_recipe():
    import os

    from vitpose_plus.training.config import CONFIG_DIR
    from vitpose_plus.training.train import training_schedule

    path = os.path.join(CONFIG_DIR, "bottom_up_coco.yaml")
    with pytest.raises(FileNotFoundError, match=r"= '/path/to/.*' does not exist"):
        load_training_config(path)
    config = load_training_config(path, overrides={
        "model.mae_checkpoint": None,
        "datasets": [{"name": "coco", "synthetic": {"train_images": 1, "val_images": 0}}]})
    model_config = build_model_config(config, [resolve_spec(d) for d in config.datasets])
    assert type(model_config).__name__ == "VitPosePlusBottomUpConfig"
    assert (model_config.hidden_size, model_config.num_hidden_layers, list(model_config.image_size)) == (768, 12,
                                                                                                        [512, 512])
    assert model_config.heatmap_size_for(512, 512) == (128, 128) and model_config.drop_path_rate == 0.3
    assert (model_config.push_loss_factor, model_config.pull_loss_factor, model_config.ae_loss_type) == (
        0.001, 0.001, "exp")
    opt = config.optimization
    assert (opt.learning_rate, opt.weight_decay, opt.layer_decay) == (5e-4, 0.1, 0.75)
    schedule = training_schedule(opt, steps_per_epoch=10)
    assert (schedule.max_steps, schedule.milestones) == (3000, (2000, 2600))
    assert (config.bottom_up.rotation_factor, config.bottom_up.scale_range, config.bottom_up.flip_prob) == (
        30.0, [0.75, 1.5], 0.5)
