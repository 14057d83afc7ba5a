"""Bad inputs and faults, as a new user meets them (issue 15): nothing lost, nothing silently wrong, clear errors.

Each test reproduces one case of docs/robustness.md with real files and the real commands (`vitpose_plus.cli.main`, or
a subprocess where the fault is a process dying). Cases already covered elsewhere are listed in that table with their
tests; this file holds the rest.
"""

from __future__ import annotations

import copy
import errno
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
import yaml
from helpers import (
    clean_box,
    coco_dict,
    make_mae_state,
    make_model,
    oracle_records,
    run_without_package,
    save_pth,
    tiny_config,
    write_images,
    write_json,
)
from test_inference import synthetic_image
from test_train import TINY_MODEL, write_config

from vitpose_plus.cli import main
from vitpose_plus.evaluation.ground_truth import crop_targets, load_ground_truth
from vitpose_plus.evaluation.scoring import score_predictions
from vitpose_plus.training.config import load_training_config
from vitpose_plus.training.train import (
    build_model,
    build_model_config,
    build_training_data,
    materialise_synthetic,
    resolve_spec,
    train,
)

ONE_DATASET_MODEL = {**TINY_MODEL, "num_experts": 1}


def _synthetic(train_images: int = 4, seed: int = 0, val_images: int = 0) -> list[dict]:
    return [{"name": "coco", "synthetic": {"train_images": train_images, "val_images": val_images, "seed": seed,
                                           "image_size": [96, 96]}}]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "model"
    make_model(tiny_config()).save_pretrained(folder)
    return folder


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, name in enumerate(["1.png", "b.png", "c.png"]):
        cv2.imwrite(str(folder / name), cv2.cvtColor(synthetic_image(seed=i), cv2.COLOR_RGB2BGR))
    return folder


# ================================================================================================ data lost
def test_train_keeps_a_previous_run_until_the_new_one_validates(tmp_path, capsys):
    """A re-run into a used output folder deletes nothing without --overwrite, and with --overwrite only once the
    config, the data and the model are validated (a typo, an impossible architecture or a bad file keep it)."""
    config = write_config(tmp_path, datasets=_synthetic(), model={"overrides": ONE_DATASET_MODEL},
                          optimization={"max_steps": 2, "batch_size": 2})
    run = tmp_path / "run"
    previous = {"checkpoints/step_3/trainer_state.json": '{"step": 3}', "checkpoints/step_6/trainer_state.json":
                '{"step": 6}', "log.jsonl": '{"step": 1, "loss": 1.0}\n', "model/config.json": "{}"}
    for name, text in previous.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(text)

    def assert_previous_run_intact() -> None:
        assert {name: (run / name).read_text() for name in previous} == previous

    assert main(["train", "--config", config, "--no-progress"]) == 1
    assert "holds a previous run (checkpoints, model, log.jsonl); pass --resume" in capsys.readouterr().err
    assert_previous_run_intact()

    typo = yaml.safe_load(open(config))
    typo["datasets"][0]["name"] = "cocoo"
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(typo))
    assert main(["train", "--config", str(tmp_path / "typo.yaml"), "--no-progress", "--overwrite"]) == 1
    assert "Unknown keypoint dataset 'cocoo'" in capsys.readouterr().err
    assert_previous_run_intact()

    args = ["train", "--config", config, "--no-progress", "--overwrite"]
    assert main([*args, "--set", "model.overrides.num_attention_heads=5"]) == 1
    err = capsys.readouterr().err
    assert "config.yaml: model (preset None, overrides" in err
    assert "must be a multiple of `num_attention_heads` (5)" in err
    assert_previous_run_intact()
    assert main([*args, "--set", 'model.overrides.hidden_size="32"']) == 1
    assert "config.yaml: model" in (err := capsys.readouterr().err) and "hidden_size = '32' (str)" in err
    assert_previous_run_intact()

    empty = tmp_path / "empty.json"
    empty.write_text("")
    bad_data = write_config(tmp_path / "bad", datasets=[{"name": "coco", "train": {"annotations": str(empty),
                                                                                  "images": str(tmp_path)}}])
    assert main(["train", "--config", bad_data, "--no-progress", "--overwrite", "--output-dir", str(run)]) == 1
    assert f"Annotation file '{empty}' is empty." in capsys.readouterr().err
    assert_previous_run_intact()

    assert main(args) == 0  # asked for and valid: the previous run is replaced
    assert sorted(os.listdir(run / "checkpoints")) == ["step_2"]
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [1, 2]
    assert json.loads((run / "model" / "config.json").read_text())["model_type"] == "vitpose_plus"


