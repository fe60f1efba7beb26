"""Versioned prompt templates: `synth/prompts/<name>.v<N>.txt`, overridable by the user.

A template is plain text with `$placeholders` (Python `string.Template`, so JSON braces need no escaping).
The newest version of a name wins; a folder the user names (`--prompts DIR`, or `<workspace>/prompts/`) is
searched first, so `DIR/grounded_qa.v2.txt` replaces the bundled v1. The template name and version used are
written into every generated example's meta and into the run manifest.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path

from studio.errors import StudioError

BUNDLED_DIR = Path(__file__).resolve().parent
_NAME = re.compile(r"^(?P<name>[a-z0-9_]+)\.v(?P<version>\d+)\.txt$")


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: int
    text: str
    path: Path

    @property
    def label(self) -> str:
        return f"{self.name}.v{self.version}"

    def render(self, **values: str) -> str:
        try:
            return string.Template(self.text).substitute(values).strip()
        except KeyError as err:
            raise StudioError(f"prompt template {self.path} uses ${err.args[0]}, which this generator does not "
                              f"fill; use only {', '.join('$' + k for k in sorted(values))}.") from None
        except ValueError as err:
            raise StudioError(f"prompt template {self.path}: {err}; write a literal $ as $$.") from None


class PromptLibrary:
    """Finds the newest version of each template, user folders first, then the bundled ones."""

    def __init__(self, override_dirs: list[Path] | None = None) -> None:
        self.dirs = [Path(d) for d in (override_dirs or []) if Path(d).is_dir()] + [BUNDLED_DIR]

    def get(self, name: str) -> PromptTemplate:
        for folder in self.dirs:
            found = []
            for path in folder.glob(f"{name}.v*.txt"):
                m = _NAME.match(path.name)
                if m and m.group("name") == name:
                    found.append((int(m.group("version")), path))
            if found:
                version, path = max(found)
                return PromptTemplate(name, version, path.read_text(encoding="utf-8"), path)
        raise StudioError(f"no prompt template named {name!r} (looked for {name}.v<N>.txt in "
                          f"{', '.join(str(d) for d in self.dirs)}).")
