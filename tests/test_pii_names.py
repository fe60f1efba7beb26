"""Person names in the places messages put them (roles, cue words, lower-case chat) are redacted; look-alikes
(eponyms, shops) are kept. Sentences written for this test, not taken from bench/pii_names.py."""

from __future__ import annotations

import pytest

from curate.pii import PiiRedactor


@pytest.fixture(scope="module")
def redactor() -> PiiRedactor:
    return PiiRedactor({"mode": "tag"})


@pytest.mark.parametrize("text, name", [
    ("Patient Radomir presented with a sprained ankle.", "Radomir"),            # role word, unlisted name
    ("The other driver, Oskarina Velbt, drove off.", "Oskarina Velbt"),      # role word, two unlisted words
    ("Next of kin: Ulrich", "Ulrich"),
    ("Quentin Marabel has phoned three times.", "Quentin Marabel"),          # two words before a reporting verb
    ("ok thx fletcher that worked", "fletcher"),                             # lower-case chat, cue word
    ("my wife greta placed the order", "greta"),                             # lower-case, role word
    ("consent obtained from heinrich before surgery", "heinrich"),
    ("andrea is the account holder", "andrea"),                              # lower-case, before "is"
    ("spoke with wojslawa about the refund", "wojslawa"),                   # lower-case, word English lacks
    ("the other driver, iwerna, left", "iwerna"),
    ("Kajetana, 67, presents with dizziness.", "Kajetana"),                 # name, age
    ("Please send the letter to\ufeffBerthold Kranz.", "Berthold Kranz"),    # zero-width char inside
])
def test_names_in_message_positions_are_tagged(redactor, text, name):
    out = redactor.redact_texts([text])[0]
    assert out != text
    assert not any(word in out for word in name.split()), out


@pytest.mark.parametrize("text", [
    "Family history of Alzheimer's; otherwise well.",
    "Graves' disease was ruled out.",
    "my wife placed the order yesterday",          # no name after the role word: nothing to tag
    "thanks for the help with billing",            # lower-case cue followed by common words
    "we talked to support in june",
    "pt reviewed with physio, pain improving, seen by ortho team",   # lower-case clinical words stay
    "Do you still sell Dr Pepper in cans?",
    "Referred to the Marie Curie Hospice for respite care.",
])
def test_look_alikes_and_plain_lower_case_chat_keep_their_words(redactor, text):
    assert "<PERSON>" not in redactor.redact_texts([text])[0]


def test_benchmark_parts_share_no_template_name_or_look_alike():
    """bench/pii_names.py's held-out part must stay unseen while tuning: its parts are disjoint."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "bench" / "pii_names.py"
    spec = importlib.util.spec_from_file_location("pii_names_bench", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    if not (bench.DATA / "FakeNameGenerator.com_3000.csv").exists():
        pytest.skip(f"shared data missing: {bench.DATA}")
    for domain, templates in bench.TEMPLATES.items():
        tune, held = (set(bench._split(templates, part, domain)) for part in bench.PARTS)
        assert tune and held and not tune & held and tune | held == set(templates)
    tune, held = (set(bench.load_names(part)) for part in bench.PARTS)
    assert len(tune) > 1000 and len(held) > 1000 and not tune & held
    looks = [set(bench._split(bench.LOOK_ALIKES, part, "lookalike")) for part in bench.PARTS]
    assert not looks[0] & looks[1]
