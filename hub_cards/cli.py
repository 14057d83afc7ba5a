"""The `vitpose-plus publish` command (registered by `vitpose_plus.cli`)."""

from __future__ import annotations

import argparse
import os

from vitpose_plus.cli import DefaultsFormatter


def _run_publish(args: argparse.Namespace) -> int:
    from .catalog_cards import CATALOG_VARIANTS
    from .publish import assemble_publish_folder, check_repo_id, push_folder, require_token

    repo_id = check_repo_id(args.repo_id)
    if args.variant is not None and args.variant not in CATALOG_VARIANTS:
        raise ValueError(f"--variant must be one of {list(CATALOG_VARIANTS)}, got {args.variant!r}.")
    if args.push:  # fail before the (possibly long) assembly when the upload cannot happen
        require_token(repo_id)
    output = args.output or os.path.join("hub_folders", repo_id.replace("/", "__"))
    files = assemble_publish_folder(
        args.model, output, repo_id, variant=args.variant, from_vitpose_plus=args.from_vitpose_plus,
        max_shard_size=args.max_shard_size, overwrite=args.overwrite,
    )
    print(f"assembled {output}: {', '.join(files)}")
    if args.push:
        url = push_folder(output, repo_id, private=args.private)
        print(f"pushed to https://huggingface.co/{repo_id} ({url})")
    else:
        print("not pushed (add --push to upload)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `publish` to the top-level parser's sub-parsers."""
    from .catalog_cards import CATALOG_VARIANTS

    publish = subparsers.add_parser(
        "publish", formatter_class=DefaultsFormatter,
        help="assemble a Hub-ready folder (and upload it with --push)",
        description="Assemble config.json (auto_map), remote code, safetensors, preprocessor_config.json and a "
        "README model card; upload with huggingface_hub only with --push.",
    )
    publish.add_argument("--model", required=True, help="vitpose-plus model folder")
    publish.add_argument("--repo-id", required=True, help="target Hub repository, org/name")
    publish.add_argument("--output", help="folder to assemble into (default: hub_folders/ORG__NAME)")
    publish.add_argument("--variant",
                         help=f"catalog variant for the card's paper results: {', '.join(CATALOG_VARIANTS)}")
    publish.add_argument(
        "--from-vitpose-plus", action="store_true", help="the model is a split of a ViTPose+ variant (for results)"
    )
    publish.add_argument("--private", action="store_true", help="create the repository as private")
    publish.add_argument("--push", action="store_true", help="upload with huggingface_hub (needs a token)")
    publish.add_argument("--max-shard-size", default="5GB", help="safetensors shard size")
    publish.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty output folder")
    publish.set_defaults(func=_run_publish)