def test_predict_refuses_an_output_folder_that_holds_its_inputs(model_folder, image_folder, capsys):
    before = {name: (image_folder / name).read_bytes() for name in os.listdir(image_folder)}
    for source in (image_folder, image_folder / "1.png"):
        assert main(["predict", "--model", str(model_folder), "--image", str(source), "--output", str(image_folder),
                     "--no-progress"]) == 1
        assert f"--output '{image_folder}' is the folder of the inputs; the pictures would overwrite them" in \
            capsys.readouterr().err
    assert {name: (image_folder / name).read_bytes() for name in os.listdir(image_folder)} == before


def test_predict_skips_unreadable_images_lists_them_and_keeps_the_rest(model_folder, image_folder, tmp_path, capsys):
    good = image_folder / "c.png"
    (image_folder / "b.png").write_bytes(good.read_bytes()[:300])  # truncated PNG, between two good images
    (image_folder / "a_empty.png").write_bytes(b"")
    out = tmp_path / "out"
    args = ["predict", "--model", str(model_folder), "--image", str(image_folder), "--no-progress"]
    assert main([*args, "--output", str(out)]) == 1  # non-zero: something was skipped
    err = capsys.readouterr().err
    assert "skipped 2 unreadable image(s):" in err
    assert f"{image_folder / 'b.png'}: Image '{image_folder / 'b.png'}' is a truncated PNG" in err
    assert f"Image '{image_folder / 'a_empty.png'}' is empty (0 bytes)" in err
    records = json.loads((out / "keypoints.json").read_text())
    assert [r["file_name"] for r in records] == ["1.png", "c.png"]  # before and after the broken ones
    assert sorted(os.listdir(out)) == ["1.png", "c.png", "keypoints.json"]

    assert main([*args, "--output", str(tmp_path / "strict"), "--strict"]) == 1  # stops at the first one
    assert "a_empty.png' is empty (0 bytes)" in capsys.readouterr().err
    records = json.loads((tmp_path / "strict" / "keypoints.json").read_text())
    assert [r["file_name"] for r in records] == ["1.png"]  # the results before it are kept


def test_a_full_disk_or_a_kill_during_a_write_leaves_the_previous_file(model_folder, image_folder, tmp_path,
                                                                      monkeypatch, capsys):
    out = tmp_path / "out"
    args = ["predict", "--model", str(model_folder), "--image", str(image_folder), "--output", str(out),
            "--no-progress"]
    assert main(args) == 0
    previous = (out / "keypoints.json").read_bytes()
    assert len(json.loads(previous)) == 3

    real_dump = json.dump

    def dump_half_then_fail(obj, handle, **kwargs):  # the disk fills up half-way through the new file
        handle.write(json.dumps(obj)[:40])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(json, "dump", dump_half_then_fail)
    assert main(args) == 1
    monkeypatch.setattr(json, "dump", real_dump)
    err = capsys.readouterr().err
    assert f"[Errno 28] Cannot write '{out / 'keypoints.json'}': No space left on device; nothing was written" in err
    assert (out / "keypoints.json").read_bytes() == previous
    assert sorted(os.listdir(out)) == ["1.png", "b.png", "c.png", "keypoints.json"]  # no temporary file left

    # A real kill in the middle of a write: the final name still holds the complete previous file.
    script = ("import os, signal, sys\nfrom vitpose_plus.file_io import atomic_write\n"
              "with atomic_write(sys.argv[1]) as handle:\n"
              "    handle.write('[{\"image_id\": 1, \"keypoints\": [1.0, ')\n    handle.flush()\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", script, str(out / "keypoints.json")], capture_output=True,
                            timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (out / "keypoints.json").read_bytes() == previous


