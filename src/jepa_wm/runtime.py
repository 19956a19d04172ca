"""How the world model runs on this machine: the device, the rollouts' number format and graph, the memory.

The choices that make planning fast differ per machine (AVX2 or AVX-512 BF16 CPU, GPU) and are
made here, once, for the controller, the node and the benchmarks alike.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import functools
from collections.abc import Callable

import torch

from jepa_wm.config import ConfigError
from jepa_wm.models.rollout_graph import TracedImagine
from jepa_wm.planning import RolloutFn

SAMPLE_STEP = 8  # candidate counts a planning budget chooses from: multiples of this
FEWEST_SAMPLES = 16  # ... and no fewer: below it a plan's fixed part dominates (2-core AVX2: 16 take 53 ms, 24 67 ms)

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_MAX = 32 << 20  # the largest glibc accepts on 64-bit systems
TRIM_THRESHOLD = 256 << 20


def keep_freed_memory() -> bool:
    """Let this process reuse the memory it frees instead of handing it back to the OS after each op.

    A plan allocates and frees hundreds of 0.1-1 MB tensors. glibc serves blocks that size by mmap
    and returns them on free (or trims them off the heap), so allocations touch fresh pages: up to
    thousands of page faults per plan, 10-20 % of its time on a 2-core CPU. With blocks up to 32 MB
    kept in the heap and up to 256 MB of free heap kept, repeated plans fault no pages. Process-wide;
    a no-op returning False where the C library has no ``mallopt`` (not glibc).
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def check_device(name: str, where: str = "device") -> torch.device:
    """``name`` as a torch device that exists here, else ConfigError naming it and what was expected."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"{where}={name!r} is not a torch device; expected cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{where}={name!r}, but torch finds no CUDA GPU on this machine; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{where}={name!r}, but this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif device.type != "cpu":
        raise ConfigError(f"{where}={name!r}: expected cpu or cuda[:N]")
    return device


def native_bfloat16(device: str | torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware (AVX-512 BF16 / AMX CPUs, bf16-capable GPUs)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # torch has no public query for these; without them bfloat16 is emulated, ~9x slower.
        # Dispatch held to AVX2 (ATEN_CPU_CAPABILITY=avx2) has no AVX-512 kernels, whatever the chip has.
        if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
            return False
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """planner.precision as run on ``device``: "auto" becomes bfloat16 where it is native, else float32."""
    if precision == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    return precision


def rollout_model(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """The model rollouts run on: ``model`` itself in float32, else a copy in ``precision`` (e.g. bfloat16).

    ``precision`` names a dtype; resolve "auto" for the model's device first (:func:`resolve_precision`).
    """
    assert precision != "auto", "rollout_model needs a dtype name: resolve_precision('auto', device) first"
    dtype = getattr(torch, precision)
    return model if dtype == torch.float32 else copy.deepcopy(model).to(dtype)


def rollout_factory(planning_model: torch.nn.Module, graph: str) -> Callable[[torch.Tensor, torch.Tensor], RolloutFn]:
    """(latent, joint positions) -> rollout over actions of ``planning_model``, eager or traced (planner.rollout_graph)."""
    if graph == "torchscript":
        return functools.partial(planning_model.rollout_fn, imagine=TracedImagine(planning_model))
    return planning_model.rollout_fn


def samples_within(budget_ms: float, replan_ms: Callable[[int], float], most: int) -> tuple[int, float]:
    """The most candidates, up to ``most``, whose replanning time ``replan_ms(n)`` (ms) fits ``budget_ms``.

    Returns (candidates, their replanning time). Below ``most`` the count is a multiple of SAMPLE_STEP and
    at least FEWEST_SAMPLES, even where that still overruns the budget (the caller says so). A plan's time
    grows about linearly with its candidates plus a fixed part, so scaling the count by budget / time
    overshoots a little: each step scales again from the last timing, and takes at least one SAMPLE_STEP off.
    """
    samples, took = most, replan_ms(most)
    while took > budget_ms and samples > FEWEST_SAMPLES:
        scaled = int(samples * budget_ms / took) // SAMPLE_STEP * SAMPLE_STEP
        samples = max(FEWEST_SAMPLES, min(scaled, (samples - 1) // SAMPLE_STEP * SAMPLE_STEP))
        took = replan_ms(samples)
    return samples, took
