"""Training data: exported chat JSONL → token ids with assistant-only labels → (packed) batches.

Sits between `studio export --format openai` and the trainer. Each conversation is rendered with the base
model's own chat template; labels keep the assistant turns only, *including* the token that ends each
assistant turn (`<|im_end|>`, `<|eot_id|>`, EOS ...), so the model learns to stop. Labels come from the
template's character spans, never from "token != pad": a tokenizer whose pad token is its EOS (SmolLM2's
is) would otherwise mask the end of every answer out of the loss.

Conversations longer than `max_length` are never cut silently: they are dropped or truncated on purpose
(`TrainConfig.overlong`) and counted in `DataStats`; a truncated conversation with no assistant token left
is dropped and counted too.

Packing puts several examples in one row with position ids restarting at 0 for each; with no attention
mask, transformers turns restarting position ids into per-example attention (flash-attention varlen on
CUDA; a block-diagonal causal mask with SDPA/eager), so no example attends to another.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import StudioError

IGNORE = -100
#: Tokens that close a turn in common chat templates (ChatML/SmolLM/Qwen, Llama 3, Gemma, Phi-3).
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")

REASON_TOO_LONG = "longer than max_length"
REASON_NO_ASSISTANT = "no assistant turn"
REASON_TRUNCATED_AWAY = "assistant turn beyond max_length"


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE outside assistant turns

    @property
    def n_label_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


@dataclass
class DataStats:
    """What happened to every record of one input file (input = kept + dropped + quarantined)."""

    file: str
    records: int = 0
    quarantined: int = 0
    kept: int = 0
    truncated: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    tokens: int = 0
    label_tokens: int = 0
    longest: int = 0

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "records": self.records, "quarantined": self.quarantined, "kept": self.kept,
                "truncated": self.truncated, "dropped": dict(sorted(self.dropped.items())), "tokens": self.tokens,
                "label_tokens": self.label_tokens, "longest_tokens": self.longest}


def read_conversations(path: str | Path) -> tuple[list[list[dict[str, str]]], int]:
    """Conversations of a chat JSONL (any format `studio.readers` knows) and the number of malformed records."""
    from studio.readers import read_inputs

    result = read_inputs([Path(path)])
    if result.kind != "examples":
        raise StudioError(f"{path} holds plain documents, not conversations; train on `studio export` output.")
    return [list(row["messages"]) for row in result.rows], len(result.quarantine)


def end_of_turn_ids(tokenizer) -> set[int]:
    """Token ids that end an assistant turn: EOS plus the template's end-of-turn marker when it has one."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    vocab = tokenizer.get_vocab()
    ids |= {vocab[t] for t in END_OF_TURN_TOKENS if t in vocab}
    return ids


def encode_conversation(tokenizer, messages: list[dict[str, str]], eot_ids: set[int] | None = None) -> TokenizedExample:
    """Token ids of the whole conversation and labels that keep each assistant turn up to its end-of-turn token.

    Each assistant turn's characters are found by rendering the conversation up to it (with the generation
    prompt) and up to its end; the turn is every token from there up to and including the last end-of-turn
    token inside it (the template's trailing newline after `<|im_end|>` is not learned). A template that does
    not close assistant turns with a special token gets EOS appended to each turn, labelled.
    """
    eot_ids = eot_ids if eot_ids is not None else end_of_turn_ids(tokenizer)
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)) if i else 0
        end = len(tokenizer.apply_chat_template(messages[: i + 1], tokenize=False))
        if end > len(text) or start > end:
            raise StudioError("the base model's chat template does not render a conversation as the concatenation "
                              "of its turns, so assistant tokens cannot be located; use a model with a standard template.")
        spans.append((start, end))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets = enc["offset_mapping"]
    in_span: list[int | None] = []
    for a, b in offsets:
        mid = (a + b) / 2 if b > a else a
        in_span.append(next((k for k, (s, e) in enumerate(spans) if s <= mid < e), None))
    out_ids: list[int] = []
    labels: list[int] = []
    j = 0
    while j < len(ids):
        k = in_span[j]
        if k is None:
            out_ids.append(ids[j])
            labels.append(IGNORE)
            j += 1
            continue
        turn = [j]
        while j + 1 < len(ids) and in_span[j + 1] == k:
            j += 1
            turn.append(j)
        j += 1
        closing = [p for p in turn if ids[p] in eot_ids]
        last_learned = closing[-1] if closing else turn[-1]
        for p in turn:
            out_ids.append(ids[p])
            labels.append(ids[p] if p <= last_learned else IGNORE)
        if not closing:
            if j < len(ids) and ids[j] in eot_ids:  # the template closes the turn just outside the span
                out_ids.append(ids[j])
                labels.append(ids[j])
                j += 1
            else:
                out_ids.append(tokenizer.eos_token_id)
                labels.append(tokenizer.eos_token_id)
    if labels:
        labels[0] = IGNORE  # never learned: in a packed row it would be "predicted" by the previous example
    return TokenizedExample(out_ids, labels)