# ================================================================================================ silently wrong
def _evaluation_files(tmp_path):
    data = coco_dict(num_images=3, seed=0)
    write_images(tmp_path, [image["file_name"] for image in data["images"]])
    return data


def _ap(gt, targets=None) -> dict[str, float]:
    targets = crop_targets(gt) if targets is None else targets
    return score_predictions(gt, oracle_records(gt, targets)).metrics


def test_nan_ground_truth_box_is_reported_and_handled_as_the_original(tmp_path, caplog):
    """The original's box clean-up (`max(0, x)`, `max(0, w - 1)` in Python) decides: a NaN width empties the box
    (no crop, the person is missed), a NaN x becomes 0; the annotation stays in the scored ground truth. A warning
    names it, so that perfect predictions scoring below AP 1.0 is never silent."""
    data = _evaluation_files(tmp_path)
    clean = load_ground_truth(data, "coco", "coco", tmp_path)
    clean_targets = crop_targets(clean)
    clean_records = oracle_records(clean, clean_targets)
    assert score_predictions(clean, clean_records).metrics["AP"] == pytest.approx(1.0)

    victim = data["annotations"][1]
    nan_width = copy.deepcopy(data)
    nan_width["annotations"][1]["bbox"][2] = float("nan")
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(nan_width))  # Python's json writes and reads NaN, as COCO tools do
    with caplog.at_level(logging.WARNING):
        gt = load_ground_truth(path, "coco", "coco", tmp_path)
    assert f"nan.json: 1 annotation(s) have a NaN or infinite 'bbox' (ids {victim['id']}); handled as the " \
           "original's box clean-up" in caplog.text
    targets = crop_targets(gt)
    assert victim["id"] not in {t.source_id for t in targets} and len(targets) == len(clean_targets) - 1
    # Exactly "that person missed": the clean file scored without the victim's prediction.
    victim_target = next(t.target_id for t in clean_targets if t.source_id == victim["id"])
    missed = score_predictions(clean, [r for r in clean_records if r["target_id"] != victim_target]).metrics
    metrics = _ap(gt, targets)
    assert metrics["AP"] < 1.0 and metrics == pytest.approx(missed, abs=1e-12)

    nan_x = copy.deepcopy(data)
    nan_x["annotations"][1]["bbox"][0] = float("nan")
    gt = load_ground_truth(nan_x, "coco", "coco", tmp_path)
    (target,) = [t for t in crop_targets(gt) if t.source_id == victim["id"]]
    assert list(target.bbox) == pytest.approx(clean_box(nan_x["annotations"][1]["bbox"], 320, 240))
    assert target.bbox[0] == 0.0


