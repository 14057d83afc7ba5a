"""`evaluate` metric module: COCO keypoint AP/AR with per-dataset sigmas, OKS-NMS and the dataset's protocol.

    import evaluate
    from vitpose_plus.evaluation import COCO_KEYPOINTS_METRIC_PATH
    metric = evaluate.load(COCO_KEYPOINTS_METRIC_PATH)
    metric.add_batch(predictions=[...], references=[...])   # one entry per image
    metric.compute(dataset="ap10k")   # or sigmas=[...]; protocol=... overrides the dataset's protocol

Each example is one image. A prediction holds that image's predicted instances (`keypoints`: per instance a flat
`[x, y, score] * K` list, `scores` after rescoring, `areas` = padded box areas for OKS-NMS); a reference holds its
ground-truth instances (`keypoints`: flat `[x, y, v] * K`, `bboxes` xywh, `areas`), all of one category. The scoring
is `vitpose_plus.evaluation.scoring.score_predictions` (the one `vitpose-plus evaluate` uses): OKS-NMS with the
original's tie order, then xtcocotools' rules (`use_area=False` for `aic`; per-part AP for `coco_wholebody`).
"""

from __future__ import annotations

import datasets
import evaluate

from vitpose_plus.data.specs import resolve_dataset_spec
from vitpose_plus.evaluation.ground_truth import load_ground_truth
from vitpose_plus.evaluation.protocols import resolve_protocol
from vitpose_plus.evaluation.scoring import score_predictions
from vitpose_plus.modeling.dataset_specs import KeypointDatasetSpec

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
    """COCO keypoint AP (xtcocotools' rules on pycocotools) with the dataset's own sigmas and protocol."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=__doc__,
            citation="Lin et al., Microsoft COCO: Common Objects in Context, ECCV 2014.",
            inputs_description=__doc__,
            features=_FEATURES,
        )

    def _compute(self, predictions, references, dataset: str | None = None, sigmas=None,
                 nms_threshold: float | None = 0.9, protocol: str | None = None):
        if sigmas is not None:
            spec = KeypointDatasetSpec(name=dataset or "custom", keypoint_names=[f"k{i}" for i in range(len(sigmas))],
                                       sigmas=tuple(sigmas))
        elif dataset is not None:
            spec = resolve_dataset_spec(dataset)
        else:
            raise ValueError("Pass dataset=<built-in name> or sigmas=[...] (one OKS sigma per keypoint).")
        proto = resolve_protocol(protocol, dataset or "")
        if proto.metric == "pckh":
            raise ValueError("The MPII protocol scores PCKh against mpii_gt_val.mat; use vitpose-plus evaluate.")
        key = "keypoints"
        images, annotations = [], []
        for reference in references:
            images.append({"id": reference["image_id"], "file_name": str(reference["image_id"])})
            for keypoints, bbox, area in zip(reference["keypoints"], reference["bboxes"], reference["areas"]):
                ann = {"id": len(annotations), "image_id": reference["image_id"], "category_id": 1,
                       "bbox": list(bbox), "area": float(area), "iscrowd": 0}
                if proto.metric == "coco_wholebody":  # the five part fields of the released format
                    from vitpose_plus.data.formats import WHOLEBODY_PARTS, wholebody_part_slices

                    for name, part_key, _, _ in WHOLEBODY_PARTS:
                        part = wholebody_part_slices()[name]
                        ann[part_key] = list(keypoints)[3 * part.start:3 * part.stop]
                else:
                    ann[key] = list(keypoints)
                annotations.append(ann)
        data = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "instance"}]}
        gt = load_ground_truth(data, proto, spec, source="references", read_image_sizes=False)
        records = []
        for prediction in predictions:
            for keypoints, score, area in zip(prediction["keypoints"], prediction["scores"], prediction["areas"]):
                records.append({"image_id": prediction["image_id"], "target_id": len(records), "category_id": 1,
                                "keypoints": list(keypoints), "score": float(score), "area": float(area)})
        return score_predictions(gt, records, nms_threshold).metrics
