"""Which small GGUF model makes the better bundled generator? Acceptance, time and tokens/s on the real inputs.

For each GGUF (default: the bundled SmolLM2-135M-Instruct), on the embedded llama.cpp server with the
settings `studio synth` and the demo use:
- self-instruct from the raw self-instruct seed file (`--n 20`; CLI defaults: no LLM judge on the local
  backend, curate steps, then the score step's gate quality >= 0.5);
- grounded QA over sample_data/docs (Markdown, PDF, DOCX; n 8, as the demo's synth stage).
`--qa-answer model` measures grounded QA with model-written answers instead of quoted ones.
Prints kept of requested, candidates tried (acceptance = kept / candidates), drop reasons, wall and process
CPU seconds, generated tokens/s, and the model file's size. Wall time on a shared machine varies with load;
CPU seconds do much less.

    PYTHONPATH=. python bench/synth_generators.py [--gguf PATH ...] [--n 20] [--docs-n 8] [--only self-instruct]
        [--qa-answer quote|model] [--chat-template gemma] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# bench/synth.py is named like the synth package: take bench/ off the path so `import synth` finds the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
SEEDS = REPO.parent / "shared" / "data" / "instructions" / "self_instruct_seed_tasks.jsonl"
DOCS = REPO / "sample_data" / "docs"


def one_run(generator: str, inputs: list[Path], n: int, gguf: Path | None, out: Path, **job_kw) -> dict:
    from studio.readers import read_inputs
    from synth.backends import BackendConfig, make_backend
    from synth.commands import curated_postprocess
    from synth.runner import SynthJob, build_generator, run_synth

    job = SynthJob(generator=generator, n=n, inputs=[str(p) for p in inputs], judge=False, min_quality=0.5,
                   backend=BackendConfig(kind="local", concurrency=4, gguf=str(gguf) if gguf else None), **job_kw)
    result = read_inputs(inputs)
    rows = result.rows
    t0, c0 = time.perf_counter(), time.process_time()
    run = run_synth(job, build_generator(job, rows, result.kind), make_backend(job.backend), out_dir=out,
                    postprocess=curated_postprocess(rows if result.kind == "examples" else [], min_quality=0.5))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    m = json.loads(run.manifest_path.read_text())
    return {"kept": m["counts"]["kept"], "n": n, "candidates": m["counts"]["input"], "dropped": m["counts"]["dropped"],
            "quarantined": m["counts"]["quarantined"], "wall": wall, "cpu": cpu,
            "tok_s": m["usage"]["completion_tokens"] / max(m["timings"]["generate"], 1e-9),
            "tokens": (m["usage"]["prompt_tokens"], m["usage"]["completion_tokens"]), "gguf": m["backend"]["gguf"]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", action="append", type=Path, default=[], help="a GGUF to compare (repeatable)")
    ap.add_argument("--n", type=int, default=20, help="self-instruct examples to produce")
    ap.add_argument("--docs-n", type=int, default=8, help="grounded-QA examples to produce")
    ap.add_argument("--only", choices=("self-instruct", "grounded-qa"), default=None)
    ap.add_argument("--qa-answer", choices=("quote", "model"), default="quote",
                    help="grounded QA answers: the evidence sentence quoted (default) or written by the model")
    ap.add_argument("--chat-template", default=None,
                    help="a llama.cpp built-in chat template (e.g. gemma) for GGUFs that ship none")
    ap.add_argument("--keep", type=Path, default=None, help="write the run folders here (default: a temporary folder)")
    args = ap.parse_args(argv)
    # Quiet like the CLI: one console handler at WARNING, so neither a run's INFO log level nor absl's fallback
    # handler (via rouge-score) prints httpx's line per request.
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    logging.basicConfig(handlers=[console], force=True)
    if args.chat_template:  # `studio synth` has no such setting: the bench hands it to the server it starts
        import functools

        import synth.backends

        synth.backends.start_llama_server = functools.partial(synth.backends.start_llama_server,
                                                              chat_template=args.chat_template)

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        for k, gguf in enumerate(args.gguf or [None]):
            if args.only != "grounded-qa":
                r = one_run("self-instruct", [SEEDS], args.n, gguf, Path(tmp) / f"si{k}", temperature=0.7, max_tokens=256)
                rows.append(("self-instruct (seed file)", r))
            if args.only != "self-instruct":
                r = one_run("grounded-qa", [DOCS], args.docs_n, gguf, Path(tmp) / f"qa{k}", temperature=0.7, max_tokens=64,
                            options={"answer": args.qa_answer})
                rows.append(("grounded QA (sample docs)", r))
    print("\n| generator | model (file size) | kept / n | candidates | acceptance | dropped | quarantined | wall s | CPU s | tokens in / out | gen tok/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        gguf = Path(r["gguf"])
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(r["dropped"].items())) or "-"
        print(f"| {name} | {gguf.name} ({gguf.stat().st_size / 1e6:.0f} MB) | {r['kept']} / {r['n']} | {r['candidates']} | "
              f"{r['kept'] / r['candidates']:.0%} | {dropped} | {r['quarantined']} | {r['wall']:.0f} | {r['cpu']:.0f} | "
              f"{r['tokens'][0]:,} / {r['tokens'][1]:,} | {r['tok_s']:.1f} |")


if __name__ == "__main__":
    main()
