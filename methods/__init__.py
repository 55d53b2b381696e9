"""SSL methods and norm interventions.

``METHODS`` maps a method name to its :class:`~methods.base.SSLMethod` subclass;
``get_method`` is the validated lookup used by the config and the CLI;
``method_names`` lists the names without importing torch. Adding a method: write
its module and add its class to ``_REGISTERED`` below (docs/ARCHITECTURE.md,
"Where to add things").

The registry loads on first use, so importing a light submodule
(``methods.errors``, ``methods.views``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from methods.base import SSLMethod

_REGISTERED = {
    "simclr": "methods.simclr:SimCLR",
    "moco": "methods.moco:MoCo",
    "byol": "methods.byol:BYOL",
    "simsiam": "methods.simsiam:SimSiam",
    "dino": "methods.dino:DINO",
    "mocov3": "methods.mocov3:MoCoV3",
    "nnclr": "methods.nnclr:NNCLR",
    "swav": "methods.swav:SwAV",
    "barlow": "methods.barlow:BarlowTwins",
    "vicreg": "methods.vicreg:VICReg",
}
_registry: dict[str, type[SSLMethod]] | None = None


def _methods() -> dict[str, type[SSLMethod]]:
    global _registry
    if _registry is None:
        classes = {}
        for name, target in _REGISTERED.items():
            module, _, cls = target.partition(":")
            classes[name] = getattr(importlib.import_module(module), cls)
            assert classes[name].name == name, (
                f"{target} is registered as {name!r} but names itself {classes[name].name!r}"
            )
        _registry = classes
    return _registry


def method_names() -> tuple[str, ...]:
    """The registered names, in registry order, without importing a method (or torch)."""
    return tuple(_REGISTERED)


def get_method(name: str) -> type[SSLMethod]:
    """The method class registered as ``name``; ConfigError(field="method") otherwise."""
    from methods.errors import ConfigError

    if not isinstance(name, str) or name not in _REGISTERED:
        raise ConfigError("method", name, sorted(_REGISTERED))
    return _methods()[name]


def __getattr__(name: str) -> Any:
    if name == "METHODS":
        return _methods()
    if name == "SSLMethod":
        from methods.base import SSLMethod

        return SSLMethod
    classes = {target.partition(":")[2]: key for key, target in _REGISTERED.items()}
    if name in classes:
        return _methods()[classes[name]]
    raise AttributeError(name)


__all__ = [
    "METHODS",
    "SSLMethod",
    "get_method",
    "method_names",
    "SimCLR",
    "MoCo",
    "BYOL",
    "SimSiam",
    "DINO",
    "MoCoV3",
    "NNCLR",
    "SwAV",
    "BarlowTwins",
    "VICReg",
]
