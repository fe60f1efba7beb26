"""The fine-tuned `ner` weights that ship in curate/pii/ner_model (issue 17 item 9): loaded by default, switchable,
and a wrong path is one clear sentence. Sentences written for this test, not taken from bench/pii_names.py."""

from __future__ import annotations

import os

import pytest

from curate.pii import PiiRedactor
from curate.pii.config import PiiConfig
from curate.pii.engine import NER_WEIGHTS
from studio.errors import StudioError

#: names typed in lower case, in capitalised text and in chat, by people who would not capitalise them
CARELESS = [
    "Spoke to maren on Monday about the refund.",
    "Left a voicemail for dagny, she will call back tomorrow.",
    "The courier gave the parcel to ruaridh at the front desk.",
    "Please ask teodora to sign the repair estimate.",
    "Patient seen with her son, oisin, who translated.",
    "Refund approved by ingeborg in the returns team.",
    "I emailed bartek twice and heard nothing.",
    "Handover: cover from wiebke until 6pm.",
    "hi its svanhild again, the boiler is still leaking",
    "ok so marit from your team said theyd ring me back",
    "my flatmate kasimir signed for it but its not here",
    "thanks torunn, got the replacement today",
]


def _tagged(weights: str) -> int:
    out = PiiRedactor({"mode": "tag", "ner_weights": weights}).redact_texts(CARELESS)
    return sum("<PERSON>" in text for text in out)


def test_the_shipped_weights_are_the_default_and_are_on_disk():
    assert PiiConfig().ner_weights == "studio"
    assert os.path.getsize(os.path.join(NER_WEIGHTS, "model")) > 1_000_000
    assert "ner_weights" in PiiConfig().engine_key()     # cached analyzers are kept apart by weights


def test_fine_tuned_weights_find_more_lower_case_names_than_the_spacy_model():
    model, studio = _tagged("model"), _tagged("studio")
    assert studio > model, (model, studio)
    assert studio >= len(CARELESS) // 2, studio


def test_weights_from_a_folder_without_a_model_are_one_clear_error(tmp_path):
    with pytest.raises(StudioError, match=r"ner_weights .* holds no spaCy `ner` component"):
        PiiRedactor({"ner_weights": str(tmp_path)}).analyze_texts(["Call Maria Lopez today."])
