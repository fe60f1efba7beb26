"""Shared test fixtures: offline model loading, the shared data folder, sample_data, workspaces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# hash/pseudonym redaction needs a secret salt (there is no built-in one); tests outside a workspace use this
os.environ.setdefault("STUDIO_PII_SALT", "tests-only-salt")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("STUDIO_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLE_DATA = REPO / "sample_data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real third-party data sets); tests using it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (it sits beside the repository in CI)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_data() -> Path:
    if not (SAMPLE_DATA / "planted.json").exists():
        pytest.skip("sample_data/planted.json is missing")
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def planted(sample_data: Path) -> dict:
    import json

    return json.loads((sample_data / "planted.json").read_text(encoding="utf-8"))


@pytest.fixture()
def workspace(tmp_path: Path):
    from studio.workspace import Workspace

    return Workspace.init(tmp_path / "ws", name="test")


@pytest.fixture(scope="session")
def static_models(tmp_path_factory) -> Path:
    """A `models` folder holding semantic_dedupe's `static` embedding model, distilled from the bundled MiniLM once
    per test session (~15 s on two cores); tests link it into their own studio cache."""
    root = tmp_path_factory.mktemp("static-model")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIO_CACHE", str(root))
        from curate.embeddings import static_model_path

        static_model_path()
    return root / "models"


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A real local Ray cluster (2 CPUs, token auth off as in conftest's environment), started by the first test that
    needs it and shared by the rest of the session (the Ray engine tests' session-scoped runs need it that long)."""
    os.environ["RAY_AUTH_MODE"] = "disabled"
    import ray

    ray.init(num_cpus=2, _temp_dir=str(tmp_path_factory.mktemp("ray")), include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
