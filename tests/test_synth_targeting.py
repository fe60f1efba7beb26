"""`studio synth --target-skew`: which audit finding a run aims at, the counterfactual seeds, and the one-sentence
errors for a run that cannot be aimed (no model needed; the generation itself is tested in test_synth.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from curate import bias_audit
from studio.errors import StudioError
from studio_app.cli import app
from synth.targeting import make_target, pick_finding, seed_rows, topics

REPO = Path(__file__).resolve().parent.parent
TICKETS = {"group_by": "source file", "group": "tickets.json", "axis": "gender", "over": "female", "under": "male",
           "mentions": 38, "share": 0.737, "rest_share": 0.0, "p_value": 1.4e-09,
           "flag": "source file tickets.json: 74% of its 38 gender mentions are female, against 0% in the rest of the set"}
CHAT = {"group_by": "source file", "group": "chat.jsonl", "axis": "gender", "over": "male", "under": "female",
        "mentions": 12, "share": 1.0, "rest_share": 0.44, "p_value": 0.00027,
        "flag": "source file chat.jsonl: 100% of its 12 gender mentions are male, against 44% in the rest of the set"}


def _curate_manifest(folder: Path, audit: dict | None, kind: str = "curate") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"run_id": f"{kind}-x", "kind": kind, "status": "ok", "outputs": []}
    if audit is not None:
        data["audit"] = audit
    (folder / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    return folder / "manifest.json"


def _row(text: str, source: str) -> dict:
    return {"id": f"id-{abs(hash(text)) % 10**8}", "messages": [{"role": "user", "content": text},
                                                                 {"role": "assistant", "content": "Happy to help."}],
            "origin": "real", "source": source, "meta": "{}"}


def test_the_audit_records_each_skew_as_figures_behind_its_sentence():
    rep = pl.DataFrame({"group_by": ["origin"] * 2, "group": ["real", "synthetic"], "rows": [50, 50],
                        "gender:female": [30, 2], "gender:male": [2, 30], "age:young": [0, 0], "age:older": [0, 0]})
    found = bias_audit.skews(rep)
    assert [(f["group"], f["over"], f["under"], f["mentions"], f["share"], f["rest_share"]) for f in found] == [
        ("real", "female", "male", 32, 0.938, 0.062), ("synthetic", "male", "female", 32, 0.938, 0.062)]
    assert found[0]["flag"] == bias_audit.skew_flags(rep)[0]
    assert found[0]["p_value"] < bias_audit.SKEW_P


def test_the_largest_skew_is_aimed_at_by_default_and_a_named_group_picks_its_own(tmp_path):
    path = _curate_manifest(tmp_path / "run", {"skews": [TICKETS, CHAT]})
    manifest = json.loads(path.read_text())
    largest = pick_finding(manifest, path, bias_audit.TERMS)
    assert (largest["under"], largest["group"], largest["audit_run"]) == ("male", "tickets.json", "curate-x")
    assert pick_finding(manifest, path, bias_audit.TERMS, group="female")["group"] == "chat.jsonl"
    assert pick_finding(manifest, path, bias_audit.TERMS, group="male", axis="gender")["group"] == "tickets.json"


@pytest.mark.parametrize(("audit", "group", "axis", "says"), [
    (None, None, None, "recorded no bias audit with skew figures"),
    ({"bias_flags": []}, None, None, "recorded no bias audit with skew figures"),
    ({"skews": []}, None, None, "flagged no skew"),
    ({"skews": [TICKETS]}, "nonbinary", None, "--target-group nonbinary: unknown group; choose one of female, male (gender); young, older (age)"),
    ({"skews": [TICKETS]}, "young", "gender", "unknown group for axis gender; choose one of female, male (gender)"),
    ({"skews": [TICKETS]}, None, "race", "--target-axis race: unknown axis; choose one of gender, age"),
    ({"skews": [TICKETS]}, "female", None, "flagged no skew where female is under-represented (it flagged: male "
                                           "under-represented in source file tickets.json)"),
])
def test_a_run_that_cannot_be_aimed_says_why_in_one_sentence(tmp_path, audit, group, axis, says):
    path = _curate_manifest(tmp_path / "run", audit)
    with pytest.raises(StudioError) as err:
        pick_finding(json.loads(path.read_text()), path, bias_audit.TERMS, group=group, axis=axis)
    assert says in str(err.value)
    assert str(err.value).count(". ") == 0 and str(err.value).endswith(".")


def test_seeds_are_the_skewed_sources_rows_rewritten_about_the_under_represented_group():
    target = make_target({**TICKETS, "audit_run": "curate-x"}, bias_audit.TERMS, bias_audit.COUNTERPARTS)
    rows = [_row("My wife bought it, but she is hopeless with it. Her order is late.", "data/tickets.json:3"),
            _row("Where is my parcel?", "data/tickets.json:4"),
            _row("My husband wants a refund.", "data/chat.jsonl:1")]
    seeds = seed_rows(rows, target)
    assert [s["id"] for s in seeds] == [rows[0]["id"]]  # of the skewed source, and carrying the skew
    swapped = target.counterfactual(seeds[0])
    assert swapped["id"] == rows[0]["id"]
    assert swapped["messages"][0]["content"] == "My husband bought it, but he is hopeless with it. His order is late."
    assert target.on_target(swapped["messages"][0]["content"]) and not target.on_target(rows[0]["messages"][0]["content"])
    assert topics([swapped], target) == ["My husband bought it, but he is hopeless with it. His order is late."]
    assert "male" in target.guidance() and "he, him, his" in target.guidance()


def test_synth_cli_refuses_to_aim_without_a_curate_audit_with_one_line_and_exit_code_2(tmp_path):
    synth_run = _curate_manifest(tmp_path / "synth-run", None, kind="synth")
    no_skew = _curate_manifest(tmp_path / "clean", {"bias_flags": [], "skews": []})
    for target, says in ((tmp_path / "missing", "no manifest.json there"),
                         (synth_run, "this is a synth run's manifest, not a curate run's"),
                         (no_skew.parent, "flagged no skew")):
        res = subprocess.run([sys.executable, "-m", "studio_app.cli", "synth", "paraphrase", "--target-skew", str(target)],
                             capture_output=True, text=True, cwd=tmp_path, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "400"})
        assert res.returncode == 2, res.stderr
        assert says in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_synth_help_teaches_aiming_at_an_audit_finding():
    res = CliRunner().invoke(app, ["synth", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for text in ("--target-skew", "--target-group", "--target-axis", "studio synth paraphrase --target-skew"):
        assert text in res.output


def test_an_aimed_generator_drops_examples_that_do_not_name_the_group_or_copy_its_guidance():
    import asyncio

    from synth.generators.base import Candidate, Generator, GenSettings
    from synth.prompts import PromptLibrary
    from synth.targeting import AimedGenerator

    class Fixed(Generator):
        name = "paraphrase"

        async def generate(self, chat, indices):
            texts = ["My husband wants his refund.", "My wife wants her refund.", "Where is the parcel?",
                     "He asked his brother about her order.", "Hi. " + target.guidance()]
            return [Candidate(i, "paraphrase.v1", messages=[{"role": "user", "content": texts[i]},
                                                            {"role": "assistant", "content": "Sure."}]) for i in indices]

    target = make_target({**TICKETS, "audit_run": "curate-x"}, bias_audit.TERMS, bias_audit.COUNTERPARTS)
    aimed = AimedGenerator(Fixed(PromptLibrary([]), GenSettings()), target)
    cands = asyncio.run(aimed.generate(None, [0, 1, 2, 3, 4]))
    assert [c.drop_reason for c in cands] == [None, "off_target", "off_target", None, "echoed_guidance"]
    assert all(c.meta["skew_target"] == {"audit_run": "curate-x", "axis": "gender", "group": "male",
                                         "in": "source file tickets.json"} for c in cands)
    assert aimed.name == "paraphrase" and aimed.describe()["skew_target"]["group"] == "male"
