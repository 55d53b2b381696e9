"""Fast-path switches the trainer can call, kept only where the bench shows they help.

``maybe_compile`` is what a ``compile: true`` trial setting should call: in
``suite.trial.train.run_trial``, right after the model is moved to its device (and to
channels_last), before data-parallel wrapping and before the optimizer is built.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import torch
from torch import nn

from suite.core.errors import ConfigError


def compile_unavailable_reason(device: torch.device | str = "cpu") -> str | None:
    """Why torch.compile cannot run here, or None when it can.

    Inductor generates C++ on CPU (it needs a C++ compiler) and Triton kernels on
    CUDA; without them compilation fails at the first call, deep in a step.
    """
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    if torch.device(device).type == "cuda":
        return None if importlib.util.find_spec("triton") else "Triton is not installed (inductor's GPU backend)"
    compilers = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    if not any(c and shutil.which(c) for c in compilers):
        return "no C++ compiler on PATH (inductor's CPU backend needs g++ or clang++)"
    return None


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    """torch.compile every direct submodule of an SSL method (backbone, heads, target copies), in place.

    ``nn.Module.compile`` compiles a module's forward without wrapping it, so
    parameter objects and ``state_dict`` keys stay the same: the optimizer, EMA
    target updates, checkpoints and DDP keep working unchanged. The loss (the
    method's own forward) stays eager, since it holds the data-parallel gathers.
    Returns ``model`` (unchanged when ``enabled`` is false).
    """
    if not enabled:
        return model
    device = next(model.parameters()).device
    reason = compile_unavailable_reason(device)
    if reason is not None:
        raise ConfigError("compile", True, "false on this machine", hint=reason)
    for child in model.children():
        child.compile()
    return model


def is_compiled(module: nn.Module) -> bool:
    return getattr(module, "_compiled_call_impl", None) is not None
