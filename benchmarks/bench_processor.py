"""Per-box pre- and post-processing time: VitPosePlusImageProcessor vs transformers' VitPose processor.

transformers' processor needs scipy (its crop is `scipy.ndimage.affine_transform`, its DARK blur
`scipy.ndimage.gaussian_filter`); scipy is needed only for this comparison, not by vitpose-plus. The torchvision
backend of transformers' processor is not used (this project does not depend on torchvision): the comparison uses
its PIL/numpy backend `VitPoseImageProcessorPil`, which runs the same scipy code per box.

    python benchmarks/bench_processor.py [--boxes 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vitpose_plus.modeling.image_processing_vitpose_plus import VitPosePlusImageProcessor


def _best(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    image = (rng.random((480, 640, 3)) * 255).astype(np.uint8)
    xy = rng.uniform(0, 400, (args.boxes, 2))
    wh = rng.uniform(60, 220, (args.boxes, 2))
    boxes = [np.concatenate([xy, wh], 1).tolist()]
    heatmaps = torch.rand(args.boxes, 17, 64, 48)

    class Out:  # what post-processing reads from the model output
        pass

    out = Out()
    out.heatmaps = heatmaps

    ours = VitPosePlusImageProcessor()
    rows = [("ours (cv2 crop)", ours), ("ours (torch crop)", VitPosePlusImageProcessor(crop_backend="torch"))]
    times: dict[str, tuple[float, float]] = {}
    for name, proc in rows:
        pre = _best(lambda p=proc: p(image, boxes), args.repeats) / args.boxes
        post = _best(lambda p=proc: p.post_process_pose_estimation(out, boxes), args.repeats) / args.boxes
        times[name] = (pre, post)
    try:
        from transformers.models.vitpose.image_processing_pil_vitpose import VitPoseImageProcessorPil

        hf = VitPoseImageProcessorPil()
        pre = _best(lambda: hf(image, boxes=boxes, return_tensors="pt"), args.repeats) / args.boxes
        post = _best(lambda: hf.post_process_pose_estimation(out, boxes), args.repeats) / args.boxes
        times["transformers VitPose"] = (pre, post)
    except ImportError as err:
        print(f"transformers' processor unavailable ({err}); install scipy for the comparison.")
    ref = times.get("transformers VitPose")
    print(f"{args.boxes} boxes on a 640x480 image, 17 keypoints, best of {args.repeats}, 1 torch thread")
    print(f"{'processor':<22} {'pre ms/box':>11} {'post ms/box':>12} {'pre speed-up':>13} {'post speed-up':>14}")
    for name, (pre, post) in times.items():
        su_pre = f"{ref[0] / pre:.1f}x" if ref else "-"
        su_post = f"{ref[1] / post:.1f}x" if ref else "-"
        print(f"{name:<22} {pre * 1e3:>11.3f} {post * 1e3:>12.3f} {su_pre:>13} {su_post:>14}")


if __name__ == "__main__":
    main()
