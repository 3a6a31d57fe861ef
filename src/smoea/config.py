"""Configuration: dataclass fields that carry their flag's help, and TOML or YAML files of flags."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tomllib

from smoea.errors import SmoeaError


def option(default=dataclasses.MISSING, help: str | None = None, *, factory=None, **flag):
    """A dataclass field that is also a command-line flag: `--name-with-dashes`, typed by its
    annotation, with `help` (the default is appended). `flag` may set `name` (another flag
    name), `flag_default` (the flag's default where it differs), or `flags` for a nested
    config: {sub-field: (flag name, help)}."""
    metadata = {"help": help, **flag}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def read_config_file(path: str | Path) -> dict:
    """Flag values from a file; keys may be written `target-params` or `target_params`."""
    path = Path(path)
    if not path.is_file():
        raise SmoeaError(f"--config {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            values = tomllib.loads(text)
    except Exception as exc:
        raise SmoeaError(f"--config {path} cannot be parsed: {str(exc).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise SmoeaError(f"--config {path} must hold a table of flag = value")
    return {str(k).replace("-", "_"): v for k, v in values.items()}
