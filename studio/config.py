"""The one config loader: a YAML file → a pydantic model, with one clear sentence for every way it can fail.

Pipeline files (`studio curate --config`), training files (`studio train --config`) and other commands' YAML
settings all come through here, so a missing file, bad YAML, a non-mapping or a wrong field reads the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from studio.errors import StudioError

Model = TypeVar("Model", bound=BaseModel)


def load_yaml_mapping(path: str | Path, what: str = "config") -> dict[str, Any]:
    """The mapping in a YAML file; missing file, invalid YAML (with its line) or a non-mapping is a StudioError."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise StudioError(f"{what} {path} does not exist; check the path.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise StudioError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)}).") from None
    if not isinstance(data, dict):
        raise StudioError(f"{path} must hold a mapping of settings (key: value lines), not a {type(data).__name__}.")
    return data


def validated(model: type[Model], data: dict[str, Any], source: str, hint: str = "") -> Model:
    """`model(**data)`, with the first validation error as one sentence naming the source and field."""
    try:
        return model(**data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "?"
        raise StudioError(f"{source}: field {field}: {first['msg']}{hint}.") from None


def load_yaml_model(model: type[Model], path: str | Path, what: str = "config", hint: str = "") -> Model:
    return validated(model, load_yaml_mapping(path, what), source=str(path), hint=hint)
