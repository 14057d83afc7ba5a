"""`vitpose-plus predict` on files: an image, a folder of images or a video -> COCO keypoint results + pictures.

Nothing is lost and nothing is overwritten silently: the output folder may not be (or contain) the inputs, results
are written atomically as the run goes (`keypoints.json` is rewritten after every `flush_every` images and at the
end, also when the run stops on an error), unreadable images are skipped with a warning and listed (or stop the run
with `strict=True`), and every image gets a unique `image_id`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from ..file_io import atomic_write, read_image, write_json
from .detection import Boxes, boxes_for_image, load_boxes_file
from .drawing import draw_pose
from .pipeline import PosePipeline

if TYPE_CHECKING:
    from .bottom_up import BottomUpPipeline

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


@dataclass
class PredictionSummary:
    """What `predict_inputs` wrote: the results JSON, the pictures (or video), the counts and the skipped inputs."""

    results_file: str
    pictures: list[str]
    num_images: int
    num_instances: int
    skipped: list[tuple[str, str]] = field(default_factory=list)


def image_ids(paths: list[str]) -> list[int]:
    """Unique ids: the file stems when every stem is a distinct number (COCO files), else the positions."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    if all(stem.isdigit() for stem in stems) and len({int(s) for s in stems}) == len(stems):
        return [int(stem) for stem in stems]
    return list(range(len(paths)))


def _iter_frames(path: str) -> Iterator[tuple[int, np.ndarray]]:
    import cv2

    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(f"Cannot open video file {path!r} (unsupported codec, corrupt or not a video).")
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
        if index == 0:
            raise ValueError(f"Video file {path!r} has no readable frame.")
    finally:
        capture.release()


def _check_output_folder(input_path: str, output_dir: str, files: list[str]) -> None:
    """Refuse an output folder that is, or holds, the inputs: pictures would overwrite them."""
    out = os.path.realpath(output_dir)
    folder = os.path.realpath(input_path if os.path.isdir(input_path) else os.path.dirname(input_path) or ".")
    if out == folder:
        raise ValueError(f"--output {output_dir!r} is the folder of the inputs; the pictures would overwrite them. "
                         "Choose another output folder.")
    inputs = {os.path.realpath(f) for f in files}
    for path in files:
        stem = os.path.splitext(os.path.basename(path))[0]
        for ext in (".png", ".mp4"):
            if os.path.realpath(os.path.join(output_dir, stem + ext)) in inputs:
                raise ValueError(f"--output {output_dir!r}: writing {stem + ext} would overwrite an input.")


