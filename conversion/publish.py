"""`vitpose-plus publish`: assemble a Hub-ready folder from a model folder and (with `--push`) upload it.

The folder holds `config.json` with `auto_map`, the modeling code files `trust_remote_code` needs (model, config,
image processor and their helpers), safetensors weights, `preprocessor_config.json` and a README rendered from
`hub_cards/`. It loads with `AutoModelForPoseEstimation` / `AutoImageProcessor` and `trust_remote_code=True` in a
process that never installed `vitpose_plus`.
"""

from __future__ import annotations

import argparse
import logging
import os
import re

from ..file_io import load_model_folder
from .hub_folder import save_hub_folder
from .model_card import CATALOG_VARIANTS, ModelCardInfo, card_info_for_model, validate_model_card

logger = logging.getLogger(__name__)

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
#: Code files a trust_remote_code folder must hold (the modeling folder is self-contained).
REMOTE_CODE_FILES = (
    "configuration_vitpose_plus.py",
    "modeling_vitpose_plus.py",
    "image_processing_vitpose_plus.py",
    "keypoint_codecs.py",
    "dataset_specs.py",
)


def check_repo_id(repo_id: str) -> str:
    """`repo_id` if it looks like `org/name`; `ValueError` otherwise."""
    if not _REPO_ID.match(repo_id or ""):
        raise ValueError(f"--repo-id must look like 'org/name' (letters, digits, '.', '_', '-'), got {repo_id!r}.")
    return repo_id


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
    files = save_hub_folder(model, output_dir, card=info, max_shard_size=max_shard_size)
    validate_model_card(open(os.path.join(output_dir, "README.md"), encoding="utf-8").read(), source=repo_id)
    missing = [name for name in (*REMOTE_CODE_FILES, "config.json", "preprocessor_config.json") if name not in files]
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
    from huggingface_hub import HfApi, get_token

    check_repo_id(repo_id)
    token = token or get_token()
    if not token:
        raise RuntimeError(
            f"Cannot push to {repo_id!r}: no Hugging Face token. Run `hf auth login` or set HF_TOKEN, "
            "or leave out --push to only assemble the folder."
        )
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=os.fspath(folder), commit_message="Upload with vitpose-plus publish"
        )
    except Exception as err:  # network, auth and Hub errors come in many types
        raise RuntimeError(f"Cannot push to {repo_id!r}: {type(err).__name__}: {err}") from err
    return str(getattr(commit, "commit_url", commit))


def run(args: argparse.Namespace) -> int:
    """The `publish` command."""
    repo_id = check_repo_id(args.repo_id)
    if args.push:  # fail before the (possibly long) assembly when the upload cannot happen
        from huggingface_hub import get_token

        if not get_token():
            raise RuntimeError(
                f"Cannot push to {repo_id!r}: no Hugging Face token. Run `hf auth login` or set HF_TOKEN, "
                "or leave out --push to only assemble the folder."
            )
    output = args.output or os.path.join("hub_folders", repo_id.replace("/", "__"))
    files = assemble_publish_folder(
        args.model, output, repo_id, variant=args.variant, from_vitpose_plus=args.from_vitpose_plus,
        max_shard_size=args.max_shard_size,
    )
    print(f"assembled {output}: {', '.join(files)}")
    if args.push:
        url = push_folder(output, repo_id, private=args.private)
        print(f"pushed to https://huggingface.co/{repo_id} ({url})")
    else:
        print("not pushed (add --push to upload)")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="vitpose-plus model folder")
    parser.add_argument("--repo-id", required=True, help="target Hub repository, org/name")
    parser.add_argument("--output", help="folder to assemble into (default: hub_folders/ORG__NAME)")
    parser.add_argument(
        "--variant", help=f"catalog variant for the card's paper results: {', '.join(CATALOG_VARIANTS)}"
    )
    parser.add_argument(
        "--from-vitpose-plus", action="store_true", help="the model is a split of a ViTPose+ variant (for results)"
    )
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--push", action="store_true", help="upload with huggingface_hub (needs a token)")
    parser.add_argument("--max-shard-size", default="5GB")
