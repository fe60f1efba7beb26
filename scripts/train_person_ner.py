"""Fine-tune the NER weights of spaCy's small English model for `redact_pii` (issue 17, item 9).

    PYTHONPATH=. python scripts/train_person_ner.py [--epochs N] [--out curate/pii/ner_model]

Why: rules over word lists around spaCy's small model could not get person names and harmless look-alikes right on
fresh message sets (bench/README.md, `## pii`): the model misses names in chat-style and clinical writing and tags
brands, eponyms and places as people. This script updates only the `ner` component's weights (same architecture,
same speed) on messages of the studio's own domains:

- **names**: the message templates of bench/pii_names.py's tuning and dev parts (first-round tuning half, dev, pool2's
  dev half, pools 3-10) filled with names of the **tuning** half of the name split only, in every shape the bench
  uses (full, first, title + surname, whole message lower-cased, line start), gold PERSON span on the name;
- **look-alikes**: the look-alike phrases of the same parts in their messages, with no PERSON anywhere;
- **rehearsal**: passages of the T0 mixture (../shared/data/t0) with the shipped model's own entities as labels, so
  the other entity types (and names in ordinary prose) stay as they were.

In every domain message the shipped model's non-PERSON entities that do not overlap the gold name are kept as labels
(the message may hold a date, a town, an organisation). Never trained on: the first-round held-out half, pool2's
held-out half, any later pool (heldout11 and heldout12), the held-out names, presidio's synthetic set (bench/pii.py's data)
and the self-instruct texts (the false-positive check). Deterministic for a given seed; writes the component's
`cfg`, `model` and `moves` to `--out`, which `curate.pii.engine` loads over the shipped model's `ner`.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import pii_names as pn  # noqa: E402  (bench/pii_names.py: templates, look-alikes, the name split)

#: the dev pools (read, printed and tuned on in earlier rounds); later pools stay held out
TRAIN_POOLS = ("heldout3", "heldout4", "heldout5", "heldout6", "heldout7", "heldout8", "heldout9", "heldout10")
EXCLUDE = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter")


def name_messages(rng: random.Random, per_template: int) -> list[tuple[str, list[tuple[int, int]]]]:
    """(text, gold PERSON char spans) for every training template, each filled `per_template` times."""
    people = pn.load_names("tune")
    rng.shuffle(people)
    templates: list[str] = []
    for domain, items in pn.TEMPLATES.items():
        templates += pn._split(items, "tune", domain)
    for items in pn.DEV_TEMPLATES.values():
        templates += items
    pool2 = json.loads(pn.POOL2.read_text(encoding="utf-8"))
    for domain, items in pool2["templates"].items():
        templates += pn._split(items, "tune", f"pool2:{domain}")
    for part in TRAIN_POOLS:
        for items in json.loads(pn.HELD_OUT_POOLS[part].read_text(encoding="utf-8"))["templates"].values():
            templates += items
    out = []
    k = 0
    for template in templates:
        titled = pn.titled_template(template, any_title=True)
        for _ in range(per_template):
            given, surname, title = people[k % len(people)]
            k += 1
            shape, prefix, person = pn.name_in_shape(k, template, given, surname, title, titled)
            id_template, id_kind = pn.ID_SENTENCES[rng.randrange(len(pn.ID_SENTENCES))]
            id_text = id_template.format(**pn._ids(rng, given, surname))
            head, _, tail = template.partition("{name}")
            tail = tail.format(id=id_text)
            start = len(head) + len(prefix)
            text = head + prefix + person + tail
            if shape.startswith("lower"):
                if len(text.lower()) != len(text):
                    continue        # lower-casing moved the offsets (a dotted capital I): skip this filling
                text = text.lower()
            out.append((text, [(start, start + len(person))]))
    return out


def lookalike_messages() -> list[str]:
    texts = []
    for thing in pn._split(pn.LOOK_ALIKES, "tune", "lookalike"):
        texts += [t.format(thing=thing) for t in pn.LOOK_ALIKE_TEMPLATES]
    for thing in pn.DEV_LOOK_ALIKES:
        texts += [t.format(thing=thing) for t in pn.DEV_LOOK_ALIKE_TEMPLATES]
    pool2 = json.loads(pn.POOL2.read_text(encoding="utf-8"))
    things = pn._split(pool2["lookalikes"], "tune", "pool2:lookalike")
    look_templates = pn._split(pool2["lookalike_templates"], "tune", "pool2:lookalike_templates")
    for thing in things:
        texts += [t.format(thing=thing) for t in look_templates]
    for part in TRAIN_POOLS:
        for entry in json.loads(pn.HELD_OUT_POOLS[part].read_text(encoding="utf-8"))["lookalike_messages"]:
            texts += entry["texts"]
    # each also lower-cased, as chat is: a third of the name messages are, and without these the model learns that
    # any word of lower-case writing may be a name ("the scan is blurry", "was lifting a pot of hardy")
    return texts + [t.lower() for t in texts if len(t.lower()) == len(t) and t.lower() != t]


def _passage(text: str) -> str:
    """The first ~200-500 characters of a text, cut at a sentence end where one falls after 150."""
    cut = text[:500]
    end = max(cut.rfind(". "), cut.rfind(".\n"))
    return cut[:end + 1] if end > 150 else cut


def rehearsal_texts(rng: random.Random, n: int) -> list[str]:
    """Passages of general text: two thirds from the T0 mixture (news, reviews, encyclopaedia, dialogue), one third
    from GPTeacher's role-play and tool-use sets (instructions, answers, code), all in ../shared/data."""
    texts = []
    files = sorted((pn.DATA.parent / "t0").glob("*.jsonl"))
    per_file = -(-2 * n // (3 * len(files)))
    for path in files:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
        texts += [_passage(json.loads(line).get("prompt", "")) for line in rng.sample(lines, min(per_file, len(lines)))]
    texts = rng.sample(texts, min(len(texts), 2 * n // 3))
    rows = []
    for name in ("gpteacher_roleplay_deduped.json", "gpteacher_toolformer_dedupe_only.json"):
        rows += json.loads((pn.DATA.parent / "dedup" / name).read_text(encoding="utf-8"))
    for row in rng.sample(rows, n - len(texts)):
        texts.append(_passage(row["output"] if rng.random() < 0.6 else row["instruction"]))
    rng.shuffle(texts)
    return [t for t in texts if t.strip()]


def examples(nlp, base, rng: random.Random, per_template: int, n_rehearsal: int, lookalike_repeat: int = 1,
             limit: int = 0):
    from spacy.training import Example

    named = name_messages(rng, per_template)
    looks = lookalike_messages() * lookalike_repeat
    rehearse = rehearsal_texts(rng, n_rehearsal)
    if limit:       # a quick run (tests): the first `limit` of each kind
        named, looks, rehearse = named[:limit], looks[:limit], rehearse[:limit]
    texts = [t for t, _ in named] + looks + rehearse
    docs = list(base.pipe(texts, batch_size=64))
    # A third of the general passages lower-cased, as chat is, keeping the entities the shipped model finds in
    # the cased text: in lower-case writing ordinary words stay ordinary, and names stay names.
    first = len(named) + len(looks)
    for i in range(first, len(texts)):
        if rng.random() < 1 / 3 and len(texts[i].lower()) == len(texts[i]):
            texts[i] = texts[i].lower()
    out = []
    for i, (text, doc) in enumerate(zip(texts, docs, strict=True)):
        gold = named[i][1] if i < len(named) else []
        kind = "name" if i < len(named) else "lookalike" if i < len(named) + len(looks) else "rehearsal"
        ents = [(s, e, "PERSON") for s, e in gold]
        for ent in doc.ents:
            if kind != "rehearsal" and ent.label_ == "PERSON":
                continue        # a domain message holds no person but the gold one
            if any(ent.start_char < e and s < ent.end_char for s, e in gold):
                continue
            ents.append((ent.start_char, ent.end_char, ent.label_))
        out.append((kind, Example.from_dict(nlp.make_doc(text), {"entities": ents})))
    return out


def main() -> None:
    import warnings

    import spacy
    from spacy.util import minibatch

    # spaCy warns (W030) for each label that does not fall on token bounds, e.g. a date the shipped model found
    # inside a hyphenated word; such a label is ignored in training ("-"), which is what we want, once, quietly
    warnings.filterwarnings("ignore", message=r"\[W030\]")

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--per-template", type=int, default=6, help="names put in each training template")
    ap.add_argument("--rehearsal", type=int, default=5000,
                    help="passages of general text labelled by the shipped model")
    ap.add_argument("--lookalike-repeat", type=int, default=1, help="times each look-alike message is trained on")
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N messages of each kind only (a quick check)")
    ap.add_argument("--out", type=Path, default=REPO / "curate" / "pii" / "ner_model")
    args = ap.parse_args()
    needed = [pn.DATA / "FakeNameGenerator.com_3000.csv", pn.DATA / "presidio_synth_dataset_v2.json",
              pn.DATA.parent / "t0", pn.DATA.parent / "dedup"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        sys.exit(f"train_person_ner: {', '.join(missing)} not found; the training data come from ../shared/data "
                 "(or $STUDIO_SHARED_DATA): put that folder beside the project and run again.")

    from curate.pii.config import SPACY_MODEL

    spacy.util.fix_random_seed(args.seed)
    rng = random.Random(args.seed)
    base = spacy.load(SPACY_MODEL, exclude=EXCLUDE)
    nlp = spacy.load(SPACY_MODEL, exclude=EXCLUDE)
    data = examples(nlp, base, rng, args.per_template, args.rehearsal, args.lookalike_repeat, args.limit)
    counts = {k: sum(1 for kind, _ in data if kind == k) for k in ("name", "lookalike", "rehearsal")}
    print(f"training examples: {counts}", flush=True)
    optimizer = nlp.resume_training()
    batch = [ex for _, ex in data]
    for epoch in range(args.epochs):
        rng.shuffle(batch)
        losses: dict[str, float] = {}
        t0 = time.perf_counter()
        for chunk in minibatch(batch, size=32):
            nlp.update(chunk, sgd=optimizer, drop=args.dropout, losses=losses)
        print(f"epoch {epoch + 1}: ner loss {losses['ner']:.1f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    nlp.get_pipe("ner").to_disk(args.out, exclude=["vocab"])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
