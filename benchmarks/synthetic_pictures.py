"""The README's picture of a synthetic run: held-out predictions of its model, eight images in a 2x4 grid.

Top-down models predict in the ground-truth boxes of the held-out annotations (as the run's evaluation does);
bottom-up models take the whole images (persons drawn from `--min-score` up). The learning curve the run drew is
copied beside it. Usage:

    python benchmarks/synthetic_pictures.py --run runs/synthetic-bottom-up --name synthetic_bottom_up --output docs
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil

import cv2
import numpy as np

from vitpose_plus.file_io import load_model_folder, read_image
from vitpose_plus.inference import BottomUpPipeline, PosePipeline
from vitpose_plus.modeling import VitPosePlusForBottomUpPoseEstimation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="the output folder of a synthetic `vitpose-plus train` run")
    parser.add_argument("--name", required=True, help="file-name prefix of the pictures")
    parser.add_argument("--output", default="docs")
    parser.add_argument("--dataset", default="coco", help="which synthetic dataset's held-out images")
    parser.add_argument("--min-score", type=float, default=0.2,
                        help="draw bottom-up persons of at least this grouping score (evaluation keeps them all)")
    args = parser.parse_args()

    (annotations,) = glob.glob(os.path.join(args.run, "data", args.dataset, "val-*", "annotations.json"))
    data = json.load(open(annotations))
    root = os.path.dirname(annotations)
    model_dir = os.path.join(args.run, "model")
    bottom_up = isinstance(load_model_folder(model_dir), VitPosePlusForBottomUpPoseEstimation)
    pipe = BottomUpPipeline.from_pretrained(model_dir) if bottom_up else \
        PosePipeline.from_pretrained(model_dir, dataset=args.dataset)
    tiles = []
    for image in data["images"][:8]:
        pixels = read_image(os.path.join(root, image["file_name"]))
        if bottom_up:
            people = [person for person in pipe(pixels) if person.score >= args.min_score]
        else:
            boxes = [a["bbox"] for a in data["annotations"] if a["image_id"] == image["id"] and a["num_keypoints"]]
            people = pipe(pixels, boxes=boxes)
        tiles.append(pipe.draw(pixels, people))
    grid = np.concatenate([np.concatenate(tiles[i:i + 4], axis=1) for i in (0, 4)], axis=0)
    os.makedirs(args.output, exist_ok=True)
    picture = os.path.join(args.output, f"{args.name}_predictions.png")
    cv2.imwrite(picture, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    shutil.copy(os.path.join(args.run, "learning_curve.png"), os.path.join(args.output,
                                                                          f"{args.name}_learning_curve.png"))
    print(f"wrote {picture} and {args.name}_learning_curve.png")


if __name__ == "__main__":
    main()
