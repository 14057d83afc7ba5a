"""The `vitpose-plus` console command (also `python -m vitpose_plus`, which `accelerate launch -m vitpose_plus` uses).

Each command group lives in the CLI module of its package, which exposes `register(subparsers)`: it adds its
parser(s) and sets `func` (a callable taking the parsed `argparse.Namespace` and returning an exit status) with
`set_defaults`. To add a group, append its module to `COMMAND_MODULES`; the module imports heavy dependencies inside
its handlers only. argparse lives only in these CLI modules; library functions take plain arguments.

Exit status: 0 on success, 1 when the command fails with a user-facing error (printed to stderr without a traceback;
`--debug` shows it), 2 for usage errors (argparse).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

#: Modules that register a command group, in `--help` order.
COMMAND_MODULES: list[str] = [
    "vitpose_plus.conversion.cli",
    "vitpose_plus.training.cli",
    "vitpose_plus.evaluation.cli",
    "vitpose_plus.inference.cli",
    "vitpose_plus.hub_cards.cli",
]

#: Exceptions reported as a one-line error instead of a traceback.
_USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, KeyError, AssertionError,
                RuntimeError, OSError)


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help that shows every option's default and keeps descriptions as written. Options without a value (None),
    flags (off by default) and helps that already state their default are left as they are."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def parse_assignments(items: Sequence[str], flag: str = "--set") -> dict[str, Any]:
    """`["KEY=VALUE", ...]` -> `{KEY: VALUE}` with YAML values (`1e-3` is a number, `[384, 288]` a list)."""
    from .file_io import parse_yaml

    values: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} expects KEY=VALUE, got {item!r}.")
        values[key.strip()] = parse_yaml(value, f"{flag} {key}") if value.strip() else ""
    return values


def dataset_value(value: str) -> int | str:
    """A `--dataset` value: an index (`"3"`) or a name (`"ap10k"`)."""
    return int(value) if value.strip().lstrip("-").isdigit() else value


def dataset_argument(parser: argparse.ArgumentParser, required: bool = False, help_suffix: str = "") -> None:
    """The shared `--dataset` option: one of the model's datasets, by name or index."""
    parser.add_argument("--dataset", required=required, type=dataset_value,
                        help="the model's dataset, by name (e.g. ap10k) or index (e.g. 3)" + help_suffix)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered command group."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="vitpose-plus",
        description="ViTPose / ViTPose+ for Hugging Face Transformers: conversion, training, evaluation, inference.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO level)")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `vitpose-plus`; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except _USER_ERRORS as err:
        if args.debug:
            raise
        print(f"vitpose-plus {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
