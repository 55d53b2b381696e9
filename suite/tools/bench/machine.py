"""The machine a bench ran on, named in the table and the JSON (figures mean nothing without it)."""

from __future__ import annotations

import platform
from typing import Any

import torch

from suite.core.machine import available_cpus, cpu_model, memory_gib


def describe(device: torch.device) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": available_cpus(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": memory_gib(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": name,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
    }
