"""The curation report: one self-contained HTML file per run (`report.html` in the run folder).

Written by the pipeline after kept/dropped are saved, for a data engineer deciding whether the run removed
the right things: counts per step and reason, quality-score and length histograms, duplicate groups side by
side, PII found by type, the mix of categories, sources and languages kept vs dropped (a
representation check: did filtering remove one category wholesale?), and an audit of offensive language
(score's q_offensive) and of demographic representation and gender association in the kept text
(`curate.bias_audit`), whose findings also go into the run manifest (`audit`). Plots are plotly figures; plotly.js
is inlined once, so the file opens offline and can be mailed around.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import polars as pl

from studio.atomic import atomic_open
from studio.runs import Run

#: Duplicate groups shown side by side (the largest first).
EXAMPLE_CLUSTERS = 6
#: Characters of prompt/response shown per example.
SNIPPET_CHARS = 280
DUPLICATE_REASONS = ("exact_duplicate", "near_duplicate", "semantic_duplicate")
SCORE_COLUMNS = ("quality", "q_ifd", "q_ppl", "q_echo", "q_alpha_words_frac")
KEPT_COLOR, DROPPED_COLOR = "#2a9d8f", "#e76f51"


def write_report(run: Run, kept: pl.DataFrame, dropped: list[pl.DataFrame] | pl.DataFrame) -> Path:
    """Write `report.html` into the run folder and return its path."""
    drops = _concat(dropped)
    rows = _with_views(kept).with_columns(pl.lit("kept").alias("_set"))
    if drops.height:
        rows = pl.concat([rows, _with_views(drops).with_columns(pl.lit("dropped").alias("_set"))], how="diagonal_relaxed")
    sections = [
        ("summary", "Summary", _summary(run)),
        ("steps", "Steps and drop reasons", _steps(run, drops)),
        ("scores", "Quality scores", _scores(rows)),
        ("lengths", "Lengths", _lengths(rows)),
        ("duplicates", "Duplicate groups", _duplicates(rows, drops)),
        ("pii", "Personal data found", _pii(run, rows)),
        ("representation", "Representation: categories, sources, languages", _representation(rows)),
        ("audit", "Audit: offensive language and bias", _audit(run, rows)),
    ]
    body = "\n".join(f'<section id="{sid}"><h2>{html.escape(title)}</h2>\n{content}</section>'
                     for sid, title, content in sections)
    nav = " · ".join(f'<a href="#{sid}">{html.escape(title.split(":")[0])}</a>' for sid, title, _ in sections)
    path = run.dir / "report.html"
    with atomic_open(path) as fh:
        fh.write(_PAGE.format(title=html.escape(f"Curation report — {run.run_id}"), plotly=_plotly_js(),
                              nav=nav, body=body))
    return path


# -- data preparation

def _concat(dropped: list[pl.DataFrame] | pl.DataFrame) -> pl.DataFrame:
    if isinstance(dropped, pl.DataFrame):
        return dropped
    return pl.concat(dropped, how="diagonal_relaxed") if dropped else pl.DataFrame()


def _with_views(df: pl.DataFrame) -> pl.DataFrame:
    """Adds _prompt, _response, _category, _file (convenience columns for the report only)."""
    turn = pl.element()

    def joined(role: str) -> pl.Expr:
        return pl.col("messages").list.eval(turn.filter(turn.struct.field("role") == role).struct.field("content")).list.join("\n")

    category = pl.col("meta").str.json_path_match("$.category").fill_null("(none)") if "meta" in df.columns else pl.lit("(none)")
    file = pl.col("source").str.replace(r":\d+$", "").str.replace(r"^.*/", "") if "source" in df.columns else pl.lit("(unknown)")
    return df.with_columns(joined("user").alias("_prompt"), joined("assistant").alias("_response"),
                           category.alias("_category"), file.alias("_file"))


# -- sections

def _summary(run: Run) -> str:
    c = run.counts
    cells = [("rows in", c.input), ("kept", c.kept), ("dropped", c.dropped_total), ("quarantined", c.quarantined)]
    tiles = "".join(f'<div class="tile"><div class="n">{n:,}</div><div>{label}</div></div>' for label, n in cells)
    inputs = "".join(f"<li><code>{html.escape(i['path'])}</code> ({html.escape(str(i.get('format', '')))})</li>"
                     for i in run.inputs)
    return f'<div class="tiles">{tiles}</div><p>Run <code>{html.escape(run.run_id)}</code>, inputs:</p><ul>{inputs}</ul>'


def _steps(run: Run, drops: pl.DataFrame) -> str:
    rows = [[s["step"], f"{s['rows_in']:,}", f"{s['kept']:,}",
             ", ".join(f"{r}: {n:,}" for r, n in s.get("dropped", {}).items()) or "—", f"{s.get('seconds', 0):.2f}"]
            for s in run.steps]
    table = _table(["step", "rows in", "kept", "dropped (reason: rows)", "seconds"], rows)
    if not drops.height:
        return table + "<p>No rows were dropped.</p>"
    by = drops.group_by("step", "drop_reason").len().sort("len", descending=True)
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=by["len"].to_list(), y=[f"{s} · {r}" for s, r in zip(by["step"], by["drop_reason"], strict=True)],
                           orientation="h", marker_color=DROPPED_COLOR))
    fig.update_layout(title="Rows dropped by step and reason", xaxis_title="rows", height=120 + 30 * by.height)
    return table + _fig(fig)


def _histograms(rows: pl.DataFrame, columns: list[str], titles: dict[str, str], log_x: tuple[str, ...] = ()) -> str:
    import plotly.graph_objects as go

    out = []
    for col in columns:
        fig = go.Figure()
        for name, color in (("kept", KEPT_COLOR), ("dropped", DROPPED_COLOR)):
            values = rows.filter((pl.col("_set") == name) & pl.col(col).is_not_null())[col]
            if col in log_x:
                values = values.filter(values > 0).log10()
            if values.len():
                fig.add_trace(go.Histogram(x=values.to_list(), name=name, marker_color=color, opacity=0.75, nbinsx=40))
        fig.update_layout(barmode="overlay", title=titles.get(col, col), height=320,
                          xaxis_title=("log10 " if col in log_x else "") + col, yaxis_title="rows")
        out.append(_fig(fig))
    return '<div class="grid">' + "".join(out) + "</div>"


def _scores(rows: pl.DataFrame) -> str:
    cols = [c for c in SCORE_COLUMNS if c in rows.columns and rows[c].null_count() < rows.height]
    if not cols:
        return "<p>No quality scores in this run (add the <code>score</code> step).</p>"
    flags = [c for c in ("q_refusal",) if c in rows.columns]
    note = ""
    if flags:
        n = int(rows["q_refusal"].sum())
        note = f"<p>Responses flagged as refusals: {n:,}.</p>"
    return note + _histograms(rows, cols, {"quality": "Combined quality (0–1)", "q_ifd": "IFD: loss(response | prompt) / loss(response)",
                                           "q_ppl": "Response perplexity given the prompt"}, log_x=("q_ppl",))


def _lengths(rows: pl.DataFrame) -> str:
    if {"q_prompt_tokens", "q_response_tokens"} <= set(rows.columns):
        cols, unit = ["q_prompt_tokens", "q_response_tokens"], "tokens"
        data = rows
    else:
        data = rows.with_columns(pl.col("_prompt").str.len_chars().alias("prompt_chars"),
                                 pl.col("_response").str.len_chars().alias("response_chars"))
        cols, unit = ["prompt_chars", "response_chars"], "characters"
    return f"<p>Lengths in {unit}.</p>" + _histograms(data, cols, {cols[0]: f"Prompt length ({unit})", cols[1]: f"Response length ({unit})"})


def _duplicates(rows: pl.DataFrame, drops: pl.DataFrame) -> str:
    if not drops.height or "dup_of" not in drops.columns:
        return "<p>No duplicates were dropped.</p>"
    dups = rows.filter((pl.col("_set") == "dropped") & pl.col("dup_of").is_not_null())
    if not dups.height:
        return "<p>No duplicates were dropped.</p>"
    import plotly.graph_objects as go

    groups = dups.group_by("dup_of").agg(pl.len().alias("members"), pl.col("drop_reason").first().alias("reason")).with_columns(
        (pl.col("members") + 1).alias("size"))
    sizes = groups.group_by("size", "reason").len().sort("size")
    fig = go.Figure()
    for reason in sizes["reason"].unique().sort().to_list():
        part = sizes.filter(pl.col("reason") == reason)
        fig.add_trace(go.Bar(x=part["size"].to_list(), y=part["len"].to_list(), name=reason))
    fig.update_layout(barmode="stack", title="Duplicate group sizes (representative + dropped copies)",
                      xaxis_title="rows in group", yaxis_title="groups", height=320)
    by_id = rows.unique("id", keep="first").select("id", "_prompt", "_response", "_set")
    cards = []
    shown = groups.sort(["size", "dup_of"], descending=[True, False]).head(EXAMPLE_CLUSTERS)
    for rep_id, _, reason, size in shown.iter_rows():
        rep = by_id.filter(pl.col("id") == rep_id)
        members = dups.filter(pl.col("dup_of") == rep_id).head(3)
        cols = [_card("kept representative", rep_id, rep["_prompt"][0] if rep.height else "", rep["_response"][0] if rep.height else "", None)]
        for m in members.iter_rows(named=True):
            sim = m.get("similarity")
            cols.append(_card(f"dropped · {m['drop_reason']}", m["id"], m["_prompt"], m["_response"], sim))
        cards.append(f'<div class="cluster"><h3>{html.escape(reason)} · {size} rows</h3><div class="side">{"".join(cols)}</div></div>')
    return _fig(fig) + "".join(cards)


def _card(label: str, row_id: str, prompt: str, response: str, similarity: float | None) -> str:
    sim = f" · similarity {similarity:.3f}" if similarity is not None else ""
    return (f'<div class="card"><div class="label">{html.escape(label)}{sim}<br><code>{html.escape(row_id)}</code></div>'
            f"<p><b>prompt</b> {html.escape(_snip(prompt))}</p><p><b>response</b> {html.escape(_snip(response))}</p></div>")


def _snip(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + " …"


def _pii(run: Run, rows: pl.DataFrame) -> str:
    counts: dict[str, int] = {}
    for step in run.steps:
        for entity, n in (step.get("pii_counts") or {}).items():
            counts[entity] = counts.get(entity, 0) + int(n)
    rows_with = None
    if "pii_entities" in rows.columns:
        col = rows["pii_entities"]
        has = col.list.len() > 0 if isinstance(col.dtype, pl.List) else (col.is_not_null() & (col.cast(pl.String) != "[]") & (col.cast(pl.String) != ""))
        rows_with = int(has.sum())
    if not counts and rows_with is None:
        return "<p>No PII step in this run (add <code>redact_pii</code> to find and mask personal data).</p>"
    import plotly.graph_objects as go

    parts = []
    if rows_with is not None:
        parts.append(f"<p>Rows with personal data found: {rows_with:,}.</p>")
    if counts:
        ordered = sorted(counts.items(), key=lambda kv: -kv[1])
        fig = go.Figure(go.Bar(x=[k for k, _ in ordered], y=[v for _, v in ordered], marker_color="#264653"))
        fig.update_layout(title="Entities found by type", yaxis_title="entities", height=320)
        parts.append(_fig(fig) + _table(["entity type", "found"], [[k, f"{v:,}"] for k, v in ordered]))
    else:
        parts.append("<p>No personal data found.</p>")
    return "".join(parts)


def _representation(rows: pl.DataFrame) -> str:
    import plotly.graph_objects as go

    dims = [("_category", "category (meta.category)"), ("_file", "source file")]
    if "q_lang" in rows.columns:
        dims.append(("q_lang", "language (langid)"))
    out = []
    for col, label in dims:
        counts = rows.group_by(col, "_set").len().pivot(on="_set", index=col, values="len").fill_null(0)
        for s in ("kept", "dropped"):
            if s not in counts.columns:
                counts = counts.with_columns(pl.lit(0, dtype=pl.UInt32).alias(s))
        counts = counts.with_columns((pl.col("kept") + pl.col("dropped")).alias("total")).sort("total", descending=True).head(30)
        cats = [str(v) for v in counts[col].to_list()]
        fig = go.Figure([go.Bar(x=cats, y=counts["kept"].to_list(), name="kept", marker_color=KEPT_COLOR),
                         go.Bar(x=cats, y=counts["dropped"].to_list(), name="dropped", marker_color=DROPPED_COLOR)])
        fig.update_layout(barmode="stack", title=f"Rows by {label}", yaxis_title="rows", height=340)
        share = counts.with_columns((pl.col("dropped") / pl.col("total")).alias("share"))
        worst = share.filter(pl.col("total") >= 5).sort("share", descending=True).head(1)
        note = ""
        if worst.height and worst["share"][0] >= 0.5:
            note = (f'<p class="warn">{html.escape(str(worst[col][0]))}: {worst["share"][0]:.0%} of its rows were dropped '
                    f"— check that this {html.escape(label.split(' ')[0])} is still represented.</p>")
        out.append(_fig(fig) + note)
    return '<div class="grid">' + "".join(out) + "</div>"


def _audit(run: Run, rows: pl.DataFrame) -> str:
    """Offensive turns (kept and dropped), then the bias audit of the kept rows; findings go to run.extra."""
    from curate import bias_audit
    from curate.quality.offensive import THRESHOLD

    parts: list[str] = []
    found: dict[str, Any] = {}
    if "q_offensive" in rows.columns:
        hits = rows.filter(pl.col("q_offensive") >= THRESHOLD)
        in_response = hits.filter(pl.col("q_offensive_response") >= THRESHOLD)
        kept_hits = hits.filter(pl.col("_set") == "kept")
        found["offensive_rows"] = {"kept": kept_hits.height, "dropped": hits.height - kept_hits.height,
                                   "kept_in_response": in_response.filter(pl.col("_set") == "kept").height}
        parts.append(f"<p>Rows with an offensive turn (q_offensive ≥ {THRESHOLD}): {kept_hits.height:,} kept, "
                     f"{hits.height - kept_hits.height:,} dropped; {found['offensive_rows']['kept_in_response']:,} kept "
                     "rows have an offensive <em>answer</em> (q_offensive_response), which a fine-tune would learn: "
                     "drop them with a filter rule such as <code>q_offensive_response &lt; 0.5</code>.</p>")
        shown = hits.sort("q_offensive", descending=True).head(EXAMPLE_CLUSTERS)
        if shown.height:
            parts.append(_table(["set", "id", "q_offensive", "in answer", "prompt", "response"],
                                [[r["_set"], r["id"], r["q_offensive"], r["q_offensive_response"] >= THRESHOLD,
                                  _snip(r["_prompt"]), _snip(r["_response"])] for r in shown.iter_rows(named=True)]))
    else:
        parts.append("<p>No offensive-language scores (add the <code>score</code> step).</p>")
    kept = rows.filter(pl.col("_set") == "kept")
    if kept.height:
        groups = {"origin": kept["origin"] if "origin" in kept.columns else pl.Series(["(none)"] * kept.height),
                  "source file": kept["_file"]}
        if "meta" in kept.columns and kept["meta"].str.json_path_match("$.split").is_not_null().any():
            groups["split"] = kept["meta"].str.json_path_match("$.split")
        text = kept.select(pl.concat_str([pl.col("_prompt"), pl.col("_response")], separator="\n")).to_series()
        result = bias_audit.audit(text, groups)
        found |= {"bias_flags": result.flags, "skews": result.skews, "gender": result.scores}
        parts.append(_bias(result))
    run.extra["audit"] = found
    return "".join(parts)


def _bias(result: Any) -> str:
    import plotly.graph_objects as go

    from curate import bias_audit

    s = result.scores
    share = "–" if s["female_share"] is None else f"{s['female_share']:.0%}"
    out = [f"<p>Kept text: {s['female_mentions']:,} female and {s['male_mentions']:,} male mentions (female share "
           f"{share}); GenBiT average |log-ratio| over {s['words_scored']} context words: "
           f"{'–' if s['avg_abs_bias'] is None else s['avg_abs_bias']} (0 = no association; see "
           "<code>curate/bias_audit.py</code> for the thresholds).</p>"]
    out += [f'<p class="warn">{html.escape(flag)}</p>' for flag in result.flags] or ["<p>No skew crosses the thresholds.</p>"]
    rep = result.representation
    term_cols = [f"{d}:{side}" for d, sides in bias_audit.TERMS.items() for side in sides]
    figs = []
    for name in rep["group_by"].unique(maintain_order=True).to_list():
        part = rep.filter(pl.col("group_by") == name)
        fig = go.Figure([go.Bar(x=part["group"].to_list(), name=c,
                                y=(part[c] * 100 / part["rows"]).round(1).to_list()) for c in term_cols])
        fig.update_layout(barmode="group", title=f"Demographic mentions per 100 kept rows, by {name}",
                          yaxis_title="mentions / 100 rows", height=340)
        figs.append(_fig(fig))
    out.append('<div class="grid">' + "".join(figs) + "</div>")
    top = result.association.head(12)
    if top.height:
        out.append("<p>Context words most associated with one gender (co-occurrences within "
                   f"{bias_audit.WINDOW} words; positive = female):</p>"
                   + _table(["word", "next to female", "next to male", "log-ratio"], top.rows()))
    return "".join(out)


# -- HTML helpers

def _fig(fig: Any) -> str:
    fig.update_layout(margin={"l": 50, "r": 20, "t": 50, "b": 50}, template="plotly_white")
    return '<div class="fig">' + fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False}) + "</div>"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    # "</script" cannot appear inside an inline script; plotly.js has none, but be safe.
    return get_plotlyjs().replace("</script", "<\\/script")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1em 2em; color: #222; }}
nav {{ position: sticky; top: 0; background: #fff; padding: .5em 0; border-bottom: 1px solid #ddd; }}
section {{ margin: 2em 0; }}
.tiles {{ display: flex; gap: 1em; }} .tile {{ border: 1px solid #ddd; border-radius: 6px; padding: .8em 1.2em; }}
.tile .n {{ font-size: 1.8em; font-weight: 600; }}
table {{ border-collapse: collapse; margin: 1em 0; }} th, td {{ border: 1px solid #ddd; padding: .3em .6em; text-align: left; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 1em; }}
.cluster {{ border-top: 1px solid #eee; }} .side {{ display: flex; gap: .8em; overflow-x: auto; }}
.card {{ flex: 1 1 0; min-width: 240px; border: 1px solid #ddd; border-radius: 6px; padding: .6em; font-size: .9em; }}
.card .label {{ color: #555; font-size: .85em; }} .warn {{ color: #b5400f; }}
</style>
<script>{plotly}</script>
</head><body>
<h1>{title}</h1>
<nav>{nav}</nav>
{body}
</body></html>
"""
