"""Benchmark: how many person names survive `redact_pii`, and how many harmless look-alikes it keeps.

    PYTHONPATH=. python bench/pii_names.py [--part tune|dev|dev2|tuning|heldout|heldout2|heldout3|heldout4|heldout5|heldout6|heldout7|heldout8|heldout9|heldout10|heldout11|heldout12|both] [--per-template N] [--show N]

Builds support, claims and clinical messages from sources the recognizers do not use: given names and surnames
of FakeNameGenerator.com_3000.csv (many countries) and the PERSON spans of presidio-research's synthetic set,
both in ../shared/data/pii/. Everything is split by a fixed seed into a **tuning** part and a **held-out** part:
the name rows, the presidio PERSON values AND the message templates (so held-out messages put names after words
that were never seen while tuning). Rules are tuned on `--part tune` and `--part dev` (templates and look-alikes
of its own, tuning names) only; `--part heldout` is run once at the end.

Each message holds one name in one of several shapes (full name, first name, surname with a title, whole message
lower-cased as in chat, the name at a line start) and, in some templates, structured identifiers (e-mail, phone,
SSN, card, claim number). Look-alike messages hold a harmless phrase that looks like a name (eponyms, products,
places, colours, brands) and no person.
Measures, with `PiiRedactor({"mode": "tag"})`:
- name survives: a word of the name (2+ letters) is still in the redacted message as a whole word;
- look-alike kept: no `<PERSON>` in the redacted message (a place tagged LOCATION is not a lost look-alike);
- structured identifier survives: its text is still in the redacted message;
- PERSON span recall on presidio's own set (span level, evaluate.py), split the same way.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("STUDIO_SHARED_DATA", REPO.parent / "shared" / "data")) / "pii"
SPLIT_SEED = 17
PARTS = ("tune", "heldout")
#: Third round (issue 17 item 9): 120 message templates, 90 look-alikes and 20 look-alike templates written for it
#: by someone who had not read the recognizers, in one file; `_split` halves each list by a fixed seed, so dev2 and
#: heldout2 come from the same hand and the same distribution, and heldout2 is never read while tuning.
POOL2 = Path(__file__).resolve().parent / "pii_names_pool2.json"
#: Fourth set (held-out only, never tuned on): 90 message templates and 60 look-alike phrases, each look-alike in
#: three messages written for it (how people write about that thing), by a session that had not read the
#: recognizers. pool2's look-alike templates had to fit every phrase, so they said nothing about what the phrase
#: was ("Assessment: {thing}, to be confirmed."): a person's full name as a brand could not be told from a person.
POOL3 = Path(__file__).resolve().parent / "pii_names_pool3.json"
#: Fifth set, written like POOL3 by another session after heldout3 had been read once and then tuned on: the
#: held-out set of the third round's last rules.
POOL4 = Path(__file__).resolve().parent / "pii_names_pool4.json"
#: Sixth set, written like POOL3 by another session (2026-12-07) that had not read the recognizers, after the
#: fourth round's rules were written: the held-out set of that round. Its names are the held-out part's, as for
#: heldout3/heldout4; its templates and look-alikes are new.
POOL5 = Path(__file__).resolve().parent / "pii_names_pool5.json"
#: Seventh set (2026-12-07, later), written like POOL5 by another session that had not read the recognizers, told
#: to avoid every earlier look-alike phrase (POOL5's writer had checked only POOL3/POOL4): the held-out set of the
#: rules written after heldout5 had been read.
POOL6 = Path(__file__).resolve().parent / "pii_names_pool6.json"
#: Eighth set (2026-12-07, third session of the day), written like POOL6 by a helper session that did not read the
#: recognizers and was given every earlier look-alike phrase and template to avoid: the held-out set of the fifth
#: round's rules (written after heldout4-6 had been printed and tuned on).
POOL7 = Path(__file__).resolve().parent / "pii_names_pool7.json"
#: Ninth set (same day, later), written like POOL7 by another helper session given every earlier phrase and template
#: (POOL7's included) to avoid: the held-out set of the rules written after heldout7 had been printed and tuned on.
POOL8 = Path(__file__).resolve().parent / "pii_names_pool8.json"
#: Tenth set (same day), written like POOL8 by a third helper session given every earlier phrase and template
#: (POOL8's included) to avoid: the held-out set of the rules written after heldout8 had been printed and tuned on.
POOL9 = Path(__file__).resolve().parent / "pii_names_pool9.json"
#: Eleventh set (same day), written like POOL9 by a fourth helper session given every earlier phrase and template
#: (POOL9's included) to avoid: the held-out set of the rules written after heldout9 had been printed and tuned on.
POOL10 = Path(__file__).resolve().parent / "pii_names_pool10.json"
#: Twelfth set (2026-12-07, sixth round), written like POOL10 by a helper session that did not read the recognizers,
#: given every earlier phrase and template to avoid: the held-out set of the NER weights fine-tuned on the earlier
#: sets (scripts/train_person_ner.py trains on pools 3-10; this pool and later ones are never trained on).
POOL11 = Path(__file__).resolve().parent / "pii_names_pool11.json"
#: Thirteenth set (same day), written like POOL11 by another helper session that read neither the recognizers nor
#: the training script: a second held-out set of the shipped NER weights (trained on pools 3-10), and the held-out
#: set of a variant trained on pools 3-11 (pool11's failures were printed after its reads).
POOL12 = Path(__file__).resolve().parent / "pii_names_pool12.json"
#: the held-out-only parts and their pools (each pool's templates and look-alike messages whole, held-out names)
HELD_OUT_POOLS = {"heldout3": POOL3, "heldout4": POOL4, "heldout5": POOL5, "heldout6": POOL6, "heldout7": POOL7,
                  "heldout8": POOL8, "heldout9": POOL9,
                  "heldout10": POOL10, "heldout11": POOL11,
                  "heldout12": POOL12}
#: "dev" uses its own templates and look-alikes and the tuning part's names (see DEV_TEMPLATES); "dev2" and
#: "heldout2" split a third pool of templates and look-alikes (POOL2) in two halves, dev2 with the tuning part's
#: names, heldout2 with the held-out part's
ALL_PARTS = (*PARTS, "dev", "dev2", "heldout2", *HELD_OUT_POOLS)
#: the names each part draws from (dev parts tune on the tuning names, held-out parts use the held-out names)
NAME_PART = {"dev": "tune", "dev2": "tune", "heldout2": "heldout", **dict.fromkeys(HELD_OUT_POOLS, "heldout")}

# {name} is replaced by the name in the chosen shape; {id} by a structured identifier sentence (or nothing).
TEMPLATES = {
    "support": [
        "Hi, this is {name}. My order still hasn't arrived and the tracking page is blank.{id}",
        "{name} here - the blender I bought stopped working after two days.{id}",
        "I spoke with {name} yesterday and she promised a refund within a week.{id}",
        "Please forward this to {name}, who handled my return last month.{id}",
        "Your agent {name} was very helpful, thanks!{id}",
        "hey so {name} from billing said the charge would be reversed, still waiting{id}",
        "The parcel was signed for by {name} but nobody here knows who that is.{id}",
        "Can you ask {name} to call me back about the warranty?{id}",
        "My husband {name} placed the order on his account.{id}",
        "Thanks for the quick reply.\n{name}{id}",
        "Order for {name} was split into two boxes and one is missing.{id}",
        "I'm writing on behalf of my mother, {name}, who can't use email.{id}",
        "Cancel the subscription for {name} please.{id}",
        "According to {name} at your store the item is out of stock.{id}",
        "Refund should go to {name}, not to me.{id}",
        "ok thx {name} that worked{id}",
        "Escalating: {name} has called four times about this.{id}",
        "Account holder: {name}{id}",
        "My neighbour {name} received my package by mistake.{id}",
        "{name} wrote to you last week about the same fault.{id}",
    ],
    "claims": [
        "Claimant {name} reports water damage in the kitchen after a pipe burst.{id}",
        "The other driver, {name}, admitted fault at the scene.{id}",
        "Witness statement taken from {name} on site.{id}",
        "Policyholder {name} requests an adjuster visit next week.{id}",
        "Adjuster notes: spoke to {name}, photos received.{id}",
        "The vehicle was being driven by {name} at the time of the accident.{id}",
        "{name} is listed as the beneficiary on the policy.{id}",
        "Please send the settlement cheque to {name}.{id}",
        "Insured party: {name}\nLoss date: last Tuesday{id}",
        "hi my claim was denied, my brother {name} was with me when it happened{id}",
        "Repair estimate approved by {name} from the body shop.{id}",
        "Statement of {name} attached, see page 2.{id}",
        "The tenant {name} reported the theft to police.{id}",
        "We contacted {name} regarding the missing documents.{id}",
        "Passenger {name} was taken to hospital as a precaution.{id}",
        "{name}\nClaim for storm damage to the garage roof.{id}",
        "Co-insured {name} signed the release form.{id}",
        "Subrogation against {name}'s insurer is under way.{id}",
    ],
    "clinical": [
        "Patient {name} presented with chest pain radiating to the left arm.{id}",
        "Seen today: {name}, follow-up for hypertension.{id}",
        "Referred by {name} for a cardiology opinion.{id}",
        "{name} was admitted overnight for observation.{id}",
        "Discussed the MRI results with {name} and her daughter.{id}",
        "Mother {name} reports the child has had a fever for three days.{id}",
        "Discharge summary for {name}: stable, to continue medication.{id}",
        "Consent obtained from {name} before the procedure.{id}",
        "pt {name} c/o headache and nausea since monday{id}",
        "Next of kin: {name}{id}",
        "Nurse {name} administered 5 mg morphine at 14:00.{id}",
        "Allergies reviewed with {name}; none known.{id}",
        "Spoke to {name}'s GP about the change in dosage.{id}",
        "{name}, 54, smoker, presents with a persistent cough.{id}",
        "Dr. {name} will review the biopsy on Friday.{id}",
        "Family history obtained from {name}, the patient's son.{id}",
        "Appointment rebooked for {name} at the patient's request.{id}",
        "Physio notes: {name} walking with a frame, improving.{id}",
    ],
}
#: Harmless phrases that look like names; a message with one of them holds no person.
LOOK_ALIKES = [
    "Parkinson's disease", "Apgar score", "Glasgow Coma Scale", "Crohn's disease", "Alzheimer's", "Bell's palsy",
    "Hodgkin lymphoma", "Down syndrome", "Epley maneuver", "Babinski sign", "Dr Pepper", "Ben & Jerry's",
    "Johnson & Johnson", "Tommy Hilfiger", "Calvin Klein", "Ralph Lauren", "Mrs. Fields", "Victoria's Secret",
    "Rose Gold", "Forest Green", "Navy Blue", "Ivory White", "Charlotte Tilbury", "Jack Daniel's",
    "Victoria Station", "Lake Placid", "Mount Washington", "St. Louis", "Santa Monica", "San Jose", "Jackson Hole",
    "Kingston", "Murphy bed", "Ferris wheel", "Dewar flask", "Petri dish", "Heimlich manoeuvre", "Graves' disease",
    "Tesla Model Y", "Ford Mustang", "Tim Hortons", "Wendy's", "Martha Stewart Living", "Dyson Airwrap",
    "Philips Sonicare", "Dolce & Gabbana", "Hugo Boss", "Marie Curie Hospice", "Ronald McDonald House",
]
LOOK_ALIKE_TEMPLATES = [
    "The {thing} I ordered arrived damaged, please replace it.",
    "Is the {thing} covered by the extended warranty?",
    "Family history of {thing}; no other concerns.",
    "I returned the {thing} but the refund hasn't shown up.",
    "Claim relates to a {thing} left in the rental car.",
    "we were near {thing} when the car broke down",
    "Screening for {thing} was negative.",
    "Do you still sell {thing}? Can't find it on the site.",
    "The {thing} colour option is missing from the app.",
    "Notes: {thing} discussed, leaflet given.",
]
ID_SENTENCES = [
    (" You can reach me at {email}.", "email"), (" My number is {phone}.", "phone"), (" SSN {ssn}.", "ssn"),
    (" Card ending {card} was charged twice.", "card"), (" Claim number CLM-{claim}.", "claim"), ("", None),
    ("", None), ("", None),
]
#: A third part, "dev": templates and look-alikes written for it alone (issue 17 item 9, second round), filled with
#: the tuning part's names. Rules are checked on tune AND dev, so a rule that only fits the tuning templates shows.
DEV_TEMPLATES = {
    "support": [
        "Hello, {name} speaking. The replacement charger is also faulty.{id}",
        "Could {name} please check why the invoice lists two items?{id}",
        "I was transferred to {name} and then the line went dead.{id}",
        "so i called and {name} told me to wait another week{id}",
        "The courier said {name} would sign for it, but the box is gone.{id}",
        "Best wishes,\n{name}{id}",
        "Gift message: happy birthday {name}, love from all of us.{id}",
        "Delivery address changed by {name} without my consent.{id}",
        "Left with reception, signed {name}.{id}",
        "Is {name} still working in the returns department?{id}",
        "My colleague {name} has the original receipt.{id}",
        "Sent from my phone. Regards, {name}{id}",
    ],
    "claims": [
        "Loss reported by {name} on the online portal.{id}",
        "Assessor {name} estimated the roof repair at 4,000.{id}",
        "{name} confirmed the car was parked when it was hit.{id}",
        "Payment was made to {name} in error, please reverse.{id}",
        "Interview with {name} scheduled for Monday morning.{id}",
        "the guy who hit me, {name}, gave me a fake number{id}",
        "Third party: {name}\nVehicle: blue hatchback{id}",
        "Photos supplied by {name} show mould behind the sink.{id}",
        "We await a signed statement from {name}.{id}",
        "Our investigator met {name} at the property.{id}",
    ],
    "clinical": [
        "Reviewed {name} on the ward round; afebrile overnight.{id}",
        "Carer {name} reports poor appetite this week.{id}",
        "Telephone consult with {name} re: blood results.{id}",
        "Handover: {name} in bed 4 needs obs at 2am.{id}",
        "{name} declined the flu vaccine today.{id}",
        "Letter copied to {name} and the practice nurse.{id}",
        "hx from {name}: fell at home, no loss of consciousness{id}",
        "Midwife {name} attended the delivery.{id}",
        "Bloods taken by {name} at 09:30.{id}",
        "Ms {name} is anxious about the scan.{id}",
    ],
}
DEV_LOOK_ALIKES = [
    "Tourette syndrome", "Asperger's", "Cushing's syndrome", "Addison's disease", "Guillain-Barre syndrome",
    "Rorschach test", "Heimlich", "Colles fracture", "Bunsen burner", "Salk vaccine", "Marshall Amplifier",
    "Ray-Ban", "Estee Lauder", "Ben Sherman", "Jimmy Choo", "Kate Spade", "Paul Smith", "Louis Vuitton",
    "Taco Bell", "Papa John's", "Jack Wolfskin", "Lincoln Navigator", "Mercedes Benz", "Morgan Stanley",
    "Dr. Martens", "Mr Muscle", "Mrs Butterworth's", "Victoria Park", "Buckingham Palace", "Fort Lauderdale",
    "Charlotte", "Austin", "Florence", "Sydney Harbour", "Amber Yellow", "Olive Green", "Ruby Red", "Jade",
]
DEV_LOOK_ALIKE_TEMPLATES = [
    "My {thing} stopped working after a week.",
    "Do you ship {thing} to Canada?",
    "Past medical history: {thing}.",
    "The claim covers a {thing} stolen from the boot.",
    "We drove past {thing} on the way home.",
    "Can I swap the {thing} for a different size?",
    "Query {thing}, refer to neurology.",
    "The {thing} in the photo is not what arrived.",
]
#: a title or "Nurse" right before the name: the name is filled in without a title of its own
_TITLED = re.compile(r"(?i)\b(?:dr|mr|mrs|ms|miss|mx|prof|nurse)\.?\s+\{name\}")
SHAPES = ("full", "first", "title_last", "lower_full", "lower_first", "line_start")


@dataclass
class Message:
    text: str
    kind: str                       # "name" or "lookalike"
    secrets: list[str] = field(default_factory=list)   # name words or the look-alike phrase
    ids: list[str] = field(default_factory=list)       # structured identifiers planted
    shape: str = ""
    domain: str = ""


def _split(items: list, part: str, salt: str) -> list:
    """Deterministic half of `items` for the part: shuffled with SPLIT_SEED and the salt, first half is tuning."""
    order = list(range(len(items)))
    random.Random(f"{SPLIT_SEED}:{salt}").shuffle(order)
    half = len(order) // 2
    chosen = order[:half] if part == "tune" else order[half:]
    return [items[i] for i in sorted(chosen)]


def load_names(part: str) -> list[tuple[str, str, str]]:
    """(given, surname, title) from FakeNameGenerator rows and presidio PERSON values, deduplicated by name and
    split by the name itself (presidio's set reuses FakeNameGenerator-style names, so a split by row would put
    the same person in both parts)."""
    people: dict[str, tuple[str, str, str]] = {}
    with open(DATA / "FakeNameGenerator.com_3000.csv", encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["GivenName"] and row["Surname"]:
                people.setdefault(f"{row['GivenName']} {row['Surname']}".casefold(),
                                  (row["GivenName"], row["Surname"], row["Title"].rstrip(".") or "Ms"))
    synth = json.loads((DATA / "presidio_synth_dataset_v2.json").read_text(encoding="utf-8"))
    values = sorted({s["entity_value"].strip() for d in synth for s in d["spans"] if s["entity_type"] == "PERSON"})
    for value in values:
        words = value.split()
        if 2 <= len(words) <= 3 and all(w[:1].isupper() for w in words):
            people.setdefault(f"{words[0]} {words[-1]}".casefold(), (words[0], words[-1], "Mr"))
    keys = _split(sorted(people), part, "names")
    return [people[k] for k in keys]


def _ids(rng: random.Random, given: str, surname: str) -> dict[str, str]:
    return {"email": f"{given.lower()[:1]}{rng.randint(10, 99)}@mailbox.example.org",
            "phone": f"({rng.randint(200, 989)}) {rng.randint(200, 989)}-{rng.randint(1000, 9999)}",
            "ssn": f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
            "card": "4111 1111 1111 1111", "claim": f"{rng.randint(2019, 2025)}-{rng.randint(10000, 99999)}"}


def titled_template(template: str, any_title: bool) -> bool:
    """The template puts a title before the name ("Dr. {name}"), so the name goes in as a surname alone: the three
    titles that open the first templates, or (`any_title`, pool2 and later pools) any title of `_TITLED`."""
    return template.startswith(("Dr. {name}", "Nurse {name}", "Ms {name}")) or bool(
        any_title and _TITLED.search(template))


def name_in_shape(k: int, template: str, given: str, surname: str, title: str, titled: bool) -> tuple[str, str, str]:
    """The shape of the k-th filling of `template` and the name it takes, as (shape, title before the name, the
    person's name): ("title_last", "Mr. ", "Lopez"); a titled template takes the surname alone."""
    shape = SHAPES[k % len(SHAPES)]
    if shape == "line_start" and not template.startswith("{name}"):
        shape = "full"
    if titled and shape in ("title_last", "first", "lower_first"):
        return shape, "", surname
    if shape == "title_last":
        return shape, f"{title}. ", surname
    return shape, "", given if shape in ("first", "lower_first") else f"{given} {surname}"


def build(part: str, per_template: int = 4, lookalikes_per: int = 3) -> list[Message]:
    """The messages of one part (deterministic)."""
    rng = random.Random(f"{SPLIT_SEED}:{part}:messages")
    people = load_names(NAME_PART.get(part, part))
    rng.shuffle(people)
    if part in ("dev", "dev2"):
        people = people[::-1] if part == "dev" else people[len(people) // 2:] + people[:len(people) // 2]
    if part in HELD_OUT_POOLS:
        pool = json.loads(HELD_OUT_POOLS[part].read_text(encoding="utf-8"))
        templates_by_domain = pool["templates"]
    elif part in ("dev2", "heldout2"):
        pool = json.loads(POOL2.read_text(encoding="utf-8"))
        half = "tune" if part == "dev2" else "heldout"
        templates_by_domain = {d: _split(t, half, f"pool2:{d}") for d, t in pool["templates"].items()}
    else:
        templates_by_domain = (DEV_TEMPLATES if part == "dev" else
                               {d: _split(t, part, d) for d, t in TEMPLATES.items()})
    out: list[Message] = []
    k = 0
    for domain, templates in templates_by_domain.items():
        for template in templates:
            for _ in range(per_template):
                given, surname, title = people[k % len(people)]
                k += 1
                titled = titled_template(template, any_title=part in ("dev2", "heldout2") or part in HELD_OUT_POOLS)
                shape, prefix, person = name_in_shape(k, template, given, surname, title, titled)
                name = prefix + person
                id_template, id_kind = ID_SENTENCES[rng.randrange(len(ID_SENTENCES))]
                values = _ids(rng, given, surname)
                id_text = id_template.format(**values)
                text = template.format(name=name, id=id_text)
                if shape.startswith("lower"):
                    text = text.lower()
                words = [w for w in re.findall(r"[^\W\d_]+", name) if len(w) >= 2 and w.lower() not in
                         {"mr", "mrs", "ms", "dr", "miss", "mx"}]
                out.append(Message(text, "name", words, [values[id_kind]] if id_kind else [], shape, domain))
    if part in HELD_OUT_POOLS:
        for entry in pool["lookalike_messages"]:
            out += [Message(text, "lookalike", [entry["phrase"]], domain="lookalike") for text in entry["texts"]]
        return out
    if part in ("dev2", "heldout2"):
        things = _split(pool["lookalikes"], half, "pool2:lookalike")
        look_templates = _split(pool["lookalike_templates"], half, "pool2:lookalike_templates")
    else:
        things = DEV_LOOK_ALIKES if part == "dev" else _split(LOOK_ALIKES, part, "lookalike")
        look_templates = DEV_LOOK_ALIKE_TEMPLATES if part == "dev" else LOOK_ALIKE_TEMPLATES
    for i, thing in enumerate(things):
        for j in range(lookalikes_per):
            template = look_templates[(i + j) % len(look_templates)]
            out.append(Message(template.format(thing=thing), "lookalike", [thing], domain="lookalike"))
    return out


def survived(message: Message, redacted: str) -> bool:
    if message.kind == "lookalike":
        return "<PERSON>" not in redacted
    return any(re.search(rf"(?<![^\W\d_]){re.escape(w)}(?![^\W\d_])", redacted, re.I) for w in message.secrets)


#: PiiConfig.ner_weights of the redactor measured (--ner-weights)
NER_WEIGHTS = "studio"


def measure(part: str, per_template: int, show: int = 0) -> dict:
    from curate.pii import PiiRedactor

    messages = build(part, per_template)
    redactor = PiiRedactor({"mode": "tag", "ner_weights": NER_WEIGHTS})
    redacted = redactor.redact_texts([m.text for m in messages])
    names = [(m, r) for m, r in zip(messages, redacted, strict=True) if m.kind == "name"]
    looks = [(m, r) for m, r in zip(messages, redacted, strict=True) if m.kind == "lookalike"]
    leaked = [(m, r) for m, r in names if survived(m, r)]
    dropped = [(m, r) for m, r in looks if not survived(m, r)]
    ids = [(v, r) for m, r in names for v in m.ids]
    by_shape = {}
    for shape in SHAPES:
        group = [(m, r) for m, r in names if m.shape == shape]
        if group:
            by_shape[shape] = (sum(survived(m, r) for m, r in group), len(group))
    # the name alone lower-cased in a message that keeps its capitals ("Spoke to kazu on Monday"): names typed
    # carelessly in otherwise capitalised text, a shape the writers' templates do not produce
    careless = [m for m in messages if m.kind == "name" and m.shape in ("full", "first") and m.text[:1].isupper()]
    lowered = [_lower_names_in(m) for m in careless]
    careless_out = redactor.redact_texts(lowered) if lowered else []
    careless_left = sum(survived(m, r) for m, r in zip(careless, careless_out, strict=True))
    for m, r in (leaked + dropped)[:show]:
        print(f"  [{m.kind}/{m.shape}] {r!r}" + (f" ({m.secrets[0]})" if m.kind == "lookalike" else ""))
    # look-alike phrases no tuning list has (pool5 repeats 27 phrases of them, in other sentences)
    tuned = tuned_phrases()
    fresh = [(m, r) for m, r in looks if m.secrets[0].casefold() not in tuned]
    return {"names": len(names), "survived": len(leaked), "lookalikes": len(looks),
            "kept": len(looks) - len(dropped), "fresh": (sum(survived(m, r) for m, r in fresh), len(fresh)),
            "ids": len(ids), "ids_survived": sum(v in r for v, r in ids),
            "by_shape": by_shape, "person_recall": synth_person_recall(part),
            "careless": (careless_left, len(careless))}


def _lower_names_in(message: Message) -> str:
    """The message with the words of its name lower-cased and nothing else."""
    text = message.text
    for word in message.secrets:
        text = re.sub(rf"(?<![^\W\d_]){re.escape(word)}(?![^\W\d_])", word.lower(), text)
    return text


def tuned_phrases() -> set[str]:
    """The look-alike phrases the rules were tuned on (first round, dev, pool2), case-folded."""
    pool2 = json.loads(POOL2.read_text(encoding="utf-8"))["lookalikes"]
    return {t.casefold() for t in [*LOOK_ALIKES, *DEV_LOOK_ALIKES, *pool2]}


def synth_person_recall(part: str) -> tuple[int, int]:
    """(found, total) PERSON spans of presidio's synthetic set (its part): a gold span counts as found when a
    predicted PERSON span overlaps at least half of it."""
    from curate.pii import PiiRedactor

    synth = json.loads((DATA / "presidio_synth_dataset_v2.json").read_text(encoding="utf-8"))
    docs = _split(synth, NAME_PART.get(part, part), "synth-docs")
    gold = [[(s["start_position"], s["end_position"]) for s in d["spans"] if s["entity_type"] == "PERSON"]
            for d in docs]
    docs = [d for d, g in zip(docs, gold, strict=True) if g]
    gold = [g for g in gold if g]
    predicted = PiiRedactor({"mode": "tag", "ner_weights": NER_WEIGHTS}).analyze_texts([d["full_text"] for d in docs])
    found = total = 0
    for spans, preds in zip(gold, predicted, strict=True):
        for a, b in spans:
            total += 1
            cover = sum(max(0, min(b, p.end) - max(a, p.start)) for p in preds if p.type == "PERSON")
            found += cover * 2 >= (b - a)
    return found, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="tune",
                    help=f"one of {', '.join([*ALL_PARTS, 'both', 'tune+dev', 'tuning'])}, or several joined by commas")
    ap.add_argument("--per-template", type=int, default=6)
    ap.add_argument("--show", type=int, default=0, help="print up to N failures (redacted text only)")
    ap.add_argument("--ner-weights", default="studio",
                    help="PiiConfig.ner_weights: studio (shipped, fine-tuned), model (spaCy's own) or a folder")
    args = ap.parse_args()
    global NER_WEIGHTS
    NER_WEIGHTS = args.ner_weights
    print("| part | names surviving | look-alikes kept | structured ids surviving | presidio PERSON recall |")
    print("|---|---|---|---|---|")
    parts = {"both": PARTS, "tune+dev": ("tune", "dev"), "tuning": ("tune", "dev", "dev2")}.get(
        args.part, tuple(args.part.split(",")))
    for part in parts:
        r = measure(part, args.per_template, args.show)
        fr, tr = r["person_recall"]
        print(f"| {part} | {r['survived']}/{r['names']} = {100 * r['survived'] / r['names']:.1f} % "
              f"| {r['kept']}/{r['lookalikes']} = {100 * r['kept'] / r['lookalikes']:.1f} % "
              f"| {r['ids_survived']}/{r['ids']} | {fr}/{tr} = {100 * fr / tr:.1f} % |")
        print("  by shape: " + ", ".join(f"{s} {a}/{b}" for s, (a, b) in r["by_shape"].items()))
        left, total = r["careless"]
        if total:
            print(f"  the name alone lower-cased in capitalised text (not in the totals above): {left}/{total} "
                  f"= {100 * left / total:.1f} % survive")
        kept, fresh = r["fresh"]
        if part.startswith("heldout") and 0 < fresh < r["lookalikes"]:
            print(f"  look-alikes whose phrase no tuning list has: {kept}/{fresh} = {100 * kept / fresh:.1f} % kept")


if __name__ == "__main__":
    main()
