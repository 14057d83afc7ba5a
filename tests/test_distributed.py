"""Several processes: `torchrun` with 2 CPU processes (gloo) trains exactly as 1 process with the same global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import torch
from test_train import final_weights, write_config

from vitpose_plus.training.config import load_training_config
from vitpose_plus.training.train import train

# BatchNorm-free (simple decoder), no drop path or dropout: with the same samples per optimizer step the only
# difference between 1 and 2 processes is the order of the float reduction of the gradients.
MODEL = {"image_size": [64, 48], "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
         "decoder_type": "simple", "drop_path_rate": 0.0}


def _config(tmp_path, batch_size: int) -> str:
    return write_config(
        tmp_path,
        runtime={"save_every": 6, "log_every": 1},
        model={"overrides": MODEL},
        optimization={"batch_size": batch_size, "max_steps": 6, "learning_rate": 2e-3, "warmup_steps": 2,
                      "schedule": "cosine"},
        datasets=[{"name": "coco", "synthetic": {"train_images": 12, "val_images": 0, "seed": 0,
                                                 "image_size": [96, 96]}}],
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    train(load_training_config(_config(tmp_path / "one", batch_size=8)), progress=False)

    config = _config(tmp_path / "two", batch_size=4)  # per process: 2 x 4 = the same global batch of 8
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(_free_port()), "-m", "vitpose_plus", "train", "--config", config, "--no-progress"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    one, two = _log(tmp_path / "one" / "run"), _log(tmp_path / "two" / "run")
    assert [r["step"] for r in two] == [1, 2, 3, 4, 5, 6]  # each line logged once (rank 0 only)
    assert [r["lr"] for r in two] == [r["lr"] for r in one]  # the schedule does not depend on the process count
    for a, b in zip(one, two):  # the logged loss is the mean over ranks = the 1-process batch mean
        assert abs(a["loss"] - b["loss"]) <= 1e-6 * max(1.0, abs(a["loss"])), (a, b)
    weights_one, weights_two = final_weights(tmp_path / "one" / "run"), final_weights(tmp_path / "two" / "run")
    assert weights_one.keys() == weights_two.keys()
    for name in weights_one:
        torch.testing.assert_close(weights_two[name], weights_one[name], atol=1e-5, rtol=0, msg=name)
