"""Checks that one written record is valid in its target format, before export writes a line of it.

Pure functions: `record_problem(fmt, record)` returns why a record would be refused by the tools that read
the format (None when it is fine); `TokenCounter` measures conversations with a local tokenizer for the
length check. What each format must hold:

- openai (OpenAI fine-tuning chat format; TRL "conversational language modeling"): only `messages`, a
  list of {role, content} with role system/user/assistant, text content that is not blank, a system turn
  only first, at least one user turn, and a final assistant turn (the answer the model learns).
- sharegpt (Axolotl / TRL `conversations` with from/value): from system/human/gpt, same rules.
- alpaca (Stanford Alpaca / Axolotl): `instruction` and `output` not blank, `input` text, optional `system`.
- prompt-completion (TRL standard prompt-completion, OpenAI legacy completions): `prompt`, `completion` text.
- dpo (TRL DPOTrainer, conversational preference with an explicit prompt): `prompt` = a message list
  ending with a user turn, `chosen` / `rejected` = one assistant message each, with different text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.errors import StudioError

OPENAI_ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"system": "system", "human": "user", "gpt": "assistant"}


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _messages_problem(messages: Any, roles: dict[str, str], role_key: str, content_key: str) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "has no turns"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) != {role_key, content_key}:
            return f"turn {i} must have exactly the fields {role_key} and {content_key}"
        if m[role_key] not in roles:
            return f"turn {i} has {role_key} {m[role_key]!r}; allowed: {', '.join(roles)}"
        if not _text(m[content_key]):
            return f"turn {i} ({m[role_key]}) is empty"
        if roles[m[role_key]] == "system" and i != 0:
            return f"turn {i} is a system turn after the start"
    canonical = [roles[m[role_key]] for m in messages]
    if "user" not in canonical:
        return "has no user turn"
    if canonical[-1] != "assistant":
        return f"ends with a {messages[-1][role_key]} turn, not the assistant's answer"
    return None


def record_problem(fmt: str, record: dict[str, Any]) -> str | None:
    """Why `record` is not a valid `fmt` line, or None."""
    if not isinstance(record, dict):
        return "is not a JSON object"
    if fmt == "openai":
        if set(record) != {"messages"}:
            return f"has fields {sorted(record)}; the chat format holds only messages"
        return _messages_problem(record["messages"], {r: r for r in OPENAI_ROLES}, "role", "content")
    if fmt == "sharegpt":
        if set(record) != {"conversations"}:
            return f"has fields {sorted(record)}; ShareGPT holds only conversations"
        return _messages_problem(record["conversations"], SHAREGPT_ROLES, "from", "value")
    if fmt == "alpaca":
        if not {"instruction", "input", "output"} <= set(record) <= {"instruction", "input", "output", "system"}:
            return f"has fields {sorted(record)}; Alpaca holds instruction, input, output and optionally system"
        if not _text(record["instruction"]) or not _text(record["output"]):
            return "has an empty instruction or output"
        if not isinstance(record["input"], str) or not isinstance(record.get("system", ""), str):
            return "has a non-text input or system"
        return None
    if fmt == "prompt-completion":
        if set(record) != {"prompt", "completion"}:
            return f"has fields {sorted(record)}; expected prompt and completion"
        if not _text(record["prompt"]) or not _text(record["completion"]):
            return "has an empty prompt or completion"
        return None
    if fmt == "dpo":
        if set(record) != {"prompt", "chosen", "rejected"}:
            return f"has fields {sorted(record)}; a preference pair holds prompt, chosen and rejected"
        roles = {r: r for r in OPENAI_ROLES}
        prompt = record["prompt"]
        if not isinstance(prompt, list) or not prompt:
            return "has an empty prompt"
        problem = _messages_problem([*prompt, {"role": "assistant", "content": "x"}], roles, "role", "content")
        if problem:
            return f"prompt {problem}"
        if prompt[-1]["role"] != "user":
            return "prompt must end with a user turn"
        for key in ("chosen", "rejected"):
            answer = record[key]
            if (not isinstance(answer, list) or len(answer) != 1 or not isinstance(answer[0], dict)
                    or set(answer[0]) != {"role", "content"} or answer[0]["role"] != "assistant"
                    or not _text(answer[0]["content"])):
                return f"{key} must be one non-empty assistant message"
        if record["chosen"][0]["content"].strip() == record["rejected"][0]["content"].strip():
            return "chosen and rejected are the same text"
        return None
    raise StudioError(f"unknown format {fmt!r}.")


class TokenCounter:
    """Token lengths of conversations with a local tokenizer (its chat template when it has one)."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_dir():
            raise StudioError(f"--tokenizer {path} is not a folder; pass a local tokenizer or model folder "
                              "(tokenizers are never fetched from a hub).")
        from transformers import AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as err:
            raise StudioError(f"--tokenizer {path}: no tokenizer could be loaded there ({err}).") from None
        self.path = path
        self.templated = bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def model_max_length(self) -> int | None:
        n = getattr(self.tokenizer, "model_max_length", None)
        return n if isinstance(n, int) and 0 < n < 10**7 else None

    def count(self, messages: list[dict[str, str]]) -> int:
        if self.templated:
            ids = self.tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
            return len(ids)
        text = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
        return len(self.tokenizer(text)["input_ids"])
