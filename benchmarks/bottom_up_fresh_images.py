"""Score a synthetic bottom-up run's model on freshly rendered images of another seed.

A synthetic run evaluates on its own 100 held-out images, the images its recipe was compared on. This renders `--images`
new ones with the run's own synthetic settings (keypoint layout, image size, figures per image) but a seed used by
neither split, and evaluates the run's model on them with the COCO protocol at the run's test scales and at scale 1:
an estimate of the model's AP with neither selection on, nor the noise of, 100 images. Usage:

    python benchmarks/bottom_up_fresh_images.py --run runs/synthetic-bottom-up --images 500 --seed 8000001
"""

from __future__ import annotations

import argparse
import os

from vitpose_plus.data.synthetic import make_synthetic_dataset
from vitpose_plus.evaluation.bottom_up import evaluate_bottom_up
from vitpose_plus.file_io import load_model_folder
from vitpose_plus.modeling import VitPosePlusBottomUpImageProcessor
from vitpose_plus.training.config import TrainingConfig, read_config_file
from vitpose_plus.training.train import resolve_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="the output folder of a synthetic bottom-up `vitpose-plus train`")
    parser.add_argument("--images", type=int, default=500, help="how many fresh images to render")
    parser.add_argument("--seed", type=int, default=8_000_001,
                        help="their seed (not one of the run's split seeds)")
    parser.add_argument("--dataset", type=int, default=0, help="index of the run's synthetic dataset")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    # the run's saved config as written (its split paths are the run's, relative to where it ran)
    saved = os.path.join(args.run, "training_config.yaml")
    config = read_config_file(saved, None, TrainingConfig, {}, saved, "run config")
    dataset = config.datasets[args.dataset]
    synthetic = dataset.synthetic
    if synthetic is None:
        raise SystemExit(f"{args.run}: datasets[{args.dataset}] ({dataset.name!r}) is not a synthetic dataset.")
    if args.seed in synthetic.split_seeds.values():
        raise SystemExit(f"--seed {args.seed} is a seed of the run's own splits {synthetic.split_seeds}; pick another.")
    folder = os.path.join(args.run, "data", dataset.name, f"fresh-{args.images}-{args.seed}")
    annotations = os.path.join(folder, "annotations.json")
    if not os.path.exists(annotations):
        make_synthetic_dataset(resolve_spec(dataset), args.images, args.seed, folder, image_size=synthetic.image_size,
                               max_instances=synthetic.max_instances, progress=True)

    model_dir = os.path.join(args.run, "model")
    model = load_model_folder(model_dir)
    processor = VitPosePlusBottomUpImageProcessor.from_pretrained(model_dir)
    run_scales = tuple(float(s) for s in config.bottom_up.eval_scales)
    print("| images (seed) | test scales | AP | AP50 | AP75 | AR |\n|---|---|---|---|---|---|")
    for scales in dict.fromkeys([run_scales, (1.0,)]):
        result = evaluate_bottom_up(model, processor, annotations, folder, args.dataset, batch_size=args.batch_size,
                                    flip_test=config.runtime.flip_test, scale_factors=scales, progress=False)
        m = result.metrics
        print(f"| {args.images} ({args.seed}) | {' / '.join(f'{s:g}' for s in scales)} | {m['AP']:.3f} | "
              f"{m['AP50']:.3f} | {m['AP75']:.3f} | {m['AR']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