def prepare_examples(tokenizer, conversations: list[list[dict[str, str]]], max_length: int, overlong: str,
                     stats: DataStats) -> list[TokenizedExample]:
    """Tokenize conversations, applying the over-long policy; every record ends up kept or dropped in `stats`."""
    eot = end_of_turn_ids(tokenizer)
    kept: list[TokenizedExample] = []
    for messages in conversations:
        if not any(m["role"] == "assistant" for m in messages):
            stats.drop(REASON_NO_ASSISTANT)
            continue
        ex = encode_conversation(tokenizer, messages, eot)
        if len(ex.input_ids) > max_length:
            if overlong == "drop":
                stats.drop(REASON_TOO_LONG)
                continue
            ex = TokenizedExample(ex.input_ids[:max_length], ex.labels[:max_length])
            if ex.n_label_tokens == 0:
                stats.drop(REASON_TRUNCATED_AWAY)
                continue
            stats.truncated += 1
        kept.append(ex)
        stats.tokens += len(ex.input_ids)
        stats.label_tokens += ex.n_label_tokens
        stats.longest = max(stats.longest, len(ex.input_ids))
    stats.kept = len(kept)
    return kept


def load_split(tokenizer, path: str | Path, max_length: int, overlong: str) -> tuple[list[TokenizedExample], DataStats]:
    conversations, quarantined = read_conversations(path)
    stats = DataStats(file=str(path), records=len(conversations) + quarantined, quarantined=quarantined)
    examples = prepare_examples(tokenizer, conversations, max_length, overlong, stats)
    if not examples:
        raise StudioError(f"{path}: no usable conversations ({stats.records} records, dropped {stats.dropped}, "
                          f"{quarantined} malformed); check the file and --max-length.")
    return examples, stats


# ---------------------------------------------------------------------------------------------- batches


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    """The example order of one epoch: a permutation fixed by (seed, epoch), so a resumed run sees the same order."""
    order = list(range(n))
    if shuffle:
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def plan_batches(lengths: list[int], order: list[int], batch_size: int, max_length: int, packing: bool) -> list[list[int]]:
    """Micro-batches as lists of example indices, in `order`.

    Unpacked: `batch_size` examples each. Packed: consecutive examples fill one row of at most
    batch_size × max_length tokens (next-fit, keeping the order so the plan is reproducible).
    """
    if not packing:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    budget = batch_size * max_length
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for idx in order:
        if current and used + lengths[idx] > budget:
            batches.append(current)
            current, used = [], 0
        current.append(idx)
        used += lengths[idx]
    if current:
        batches.append(current)
    return batches


def prompt_labels(ex: TokenizedExample) -> list[int]:
    """The ids of an example's non-assistant tokens as labels (IGNORE at assistant tokens and at its first token)."""
    out = [t if lab == IGNORE else IGNORE for t, lab in zip(ex.input_ids, ex.labels, strict=True)]
    if out:
        out[0] = IGNORE
    return out


