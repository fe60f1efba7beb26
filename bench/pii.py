"""Benchmark: our PII detection vs presidio used the default way, on presidio-research's synthetic set.

    PYTHONPATH=. python bench/pii.py [../shared/data/pii/presidio_synth_dataset_v2.json]

Same 1,500 texts, same spaCy model (en_core_web_sm), one run each, engines built before timing:
- anchor: `AnalyzerEngine(nlp_engine=<spaCy small>).analyze(text, language="en")` per text (presidio's defaults:
  all its English recognizers, threshold 0, full spaCy pipeline);
- ours: `PiiRedactor().analyze_texts(texts)` (batched nlp.pipe, NER-only spaCy, our recognizers and clean-up, a
  process pool of one worker per core, pool start-up included in the time).
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


def main(path: Path) -> None:
    from curate.pii import PiiConfig, PiiRedactor
    from curate.pii.engine import get_analyzer, quiet_tldextract, worker_count
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
    t0 = time.perf_counter()
    default_pred = [[(r.entity_type, r.start, r.end) for r in default.analyze(t, language="en")] for t in texts]
    default_s = time.perf_counter() - t0

    config = PiiConfig()
    t0 = time.perf_counter()
    get_analyzer(config)
    ours_build = time.perf_counter() - t0
    redactor = PiiRedactor(config)
    t0 = time.perf_counter()
    ours_pred = [[(e.type, e.start, e.end) for e in ents] for ents in redactor.analyze_texts(texts)]
    ours_s = time.perf_counter() - t0

    res_default, res_ours = score(samples, default_pred), score(samples, ours_pred)
    rows = [
        ("texts/s", len(texts) / default_s, len(texts) / ours_s),
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
    print(f"PII benchmark: {len(texts):,} texts of {path.name}, {worker_count(config)} worker(s), "
          f"{os.cpu_count()} CPUs")
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
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA)
