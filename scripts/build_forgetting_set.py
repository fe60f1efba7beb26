#!/usr/bin/env python3
"""Build training/checks/general_heldout.jsonl, the forgetting check's general-capability set, once.

Source: the self-instruct repository's 252 user-oriented instructions with expert-written answers (Wang et al.
2023, "Self-Instruct", Apache-2.0; ../shared/data/instructions/user_oriented_instructions.jsonl). They were
written to evaluate instruction following on everyday apps (Grammarly, Netflix, recipes, e-mail, code, ...),
far from the studio's support domains, and the studio never trains on them (the demo trains on sample_data
only; self-instruct's *seed* tasks feed `studio synth`, these do not). Kept: the first instance of tasks whose
answer has 3-60 words and whose instruction + input has ≤ 120 words, at most two per app, in sha256(id) order,
the first 32 — small enough that `studio eval` scores it in seconds on a CPU.

Run: python3 scripts/build_forgetting_set.py ../shared/data/instructions/user_oriented_instructions.jsonl
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "training" / "checks" / "general_heldout.jsonl"
SIZE = 32
PER_APP = 2


def main(source: Path) -> None:
    tasks = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    tasks.sort(key=lambda t: hashlib.sha256(t["id"].encode()).hexdigest())
    per_app: Counter[str] = Counter()
    rows = []
    for t in tasks:
        inst = t["instances"][0]
        prompt = t["instruction"].strip() + (f"\n\n{inst['input'].strip()}" if inst["input"].strip() else "")
        if not 3 <= len(inst["output"].split()) <= 60 or len(prompt.split()) > 120 or per_app[t["motivation_app"]] >= PER_APP:
            continue
        per_app[t["motivation_app"]] += 1
        rows.append({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": inst["output"].strip()}],
                     "source_id": t["id"]})
        if len(rows) == SIZE:
            break
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} conversations → {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
