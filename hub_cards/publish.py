"""`vitpose-plus publish`: assemble a Hub-ready folder from a model folder and (with `--push`) upload it.

The folder holds `config.json` with `auto_map`, the modeling code files `trust_remote_code` needs (model, config,
image processor and their helpers), safetensors weights, `preprocessor_config.json` and a README rendered from
`hub_cards/`. It loads with `AutoModelForPoseEstimation` / `AutoImageProcessor` and `trust_remote_code=True` in a
process that never installed `vitpose_plus`.
"""

from __future__ import annotations

import logging
import os

from ..file_io import load_model_folder, save_model_folder
from .cards import ModelCardInfo, card_info_for_model, validate_model_card
from .catalog_cards import CATALOG_VARIANTS

logger = logging.getLogger(__name__)

#: The model files every trust_remote_code folder holds (the modeling folder is self-contained).
MODEL_CODE_FILES = (
    "configuration_vitpose_plus.py",
    "modeling_vitpose_plus.py",
    "image_processing_vitpose_plus.py",
    "keypoint_codecs.py",
    "dataset_specs.py",
    "catalog.py",
)
#: Code files of a top-down folder: the model's and its keypoint-detection pipeline with what that pipeline runs.
REMOTE_CODE_FILES = MODEL_CODE_FILES + ("pipeline_vitpose_plus.py", "top_down.py", "person_detection.py")
#: Code files a trust_remote_code MAE pre-training folder (`vitpose-plus pretrain`) holds: the pose model's files, whose
#: backbone the MAE encoder is, plus the MAE config and model.
MAE_REMOTE_CODE_FILES = REMOTE_CODE_FILES + ("configuration_vitpose_plus_mae.py", "modeling_vitpose_plus_mae.py")
#: Code files of a bottom-up (associative embedding) folder: the top-down model files its classes build on, and its
#: own (it ships no keypoint-detection pipeline: that pipeline crops boxes).
BOTTOM_UP_REMOTE_CODE_FILES = MODEL_CODE_FILES + (
    "configuration_vitpose_plus_bottom_up.py",
    "modeling_vitpose_plus_bottom_up.py",
    "image_processing_vitpose_plus_bottom_up.py",
    "bottom_up_codec.py",
    "bottom_up_grouping.py",
)


def remote_code_files(model) -> tuple[str, ...]:
    """The code files a `trust_remote_code` folder of `model` must hold."""
    from ..modeling import VitPosePlusForBottomUpPoseEstimation, VitPosePlusForMaskedImageModeling

    if isinstance(model, VitPosePlusForBottomUpPoseEstimation):
        return BOTTOM_UP_REMOTE_CODE_FILES
    if isinstance(model, VitPosePlusForMaskedImageModeling):
        return MAE_REMOTE_CODE_FILES
    return REMOTE_CODE_FILES


def check_repo_id(repo_id: str) -> str:
    """`repo_id` if the Hub accepts it as `org/name` (huggingface_hub's own rules); `ValueError` otherwise."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ValueError(f"--repo-id must look like 'org/name', got {repo_id!r}.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"--repo-id {repo_id!r} is not a valid Hub repository id: {err}") from err
    return repo_id


def require_token(repo_id: str, token: str | None = None) -> str:
    """The Hugging Face token to push with; `RuntimeError` (before any network call) when there is none."""
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise RuntimeError(
            f"Cannot push to {repo_id!r}: no Hugging Face token. Run `hf auth login` or set HF_TOKEN, "
            "or leave out --push to only assemble the folder."
        )
    return token


def _card_info(model, repo_id: str, variant: str | None, from_vitpose_plus: bool, source: str) -> ModelCardInfo:
    config = model.config
    if variant is not None and variant not in CATALOG_VARIANTS:
        raise ValueError(f"--variant must be one of {list(CATALOG_VARIANTS)}, got {variant!r}.")
    kind = "ViTPose+" if config.num_experts > 1 else "ViTPose"
    names = ", ".join(config.dataset_names)
    if config.num_experts > 1:
        description = (
            f"{kind} pose estimation model (mixture-of-experts feed-forward layers, one expert and one keypoint head "
            f"per dataset) for the datasets {names}."
        )
    else:
        description = f"{kind} pose estimation model (plain ViT backbone, one keypoint head per dataset) for {names}."
    return card_info_for_model(
        model,
        title=repo_id.split("/", 1)[1],
        description=description,
        preset=variant,
        from_vitpose_plus=from_vitpose_plus,
        provenance=[f"Published with `vitpose-plus publish` from the model folder `{os.path.basename(source)}`."],
        repo_id=repo_id,
    )


def assemble_publish_folder(
    model_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    repo_id: str,
    variant: str | None = None,
    from_vitpose_plus: bool = False,
    max_shard_size: str | int = "5GB",
    overwrite: bool = False,
) -> list[str]:
    """Write the Hub folder of `model_dir` into `output_dir`; returns its file names.

    Args:
        model_dir: a vitpose-plus model folder (or Hub id).
        output_dir: folder to fill (created).
        repo_id: `org/name` target repository (used in the card's usage snippets).
        variant: catalog variant (e.g. `vitpose-plus-base`) whose paper results go into the card's model-index.
        from_vitpose_plus: the model is a single-dataset split of a ViTPose+ variant (for the results).

    Raises:
        ValueError: for a malformed repo id, an unknown variant or an invalid card.
        RuntimeError: when a file `trust_remote_code` needs is missing from the written folder.
    """
    check_repo_id(repo_id)
    model = load_model_folder(model_dir)
    info = _card_info(model, repo_id, variant, from_vitpose_plus, os.fspath(model_dir))
    files = save_model_folder(model, output_dir, card=info, max_shard_size=max_shard_size, overwrite=overwrite)
    with open(os.path.join(output_dir, "README.md"), encoding="utf-8") as handle:
        validate_model_card(handle.read(), source=repo_id)
    missing = [name for name in (*remote_code_files(model), "config.json", "preprocessor_config.json")
               if name not in files]
    if missing:
        raise RuntimeError(f"{output_dir}: the assembled folder lacks {missing}; it would not load remotely.")
    if not any(name.endswith(".safetensors") for name in files):
        raise RuntimeError(f"{output_dir}: no safetensors weights were written.")
    return files


def push_folder(folder: str | os.PathLike, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Create `repo_id` (if needed) and upload `folder` to it; returns the commit URL.

    Raises:
        RuntimeError: without a Hugging Face token (checked before any network call), or when the Hub cannot be
            reached or refuses the upload (naming the repository).
    """
    from huggingface_hub import HfApi

    check_repo_id(repo_id)
    api = HfApi(token=require_token(repo_id, token))
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=os.fspath(folder), commit_message="Upload with vitpose-plus publish"
        )
    except Exception as err:  # network, auth and Hub errors come in many types
        raise RuntimeError(f"Cannot push to {repo_id!r}: {type(err).__name__}: {err}") from err
    return str(getattr(commit, "commit_url", commit))
