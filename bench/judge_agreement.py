"""How often does a judge prefer text-davinci-003's answer over davinci's on the 252 user-oriented instructions?

A real preference signal (self-instruct's user-oriented set, answered by both GPT-3 models): 003 is the
instruction-tuned one, and people prefer its answers by a wide margin. For each judge, every answer is
scored on its own (pointwise, as synth and `studio judge` use it) and a pair agrees when 003's score is
higher; ties count half. The sign test over untied pairs says whether a judge is better than chance.

Judges: the `score` step's `quality` (heuristics + SmolLM2 IFD, no LLM call), and the synth LLM judge
rubric on each GGUF named (served by the embedded llama.cpp server, as `studio judge --backend local` does).

    PYTHONPATH=. python bench/judge_agreement.py [--gguf PATH ...] [--limit N] [--no-score] [--no-bundled] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# bench/synth.py is named like the synth package: take bench/ off the path so `import synth` finds the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
PREDICTIONS = REPO.parent / "shared" / "data" / "instructions" / "predictions"


def load_pairs(limit: int | None = None) -> tuple[list[dict], list[dict]]:
    """(davinci rows, text-davinci-003 rows) in the studio schema, aligned by position."""
    from studio.schema import make_example

    def rows(name: str) -> list[dict]:
        recs = [json.loads(line) for line in (PREDICTIONS / f"{name}_predictions.jsonl").read_text().splitlines()]
        out = []
        for i, r in enumerate(recs[:limit]):
            user = r["instruction"].strip() + (f"\n\n{r['input'].strip()}" if r["input"].strip() else "")
            out.append(make_example([{"role": "user", "content": user},
                                     {"role": "assistant", "content": r["response"].strip()}],
                                    source=f"{name}:{i}", meta={"model": name}))
        return out

    base, tuned = rows("davinci"), rows("text-davinci-003")
    assert [b["messages"][0] for b in base] == [t["messages"][0] for t in tuned], "instructions do not line up"
    return base, tuned


def agreement(base: list[float | None], tuned: list[float | None]) -> dict:
    """Agreement with 003 ≻ davinci (ties half) and the two-sided sign-test p-value over untied pairs."""
    wins = losses = ties = missing = 0
    for b, t in zip(base, tuned, strict=True):
        if b is None or t is None:
            missing += 1
        elif t > b:
            wins += 1
        elif t < b:
            losses += 1
        else:
            ties += 1
    n = wins + losses + ties
    untied = wins + losses
    k = min(wins, losses)
    p = min(1.0, 2 * sum(math.comb(untied, i) for i in range(k + 1)) / 2 ** untied) if untied else 1.0
    return {"pairs": n, "wins": wins, "losses": losses, "ties": ties, "missing": missing,
            "agreement": (wins + ties / 2) / n if n else float("nan"),
            "untied_agreement": wins / untied if untied else float("nan"), "sign_p": p}


def score_quality(rows: list[dict]) -> tuple[list[float], float]:

    from curate.registry import build_step
    from studio.schema import examples_frame

    t0 = time.perf_counter()
    step = build_step("score", {})
    out = step.process(examples_frame(rows))
    return out["quality"].to_list(), time.perf_counter() - t0


def llm_judge(rows: list[dict], gguf: Path | None, concurrency: int, out: Path | None
              ) -> tuple[list[float | None], float, dict]:
    """q_judge per row. With `out`, the run folder is kept and a rerun resumes it (answers come from its log)."""
    import polars as pl

    from synth.backends import BackendConfig, make_backend
    from synth.judge_run import JudgeJob, judge_dataset
    from synth.runner import JOB_FILE

    cfg = BackendConfig(kind="local", gguf=str(gguf) if gguf else None, concurrency=concurrency)
    job = JudgeJob(backend=cfg)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = out / Path(cfg.gguf or "bundled").stem if out else Path(tmp) / "judge"
        run = judge_dataset(job, rows, make_backend(cfg), out_dir=folder, resume=(folder / JOB_FILE).is_file())
        judged = pl.read_parquet(run.dir / "judged.parquet")
        m = run.manifest()
    return judged["q_judge"].to_list(), time.perf_counter() - t0, m


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", action="append", type=Path, default=[], help="another GGUF judge (repeatable)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N instructions")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--no-score", action="store_true", help="skip the score step's quality")
    ap.add_argument("--no-bundled", action="store_true", help="skip the bundled SmolLM2 judge")
    ap.add_argument("--out", type=Path, default=None, help="keep the LLM judges' run folders here; a rerun resumes")
    args = ap.parse_args(argv)

    base, tuned = load_pairs(args.limit)
    print(f"judge agreement with text-davinci-003 over davinci, {len(base)} user-oriented instructions")
    print("| judge | pairs | 003 higher | davinci higher | ties | unscored | agreement (ties ½) | untied | sign-test p | s | note |")
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    if not args.no_score:
        q, secs = score_quality(base + tuned)
        _row("score step quality", agreement(q[:len(base)], q[len(base):]), secs, "")
    pairs = [row for pair in zip(base, tuned, strict=True) for row in pair]  # interleaved: davinci i, 003 i
    for gguf in ([None] if not args.no_bundled else []) + list(args.gguf):
        q, secs, m = llm_judge(pairs, gguf, args.concurrency, args.out)
        note = f"{m['judge']['unjudged']} unjudged; {m['usage']['prompt_tokens']:,}/{m['usage']['completion_tokens']:,} tokens"
        _row(f"LLM judge rubric, {Path(m['backend']['gguf']).name}", agreement(q[0::2], q[1::2]), secs, note)


def _row(name: str, a: dict, secs: float, note: str) -> None:
    print(f"| {name} | {a['pairs']} | {a['wins']} | {a['losses']} | {a['ties']} | {a['missing']} | "
          f"{a['agreement']:.3f} | {a['untied_agreement']:.3f} | {a['sign_p']:.2g} | {secs:.0f} | {note} |", flush=True)


if __name__ == "__main__":
    main()
