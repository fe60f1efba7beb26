"""Benchmark: our PII detection vs presidio used the default way, on presidio-research's synthetic set.

    PYTHONPATH=. python bench/pii.py [--workers N] [../shared/data/pii/presidio_synth_dataset_v2.json]

Same 1,500 texts, same spaCy model (en_core_web_sm), one run each, engines built before timing:
- anchor: `AnalyzerEngine(nlp_engine=<spaCy small>).analyze(text, language="en")` per text (presidio's defaults:
  all its English recognizers, threshold 0, full spaCy pipeline);
- ours: `PiiRedactor().analyze_texts(texts)` (batched nlp.pipe, NER-only spaCy, our recognizers and clean-up, a
  process pool of one worker per idle core (`usable_workers`) unless `--workers N`, pool start-up included in the time).
The texts are timed in 5 interleaved slices (default on slice 1, ours on slice 1, default on slice 2, ...) so that
both engines meet the same load on a shared machine; each slice is analysed as one `analyze_texts` call (no cache
carries over between calls). Wall time gives texts/s; CPU seconds (this process plus pool workers) are printed
too, as a figure that the machine's load does not move.
Both are scored by curate/pii/evaluate.py with the same label mapping. Prints a table; figures go to
bench/README.md.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEFAULT_DATA = Path(os.environ.get("STUDIO_SHARED_DATA", REPO.parent / "shared" / "data")) / "pii" / \
    "presidio_synth_dataset_v2.json"
STRICT = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS"]


def main(path: Path, workers: int = 0, ner_weights: str = "studio") -> None:
    from curate.pii import PiiConfig, PiiRedactor
    from curate.pii.engine import get_analyzer, quiet_tldextract, shutdown_pool, usable_workers
    from curate.pii.evaluate import load_labelled, score
    from studio.models import SPACY_MODEL

    samples = load_labelled(path)
    texts = [s.text for s in samples]

    quiet_tldextract()
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    t0 = time.perf_counter()
    nlp = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy", "models": [
        {"lang_code": "en", "model_name": SPACY_MODEL}]}).create_engine()
    default = AnalyzerEngine(nlp_engine=nlp)
    default_build = time.perf_counter() - t0

    config = PiiConfig(workers=workers, ner_weights=ner_weights)
    t0 = time.perf_counter()
    get_analyzer(config)
    ours_build = time.perf_counter() - t0
    redactor = PiiRedactor(config)

    load_before = os.getloadavg()
    default_pred: list = []
    ours_pred: list = []
    default_s = ours_s = default_cpu = ours_cpu = 0.0
    n_slices = 5
    for k in range(n_slices):
        part = texts[k * len(texts) // n_slices:(k + 1) * len(texts) // n_slices]
        t0, c0 = time.perf_counter(), time.process_time()
        default_pred += [[(r.entity_type, r.start, r.end) for r in default.analyze(t, language="en")] for t in part]
        default_s += time.perf_counter() - t0
        default_cpu += time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        ours_pred += [[(e.type, e.start, e.end) for e in ents] for ents in redactor.analyze_texts(part)]
        ours_s += time.perf_counter() - t0
        ours_cpu += time.process_time() - c0
    before = os.times()
    shutdown_pool()  # pool workers' CPU time is known once they are reaped
    after = os.times()
    ours_cpu += (after.children_user - before.children_user) + (after.children_system - before.children_system)
    load_after = os.getloadavg()

    res_default, res_ours = score(samples, default_pred), score(samples, ours_pred)
    rows = [
        ("texts/s", len(texts) / default_s, len(texts) / ours_s),
        ("CPU ms per text", 1000 * default_cpu / len(texts), 1000 * ours_cpu / len(texts)),
        ("engine build s", default_build, ours_build),
        ("token F2 (any PII)", res_default.token_pii.f2, res_ours.token_pii.f2),
        ("token precision (any PII)", res_default.token_pii.precision, res_ours.token_pii.precision),
        ("token recall (any PII)", res_default.token_pii.recall, res_ours.token_pii.recall),
        ("token F2 (typed micro)", res_default.token_micro.f2, res_ours.token_micro.f2),
        ("span F2 (typed micro)", res_default.span_micro.f2, res_ours.span_micro.f2),
    ]
    for kind in STRICT:
        for level, d, o in (("token", res_default.token, res_ours.token), ("span", res_default.span, res_ours.span)):
            rows.append((f"{kind} recall ({level})", d.get(kind).recall if kind in d else 0.0,
                         o.get(kind).recall if kind in o else 0.0))
    used = usable_workers(config, len(set(texts[:len(texts) // n_slices])))
    print(f"PII benchmark: {len(texts):,} texts of {path.name} in {n_slices} interleaved slices, ours with "
          f"{used} worker(s) (at the end), {os.cpu_count()} CPUs; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after")
    print(f"{'metric':32s} {'presidio default':>17s} {'ours':>10s} {'ratio':>8s}")
    for name, d, o in rows:
        ratio = f"{o / d:.2f}x" if d else "-"
        print(f"{name:32s} {d:17.3f} {o:10.3f} {ratio:>8s}")
    print("\nours, per type (token P / R / F2 | span P / R / F2, support spans):")
    for kind in sorted(set(res_ours.span) | set(res_ours.token)):
        t, s = res_ours.token.get(kind), res_ours.span.get(kind)
        tok = f"{t.precision:.2f} / {t.recall:.2f} / {t.f2:.2f}" if t else "-"
        spn = f"{s.precision:.2f} / {s.recall:.2f} / {s.f2:.2f}  n={s.tp + s.fn}" if s else "-"
        print(f"  {kind:24s} {tok:20s} | {spn}")


if __name__ == "__main__":
    args = sys.argv[1:]
    n_workers = 0
    if "--workers" in args:
        i = args.index("--workers")
        n_workers = int(args[i + 1])
        del args[i:i + 2]
    weights = "studio"
    if "--ner-weights" in args:     # studio (the shipped fine-tuned weights), model (spaCy's own) or a folder
        i = args.index("--ner-weights")
        weights = args[i + 1]
        del args[i:i + 2]
    main(Path(args[0]) if args else DEFAULT_DATA, n_workers, weights)
