"""Configuration files (TOML or YAML) whose keys are the command-line flags."""

from __future__ import annotations

from pathlib import Path

import tomllib

from smoea.errors import SmoeaError


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
