"""`evaluate` metric module: COCO keypoint AP/AR with per-dataset OKS sigmas and OKS-NMS.

    import evaluate
    from vitpose_plus.evaluation import COCO_KEYPOINTS_METRIC_PATH
    metric = evaluate.load(COCO_KEYPOINTS_METRIC_PATH)
    metric.add_batch(predictions=[...], references=[...])   # one entry per image
    metric.compute(dataset="ap10k")   # or sigmas=[...]

Each example is one image. A prediction holds that image's detected instances (`keypoints`: per instance a flat
`[x, y, score] * K` list, `scores`, `areas` = padded box areas for OKS-NMS); a reference holds its ground-truth
instances (`keypoints`: flat `[x, y, v] * K`, `bboxes` xywh, `areas`). The computation is
`vitpose_plus.evaluation.metrics` (the same functions `vitpose-plus evaluate` uses).
"""

from __future__ import annotations

import datasets
import evaluate

from vitpose_plus.evaluation.metrics import apply_oks_nms, coco_keypoint_ap
from vitpose_plus.modeling.dataset_specs import get_dataset_spec

_FEATURES = datasets.Features(
    {
        "predictions": {
            "image_id": datasets.Value("int64"),
            "keypoints": datasets.Sequence(datasets.Sequence(datasets.Value("float64"))),
            "scores": datasets.Sequence(datasets.Value("float64")),
            "areas": datasets.Sequence(datasets.Value("float64")),
        },
        "references": {
            "image_id": datasets.Value("int64"),
            "keypoints": datasets.Sequence(datasets.Sequence(datasets.Value("float64"))),
            "bboxes": datasets.Sequence(datasets.Sequence(datasets.Value("float64"))),
            "areas": datasets.Sequence(datasets.Value("float64")),
        },
    }
)


class CocoKeypoints(evaluate.Metric):
    """COCO keypoint AP (pycocotools) with the dataset's own sigmas."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=__doc__,
            citation="Lin et al., Microsoft COCO: Common Objects in Context, ECCV 2014.",
            inputs_description=__doc__,
            features=_FEATURES,
        )

    def _compute(self, predictions, references, dataset: str | None = None, sigmas=None,
                 nms_threshold: float | None = 0.9):
        if sigmas is None:
            if dataset is None:
                raise ValueError("Pass dataset=<built-in name> or sigmas=[...] (one OKS sigma per keypoint).")
            sigmas = get_dataset_spec(dataset).sigmas
        images, annotations, records = [], [], []
        for reference in references:
            image_id = reference["image_id"]
            images.append({"id": image_id})
            for keypoints, bbox, area in zip(reference["keypoints"], reference["bboxes"], reference["areas"]):
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                                    "keypoints": list(keypoints), "bbox": list(bbox), "area": float(area),
                                    "iscrowd": 0})
        for prediction in predictions:
            for keypoints, score, area in zip(prediction["keypoints"], prediction["scores"], prediction["areas"]):
                records.append({"image_id": prediction["image_id"], "keypoints": list(keypoints),
                                "score": float(score), "area": float(area)})
        if nms_threshold is not None:
            records = apply_oks_nms(records, sigmas, nms_threshold)
        ground_truth = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "instance"}]}
        return coco_keypoint_ap(ground_truth, records, sigmas, category_id=1)