def test_malformed_evaluation_annotations_are_named_by_id(tmp_path, model_folder, caplog, capsys):
    data = _evaluation_files(tmp_path)
    victim = data["annotations"][1]["id"]

    no_keypoints = copy.deepcopy(data)
    del no_keypoints["annotations"][1]["keypoints"]
    with caplog.at_level(logging.WARNING):
        gt = load_ground_truth(no_keypoints, "coco", "coco", tmp_path)
    assert f"1 annotation(s) have no 'keypoints' (ids {victim}); skipped for top-down crops as the original" in \
        caplog.text
    targets = crop_targets(gt)
    assert victim not in {t.source_id for t in targets}
    assert _ap(gt, targets)["AP"] == pytest.approx(1.0)  # unlabelled ground truth is ignored, as COCOeval

    def evaluate(name: str, content: dict) -> tuple[int, str]:
        path = write_json(tmp_path / name, content)
        code = main(["evaluate", "--model", str(model_folder), "--dataset", "coco", "--annotations", path,
                     "--images", str(tmp_path), "--no-progress"])
        return code, capsys.readouterr().err

    wrong_count = copy.deepcopy(data)
    wrong_count["annotations"][1]["keypoints"] = wrong_count["annotations"][1]["keypoints"][:-3]
    code, err = evaluate("count.json", wrong_count)
    assert code == 1 and f"count.json: annotation id {victim} (dataset 'coco', K=17): 'keypoints' has 48 values, " \
                          "expected 51" in err

    no_file_name = copy.deepcopy(data)
    del no_file_name["images"][1]["file_name"]
    code, err = evaluate("nofile.json", no_file_name)
    assert code == 1 and "nofile.json: image entry #1 needs 'id' and 'file_name', got {'id': 2," in err

    zero_area = copy.deepcopy(data)
    for annotation in zero_area["annotations"]:
        annotation["area"] = 0.0
    ids = [a["id"] for a in zero_area["annotations"]]
    code, err = evaluate("zero.json", zero_area)
    assert code == 1
    assert f"zero.json: no annotation is left to evaluate with ground-truth boxes: the original's top-down filters " \
           f"skip all {len(ids)} ({len(ids)} area_not_positive (ids {ids}))" in err


def test_predict_gives_every_image_its_own_id(model_folder, image_folder, tmp_path):
    cv2.imwrite(str(image_folder / "01.png"), cv2.cvtColor(synthetic_image(), cv2.COLOR_RGB2BGR))  # stem "01" = 1
    out = tmp_path / "out"
    assert main(["predict", "--model", str(model_folder), "--image", str(image_folder), "--output", str(out),
                 "--no-progress"]) == 0
    records = json.loads((out / "keypoints.json").read_text())
    assert [(r["file_name"], r["image_id"]) for r in records] == [("01.png", 0), ("1.png", 1), ("b.png", 2),
                                                                  ("c.png", 3)]
    os.remove(image_folder / "b.png")
    os.remove(image_folder / "c.png")
    os.rename(image_folder / "01.png", image_folder / "7.png")
    assert main(["predict", "--model", str(model_folder), "--image", str(image_folder), "--output",
                 str(tmp_path / "numeric"), "--no-progress"]) == 0  # distinct numeric stems: COCO ids
    records = json.loads((tmp_path / "numeric" / "keypoints.json").read_text())
    assert [(r["file_name"], r["image_id"]) for r in records] == [("1.png", 1), ("7.png", 7)]


def test_config_typos_are_errors_with_a_suggestion(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"model.overrides has an unknown field 'num_hiden_layers' \(did you mean "
                                         r"'num_hidden_layers'\?\)"):
        load_training_config(write_config(tmp_path, model={"overrides": {**TINY_MODEL, "num_hiden_layers": 2}}))
    mae = save_pth(make_mae_state(dim=48, depth=2), tmp_path / "mae.pth", wrap="model")
    out = tmp_path / "mae_model"
    assert main(["convert", "mae", "--checkpoint", mae, "--preset", "vitpose-plus-small", "--output", str(out),
                 "--set", "hidden_size=48", "--set", "num_hidden_layers=2", "--set", "drop_path_rat=0.1"]) == 1
    assert "unknown field(s) 'drop_path_rat' (did you mean 'drop_path_rate'?)" in capsys.readouterr().err
    assert not out.exists()