def collate(examples: list[TokenizedExample], pad_id: int, packing: bool, multiple_of: int = 1,
            with_prompt_labels: bool = False):
    """Tensors for one micro-batch.

    Packed: one row, `position_ids` restarting at 0 per example and no attention mask (that is what makes
    transformers keep the examples apart). Unpacked: right-padded rows with an attention mask. Padding positions
    are IGNORE in the labels whatever the pad token is. `multiple_of` pads the row length up to a multiple (a
    packed row's padding is one more sequence of its own, so nothing attends to it): on CPU every new matmul
    shape adds oneDNN primitives to a process-wide cache, and rows of every length from 1 to 1,024 made a
    training run's memory grow every step (bench/README.md `## train_cpu`); lengths in steps of 64 bound the shapes to 16.
    `with_prompt_labels` adds `prompt_labels` (`prompt_labels()` of each example) for a loss over the prompt too.
    """
    import torch

    if packing:
        ids = [t for ex in examples for t in ex.input_ids]
        labels = [t for ex in examples for t in ex.labels]
        positions = [p for ex in examples for p in range(len(ex.input_ids))]
        pad = -len(ids) % multiple_of
        ids += [pad_id] * pad
        labels += [IGNORE] * pad
        positions += list(range(pad))
        batch = {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]),
                 "position_ids": torch.tensor([positions])}
        if with_prompt_labels:
            batch["prompt_labels"] = torch.tensor([[t for ex in examples for t in prompt_labels(ex)] + [IGNORE] * pad])
        return batch
    width = max(len(ex.input_ids) for ex in examples)
    width += -width % multiple_of
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    prompt = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, ex in enumerate(examples):
        n = len(ex.input_ids)
        ids[row, :n] = torch.tensor(ex.input_ids)
        labels[row, :n] = torch.tensor(ex.labels)
        prompt[row, :n] = torch.tensor(prompt_labels(ex))
        mask[row, :n] = 1
    batch = {"input_ids": ids, "labels": labels, "attention_mask": mask}
    if with_prompt_labels:
        batch["prompt_labels"] = prompt
    return batch


def split_train_val(path: str | Path, out_dir: str | Path, val_fraction: float = 0.1, min_val: int = 4) -> tuple[Path, Path]:
    """Hold out a validation set from one chat JSONL with the export's leak-free grouping (`studio.splits`).

    Rows linked by a duplicate or semantic cluster, a `dup_of`, a synthetic parent, or the same normalized prompt
    form one group, and a whole group goes to one side, so a paraphrase or a second answer to the same prompt
    never straddles train and validation. Deterministic for the data whatever its line order. About
    `val_fraction` of the rows (at least `min_val`, at most half) are held out. Writes `train.jsonl` and
    `val.jsonl` (OpenAI chat format) into `out_dir`.
    """
    from studio.readers import read_inputs
    from studio.splits import assign_splits
    from studio.writers import to_openai, write_jsonl

    rows = read_inputs([Path(path)]).rows
    if len(rows) < 2:
        raise StudioError(f"{path} has {len(rows)} conversation(s); a validation split needs at least 2 "
                          "(or pass --val FILE).")
    fraction = min(0.5, max(val_fraction, min_val / len(rows)))
    sides = assign_splits(rows, {"train": 1 - fraction, "val": fraction}, seed=0)
    if "val" not in sides or "train" not in sides:
        raise StudioError(f"{path}: every conversation is linked to every other (one duplicate group or one prompt), "
                          "so no validation set can be held out without a leak; pass --val FILE.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_file, val_file = out_dir / "train.jsonl", out_dir / "val.jsonl"
    write_jsonl((to_openai("", list(r["messages"])) for r, side in zip(rows, sides, strict=True) if side == "train"),
                train_file)
    write_jsonl((to_openai("", list(r["messages"])) for r, side in zip(rows, sides, strict=True) if side == "val"),
                val_file)
    return train_file, val_file
