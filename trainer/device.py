"""The device to run on and what it can do: its bf16 peak (for MFU), the precision to compute in, and what
to do when its memory runs out. Pretraining and fine-tuning both choose the device and autocast here."""

from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path

import torch


class NoDevice(ValueError):
    """The device asked for is not there (a CUDA device without a visible GPU)."""


class OutOfMemory(RuntimeError):
    """The device ran out of memory in the training loop; the message names micro_batch and what to try."""

# Dense bf16 tensor-core peaks in TFLOP/s (no sparsity), keyed by the exact torch.cuda.get_device_name.
# From the vendor datasheets, which mostly print the 2:4-sparse figure, twice these: H100 (SXM 1,979,
# PCIe 1,513, NVL 1,671 sparse), H200 (SXM 1,979, NVL 1,671 sparse), A100 (312 dense, every form factor),
# A10 (125), A40 (149.7), L40S (362.05), L40 (181.05), L4 (242 sparse); the GA102 whitepaper for the RTX
# A6000 (154.8 with FP32 accumulate) and the Ada Lovelace whitepaper for the RTX 6000 Ada (364.2) and the
# GeForce RTX 4090 (165.2; GeForce runs FP32 accumulate at half rate). A name not listed gets no MFU (a
# MIG slice, a new part): set `peak_tflops` for it rather than be shown a wrong one.
PEAK_TFLOPS = {
    "NVIDIA H100 80GB HBM3": 989.4, "NVIDIA H100 PCIe": 756.0, "NVIDIA H100 NVL": 835.5,
    "NVIDIA H200": 989.4, "NVIDIA H200 NVL": 835.5,
    "NVIDIA A100-SXM4-80GB": 312.0, "NVIDIA A100-SXM4-40GB": 312.0, "NVIDIA A100-PCIE-40GB": 312.0,
    "NVIDIA A100 80GB PCIe": 312.0, "NVIDIA A10": 125.0, "NVIDIA A40": 149.7,
    "NVIDIA L40S": 362.05, "NVIDIA L40": 181.05, "NVIDIA L4": 121.0,
    "NVIDIA RTX A6000": 154.8, "NVIDIA RTX 6000 Ada Generation": 364.2, "NVIDIA GeForce RTX 4090": 165.2,
}


def pick_device(setting: str) -> torch.device:
    """`auto`: the CUDA GPU when one is visible, else the CPU; otherwise the device named (cpu, cuda, cuda:1)."""
    name = "cuda" if setting == "auto" and torch.cuda.is_available() else setting
    name = "cpu" if name == "auto" else name
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NoDevice(f"device={setting}: no CUDA GPU is visible; use device=cpu")
    return torch.device(name)


def autocast(device: torch.device, precision: str):
    """bf16 autocast on `device` for precision "bf16"; no context for "fp32" (auto is resolved by Precision)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def peak_flops(peak_tflops: float, device: torch.device) -> float | None:
    """FLOP/s for MFU: the `peak_tflops` setting if set, else the table's entry for this GPU, else None."""
    if peak_tflops > 0:
        return peak_tflops * 1e12
    if device.type == "cuda":
        tflops = PEAK_TFLOPS.get(torch.cuda.get_device_name(device))
        return None if tflops is None else tflops * 1e12
    return None


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 matmul instructions (avx512_bf16 or amx_bf16 among /proc/cpuinfo's flags;
    False where that file is absent)."""
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.is_file() else set()
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def bf16_speedup(budget_s: float = 0.5, rounds: int = 5) -> float:
    """fp32 time / bf16 time of a [512, 768] x [768, 1536] matmul on this CPU (median of interleaved
    rounds after one warm-up each, stopping early once `budget_s` is spent)."""
    a, b = torch.randn(512, 768), torch.randn(768, 1536)
    pairs = ((a, b), (a.bfloat16(), b.bfloat16()))
    times: list[list[float]] = [[], []]
    start = time.perf_counter()
    for r in range(rounds + 1):
        for kind, (x, y) in enumerate(pairs):
            t0 = time.perf_counter()
            x @ y
            if r:
                times[kind].append(time.perf_counter() - t0)
        if r and time.perf_counter() - start > budget_s:
            break
    return statistics.median(times[0]) / statistics.median(times[1])


class Precision:
    """The dtype matmuls run in: bf16 autocast or plain fp32. `auto`: bf16 on a CUDA GPU that supports
    it; on a CPU, bf16 only where the start-up probe (`bf16_speedup`) measures it at least 1.1x faster
    than fp32. `reason` says how the choice was made (for the log)."""

    def __init__(self, setting: str, device: torch.device, resumed: str | None = None):
        self.device = device
        if setting != "auto":
            self.name, self.reason = setting, "as set"
        elif resumed:
            self.name, self.reason = resumed, "auto: the checkpoint's choice, kept on --resume"
        elif device.type == "cuda":
            self.name = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
            self.reason = f"auto: this GPU {'supports' if self.name == 'bf16' else 'lacks'} bf16"
        elif device.type == "cpu":
            speedup = bf16_speedup()
            self.name = "bf16" if speedup >= 1.1 else "fp32"
            self.reason = f"auto: a bf16 matmul ran {speedup:.2f}x the speed of fp32 on this CPU"
        else:
            self.name, self.reason = "fp32", f"auto: fp32 on {device.type}"

    def autocast(self):
        return autocast(self.device, self.name)

    def __str__(self) -> str:
        return f"{'bf16 autocast' if self.name == 'bf16' else 'fp32'} ({self.reason})"


def smaller_micro_batch(micro_batch: int, batch_size: int) -> int | None:
    """The largest power of two below micro_batch that divides batch_size; None below 2."""
    if micro_batch < 2:
        return None
    smaller = 1 << ((micro_batch - 1).bit_length() - 1)
    while batch_size % smaller:
        smaller //= 2
    return smaller


def out_of_memory_message(device: torch.device, micro_batch: int, batch_size: int, step: int) -> str:
    """One line for torch.OutOfMemoryError in the training loop: what ran out and what to set instead."""
    where = "the first training step" if step == 0 else f"optimizer step {step + 1}"
    smaller = smaller_micro_batch(micro_batch, batch_size)
    advice = (f"try micro_batch={smaller} (the batch size and the schedule do not depend on it"
              f"{'; --resume continues from the last checkpoint with it' if step else ''})" if smaller else
              "even one sequence does not fit: use a smaller model or a device with more memory")
    return f"out of {device.type} memory in {where} with micro_batch={micro_batch}: {advice}"