def test_a_dataset_without_labelled_instances_is_an_error_unless_allowed(tmp_path, capsys):
    from vitpose_plus.data.synthetic import make_synthetic_dataset

    coco = make_synthetic_dataset("coco", 4, 0, tmp_path / "coco", image_size=(96, 96))
    empty = write_json(tmp_path / "aic.json", {"images": [], "annotations": [], "categories": [{"id": 1}]})
    datasets = [{"name": "coco", "train": {"annotations": coco, "images": str(tmp_path / "coco")}},
                {"name": "aic", "train": {"annotations": empty, "images": str(tmp_path)}}]
    path = write_config(tmp_path, datasets=datasets)
    assert main(["train", "--config", path, "--no-progress"]) == 1
    assert "datasets[1] ('aic') has no labelled top-down instance in its training files; its expert and head would " \
           "stay untrained. Fix the files, or set allow_empty: true" in capsys.readouterr().err
    assert os.listdir(tmp_path / "run") == [".lock"]  # nothing written

    datasets[1]["allow_empty"] = True
    config = load_training_config(write_config(tmp_path, datasets=datasets))
    specs = [resolve_spec(d) for d in config.datasets]
    data = build_training_data(config, build_model_config(config, specs), specs)
    assert data.sizes[1] == 0 and data.sizes[0] > 0

    (tmp_path / "aic.json").write_text("")
    assert main(["train", "--config", write_config(tmp_path, datasets=datasets), "--no-progress"]) == 1
    assert f"Annotation file '{tmp_path / 'aic.json'}' is empty." in capsys.readouterr().err


def test_synthetic_data_is_rendered_again_when_its_settings_change(tmp_path):
    def materialised(train_images: int, seed: int) -> tuple[str, int, float]:
        config = load_training_config(write_config(tmp_path, datasets=_synthetic(train_images, seed)))
        materialise_synthetic(config, is_main=True)
        annotations = config.datasets[0].train.annotations
        return annotations, len(json.load(open(annotations))["images"]), os.path.getmtime(annotations)

    first, count, stamp = materialised(6, 0)
    assert count == 6
    assert materialised(6, 0) == (first, 6, stamp)  # the same settings reuse the rendered data
    bigger, count, _ = materialised(10, 0)
    assert bigger != first and count == 10
    reseeded, count, _ = materialised(6, 3)
    assert reseeded not in (first, bigger) and count == 6
    assert os.path.getmtime(first) == stamp  # the earlier data is left as it was


def test_init_from_a_model_of_another_width_is_an_error_unless_allowed(tmp_path, caplog):
    wide = tmp_path / "wide"
    make_model(tiny_config(hidden_size=64)).save_pretrained(wide)
    config = load_training_config(write_config(tmp_path, model={"overrides": TINY_MODEL, "init_from": str(wide)}))
    model_config = build_model_config(config, [resolve_spec(d) for d in config.datasets])
    with pytest.raises(ValueError, match=r"wide: the source model's weights do not fit this run's model \(another "
                                         r"width, depth or decoder\?\); pass model.allow_partial_init: true"):
        build_model(config, model_config)
    config.model.allow_partial_init = True
    with caplog.at_level(logging.WARNING):
        build_model(config, model_config)
    assert any(r.levelno == logging.WARNING and r.getMessage().startswith(f"Initialised from {wide}")
               for r in caplog.records)


def _newest_checkpoint_step(run) -> int:
    found = [int(d.split("_")[1]) for d in os.listdir(run / "checkpoints")] if (run / "checkpoints").is_dir() else []
    return max((s for s in found if (run / "checkpoints" / f"step_{s}" / "trainer_state.json").exists()), default=0)


def _logged_steps(run) -> list[int]:
    if not (run / "log.jsonl").exists():
        return []
    steps = []
    for line in (run / "log.jsonl").read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except json.JSONDecodeError:  # a line being written
            pass
    return steps


