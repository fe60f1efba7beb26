"""Check that this tree's curate engines write byte-identical kept.parquet / dropped.parquet to those of a git ref.

For the step-protocol rewrite (issue 19): the reference tree is `git archive REF` of this repository unpacked
into the work folder; each tree runs the same pipeline on both engines (local, ray), each run in its own
process; the files are compared by SHA-256, engine by engine. One embedding cache is shared by every run (the
first run fills it), so both trees cluster the same vectors. Prints a table and writes `result.json`.

    PYTHONPATH=. python bench/identical_outputs.py --ref 4cf86fe --input sample [--input t0] [--work /tmp/io]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("STUDIO_SHARED_DATA", REPO.parent / "shared" / "data"))

PIPELINES = {
    # every global step, `quality` for the representatives, several k-means clusters and boundary rows
    "sample": ["normalize", {"score": {"model": False}}, "exact_dedupe", {"near_dedupe": {"threshold": 0.5}},
               {"semantic_dedupe": {"cluster_size": 50}}],
    "t0": ["normalize", {"score": {"model": False}}, "exact_dedupe", "near_dedupe",
           {"semantic_dedupe": {"model": "static"}}],
}

RUN = """
import json, sys
from curate.pipeline import PipelineConfig, run_pipeline
inputs, steps, out, engine = json.loads(sys.argv[1])
run_pipeline(PipelineConfig(inputs=inputs, steps=steps, report=False), out_dir=out, engine=engine, overwrite=True)
"""


def inputs_of(name: str) -> list[str]:
    if name == "sample":
        return [str(p) for p in sorted((REPO / "sample_data").iterdir())
                if p.suffix in (".jsonl", ".json", ".csv") and p.name != "planted.json"]
    return [str(p) for p in sorted((SHARED / "t0").glob("*.jsonl")) if p.stat().st_size > 0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def run(tree: Path, name: str, engine: str, out: Path, cache: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "STUDIO_CACHE": str(cache)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", RUN, json.dumps([inputs_of(name), PIPELINES[name], str(out), engine])],
                   cwd=tree, env=env, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", required=True, help="git ref whose outputs are the reference (e.g. main's commit)")
    ap.add_argument("--input", action="append", choices=sorted(PIPELINES), help="sample and/or t0 (default sample)")
    ap.add_argument("--engines", default="local,ray")
    ap.add_argument("--work", default="/tmp/io", help="short: a local Ray cluster's socket paths live under it")
    args = ap.parse_args()
    work = Path(args.work)
    ref_tree = work / "ref"
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", args.ref], capture_output=True, text=True,
                         check=True).stdout.strip()
    if not (ref_tree / ".commit").exists() or (ref_tree / ".commit").read_text() != sha:
        ref_tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", sha], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(ref_tree)], input=archive, check=True)
        (ref_tree / ".commit").write_text(sha)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    results = []
    for name in args.input or ["sample"]:
        for engine in args.engines.split(","):
            row = {"input": name, "engine": engine}
            for label, tree in (("ref", ref_tree), ("new", REPO)):
                out = work / f"{name}.{engine[0]}.{label}"
                row[f"{label}_s"] = round(run(tree, name, engine, out, work / "cache"), 1)
                for f in ("kept", "dropped"):
                    row[f"{label}_{f}"] = digest(out / f"{f}.parquet")
            row["identical"] = all(row[f"ref_{f}"] == row[f"new_{f}"] for f in ("kept", "dropped"))
            results.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nref {sha[:10]} vs this tree (HEAD {head}, plus any uncommitted changes)")
    print("| input | engine | kept.parquet | dropped.parquet | identical |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['input']} | {r['engine']} | {r['new_kept']} | {r['new_dropped']} | {'yes' if r['identical'] else 'NO'} |")
    (work / "result.json").write_text(json.dumps({"ref": sha, "head": head, "results": results}, indent=1))
    sys.exit(0 if all(r["identical"] for r in results) else 1)


if __name__ == "__main__":
    main()
