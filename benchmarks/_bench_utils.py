"""Shared options of the model benchmarks: `--device`, `--dtype bf16|fp16|fp32`, `--compile`, `--threads`, and a
timer that synchronises the device. Imported by the scripts in this folder (`python benchmarks/<script>.py`)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def add_runtime_arguments(parser: argparse.ArgumentParser, default_device: str = "cpu") -> None:
    parser.add_argument("--device", default=default_device, help="torch device, e.g. cpu, cuda, cuda:1")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="weights and inputs dtype")
    parser.add_argument("--compile", action="store_true", help="torch.compile every model variant first")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def runtime(args: argparse.Namespace) -> tuple[torch.device, torch.dtype]:
    """Apply `--threads`; the device and dtype to run on (a clear error for an absent device)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: this machine has no CUDA device.")
    return device, DTYPES[args.dtype]


def prepare(model: torch.nn.Module, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> Any:
    """`model` on the device and dtype, compiled with `--compile`; returns what to call."""
    model = model.to(device=device, dtype=dtype)
    return torch.compile(model) if args.compile else model


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds of one call of `fn`, the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def describe(args: argparse.Namespace, device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    return f"device {device} ({name}), {args.dtype}{', compiled' if args.compile else ''}, torch {torch.__version__}"
