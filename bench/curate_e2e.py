"""End to end: `studio curate <t0 folder> --steps near_dedupe --no-report` as a user runs it, against the two tools
a user would pick instead, each in its own virtual environment, all reading the same JSONL folder and writing JSONL
or Parquet:

- datasketch 2.0: 128 permutations, threshold 0.8, word 5-grams, `MinHashLSH` query-then-insert (a row is dropped
  when the index already holds a candidate for it, else inserted), JSONL in → JSONL out.
- DataTrove 0.10.1 MinHash: signature → buckets → cluster → filter with `LocalPipelineExecutor` (2 tasks, the
  buckets stage one task per bucket as it requires, 2 workers), `MinhashConfig()` defaults. Cluster ids are saved
  and the removed documents written out (`save_cluster_id`, `exclusion_writer`): the precision check needs them.

Runs alternate (ours, datasketch, DataTrove, ours, ...); the table gives medians, ratios and the peak RSS of each
process tree (all processes of the command summed, sampled every 0.1 s). Precision: the share of dropped rows whose
word 5-gram Jaccard (lower-cased `\\w+` words) to the row it was dropped for is ≥ 0.7, one measure for every tool.
Reading: `polars.read_ndjson` on all of t0 in one file against `studio.readers.read_file` on that file, alternating
in one process, plus the `read` timing of each of our curate runs.

    PYTHONPATH=. python bench/curate_e2e.py --setup          # once: the peers' venvs under /tmp/curate_e2e
    PYTHONPATH=. python bench/curate_e2e.py [--runs 3] [--input ../shared/data/t0]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
T0 = Path(os.environ.get("STUDIO_SHARED_DATA", REPO.parent / "shared" / "data")) / "t0"
VENVS = Path(os.environ.get("CURATE_E2E_VENVS", "/tmp/curate_e2e"))
PEERS = {"datasketch": ["datasketch==2.0.0", "orjson"],
         "datatrove": ["datatrove[processing]==0.10.1", "orjson", "spacy"]}
PRECISION_JACCARD = 0.7

DATASKETCH = textwrap.dedent('''
    import glob, os, sys
    import orjson
    from datasketch import MinHash, MinHashLSH

    src, out = sys.argv[1], sys.argv[2]
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    with open(os.path.join(out, "kept.jsonl"), "wb") as kept, open(os.path.join(out, "dropped.jsonl"), "wb") as dropped:
        for path in sorted(glob.glob(os.path.join(src, "*.jsonl"))):
            name = os.path.basename(path)
            with open(path, "rb") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    rec = orjson.loads(line)
                    words = (rec["prompt"] + "\\n" + rec["completion"]).split()
                    grams = {" ".join(words[i:i + 5]) for i in range(max(len(words) - 4, 1))}
                    m = MinHash(num_perm=128)
                    m.update_batch([g.encode("utf-8") for g in grams])
                    key = f"{name}:{lineno}"
                    rec["key"] = key
                    hits = lsh.query(m)
                    if hits:
                        rec["dup_of"] = hits[0]
                        dropped.write(orjson.dumps(rec) + b"\\n")
                    else:
                        lsh.insert(key, m)
                        kept.write(orjson.dumps(rec) + b"\\n")
''')

DATATROVE = textwrap.dedent('''
    import os, sys
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    src, out = sys.argv[1], sys.argv[2]

    def adapter(self, data, path, id_in_file):
        return {"text": data["prompt"] + "\\n" + data["completion"], "id": f"{os.path.basename(path)}:{id_in_file + 1}",
                "metadata": {}}

    def reader():
        return JsonlReader(src, glob_pattern="*.jsonl", adapter=adapter)

    config = MinhashConfig()
    logs = os.path.join(out, "logs")
    if __name__ == "__main__":
        LocalPipelineExecutor(pipeline=[reader(), MinhashDedupSignature(output_folder=f"{out}/sigs", config=config)],
                              tasks=2, workers=2, logging_dir=f"{logs}/1").run()
        LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(input_folder=f"{out}/sigs", output_folder=f"{out}/buckets",
                                                            config=config)],
                              tasks=config.num_buckets, workers=2, logging_dir=f"{logs}/2").run()
        LocalPipelineExecutor(pipeline=[MinhashDedupCluster(input_folder=f"{out}/buckets", output_folder=f"{out}/remove",
                                                            config=config, save_cluster_id=True)],
                              tasks=1, logging_dir=f"{logs}/3").run()
        LocalPipelineExecutor(pipeline=[reader(), MinhashDedupFilter(input_folder=f"{out}/remove", load_cluster_ids=True,
                                                                     exclusion_writer=JsonlWriter(f"{out}/removed")),
                                        JsonlWriter(f"{out}/kept")],
                              tasks=2, workers=2, logging_dir=f"{logs}/4").run()
''')


def setup() -> None:
    """The peers' virtual environments (their own, never the project's)."""
    for name, packages in PEERS.items():
        venv = VENVS / name
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *packages], check=True)


def _tree_rss_mb(root: int) -> float:
    """Resident memory of `root` and all its descendants, summed (MiB)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        rss[int(entry.name)] = int(fields[21])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(rss.get(p, 0) for p in tree) * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS of the process tree in MiB) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_mb(proc.pid))
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{proc.stderr.read().decode()[-3000:]}")
    return seconds, peak


