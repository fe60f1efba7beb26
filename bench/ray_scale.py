"""Ray engine vs local engine on ../shared/data/t0: wall time, driver memory, and driver memory vs input size.

Each measurement runs in its own Python process (`--one`), so the driver's peak RSS (ru_maxrss) is that
run's alone. Ray runs start a local cluster as the engine does (`ray.init(num_cpus=<cores>)`, then Ray
Data's per-cluster services, `curate.ray_engine.start_data_services`); the cluster start is timed apart from
the pipeline. Pipeline: normalize, exact_dedupe, near_dedupe (threshold as given). Fractions of
the input are taken by file (sorted names). A low threshold (0.5) multiplies the candidate and verified
pairs at the same input size: the driver's memory must not follow them. Besides the peak RSS, each Ray run
reports what near_dedupe's driver step actually received: the spanning-forest edges and their bytes
(`driver_bytes`), bounded by the rows, not the pairs (see `curate/ray_engine.py`). The local/ray pair on
all of t0 runs `--repeat` times, alternating, since the machine is shared; the load average is printed
before each run.

    PYTHONPATH=$PWD python bench/ray_scale.py [--fractions 0.25,0.5,1] [--low 0.5] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T0 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "t0"
if not T0.is_dir():
    T0 = Path("/work/shared/data/t0")


def one(engine: str, fraction: float, threshold: float) -> dict:
    os.environ["RAY_AUTH_MODE"] = "disabled"
    from curate.pipeline import PipelineConfig, run_pipeline

    files = sorted(f for f in T0.glob("*.jsonl") if f.stat().st_size > 0)
    files = files[: max(1, round(len(files) * fraction))]
    steps = ["normalize", "exact_dedupe", {"near_dedupe": {"threshold": threshold}}]
    cfg = PipelineConfig(inputs=[str(f) for f in files], steps=steps, report=False)
    tmp = Path(tempfile.mkdtemp(prefix="rs-", dir="/tmp"))
    init = 0.0
    if engine == "ray":
        import ray

        from curate.ray_engine import start_data_services

        # As `curate.ray_engine.connect` starts a local cluster: workers at the driver's priority (Ray's default
        # niceness 15 loses the CPU to the other engineers' processes on this shared machine).
        os.environ.setdefault("RAY_worker_niceness", "0")

        t = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), _temp_dir=str(tmp / "r"), include_dashboard=False, log_to_driver=False)
        start_data_services()
        init = time.perf_counter() - t
    t = time.perf_counter()
    run = run_pipeline(cfg, out_dir=tmp / "out", engine=engine)
    wall = time.perf_counter() - t
    near = next(s for s in run.steps if s["step"] == "near_dedupe")
    return {"engine": engine, "fraction": fraction, "threshold": threshold, "rows": run.counts.input,
            "kept": run.counts.kept, "dropped": run.counts.dropped, "wall_s": round(wall, 2),
            "ray_init_s": round(init, 2),
            "candidate_pairs": near.get("candidate_pairs"), "verified_pairs": near.get("verified_pairs"),
            "forest_edges": near.get("forest_edges"), "driver_bytes": near.get("driver_bytes"),
            "load": round(os.getloadavg()[0], 2), "steps_s": {k: v for k, v in run.timings.items()},
            "driver_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", nargs=3)
    ap.add_argument("--fractions", default="0.25,0.5,1")
    ap.add_argument("--low", type=float, default=0.5)
    ap.add_argument("--engines", default="local,ray")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], float(args.one[1]), float(args.one[2]))))
        return
    plan = [(e, 1.0, 0.8) for _ in range(args.repeat) for e in args.engines.split(",")]
    plan += [("ray", float(f), 0.8) for f in args.fractions.split(",") if float(f) != 1.0]
    plan += [(e, 1.0, args.low) for e in args.engines.split(",")]
    rows = []
    for engine, fraction, threshold in plan:
        print(f"# {engine} {fraction:.0%} t={threshold}: load average before {os.getloadavg()[0]:.2f}", flush=True)
        out = subprocess.run([sys.executable, __file__, "--one", engine, str(fraction), str(threshold)],
                             capture_output=True, text=True, env={**os.environ})
        line = [x for x in out.stdout.splitlines() if x.startswith("{")]
        if not line:
            print(out.stderr[-3000:], file=sys.stderr)
            continue
        rows.append(json.loads(line[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| engine | input | threshold | rows | kept | cand. pairs | verified | forest edges (driver KiB) | wall s "
          "| ray init s | driver peak RSS MiB | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        forest = f"{r['forest_edges']:,} ({r['driver_bytes'] / 1024:,.0f})" if r["forest_edges"] is not None else "—"
        print(f"| {r['engine']} | {r['fraction']:.0%} | {r['threshold']} | {r['rows']:,} | {r['kept']:,} | "
              f"{r['candidate_pairs']:,} | {r['verified_pairs']:,} | {forest} | {r['wall_s']} | {r['ray_init_s']} | "
              f"{r['driver_peak_rss_mib']} | {r['load']} |")


if __name__ == "__main__":
    main()
