"""User-facing errors (defined in the method layer, which depends on nothing else)."""

from methods.errors import ConfigError

__all__ = ["ConfigError"]
