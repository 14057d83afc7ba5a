"""Bottom-up evaluation of a model on a dataset file, as the original's `BottomUpCocoDataset.evaluate`.

`evaluate_bottom_up` runs, beside the top-down `evaluate_keypoints` and with the same ground truth and scoring:

1. `prepare_bottom_up_split`: the file in its released format (`load_ground_truth`, the dataset's protocol); every
   image of the file is evaluated (the original's test mode keeps images without annotations too), no boxes;
2. `predict_bottom_up_split` (the "make records" half): whole images through the shared `BottomUpPredictor` (the
   test resize, flip test, optional test scales and the original's grouping); one record per grouped person, with
   the person score of the grouping (no rescoring) and the keypoint-box area `(max x - min x)(max y - min y)`;
3. `score_bottom_up_split` (the "score records" half): `scoring.score_predictions` without OKS-NMS by default (the
   original's AE configs set `use_nms=False`), then the protocol's COCO metric (the result area comes from the
   keypoints, as xtcocotools' and pycocotools' `loadRes` compute it).

Every person gets the file's first category (the original writes its results with the first class); records carry
`target_id = (image_id, person index)`, so several processes can each predict a share of the images.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from vitpose_plus.file_io import decode_image
from vitpose_plus.modeling import VitPosePlusBottomUpImageProcessor
from vitpose_plus.modeling.bottom_up_predictor import BottomUpPrediction, BottomUpPredictor

from .evaluate import EvaluationResult, PreparedSplit, score_split
from .ground_truth import load_ground_truth
from .protocols import EvaluationProtocol, resolve_protocol
from .scoring import ScoreResult

logger = logging.getLogger(__name__)


def prepare_bottom_up_split(
    model: Any,
    annotation_file: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset: int | str,
    protocol: str | EvaluationProtocol | None = None,
) -> PreparedSplit:
    """The ground truth of a split for bottom-up evaluation (no crop targets: whole images).

    Raises:
        ValueError: for a protocol that is not scored with OKS (MPII's PCKh needs annotated crops).
    """
    spec = model.config.dataset_spec(dataset)
    proto = resolve_protocol(protocol, spec.name)
    if proto.metric == "pckh" or proto.annotated_crops:
        raise ValueError(f"Protocol {proto.name!r} evaluates annotated person crops (PCKh); bottom-up evaluation "
                         "scores whole images with COCO-style OKS AP (use a COCO-style protocol).")
    gt = load_ground_truth(annotation_file, proto, spec, image_root)
    if len(gt.category_ids) > 1:
        logger.warning("%s has %d categories; every bottom-up person is scored as category %d (the original writes "
                       "bottom-up results with the first class).", gt.annotation_file, len(gt.category_ids),
                       gt.category_ids[0])
    return PreparedSplit(spec.name, proto, gt, [])


def bottom_up_record(image_id: int, person_index: int, category_id: int, person: BottomUpPrediction
                     ) -> dict[str, Any]:
    """The prediction record of one grouped person (see `vitpose_plus.evaluation.records`)."""
    record = person.to_coco(image_id, category_id)
    record.update(target_id=(image_id, person_index), area=person.area)
    return record


def predict_bottom_up_split(
    model: Any,
    processor: VitPosePlusBottomUpImageProcessor,
    annotation_file: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset: int | str,
    batch_size: int = 8,
    flip_test: bool = True,
    scale_factors: Sequence[float] = (1.0,),
    progress: bool = True,
    shard: tuple[int, int] = (0, 1),
    protocol: str | EvaluationProtocol | None = None,
) -> tuple[PreparedSplit, list[dict[str, Any]]]:
    """`prepare_bottom_up_split`, then the records of this process's share of the images (`shard = (rank, world)`:
    every `world`-th image id from `rank`, in sorted order).

    Args:
        model: a `VitPosePlusForBottomUpPoseEstimation` (or an oracle `BottomUpPredictor` accepts).
        processor: its bottom-up processor (the grouping settings saved with the model).
        dataset: the model's dataset (name or index) whose expert, head and keypoint layout are used.
        batch_size: images per forward pass; flip_test, scale_factors: the test-time augmentation.
    """
    prepared = prepare_bottom_up_split(model, annotation_file, image_root, dataset, protocol)
    gt = prepared.ground_truth
    rank, world = shard
    image_ids = sorted(gt.image_paths)[rank::world]
    predictor = BottomUpPredictor(model, processor, batch_size=batch_size, flip_test=flip_test,
                                  scale_factors=scale_factors)
    items = ((image_id, lambda image_id=image_id: decode_image(gt.image_paths[image_id],
                                                                   context=f"image id {image_id}"))
             for image_id in image_ids)
    category = gt.category_ids[0]
    records: list[dict[str, Any]] = []
    stream = predictor.predict_iter(items, dataset)
    for image_id, persons in tqdm(stream, total=len(image_ids), desc="evaluate", disable=not progress, unit="img"):
        records.extend(bottom_up_record(image_id, i, category, person) for i, person in enumerate(persons))
    return prepared, records


def score_bottom_up_split(prepared: PreparedSplit, records: Sequence[dict[str, Any]],
                          nms_threshold: float | None = None) -> ScoreResult:
    """The protocol's metrics of bottom-up records (from one process or gathered from several); OKS-NMS only when
    `nms_threshold` is given."""
    return score_split(prepared, records, nms_threshold)


def evaluate_bottom_up(
    model: Any,
    processor: VitPosePlusBottomUpImageProcessor,
    annotation_file: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset: int | str,
    batch_size: int = 8,
    flip_test: bool = True,
    scale_factors: Sequence[float] = (1.0,),
    nms_threshold: float | None = None,
    progress: bool = True,
    protocol: str | EvaluationProtocol | None = None,
) -> EvaluationResult:
    """Evaluate a bottom-up `model` on one dataset file as the original (see the module docstring).

    Args:
        annotation_file: the ground truth in its released format; images are read from `image_root/file_name`.
        dataset: the model's dataset (name or index) the file is evaluated with.
        nms_threshold: OKS-NMS threshold over each image's persons (`None`, the default: none, as the original).
        protocol: a COCO-style `protocols.PROTOCOLS` name; defaults from the dataset name.
    """
    prepared, records = predict_bottom_up_split(model, processor, annotation_file, image_root, dataset, batch_size,
                                                flip_test, scale_factors, progress, protocol=protocol)
    scored = score_bottom_up_split(prepared, records, nms_threshold)
    return EvaluationResult(dataset=prepared.dataset, metrics=scored.metrics, predictions=scored.kept,
                            num_boxes=len(records), protocol=prepared.protocol.name, results=scored.results)


__all__ = ["bottom_up_record", "evaluate_bottom_up", "predict_bottom_up_split", "prepare_bottom_up_split",
           "score_bottom_up_split"]
