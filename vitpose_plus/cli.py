"""The `vitpose-plus` console command.

Each command group lives in its own module, which exposes `register(subparsers)`: it adds its parser(s) to the
top-level sub-parsers and sets `func` (a callable taking the parsed `argparse.Namespace` and returning an exit
status) with `set_defaults`. To add a group (train, evaluate, predict, publish, export), append its module to
`COMMAND_MODULES`; the module should import heavy dependencies inside its handlers only.

Exit status: 0 on success, 1 when the command fails with a user-facing error (printed to stderr without a traceback;
`--debug` shows it), 2 for usage errors (argparse).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

#: Modules that register a command group, in `--help` order.
COMMAND_MODULES: list[str] = [
    "vitpose_plus.conversion.cli",
    "vitpose_plus.training.cli",
    "vitpose_plus.inference.cli",
    "vitpose_plus.conversion.export_cli",
]

#: Exceptions reported as a one-line error instead of a traceback.
_USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, KeyError, AssertionError, RuntimeError, OSError)


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
