"""Precision chosen by the hardware: ``auto`` = bf16 where the device computes bf16 natively, fp32 elsewhere.

Native bf16 means a CUDA GPU that supports it, or a CPU with AVX512-BF16 or AMX-BF16 (``/proc/cpuinfo`` flags).
Without it, bf16 autocast is emulated and slower than fp32, so ``auto`` stays fp32 there. The build records the
resolved precision in the manifest (``build.precision``); queries are encoded in the bundle's precision or better
(:func:`query_precision`), so a bf16 bundle is queried in bf16 where that is native and in fp32 elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

Precision = Literal["fp32", "bf16"]
PRECISIONS = ("auto", "fp32", "bf16")
#: /proc/cpuinfo flags that mean the CPU multiplies bf16 natively.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
#: What each precision means for fidelity to hi-ml-multimodal 0.2.2 (tests/reference/): the 1e-5 agreement is fp32's;
#: the bf16 figures are max |bf16 ours - fp32 hi-ml| measured on the reference inputs (heatmaps: benchmarks/README.md).
FIDELITY: dict[str, str] = {
    "fp32": "fp32: matches hi-ml-multimodal 0.2.2 to max |diff| <= 1e-5",
    "bf16": "bf16: the 1e-5 match with hi-ml-multimodal 0.2.2 is for fp32; in bf16, global embeddings differ from fp32 "
            "hi-ml by up to 6.6e-3, patch embeddings by up to 9.3e-2, text embeddings by up to 9.2e-3",
}


def fidelity_note(precision: object) -> str:
    """One line on what ``precision`` (a bundle's ``build.precision``; None or another value: not recorded) means
    for fidelity to the reference implementation."""
    if isinstance(precision, str) and precision in FIDELITY:
        return FIDELITY[precision]
    return f"precision not recorded by this build; {FIDELITY['fp32']}, {FIDELITY['bf16'].removeprefix('bf16: ')}"


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU feature flags of the first processor in ``cpuinfo`` (default: read /proc/cpuinfo; empty if absent)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16(device: torch.device, cpuinfo: str | None = None) -> bool:
    """True when ``device`` computes bf16 natively (CUDA with bf16 support, or a CPU with a flag in BF16_CPU_FLAGS)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return device.type == "cpu" and bool(cpu_flags(cpuinfo) & set(BF16_CPU_FLAGS))


def resolve_precision(precision: str, device: torch.device, cpuinfo: str | None = None) -> Precision:
    """``auto`` -> bf16 or fp32 for ``device``; fp32/bf16 pass through; anything else is a ValueError."""
    if precision == "auto":
        return "bf16" if native_bf16(device, cpuinfo) else "fp32"
    if precision in ("fp32", "bf16"):
        return precision  # type: ignore[return-value]
    raise ValueError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")


def query_precision(bundle_precision: str | None, device: torch.device, cpuinfo: str | None = None) -> Precision:
    """The precision to encode queries against a bundle built in ``bundle_precision``: the same or better.

    fp32 bundles (and bundles that record none) are queried in fp32; bf16 bundles in bf16 where ``device`` has
    native bf16 (faster, and the same numerics as the vectors), else in fp32 (better, and faster than emulated bf16).
    """
    if bundle_precision == "bf16" and native_bf16(device, cpuinfo):
        return "bf16"
    return "fp32"
