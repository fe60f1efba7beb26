"""Workspaces: a folder with `studio.yaml`, `data/`, `runs/` and `review.db`.

Commands find the workspace from `--workspace`, the STUDIO_WORKSPACE variable, or the nearest folder
upwards from the current one that holds `studio.yaml`. Without one, a command's run folder is its
output folder and nothing else is written.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from studio.errors import StudioError

WORKSPACE_FILE = "studio.yaml"

DEFAULT_CONFIG = {
    "name": "my-studio",
    "description": "Fine-tuning data for ...",
    "license": "other",
    "review": {"db": "sqlite:///review.db", "guidelines": "guidelines.md"},
}

GUIDELINES = """# Review guidelines

- **Accept** when the answer is correct, complete, follows company policy and contains no personal data.
- **Edit** the answer when it is nearly right: fix the facts or tone, then accept.
- **Reject** with a reason when it is wrong, unsafe, off-topic, or cannot be fixed quickly.
- Rate 1 (poor) to 5 (excellent) how good the final answer is as a training example.
"""


class Workspace:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def review_db_url(self) -> str:
        url = self.config.get("review", {}).get("db", "sqlite:///review.db")
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            return f"sqlite:///{self.root / url.removeprefix('sqlite:///')}"
        return url

    @property
    def config(self) -> dict:
        path = self.root / WORKSPACE_FILE
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh) or {}

    @classmethod
    def init(cls, root: str | Path, name: str | None = None) -> Workspace:
        root = Path(root)
        if (root / WORKSPACE_FILE).exists():
            raise StudioError(f"{root} is already a workspace ({WORKSPACE_FILE} exists); use it as it is.")
        root.mkdir(parents=True, exist_ok=True)
        config = dict(DEFAULT_CONFIG, name=name or root.resolve().name)
        (root / WORKSPACE_FILE).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        (root / "data").mkdir(exist_ok=True)
        (root / "runs").mkdir(exist_ok=True)
        guidelines = root / "guidelines.md"
        if not guidelines.exists():
            guidelines.write_text(GUIDELINES, encoding="utf-8")
        return cls(root)

    @classmethod
    def find(cls, explicit: str | Path | None = None, start: str | Path | None = None) -> Workspace | None:
        """The workspace named explicitly or by STUDIO_WORKSPACE, else the nearest one upwards; or None."""
        named = explicit or os.environ.get("STUDIO_WORKSPACE")
        if named:
            if not (Path(named) / WORKSPACE_FILE).exists():
                raise StudioError(f"{named} is not a workspace (no {WORKSPACE_FILE}); create one with `studio init {named}`.")
            return cls(named)
        here = Path(start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / WORKSPACE_FILE).exists():
                return cls(folder)
        return None


def review_db(db: str | None, workspace: Workspace | None) -> str:
    """The review database a command uses: `--db` when given, else the workspace's; one sentence when neither."""
    if db:
        return db
    if workspace is None:
        raise StudioError("no review database: run inside a workspace (`studio init DIR`), pass --workspace, "
                          "or name one with --db URL.")
    return workspace.review_db_url
