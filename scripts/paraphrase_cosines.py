"""MiniLM cosines of sample_data's planted paraphrase pairs against every other pair of rows.

Reads sample_data the way the pipeline does (normalize, exact_dedupe, near_dedupe), embeds each row with the
bundled all-MiniLM-L6-v2 (the embedding cache semantic_dedupe uses) for three text views, and prints, per
view, the planted pairs' cosine range, the top non-planted cosines and how many non-planted pairs reach
0.90 / 0.95. This is how the figures in sample_data/README.md and the semantic_dedupe test's margin were
measured.

    PYTHONPATH=. python scripts/paraphrase_cosines.py [--pairs]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from curate.embeddings import EmbeddingCache
from curate.pipeline import run_steps
from curate.registry import build_step
from curate.views import view_text
from studio.readers import read_inputs
from studio_app.demo import sample_inputs


def main() -> None:
    sd = Path("sample_data")
    planted = json.loads((sd / "planted.json").read_text())
    files = [p for p in sample_inputs(sd) if "malformed" not in p.parts]
    steps = [build_step("normalize"), build_step("exact_dedupe"), build_step("near_dedupe")]
    base, _ = run_steps(read_inputs(files).frame(), steps)
    by_place = {f"{Path(s.rsplit(':', 1)[0]).name}:{s.rsplit(':', 1)[1]}": i for i, s in enumerate(base["source"])}
    pairs = [(by_place[f"{p['a']['file']}:{p['a']['line']}"], by_place[f"{p['b']['file']}:{p['b']['line']}"])
             for p in planted["paraphrases"]]
    planted_set = {frozenset(p) for p in pairs}
    print(f"{len(base)} rows after exact and near dedupe, {len(pairs)} planted paraphrase pairs")
    for view in ["prompt", "response", "prompt_response"]:
        texts = base.select(view_text(view)).to_series().to_list()
        emb = EmbeddingCache(view=view).embed(base["id"].to_list(), texts)
        sim = emb @ emb.T
        cos = sorted(float(sim[a, b]) for a, b in pairs)
        iu = np.triu_indices(len(sim), 1)
        other_mask = np.array([frozenset((i, j)) not in planted_set for i, j in zip(*iu, strict=True)])
        other = np.sort(sim[iu][other_mask])[::-1]
        print(f"{view:16s} planted min/median/max {cos[0]:.3f} {cos[len(cos) // 2]:.3f} {cos[-1]:.3f}"
              f" | others top5 {[round(float(x), 3) for x in other[:5]]}"
              f" | others >= 0.90: {int((other >= 0.90).sum())}, >= 0.95: {int((other >= 0.95).sum())}"
              f", >= planted min: {int((other >= cos[0]).sum())}")
        if "--pairs" in sys.argv and view == "prompt_response":
            for a, b in sorted(pairs, key=lambda p: sim[p[0], p[1]]):
                print(f"  {sim[a, b]:.3f}  {base['source'][a]}  ~  {base['source'][b]}")


if __name__ == "__main__":
    main()
