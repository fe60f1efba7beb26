"""Find steps by name: step `foo` is the `STEP` class of module `curate/steps/foo.py`.

Discovery by file name keeps each step in its own file and lets `--help` list steps without importing them.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import curate.steps
from studio.errors import StudioError


def step_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(curate.steps.__path__) if not m.name.startswith("_"))


def step_class(name: str):
    names = step_names()
    if name not in names:
        raise StudioError(f"unknown step {name!r}; available steps: {', '.join(names)}.")
    module = importlib.import_module(f"curate.steps.{name}")
    return module.STEP


def build_step(name: str, config: dict[str, Any] | None = None):
    from pydantic import ValidationError

    cls = step_class(name)
    try:
        return cls(config or {})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(config)"
        raise StudioError(f"step {name}: config field {where}: {first['msg']}.") from None


def step_summary(name: str) -> str:
    """First line of a step module's docstring (imports the module)."""
    module = importlib.import_module(f"curate.steps.{name}")
    return (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""