def test_sigkill_mid_run_then_resume_is_bit_exact_and_logs_each_step_once(tmp_path):
    """A real `vitpose-plus train` process killed with SIGKILL after a checkpoint, with steps logged past it, then
    `--resume` in a new process: the final weights equal an uninterrupted run's bit for bit and log.jsonl holds every
    step once."""
    from safetensors.torch import load_file

    sections = {"datasets": _synthetic(train_images=8), "model": {"overrides": ONE_DATASET_MODEL},
                "optimization": {"max_steps": 20, "batch_size": 2, "warmup_steps": 2},
                "runtime": {"save_every": 4, "keep_checkpoints": 2}}
    train(load_training_config(write_config(tmp_path / "straight", **sections)), progress=False)

    config = write_config(tmp_path / "killed", **sections)
    run = tmp_path / "killed" / "run"
    # The same thread count as this process, so that float reductions (and the weights) can match exactly.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    command = [sys.executable, "-m", "vitpose_plus", "train", "--config", config, "--no-progress"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:  # kill once a checkpoint exists and later steps are logged (those must not appear twice after the resume)
        while process.poll() is None and time.monotonic() < deadline:
            checkpoint = _newest_checkpoint_step(run)
            if checkpoint and max(_logged_steps(run), default=0) > checkpoint:
                break
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-3000:]
    assert not (run / "model").exists()
    killed_at = _newest_checkpoint_step(run)
    assert 0 < killed_at < max(_logged_steps(run)) < 20

    resumed = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resumed from {run / 'checkpoints' / f'step_{killed_at}'} at step {killed_at}." in resumed.stdout
    assert _logged_steps(run) == list(range(1, 21))
    straight = load_file(str(tmp_path / "straight" / "run" / "model" / "model.safetensors"))
    again = load_file(str(run / "model" / "model.safetensors"))
    assert straight.keys() == again.keys()
    for name in straight:
        assert torch.equal(straight[name], again[name]), name


def test_predict_box_outside_the_image_names_the_image(model_folder, image_folder, tmp_path, capsys):
    boxes = write_json(tmp_path / "boxes.json", [[500, 5, 10, 10]])
    assert main(["predict", "--model", str(model_folder), "--image", str(image_folder / "1.png"), "--boxes", boxes,
                 "--output", str(tmp_path / "out"), "--no-progress"]) == 1
    assert f"{image_folder / '1.png'}: Box 0 of image 0, [500.0, 5.0, 10.0, 10.0] (x, y, w, h), lies entirely " \
           "outside the 90x120 image." in capsys.readouterr().err


# ================================================================================================ unclear errors
def _raw_config(tmp_path, old: str, new: str) -> str:
    text = open(write_config(tmp_path)).read()
    assert old in text, old
    path = tmp_path / "raw.yaml"
    path.write_text(text.replace(old, new))
    return str(path)


def test_numbers_written_like_1e_3_are_numbers(tmp_path):
    config = load_training_config(_raw_config(tmp_path, "learning_rate: 0.001", "learning_rate: 1e-3"))
    assert config.optimization.learning_rate == 0.001 and isinstance(config.optimization.learning_rate, float)
    config = load_training_config(write_config(tmp_path), {"optimization.weight_decay": 5e-2})
    assert config.optimization.weight_decay == 0.05
    from vitpose_plus.cli import parse_assignments

    assert parse_assignments(["optimization.learning_rate=2E-4"]) == {"optimization.learning_rate": 2e-4}


@pytest.mark.parametrize("old, new, message", [
    ("batch_size: 4", "batch_size: four", r"raw.yaml: optimization.batch_size = 'four' \(str\): expected an integer"),
    ("learning_rate: 0.001", "learning_rate: -1.0e-3",
     r"raw.yaml: optimization.learning_rate = -0.001: expected a positive number"),
    ("learning_rate: 0.001", "learning_rate: fast",
     r"optimization.learning_rate = 'fast' \(str\): expected a number \(quote-free numbers"),
    ("log_every: 1", "log_every: 0", r"raw.yaml: runtime.log_every = 0: expected a positive integer"),
    ("save_every: 3", "save_every: 3\n  keep_checkpoints: 0",
     r"raw.yaml: runtime.keep_checkpoints = 0: expected a positive integer"),
])
def test_config_values_are_checked_with_file_key_value_and_expectation(tmp_path, old, new, message):
    with pytest.raises(ValueError, match=message):
        load_training_config(_raw_config(tmp_path, old, new))