def _grams(text: str) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i:i + 5]) for i in range(max(len(words) - 4, 1))}


def precision(pairs: list[tuple[str, str]], texts: dict[str, str]) -> tuple[float, int]:
    """Share of (dropped key, kept key) pairs whose texts' word 5-gram Jaccard is at least PRECISION_JACCARD."""
    good = 0
    for dropped, kept in pairs:
        a, b = _grams(texts[dropped]), _grams(texts[kept])
        good += len(a & b) / max(len(a | b), 1) >= PRECISION_JACCARD
    return good / max(len(pairs), 1), len(pairs)


def t0_texts(folder: Path) -> dict[str, str]:
    texts = {}
    for path in sorted(folder.glob("*.jsonl")):
        for lineno, line in enumerate(path.read_bytes().split(b"\n"), 1):
            if line.strip():
                rec = json.loads(line)
                texts[f"{path.name}:{lineno}"] = rec["prompt"] + "\n" + rec["completion"]
    return texts


def run_ours(folder: Path, out: Path) -> tuple[float, float]:
    studio = REPO / ".venv" / "bin" / "studio"
    cmd = [str(studio)] if studio.exists() else [sys.executable, "-m", "studio_app.cli"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return timed([*cmd, "--quiet", "curate", str(folder), "--steps", "near_dedupe", "--no-report", "--out", str(out)],
                 env)


def pairs_ours(out: Path) -> list[tuple[str, str]]:
    import polars as pl

    key = pl.col("source").str.split("/").list.last()
    kept = pl.read_parquet(out / "kept.parquet", columns=["id", "source"]).select("id", key.alias("kept"))
    dropped = pl.read_parquet(out / "dropped.parquet", columns=["source", "dup_of"]).select(key.alias("dropped"),
                                                                                          "dup_of")
    both = dropped.join(kept, left_on="dup_of", right_on="id", how="left")
    return list(zip(both["dropped"].to_list(), both["kept"].to_list(), strict=True))


def pairs_datasketch(out: Path) -> list[tuple[str, str]]:
    lines = (out / "dropped.jsonl").read_text(encoding="utf-8").split("\n")  # not splitlines: text holds U+2028
    return [(r["key"], r["dup_of"]) for r in map(json.loads, filter(None, lines))]


def pairs_datatrove(out: Path) -> list[tuple[str, str]]:
    import gzip

    def docs(folder: Path):
        for path in sorted(folder.glob("*")):
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt") as fh:
                yield from map(json.loads, fh)

    kept_of = {d["metadata"]["minhash_cluster_id"]: d["id"] for d in docs(out / "kept")
               if "minhash_cluster_id" in d.get("metadata", {})}
    return [(d["id"], kept_of[d["metadata"]["minhash_cluster_id"]]) for d in docs(out / "removed")]


def reading(folder: Path, repeat: int) -> dict[str, float]:
    """Medians of polars.read_ndjson and our read_file on all of t0 in one file, alternating in this process."""
    import polars as pl

    from studio.readers import read_file

    with tempfile.TemporaryDirectory() as tmp:
        whole = Path(tmp) / "t0.jsonl"
        with whole.open("wb") as fh:
            for path in sorted(folder.glob("*.jsonl")):
                data = path.read_bytes()
                fh.write(data if data.endswith(b"\n") or not data else data + b"\n")
        times: dict[str, list[float]] = {"polars.read_ndjson": [], "read_file": []}
        for _ in range(repeat):
            t = time.perf_counter()
            pl.read_ndjson(whole)
            times["polars.read_ndjson"].append(time.perf_counter() - t)
            t = time.perf_counter()
            read_file(whole)
            times["read_file"].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=T0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--setup", action="store_true", help="create the peers' venvs and exit")
    parser.add_argument("--skip", nargs="*", default=[], choices=["datasketch", "datatrove"])
    args = parser.parse_args()
    if args.setup:
        setup()
        return
    load = os.getloadavg()[0]
    read = reading(args.input, 5)
    texts = t0_texts(args.input)
    tools = ["ours", *(t for t in ("datasketch", "datatrove") if t not in args.skip)]
    seconds: dict[str, list[float]] = {t: [] for t in tools}
    rss: dict[str, list[float]] = {t: [] for t in tools}
    ours_read: list[float] = []
    scored: dict[str, tuple[float, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.runs):
            for tool in tools:
                out = Path(tmp) / f"{tool}-{r}"
                if tool == "ours":
                    s, m = run_ours(args.input, out)
                    ours_read.append(json.loads((out / "manifest.json").read_text())["timings"]["read"])
                else:
                    out.mkdir()
                    script = out / f"{tool}_dedupe.py"
                    script.write_text(DATASKETCH if tool == "datasketch" else DATATROVE)
                    s, m = timed([str(VENVS / tool / "bin" / "python"), str(script), str(args.input), str(out)])
                seconds[tool].append(s)
                rss[tool].append(m)
                print(f"run {r + 1} {tool}: {s:.2f} s, peak {m:.0f} MiB", file=sys.stderr)
                if r == 0:
                    pairs = {"ours": pairs_ours, "datasketch": pairs_datasketch, "datatrove": pairs_datatrove}[tool](out)
                    scored[tool] = precision(pairs, texts)
    ours = statistics.median(seconds["ours"])
    print(f"\nend to end on {args.input} ({len(texts):,} rows), {args.runs} alternating runs, load {load:.1f} at start")
    print("| tool | median s (runs) | ours faster by | peak RSS MiB (max) | drops | precision (J5 >= 0.7) |")
    print("|---|---|---|---|---|---|")
    for tool in tools:
        med = statistics.median(seconds[tool])
        runs = ", ".join(f"{s:.2f}" for s in seconds[tool])
        ratio = "—" if tool == "ours" else f"{med / ours:.1f}×"
        p, n = scored[tool]
        print(f"| {tool} | {med:.2f} ({runs}) | {ratio} | {max(rss[tool]):.0f} | {n:,} | {p:.4f} |")
    print(f"\nreading all of t0 as one JSONL file (median of 5, alternating): polars.read_ndjson "
          f"{read['polars.read_ndjson']:.3f} s, studio read_file {read['read_file']:.3f} s "
          f"({read['read_file'] / read['polars.read_ndjson']:.1f}×); our curate runs' read phase (the folder, ids "
          f"included): {', '.join(f'{s:.2f}' for s in ours_read)} s")


if __name__ == "__main__":
    main()