def predict_inputs(
    pipeline: PosePipeline | BottomUpPipeline,
    input_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    boxes_file: str | os.PathLike | None = None,
    box_format: str = "xywh",
    category_id: int = 1,
    keypoint_threshold: float = 0.3,
    strict: bool = False,
    progress: bool = True,
    flush_every: int = 50,
) -> PredictionSummary:
    """Run `pipeline` (top-down `PosePipeline` or `BottomUpPipeline`) on an image file, a folder of images or a
    video; write the results to `output_dir`.

    Writes `keypoints.json` (COCO keypoint results with `file_name`; `image_id` from `image_ids`, or the frame index
    for a video) and one `<stem>.png` skeleton picture per image (`<stem>.mp4` for a video).

    Args:
        strict: stop at the first unreadable image instead of skipping it.
        flush_every: rewrite `keypoints.json` after this many images.

    Raises:
        FileNotFoundError: when `input_path` does not exist.
        ValueError: for an output folder holding the inputs, a folder without images, an unreadable video, a malformed
            boxes file, a boxes file that names no box for an image, or (with `strict`) an unreadable image.
    """
    import cv2

    input_path, output_dir = os.fspath(input_path), os.fspath(output_dir)
    if not os.path.exists(input_path):
        raise FileNotFoundError(f"Input {input_path!r} does not exist (expected an image, a folder or a video).")
    is_video = os.path.isfile(input_path) and input_path.lower().endswith(VIDEO_EXTENSIONS)
    if os.path.isdir(input_path):
        files = sorted(os.path.join(input_path, n) for n in os.listdir(input_path) if n.lower().endswith(
            IMAGE_EXTENSIONS))
        if not files:
            raise ValueError(f"Folder {input_path!r} has no image ({', '.join(IMAGE_EXTENSIONS)}).")
    else:
        files = [input_path]
    _check_output_folder(input_path, output_dir, files)
    table = load_boxes_file(boxes_file, box_format) if boxes_file is not None else None
    os.makedirs(output_dir, exist_ok=True)
    results_file = os.path.join(output_dir, "keypoints.json")
    records: list[dict[str, Any]] = []
    pictures: list[str] = []
    skipped: list[tuple[str, str]] = []
    num_images = 0

    def boxes_of(path: str) -> Boxes | None:
        if table is None:
            return None
        found = boxes_for_image(table, path)
        if found is None:
            raise ValueError(
                f"boxes file {os.fspath(boxes_file)!r} has no entry for image {os.path.basename(path)!r}; "
                f"its keys are {sorted(k for k in table if k is not None)[:10]}."
            )
        return found

    try:
        if is_video:
            stem = os.path.splitext(os.path.basename(input_path))[0]
            video_path = os.path.join(output_dir, f"{stem}.mp4")
            partial_path = os.path.join(output_dir, f".{stem}.partial.mp4")  # renamed once complete
            capture = cv2.VideoCapture(input_path)
            fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
            total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
            capture.release()
            writer = None
            try:
                for index, frame in tqdm(_iter_frames(input_path), total=total, desc="predict", unit="frame",
                                         disable=not progress):
                    instances = pipeline.predict([frame], [boxes_of(input_path)])[0]
                    records.extend({**inst.to_coco(index, category_id), "file_name": f"{stem}#{index}"}
                                   for inst in instances)
                    picture = draw_pose(frame, instances, pipeline.spec, keypoint_threshold=keypoint_threshold)
                    if writer is None:
                        height, width = frame.shape[:2]
                        writer = cv2.VideoWriter(partial_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
                        if not writer.isOpened():
                            raise OSError(f"Cannot write the video {video_path!r} (OpenCV has no mp4v encoder?).")
                    writer.write(cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
                    num_images += 1
            except BaseException:  # no half-written video under the final name
                if writer is not None:
                    writer.release()
                with contextlib.suppress(OSError):
                    os.remove(partial_path)
                raise
            writer.release()
            os.replace(partial_path, video_path)
            pictures.append(video_path)
        else:
            for image_id, path in tqdm(list(zip(image_ids(files), files)), desc="predict", unit="img",
                                       disable=not progress or len(files) == 1):
                try:
                    image = read_image(path)
                except (ValueError, OSError) as err:
                    if strict:
                        raise
                    logger.warning("skipping %s: %s", path, err)
                    skipped.append((path, str(err)))
                    continue
                try:
                    instances = pipeline.predict([image], [boxes_of(path)])[0]
                except ValueError as err:  # e.g. a box outside the image: say which image
                    raise ValueError(f"{path}: {err}") from err
                records.extend({**inst.to_coco(image_id, category_id), "file_name": os.path.basename(path)}
                               for inst in instances)
                picture = draw_pose(image, instances, pipeline.spec, keypoint_threshold=keypoint_threshold)
                out = os.path.join(output_dir, os.path.splitext(os.path.basename(path))[0] + ".png")
                encoded, png = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
                if not encoded:
                    raise OSError(f"Cannot encode the picture {out!r}.")
                with atomic_write(out, "wb") as handle:  # a full disk or a kill never leaves a truncated picture
                    handle.write(png.tobytes())
                pictures.append(out)
                num_images += 1
                if num_images % flush_every == 0:
                    write_json(results_file, records, indent=None)
    finally:  # the results so far survive an error in a later image
        write_json(results_file, records, indent=None)
    return PredictionSummary(results_file, pictures, num_images, len(records), skipped)


__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "PredictionSummary", "image_ids", "predict_inputs"]