def _corrupt_model(folder, kind: str) -> None:
    config = folder / "config.json"
    if kind == "truncated config.json":
        config.write_text(config.read_text()[:100])
    elif kind in ("wrong type", "impossible architecture"):
        data = json.loads(config.read_text())
        data.update({"hidden_size": "32"} if kind == "wrong type" else {"num_attention_heads": 5})
        config.write_text(json.dumps(data))
    elif kind == "truncated weights":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-100])
    else:
        shutil.rmtree(folder)


@pytest.mark.parametrize("kind, message", [
    ("truncated config.json", "config.json' is not valid JSON (it ends early: the file looks truncated)"),
    ("wrong type", "config.json: VitPosePlusConfig.hidden_size = '32' (str) does not have the expected type int"),
    ("impossible architecture", "`hidden_size` (32) must be a multiple of `num_attention_heads` (5)"),
    ("truncated weights", "model.safetensors is truncated or not a safetensors file"),
    ("missing folder", "No such model folder: "),
])
def test_broken_model_folders_are_named(model_folder, tmp_path, image_folder, capsys, kind, message):
    folder = tmp_path / "model"
    shutil.copytree(model_folder, folder)
    _corrupt_model(folder, kind)
    assert main(["predict", "--model", str(folder), "--image", str(image_folder / "1.png"), "--output",
                 str(tmp_path / "out"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert message in err and str(folder) in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_impossible_architecture_is_a_value_error():
    from vitpose_plus import VitPosePlusConfig

    with pytest.raises(ValueError, match=r"`hidden_size` \(30\) must be a multiple of `num_attention_heads` \(4\)"):
        VitPosePlusConfig(hidden_size=30, num_attention_heads=4)


def test_missing_local_model_folders_say_so(tmp_path, capsys):
    for command in (["predict", "--image", str(tmp_path), "--output", str(tmp_path / "o")],
                    ["evaluate", "--dataset", "coco", "--annotations", "a.json", "--images", "."]):
        assert main([command[0], "--model", str(tmp_path / "nope"), *command[1:]]) == 1
        assert f"No such model folder: '{tmp_path / 'nope'}'." in capsys.readouterr().err
        assert main([command[0], "--model", "models/vitpose-base", *command[1:]]) == 1  # could be a Hub id
        assert "No such model folder: 'models/vitpose-base' (HF_HUB_OFFLINE is set" in capsys.readouterr().err


def test_truncated_checkpoints_are_named_and_not_sent_to_unsafe_pickle(tmp_path, capsys):
    from helpers import make_original_state
    from safetensors.torch import save_file

    state = make_original_state(depth=1)
    pth = save_pth(state, tmp_path / "vitpose.pth")
    data = open(pth, "rb").read()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "vitpose.safetensors"))
    data = (tmp_path / "vitpose.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pth").write_bytes(b"")
    for name, message in [("cut.pth", "the file is truncated or not a PyTorch checkpoint"),
                          ("cut.safetensors", "the file is truncated or not a safetensors file"),
                          ("empty.pth", "the file is empty (0 bytes)"), ("missing.pth", "No such checkpoint file")]:
        assert main(["convert", "original", "--checkpoint", str(tmp_path / name), "--num-attention-heads", "12",
                     "--output", str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err
        assert name in err and message in err and "--allow-unsafe-pickle" not in err, err
    assert not (tmp_path / "out").exists()


def test_resume_from_a_damaged_checkpoint_names_it(tmp_path):
    config = write_config(tmp_path, datasets=_synthetic(), model={"overrides": ONE_DATASET_MODEL},
                          optimization={"max_steps": 4, "batch_size": 2}, runtime={"save_every": 2})
    assert train(load_training_config(config), progress=False, stop_after=2).step == 2
    checkpoint = tmp_path / "run" / "checkpoints" / "step_2"
    for name, damage, message in [
        ("trainer_state.json", lambda data: b"", r"trainer_state.json is unreadable or truncated"),
        ("model.safetensors", lambda data: data[: len(data) // 2], r"a file there is truncated or unreadable"),
        ("optimizer.bin", lambda data: data[: len(data) // 2], r"a file there is truncated or unreadable"),
    ]:
        original = (checkpoint / name).read_bytes()
        (checkpoint / name).write_bytes(damage(original))
        with pytest.raises(ValueError, match=rf"Cannot resume from '{checkpoint}'.*{message}.*delete that checkpoint"):
            train(load_training_config(config), resume=True, progress=False)
        (checkpoint / name).write_bytes(original)
    assert train(load_training_config(config), resume=True, progress=False).step == 4  # repaired: it resumes


def test_broken_training_images_fail_before_the_first_step_naming_the_file(tmp_path, capsys):
    from vitpose_plus.data.synthetic import make_synthetic_dataset

    annotations = make_synthetic_dataset("coco", 4, 0, tmp_path / "data", image_size=(96, 96))
    images = sorted((tmp_path / "data" / "images").iterdir())
    config = write_config(tmp_path, datasets=[{"name": "coco", "train": {"annotations": annotations,
                                                                        "images": str(tmp_path / "data")}}],
                          model={"overrides": ONE_DATASET_MODEL})
    data = images[1].read_bytes()
    for damaged, message in [(data[: len(data) // 2], "is truncated: its JPEG end-of-image marker is missing"),
                             (b"", "is empty (0 bytes)")]:
        images[1].write_bytes(damaged)
        assert main(["train", "--config", config, "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert f"1 of 4 images are missing or unreadable:\n  Image file '{images[1]}' {message}" in err
        assert os.listdir(tmp_path / "run") == [".lock"]


def test_unreadable_video_is_named(model_folder, tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    video.write_bytes(os.urandom(2000))
    assert main(["predict", "--model", str(model_folder), "--image", str(video), "--output", str(tmp_path / "out"),
                 "--no-progress"]) == 1
    assert f"Cannot open video file '{video}' (unsupported codec, corrupt or not a video)" in capsys.readouterr().err
    assert not (tmp_path / "out" / "clip.mp4").exists()


def test_publish_rejects_repo_ids_the_hub_rejects(model_folder, tmp_path, capsys):
    for repo_id, reason in [("acme/bad--name", "Cannot have -- or .. in repo_id"),
                            ("acme/name.", "The name cannot start or end with '-' or '.'")]:
        assert main(["publish", "--model", str(model_folder), "--repo-id", repo_id, "--output",
                     str(tmp_path / "hub")]) == 1
        err = capsys.readouterr().err
        assert f"--repo-id '{repo_id}' is not a valid Hub repository id" in err and reason in err
    assert not (tmp_path / "hub").exists()


# ================================================================================================ the test command
def test_fresh_processes_get_this_process_thread_settings(tmp_path, monkeypatch):
    """`OMP_NUM_THREADS=1 make test`: a fresh process that compares its floats with this one's at atol=0 must reduce
    in the same order, so it gets the environment and this process's torch thread count."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    script = "import os, torch\nprint(os.environ.get('OMP_NUM_THREADS'), torch.get_num_threads())\n"
    printed = run_without_package(script, tmp_path).stdout.split()
    assert printed == ["1", str(torch.get_num_threads())]
    assert math.isfinite(float(printed[1]))
    assert np.int64(printed[1]) >= 1
