"""score: each signal family on hand-built examples, with the real SmolLM2 model loaded once per session."""

from __future__ import annotations

import math

import polars as pl
import pytest

from curate.pipeline import run_steps
from curate.steps.score import Score
from studio.errors import StudioError
from studio.schema import examples_frame, make_example

ROUTER = "How do I reset my Trailhead GPS watch to factory settings?"
GOOD = ("Hold the Light and Back buttons together for ten seconds until the screen goes dark, then release. "
        "The watch restarts with factory settings; pair it with the app again to restore your activities.")
EXAMPLES = {
    "good": (ROUTER, GOOD),
    "refusal": (ROUTER, "As an AI language model, I cannot help with resetting devices."),
    "repetitive": (ROUTER, "\n".join(["Hold the button.", "Hold the button.", "Hold the button.", "Then wait.", "Hold the button."])),
    "echo": (ROUTER, ROUTER),
    "spanish": ("¿Cómo reinicio mi reloj GPS a la configuración de fábrica?",
                "Mantenga pulsados los botones de luz y atrás durante diez segundos hasta que la pantalla se apague."),
    "unrelated": (ROUTER, "Boil the pasta in salted water for nine minutes, drain it and toss it with olive oil and garlic."),
    "boilerplate": (ROUTER, "Thank you for contacting us! We appreciate your patience. " + GOOD),
}


def frame():
    return examples_frame([make_example([{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                                        source=f"test:{name}") for name, (p, r) in EXAMPLES.items()])


@pytest.fixture(scope="session")
def scored() -> dict[str, dict]:
    import torch

    torch.set_num_threads(1)
    kept, dropped = run_steps(frame(), [Score()])
    assert not dropped, "score drops nothing"
    return {row["source"].split(":")[1]: row for row in kept.iter_rows(named=True)}


def test_every_row_gets_a_quality_between_zero_and_one(scored):
    assert len(scored) == len(EXAMPLES)
    assert all(0.0 <= r["quality"] <= 1.0 for r in scored.values())
    assert scored["good"]["quality"] >= 0.8


def test_refusal_is_flagged_and_scores_lower_than_a_good_answer(scored):
    assert scored["refusal"]["q_refusal"] is True
    assert scored["good"]["q_refusal"] is False
    assert scored["refusal"]["quality"] < scored["good"]["quality"] * 0.5


def test_repeated_lines_are_detected(scored):
    rep = scored["repetitive"]
    assert rep["q_dup_line_frac"] == pytest.approx(3 / 5)  # 5 lines, 3 repeat an earlier one
    assert rep["q_dup_line_char_frac"] == pytest.approx(3 * len("Hold the button.") / len(EXAMPLES["repetitive"][1]))
    assert scored["good"]["q_dup_line_frac"] == 0.0
    assert rep["quality"] < scored["good"]["quality"] * 0.5


def test_response_that_repeats_the_prompt_is_an_echo(scored):
    assert scored["echo"]["q_echo"] == 1.0
    assert scored["good"]["q_echo"] < 0.2
    assert scored["echo"]["quality"] < 0.1


def test_language_is_identified_and_off_language_scores_lower(scored):
    assert scored["spanish"]["q_lang"] == "es"
    assert scored["good"]["q_lang"] == "en"
    assert scored["spanish"]["q_lang_conf"] > 0.9
    spanish = frame().filter(pl.col("source") == "test:spanish")
    any_language = run_steps(spanish, [Score(model=False, languages=[])])[0]["quality"].item()
    english_only = run_steps(spanish, [Score(model=False, languages=["en"])])[0]["quality"].item()
    with_spanish = run_steps(spanish, [Score(model=False, languages=["en", "es"])])[0]["quality"].item()
    assert english_only == pytest.approx(0.3 * any_language, abs=1e-3)
    assert with_spanish == any_language


def test_boilerplate_is_counted(scored):
    assert scored["boilerplate"]["q_boilerplate"] == 2
    assert scored["good"]["q_boilerplate"] == 0
    assert scored["boilerplate"]["quality"] < scored["good"]["quality"]


def test_ifd_is_finite_and_lower_for_an_answer_that_fits_its_prompt(scored):
    good, unrelated = scored["good"], scored["unrelated"]
    for row in scored.values():
        assert math.isfinite(row["q_ifd"]) and row["q_ifd"] > 0
        assert math.isfinite(row["q_ppl"]) and row["q_ppl"] > 1
    # The question helps predict its own answer more than an answer about pasta.
    assert good["q_ifd"] < unrelated["q_ifd"]


def test_token_counts_match_the_tokenizer(scored):
    from curate.quality.lengths import load_tokenizer
    from studio.models import smollm2_hf_dir

    tok = load_tokenizer(str(smollm2_hf_dir()))
    assert scored["good"]["q_prompt_tokens"] == len(tok(ROUTER, add_special_tokens=False)["input_ids"])
    assert scored["good"]["q_response_tokens"] == len(tok(GOOD, add_special_tokens=False)["input_ids"])
    assert scored["good"]["q_tokens"] == len(tok(ROUTER + "\n" + GOOD, add_special_tokens=False)["input_ids"])


def test_judge_scores_are_folded_in_only_when_asked():
    base = run_steps(frame().head(2), [Score(model=False)])[0]
    judged_input = frame().head(2).with_columns(pl.Series("q_judge", [0.5, None]))
    judged = run_steps(judged_input, [Score(model=False, judge=True)])[0]
    assert judged["quality"][0] == pytest.approx(base["quality"][0] * 0.5, abs=1e-3)
    assert judged["quality"][1] == base["quality"][1]  # no judgement: no change
    assert judged["q_judge"].to_list() == [0.5, None]
    with pytest.raises(StudioError, match="q_judge"):
        run_steps(frame().head(1), [Score(model=False, judge=True)])


def test_model_sample_scores_only_that_many_rows():
    # in fp32 a row's value does not depend on the rows batched with it (bf16 moves it by ~1e-3: the next test)
    step = Score(model_sample=2, bf16="off")
    kept = run_steps(frame(), [step])[0]
    everything = {r["source"]: r for r in run_steps(frame(), [Score(bf16="off")])[0].iter_rows(named=True)}
    assert step.stats["model_rows"] == 2
    assert kept["q_ifd"].is_not_null().sum() == 2
    for row in kept.filter(pl.col("q_ifd").is_not_null()).iter_rows(named=True):
        assert row["q_ifd"] == pytest.approx(everything[row["source"]]["q_ifd"], rel=1e-4)  # as scoring all rows


def test_bf16_model_signal_agrees_with_fp32():
    """bf16 (the default where the CPU multiplies it natively) changes the model signal by little: q_ppl within
    5 %, q_ifd within 0.03 of fp32's on every row (bench/score_dtype.py: at most 3 % and 0.02 on 50 rows), and the
    stats say which dtype ran."""
    half, full = Score(bf16="on"), Score(bf16="off")
    a = run_steps(frame(), [half])[0].sort("source")
    b = run_steps(frame(), [full])[0].sort("source")
    assert (half.stats["model_dtype"], full.stats["model_dtype"]) == ("bfloat16", "float32")
    assert a["q_ppl"].is_not_null().sum() == b["q_ppl"].is_not_null().sum() > 0
    for x, y in zip(a.iter_rows(named=True), b.iter_rows(named=True), strict=True):
        if y["q_ppl"] is not None:
            assert x["q_ppl"] == pytest.approx(y["q_ppl"], rel=0.05)
            assert x["q_ifd"] == pytest.approx(y["q_ifd"], abs=0.03)
