"""Which precision a job trains in, and why: bf16 autocast only where the hardware runs it natively.

bf16 on a CPU without bf16 instructions is emulated and runs many times slower than fp32, so `auto`
picks bf16 only on a GPU with native bf16 or a CPU with AMX or AVX-512 BF16 (Arm: BF16), and an
explicit `bf16` on any other device is refused before the job does any heavy work.
"""

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import torch

from engine.errors import UserError

# CPU capability flags (torch.cpu.get_capabilities()) that mean bf16 matmuls run in hardware, best first.
NATIVE_CPU_BF16 = {
    "amx_bf16": "AMX",
    "avx512_bf16": "AVX-512 BF16",
    "sve_bf16": "SVE BF16",
    "bf16": "Arm BF16",
}


@dataclass(frozen=True)
class BF16Support:
    """Whether a device runs bf16 natively, and what makes it so (or why not), for the job's log."""

    native: bool
    detail: str


BF16Probe = Callable[[torch.device], BF16Support]


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run uses, the reason for the choice, and the autocast that applies it."""

    precision: Literal["fp32", "bf16"]
    reason: str
    device_type: str

    def autocast(self) -> AbstractContextManager[object]:
        """A fresh autocast context (bf16) or a no-op (fp32) to wrap forwards in."""
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device_type, dtype=torch.bfloat16)
        return nullcontext()


def cpu_bf16_support(capabilities: Mapping[str, Any], *, onednn_bf16: bool) -> BF16Support:
    """bf16 support of a CPU from its capability flags and whether torch's oneDNN build can use them."""
    found = [name for flag, name in NATIVE_CPU_BF16.items() if capabilities.get(flag)]
    if not found:
        return BF16Support(
            False,
            f"this CPU ({capabilities.get('architecture', 'unknown')}) has no bf16 instructions "
            "(AMX or AVX-512 BF16), so bf16 would be emulated, many times slower than fp32",
        )
    if not onednn_bf16:
        return BF16Support(
            False,
            f"this CPU has {found[0]} but oneDNN, torch's CPU kernel library, cannot use it here (a torch "
            "build without it, or ONEDNN_MAX_CPU_ISA set below it), so bf16 would be emulated",
        )
    return BF16Support(True, f"this CPU runs bf16 natively ({found[0]})")


def probe_bf16(device: torch.device) -> BF16Support:
    """Ask torch whether `device` runs bf16 natively; never decided by the CPU's or GPU's name."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return BF16Support(True, "this GPU runs bf16 natively")
        return BF16Support(False, "this GPU has no native bf16, so bf16 would be emulated and slow")
    if device.type == "cpu":
        onednn = torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        return cpu_bf16_support(torch.cpu.get_capabilities(), onednn_bf16=onednn)
    return BF16Support(False, f"bf16 autocast is not supported on {device.type} devices here")


def choose_precision(
    requested: str, device: torch.device, *, probe: BF16Probe | None = None
) -> PrecisionChoice:
    """fp32, or bf16 where the device runs it natively; UserError for an explicit bf16 it cannot run fast.

    `probe` says whether the device runs bf16 natively; by default torch is asked.
    """
    if requested == "fp32":
        return PrecisionChoice("fp32", "fp32 as the job asked", device.type)
    support = (probe or probe_bf16)(device)
    if requested == "bf16":
        if not support.native:
            raise UserError(
                f"precision 'bf16' is not supported on this worker: {support.detail}; use 'auto' "
                "(bf16 only where the hardware runs it natively) or 'fp32'",
                code="precision_unsupported",
                param="training.precision",
            )
        return PrecisionChoice("bf16", f"bf16 as the job asked: {support.detail}", device.type)
    if requested != "auto":
        raise ValueError(f"unknown precision {requested!r}")
    if support.native:
        return PrecisionChoice("bf16", f"auto: {support.detail}", device.type)
    return PrecisionChoice("fp32", f"auto: {support.detail}", device.type)


def describe_choice(choice: PrecisionChoice) -> str:
    """The job-log line, e.g. `precision bf16 (auto: this CPU runs bf16 natively (AMX))`."""
    return f"precision {choice.precision} ({choice.reason})"
