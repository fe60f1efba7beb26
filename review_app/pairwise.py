"""Pairwise review: one prompt, two or more candidate answers, a reviewer picks the better one (or a tie).

Input (`studio review load pairs.jsonl`, a file whose rows carry `candidates`), one JSON object a line:

    {"messages": [{"role": "user", "content": "..."}],          # the prompt (studio.schema messages, no answer)
     "candidates": [{"content": "...", "model": "qwen-0.5b", "run": "synth-...", "origin": "synthetic"},
                    {"content": "...", "model": "ft-adapter", "run": "train-...", "origin": "edited"}],
     "source": "...", "meta": {...}, "blind": false, "id": "<optional content hash>"}

Each candidate needs `content`; `model`, `run` and `origin` are its provenance (kept, exported with the
preference). `blind: true` hides the provenance from reviewers (blind A/B). The item id defaults to the
content hash of the prompt and the candidates; a candidate's id is the content hash of prompt + answer.

A decision stores `choice` = the winning candidate's id (never a display side) or "tie": the sides are shown
in a random order that is fixed per reviewer and item (`side_order`), and undoing it is just reading the id.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from studio.errors import StudioError
from studio.jsonl import json_objects
from studio.schema import example_id, is_example_id

TIE = "tie"
PROVENANCE = ("model", "run", "origin")


def is_pairwise_file(path: Path) -> bool:
    """A JSONL file whose first row has `candidates`."""
    if path.suffix.lower() not in (".jsonl", ".json"):
        return False
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(row, dict) and "candidates" in row
    return False


def pairwise_rows(path: Path) -> list[dict[str, Any]]:
    """Read and check a pairwise JSONL file; a bad row is one sentence naming file, line and field."""
    from review_app.store.queue import clean_messages

    rows = []
    for n, raw in json_objects(path, "write one JSON object per line with messages and candidates"):
        rows.append(check_row(raw, f"{path} line {n}", clean_messages))
    if not rows:
        raise StudioError(f"{path} holds no rows; write one JSON object per line with messages and candidates.")
    return rows


def check_row(raw: dict[str, Any], where: str, clean_messages=None) -> dict[str, Any]:
    if clean_messages is None:
        from review_app.store.queue import clean_messages
    prompt = clean_messages(raw.get("messages"), where)
    if prompt[-1]["role"] != "user":
        raise StudioError(f"{where}: field messages must end with the user's turn (the prompt, without an answer).")
    cands = raw.get("candidates")
    if not isinstance(cands, list) or len(cands) < 2:
        raise StudioError(f"{where}: field candidates must list at least two answers as {{content, model, run, origin}}.")
    out, seen = [], set()
    for i, c in enumerate(cands):
        if not isinstance(c, dict) or not isinstance(c.get("content"), str) or not c["content"].strip():
            raise StudioError(f"{where}: candidates[{i}] needs a non-empty text field content.")
        for k in PROVENANCE:
            if c.get(k) is not None and not isinstance(c[k], str):
                raise StudioError(f"{where}: candidates[{i}].{k} must be text.")
        cid = example_id(prompt + [{"role": "assistant", "content": c["content"]}])
        if cid in seen:
            raise StudioError(f"{where}: candidates[{i}] repeats another candidate's answer; give distinct answers.")
        seen.add(cid)
        out.append({"id": cid, "content": c["content"], **{k: c.get(k) for k in PROVENANCE}})
    item_id = raw.get("id") or hashlib.sha256(json.dumps([example_id(prompt), sorted(seen)]).encode()).hexdigest()[:20]
    if not is_example_id(item_id):
        raise StudioError(f"{where}: field id must be 16-64 lower-case hex characters (or leave it out).")
    meta = raw.get("meta") if isinstance(raw.get("meta"), dict) else {}
    meta = {**meta, "blind": bool(raw.get("blind", False))}
    return {"id": item_id, "messages": prompt, "candidates": out, "source": raw.get("source") or "",
            "origin": raw.get("origin") or "pairwise", "meta": meta}


def load_pairwise(store: Any, path: Path, overlap: int = 1, load_run: str | None = None,
                  dataset: str | None = None, run_id: str | None = None) -> dict[str, int]:
    return store.queue.load_pairwise(pairwise_rows(path), overlap=overlap, dataset=dataset or str(path.resolve()),
                                     run_id=run_id, load_run=load_run)


def side_order(item_id: str, reviewer: str, candidate_ids: list[str]) -> list[str]:
    """The order a reviewer sees the candidates in: random, but the same each time they open the item."""
    return sorted(candidate_ids, key=lambda c: hashlib.sha256(f"{reviewer}\x00{item_id}\x00{c}".encode()).hexdigest())


def record_preference(store: Any, item_id: str, reviewer: str, choice: str, reason: str | None = None,
                      edited_answer: str | None = None, seconds: float | None = None, source: str = "app",
                      idempotency_key: str | None = None) -> dict[str, Any]:
    """Store a pairwise decision: `choice` is a candidate id or "tie"; `edited_answer` rewrites the winner."""
    item = store.get_item(item_id)
    if item.extra.get("kind") != "pairwise":
        raise StudioError(f"review item {item_id} is not a pairwise item; decide it with accept/reject.")
    ids = [c["id"] for c in item.extra["candidates"]]
    if choice != TIE and choice not in ids:
        raise StudioError(f"choice {choice!r} is not a candidate of item {item_id}; use one of its candidate ids or 'tie'.")
    edited = None
    if edited_answer is not None:
        if choice == TIE:
            raise StudioError("a tie has no winner to edit; pick A or B to edit the winner.")
        winner = next(c for c in item.extra["candidates"] if c["id"] == choice)
        if edited_answer.strip() and edited_answer != winner["content"]:
            edited = item.messages + [{"role": "assistant", "content": edited_answer}]
    return store.record_decision(item_id, reviewer, "accept", edited_messages=edited, comment=reason, seconds=seconds,
                                 source=source, idempotency_key=idempotency_key, choice=choice)


def choices(store: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """{item_id: {person: their current pairwise decision}} (app and Label Studio; undone decisions left out)."""
    from review_app.store.analytics import person_of

    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for d in store.decisions():
        if d.get("choice") is None or d["source"] in ("rule", "resolution"):
            continue
        out[d["item_id"]][person_of(d["reviewer"])] = d
    return out


def pairwise_agreement(store: Any, item_ids: list[str] | None = None) -> dict[str, Any]:
    """Agreement on pairwise items over candidate ids / tie (the side randomisation undone): percent agreement
    and Cohen's kappa per pair of reviewers, Fleiss' kappa, Krippendorff's alpha (nominal). `item_ids`: only
    these items (e.g. one blind A/B round)."""
    from review_app.agreement import cohen_pairs, fleiss, krippendorff_alpha

    wanted = None if item_ids is None else set(item_ids)
    labels = {i: {p: d["choice"] for p, d in per.items()} for i, per in choices(store).items()
              if len(per) >= 2 and (wanted is None or i in wanted)}
    # alpha needs numbers: each item's labels coded 0.. within the item (tie its own code)
    coded = {}
    for i, per in labels.items():
        codes = {c: n for n, c in enumerate(sorted(set(per.values())))}
        coded[i] = {p: codes[c] for p, c in per.items()}
    agree = [len(set(per.values())) == 1 for per in labels.values()]
    return {"items_with_overlap": len(labels), "percent_agreement": round(sum(agree) / len(agree), 4) if agree else None,
            "pairs": cohen_pairs(labels), "fleiss": fleiss(labels), "choice_alpha": krippendorff_alpha(coded, "nominal")}


def preference_pairs(store: Any) -> tuple[list[dict[str, Any]], Counter]:
    """Per pairwise item decided by people: the winner (majority of their choices; a lead's resolution is not
    used here) over each other candidate. Ties and split votes are skipped and counted."""
    skipped: Counter = Counter()
    out = []
    by_item = choices(store)
    for item_id in sorted(by_item):
        per = by_item[item_id]
        item = store.get_item(item_id)
        if len(per) < item.extra["overlap"]:
            skipped["pairwise: awaiting reviewers"] += 1
            continue
        votes = Counter(d["choice"] for d in per.values())
        (top, n), *rest = votes.most_common()
        if rest and rest[0][1] == n:
            skipped["pairwise: reviewers split"] += 1
            continue
        if top == TIE:
            skipped["pairwise: tie"] += 1
            continue
        cands = {c["id"]: c for c in item.extra["candidates"]}
        deciders = sorted(p for p, d in per.items() if d["choice"] == top)
        edits = [d["edited_messages"] for d in per.values() if d["choice"] == top and d["edited_messages"]]
        chosen_text = edits[-1][-1]["content"] if edits else cands[top]["content"]
        for cid, cand in cands.items():
            if cid == top:
                continue
            out.append({"item_id": item_id, "prompt": item.messages, "chosen": chosen_text, "rejected": cand["content"],
                        "chosen_candidate": top, "rejected_candidate": cid, "edited": bool(edits),
                        "source": item.source, "meta": item.meta, "dataset_run": item.extra.get("dataset_run"),
                        "provenance": {"decided_by": deciders, "votes": dict(votes),
                                       "chosen": {k: cands[top].get(k) for k in PROVENANCE},
                                       "rejected": {k: cand.get(k) for k in PROVENANCE}}})
    return out, skipped


def ab_report(store: Any, item_ids: list[str], model_a: str, model_b: str) -> dict[str, Any]:
    """Win rate of candidates whose provenance model is `model_b` against `model_a` on the given items (ties
    count half), with a 95 % Wilson interval, over every person's decision (each decision one trial)."""
    wins = ties = losses = 0
    by_item = choices(store)
    for item_id in item_ids:
        per = by_item.get(item_id, {})
        if not per:
            continue
        cands = {c["id"]: c.get("model") for c in store.get_item(item_id).extra["candidates"]}
        for d in per.values():
            if d["choice"] == TIE:
                ties += 1
            elif cands.get(d["choice"]) == model_b:
                wins += 1
            elif cands.get(d["choice"]) == model_a:
                losses += 1
    n = wins + ties + losses
    rate = (wins + 0.5 * ties) / n if n else None
    lo, hi = wilson(wins + 0.5 * ties, n) if n else (None, None)
    return {"model_a": model_a, "model_b": model_b, "judgements": n, "wins": wins, "ties": ties, "losses": losses,
            "win_rate": None if rate is None else round(rate, 4), "ci95": [lo, hi], "ci_method": "wilson (ties as half)"}


def wilson(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a proportion (successes may be fractional: ties as half)."""
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / denom
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)
