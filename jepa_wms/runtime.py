"""Device, precision, threads and distributed set-up shared by training, evaluation and benchmarks."""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (the GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``; anything else is a ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:  # torch's message lists a dozen backends this project does not run on
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available (use device=cpu)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} was requested but this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 matrix units (AVX512-BF16 or AMX), where autocast pays off."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_dtype(precision: str, device: torch.device, training: bool) -> torch.dtype:
    """``auto`` → bf16 autocast on GPUs that support it; on CPUs with bf16 units only for inference (planning):
    there bf16 rollouts run ~1.7× faster, while training the small conv encoder measured slower than in fp32."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_bf16() and not training else torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def seeded_generator(*seed_parts: int) -> torch.Generator:
    """A CPU generator whose seed depends only on ``seed_parts`` (e.g. (seed, step) or (seed, episode))."""
    g = torch.Generator()
    mixed = 0
    for part in seed_parts:
        mixed = (mixed * 1_000_003 + int(part) + 0x9E3779B9) % (2**63 - 1)
    g.manual_seed(mixed)
    return g


def dist_info() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) when not distributed."""
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


# An evaluation's ranks meet only to start and to merge: the slowest may still be planning hours after the fastest.
EVAL_TIMEOUT = datetime.timedelta(hours=24)


@contextlib.contextmanager
def distributed(device: torch.device, timeout: datetime.timedelta | None = None) -> Iterator[tuple[int, int]]:
    """Initialise a process group under torchrun (NCCL on GPU, Gloo on CPU) and tear it down afterwards. Inside
    another ``distributed`` block it joins the group already there: an evaluation of several checkpoints holds one
    group, and each evaluation in it runs on that group. ``timeout``: how long a collective waits for the slowest
    rank (torch's default, 30 min, when None)."""
    rank, world, local_rank = dist_info()
    if world == 1:
        yield 0, 1
        return
    if torch.distributed.is_initialized():
        yield torch.distributed.get_rank(), torch.distributed.get_world_size()
        return
    if device.type == "cuda":
        # One GPU per process: `device` ("cuda") then means this rank's GPU.
        torch.cuda.set_device(local_rank)
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    try:
        yield rank, world
    finally:
        torch.distributed.destroy_process_group()


def on_rank0(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and give every rank its result, or raise its exception on every rank: the other
    ranks wait for rank 0 instead of racing it, and a refusal (a locked folder, other settings) stops them all with
    the same one-line error rather than leaving them blocked at the next collective. Outside a process group it
    just calls ``fn``."""
    if not torch.distributed.is_initialized():
        return fn()
    box: list[Any] = [None]
    if torch.distributed.get_rank() == 0:
        try:
            box[0] = (True, fn())
        except Exception as exc:  # sent to the other ranks, then raised here as well
            box[0] = (False, exc)
    torch.distributed.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise value
    return value
