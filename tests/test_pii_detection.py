"""PII detection and the four redaction modes on real sentences (spaCy small + presidio, loaded once per session)."""

from __future__ import annotations

import re

import pytest

from curate.pii import PiiConfig, PiiRedactor


@pytest.fixture(scope="session")
def redactor() -> PiiRedactor:
    r = PiiRedactor()
    r.analyze_texts(["warm up"])  # builds the analyzer once for the whole session
    return r


def found(redactor: PiiRedactor, text: str) -> list[tuple[str, str]]:
    return [(e.type, text[e.start:e.end]) for e in redactor.analyze_texts([text])[0]]


@pytest.mark.parametrize("text, kind, value", [
    ("Hi, this is Maria Lopez from the Denver office.", "PERSON", "Maria Lopez"),
    ("my name is tomas eriksen and I need help", "PERSON", "tomas eriksen"),
    ("The package was stuck in Rotterdam for a week.", "LOCATION", "Rotterdam"),
    ("Please ship it to 221 Baker Street, Apt. 4 instead.", "ADDRESS", "221 Baker Street, Apt. 4"),
    ("Send the form to P.O. Box 2281, Springfield, IL 62704.", "ADDRESS", "P.O. Box 2281, Springfield, IL 62704"),
    ("She is Brazilian and prefers Portuguese.", "NRP", "Brazilian"),
    ("The outage started on March 3, 2024 at noon.", "DATE_TIME", "March 3, 2024"),
    ("Patient DOB: 03/14/1961, admitted for observation.", "DATE_OF_BIRTH", "03/14/1961"),
    ("You can write to j.doe@examplemail.com any time.", "EMAIL_ADDRESS", "j.doe@examplemail.com"),
    ("Call me back on (415) 555-0132 after five.", "PHONE_NUMBER", "(415) 555-0132"),
    ("my mobile is 0490 39 07 81", "PHONE_NUMBER", "0490 39 07 81"),
    ("The charge on card 4111 1111 1111 1111 is wrong.", "CREDIT_CARD", "4111 1111 1111 1111"),
    ("Refund to IBAN GB82WEST12345698765432 please.", "IBAN_CODE", "GB82WEST12345698765432"),
    ("My social security number is 536-22-1947.", "US_SSN", "536-22-1947"),
    ("My driver's license number is D1234567.", "US_DRIVER_LICENSE", "D1234567"),
    ("Login attempts came from 203.0.113.54 overnight.", "IP_ADDRESS", "203.0.113.54"),
    ("My profile is at https://www.janedoe-portfolio.net/about", "URL", "https://www.janedoe-portfolio.net/about"),
    ("The chart lists MRN 4471203 for this visit.", "MEDICAL_RECORD_NUMBER", "4471203"),
    ("Where is my order #A-558213? It is late.", "ORDER_NUMBER", "A-558213"),
    ("I filed claim number CLM-2024-00917 last month.", "CLAIM_NUMBER", "CLM-2024-00917"),
    ("My policy no. HX-7730129 covers water damage.", "POLICY_NUMBER", "HX-7730129"),
    ("Account number: 00481239977 was charged twice.", "ACCOUNT_NUMBER", "00481239977"),
])
def test_each_entity_type_is_found_in_a_real_sentence(redactor, text, kind, value):
    assert (kind, value) in found(redactor, text)


def test_a_product_code_read_as_person_by_spacy_is_not_person(redactor):
    from curate.pii.engine import get_analyzer

    text = "Please send the replacement part XJ220 to the depot."
    raw = get_analyzer(PiiConfig()).nlp_engine.process_text(text, "en").entities
    assert [(e.text, e.label_) for e in raw] == [("XJ220", "PERSON")]  # what spaCy alone says
    assert redactor.analyze_texts([text]) == [[]]


def test_a_city_read_as_person_by_spacy_is_redacted_as_location(redactor):
    text = "Lisbon was super fun to visit!"
    from curate.pii.engine import get_analyzer

    raw = get_analyzer(PiiConfig()).nlp_engine.process_text(text, "en").entities
    assert [(e.text, e.label_) for e in raw] == [("Lisbon", "PERSON")]
    assert found(redactor, text) == [("LOCATION", "Lisbon")]


def test_relative_dates_and_postcodes_are_not_date_time(redactor):
    assert found(redactor, "I will call again tomorrow or next week.") == []


def test_turns_without_letters_or_digits_are_skipped():
    assert PiiRedactor().analyze_texts(["", "???", " \n-- "]) == [[], [], []]


def test_allow_list_keeps_values_and_deny_list_adds_them():
    r = PiiRedactor({"allow_list": ["help@acme-support.com"], "deny_list": {"PERSON": ["Captain Zorg"]}})
    text = "Write to help@acme-support.com or ask Captain Zorg."
    assert r.redact_texts([text]) == ["Write to help@acme-support.com or ask <PERSON>."]


SENTENCE = "Maria Lopez (maria.lopez@examplemail.com, 415-555-0132) lives at 221 Baker Street."


