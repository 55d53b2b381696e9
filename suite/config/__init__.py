"""The trial config: one typed, validated model (`model`), loaded from YAML and
``key=value`` overrides with method defaults filled in (`load`) and resolved once
into a `ResolvedConfig` that every layer below takes; `choices` knows the allowed
values that live outside it (timm architectures, devices)."""

from suite.config.load import (
    apply_overrides,
    as_resolved,
    load_config,
    load_config_file,
    load_resolved,
    load_yaml,
    make_config,
    parse_override,
    resolve,
    resolve_config,
    save_config,
    set_dotted,
)
from suite.config.model import (
    CONFIG_FIELDS,
    RUN,
    RUN_FIELDS,
    SCIENCE,
    SCIENCE_FIELDS,
    ResolvedConfig,
    TrialConfig,
    describe_fields,
    field_kind,
)

__all__ = [
    "TrialConfig",
    "ResolvedConfig",
    "CONFIG_FIELDS",
    "SCIENCE_FIELDS",
    "RUN_FIELDS",
    "SCIENCE",
    "RUN",
    "field_kind",
    "describe_fields",
    "resolve_config",
    "make_config",
    "load_resolved",
    "load_config",
    "as_resolved",
    "load_config_file",
    "load_yaml",
    "apply_overrides",
    "parse_override",
    "set_dotted",
    "resolve",
    "save_config",
]
