"""The trial config: one typed, validated model (`model`), loaded from YAML and
``key=value`` overrides with method defaults filled in (`load`); `choices` knows
the allowed values that live outside it (timm architectures, devices)."""

from suite.config.load import (
    apply_overrides,
    load_config,
    load_config_file,
    load_yaml,
    make_config,
    parse_override,
    resolve,
    save_config,
    set_dotted,
)
from suite.config.model import (
    CONFIG_FIELDS,
    RUN,
    RUN_FIELDS,
    SCIENCE,
    SCIENCE_FIELDS,
    TrialConfig,
    config_notes,
    describe_fields,
    field_kind,
)

__all__ = [
    "TrialConfig",
    "config_notes",
    "CONFIG_FIELDS",
    "SCIENCE_FIELDS",
    "RUN_FIELDS",
    "SCIENCE",
    "RUN",
    "field_kind",
    "describe_fields",
    "make_config",
    "load_config",
    "load_config_file",
    "load_yaml",
    "apply_overrides",
    "parse_override",
    "set_dotted",
    "resolve",
    "save_config",
]