def test_tag_mode_replaces_each_value_with_its_type(redactor):
    assert redactor.redact_texts([SENTENCE]) == [
        "<PERSON> (<EMAIL_ADDRESS>, <PHONE_NUMBER>) lives at <ADDRESS>."]


def test_mask_mode_hides_letters_and_digits_but_keeps_separators():
    out = PiiRedactor({"mode": "mask"}).redact_texts([SENTENCE])[0]
    assert out == "***** ***** (*****.*****@***********.***, ***-***-****) lives at *** ***** ******."


def test_hash_mode_is_salted_and_stable(monkeypatch):
    monkeypatch.setenv("STUDIO_PII_SALT", "first-secret")
    a = PiiRedactor({"mode": "hash"}).redact_texts([SENTENCE, "Maria Lopez called."])
    again = PiiRedactor({"mode": "hash"}).redact_texts(["Maria Lopez called."])
    monkeypatch.setenv("STUDIO_PII_SALT", "other-secret")
    other = PiiRedactor({"mode": "hash"}).redact_texts(["Maria Lopez called."])
    tag = re.match(r"<PERSON_[0-9a-f]{16}>", a[0]).group()
    assert a[1] == again[0] == f"{tag} called."
    assert other[0] != again[0] and other[0].startswith("<PERSON_")


def test_pseudonyms_are_consistent_across_rows_and_keep_their_type():
    r = PiiRedactor({"mode": "pseudonym"})
    rows = ["Maria Lopez wrote from maria.lopez@examplemail.com.",
            "Later, Ms. Lopez said Maria would call 415-555-0132.",
            "maria.lopez@examplemail.com bounced; Maria Lopez is upset."]
    out = r.redact_texts(rows)
    fake_name = out[2].split(" is upset")[0].split("; ")[1]
    first, last = fake_name.split()
    fake_email = re.search(r"\S+@\S+\.\w+", out[0]).group()
    assert "Maria" not in " ".join(out) and "Lopez" not in " ".join(out) and "maria.lopez" not in " ".join(out)
    assert out[0] == f"{fake_name} wrote from {fake_email}."
    assert out[1].startswith(f"Later, Ms. {last} said {first} would call ")
    assert re.fullmatch(r"\d{3}-\d{3}-\d{4}", out[1].rsplit(" ", 1)[1].rstrip("."))
    assert out[2].startswith(f"{fake_email} bounced")
    assert re.fullmatch(r"[a-z0-9.]+@example\.(com|org|net)", fake_email)
    assert PiiRedactor({"mode": "pseudonym"}).redact_texts([rows[0]]) == [out[0]]  # same in a new redactor


def test_audit_only_reports_without_changing_text():
    r = PiiRedactor({"audit_only": True})
    result = r.redact([SENTENCE])
    assert result.texts == [SENTENCE]
    assert dict(result.counts) == {"PERSON": 1, "EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1, "ADDRESS": 1}


def test_large_inputs_use_the_process_pool_and_give_the_same_result(redactor):
    texts = [f"Customer {i}: call Maria Lopez on 415-555-{1000 + i:04d} about order #A-{558000 + i}." for i in range(40)]
    pooled = PiiRedactor({"workers": 2, "parallel_min_turns": 10, "batch_size": 8}).analyze_texts(texts)
    assert pooled == redactor.analyze_texts(texts)
    assert all({e.type for e in ents} >= {"PERSON", "PHONE_NUMBER", "ORDER_NUMBER"} for ents in pooled)


def test_pool_size_follows_input_size_and_leaves_busy_cores_alone(monkeypatch):
    import os

    from curate.pii import engine
    from curate.pii.engine import usable_workers

    # A fake core count and load average: the only way to put the machine in a given state on demand.
    monkeypatch.setattr(engine, "worker_count", lambda config: config.workers or 4)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 1.0, 1.0))  # only this process runs
    auto = PiiConfig(parallel_min_turns=256, batch_size=64)
    assert usable_workers(auto, 200) == 1            # below parallel_min_turns: no pool
    assert usable_workers(auto, 300) == 2            # two spaCy batches per worker at least
    assert usable_workers(auto, 5000) == 4
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 3.0, 3.0))  # two other busy processes
    assert usable_workers(auto, 5000) == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    assert usable_workers(auto, 5000) == 1
    assert usable_workers(PiiConfig(workers=3, parallel_min_turns=256, batch_size=64), 5000) == 3  # asked for


def test_names_in_message_positions_are_redacted_and_eponyms_and_products_are_kept():
    out = PiiRedactor().redact_texts([
        "My husband Jamal Washington booked the trip.", "Thanks Marcus, that fixed it.", "Hello Oluwaseun!",
        "I spoke with Camila yesterday.", "The patient has a history of Hodgkin lymphoma.", "The Murphy bed arrived.",
        "The Rose Gold finish costs extra."])
    for text, name in zip(out[:4], ["Jamal Washington", "Marcus", "Oluwaseun", "Camila"], strict=True):
        assert name not in text and "<" in text
    assert out[4:] == ["The patient has a history of Hodgkin lymphoma.", "The Murphy bed arrived.",
                       "The Rose Gold finish costs extra."]
