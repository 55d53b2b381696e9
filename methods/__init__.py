"""SSL methods and norm interventions.

``METHODS`` maps a method name to its :class:`~methods.base.SSLMethod` subclass;
``get_method`` is the validated lookup used by the config and the CLI.
"""
from __future__ import annotations

from methods.base import SSLMethod
from methods.byol import BYOL
from methods.dino import DINO
from methods.moco import MoCo
from methods.simclr import SimCLR
from methods.simsiam import SimSiam
from methods.errors import ConfigError

METHODS: dict[str, type[SSLMethod]] = {cls.name: cls for cls in (SimCLR, MoCo, BYOL, SimSiam, DINO)}


def get_method(name: str) -> type[SSLMethod]:
    """The method class registered as ``name``; ConfigError(field="method") otherwise."""
    if not isinstance(name, str) or name not in METHODS:
        raise ConfigError("method", name, sorted(METHODS))
    return METHODS[name]


__all__ = ["METHODS", "SSLMethod", "get_method", "SimCLR", "MoCo", "BYOL", "SimSiam", "DINO"]
