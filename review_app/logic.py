"""Pure functions behind the review app's pages (tested without Streamlit): edits, diffs, filters,
progress figures, the keyboard-shortcut script, and the text of the lead view."""

from __future__ import annotations

import difflib
import html
import json
import re
from typing import Any

#: Reason tags offered when rejecting (a reject needs at least one).
REJECT_REASONS = ("wrong facts", "incomplete", "unsafe / policy", "personal data", "off-topic", "bad tone",
                  "duplicate", "formatting")

#: key → button label prefix; the script below clicks the button whose label starts with it.
#: key -> the start of the button label(s) it clicks (a: Accept on single items, "A is better" on pairwise ones)
SHORTCUTS = {"a": ["Accept", "A is better"], "b": ["B is better"], "t": ["Tie"], "r": ["Reject"], "s": ["Skip"],
             "u": ["Undo"]}


def last_response(messages: list[dict[str, str]]) -> str:
    """The text of the last assistant turn (what the reviewer may edit), or "" when there is none."""
    for m in reversed(messages):
        if m["role"] == "assistant":
            return m["content"]
    return ""


def with_response(messages: list[dict[str, str]], response: str) -> list[dict[str, str]]:
    """The conversation with its last assistant turn replaced (appended when there is none)."""
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m["role"] == "assistant":
            m["content"] = response
            return out
    return [*out, {"role": "assistant", "content": response}]


def edit_of(messages: list[dict[str, str]], response: str) -> list[dict[str, str]] | None:
    """The edited messages when the response text really changed (ignoring trailing whitespace), else None."""
    if response.strip() == last_response(messages).strip():
        return None
    return with_response(messages, response.strip())


#: a fenced code block's opening line at the left margin (a fence indented by 1-3 spaces may belong to a list
#: item that a later line closes, so it is not trusted as code and its lines are escaped like any other)
_FENCE_OPEN = re.compile(r"(`{3,}|~{3,})")
_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def safe_markdown(text: str) -> str:
    """Item text, comments and names as Markdown that cannot load anything: outside code, the characters that
    begin a link or image (`[ ]`), raw HTML or an autolink (`< >`), a bare URL (`://`, `www.`) or KaTeX (`$`)
    are backslash-escaped, so they show as typed. Fenced code blocks and one-line code spans are left as they
    are (Markdown builds nothing inside them), so code keeps its brackets."""
    out: list[str] = []
    fence: str | None = None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if fence is not None:
            out.append(line)
            if re.fullmatch(rf" {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*", line):
                fence = None
            continue
        opened = _FENCE_OPEN.match(line)
        if opened and not (opened.group(1)[0] == "`" and "`" in line[opened.end():]):
            fence = opened.group(1)
            out.append(line)
            continue
        out.append(_escape_inline(line))
    return "\n".join(out)


def _escape_inline(line: str) -> str:
    out, i = [], 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line) and line[i + 1] in _PUNCT:
            out.append(line[i:i + 2])
            i += 2
            continue
        if c == "`":
            run = len(line[i:]) - len(line[i:].lstrip("`"))
            close = re.compile(rf"(?<!`)`{{{run}}}(?!`)").search(line, i + run)
            # a span holding "|" could be cut into table cells, so only pipe-free spans are left unescaped
            if close and "|" not in line[i:close.end()]:
                out.append(line[i:close.end()])
                i = close.end()
                continue
            out.append(line[i:i + run])
            i += run
            continue
        active = (c in "[]<>$" or (c == ":" and line.startswith("//", i + 1) and line[i - 1:i].isalpha())
                  or (c == "." and line[max(0, i - 3):i].lower() == "www"))
        out.append("\\" + c if active else c)
        i += 1
    return "".join(out)


#: characters written as numeric entities in raw HTML besides html.escape's: a newline (a blank line would end
#: the HTML block and hand the rest to the Markdown parser) and every character that starts Markdown syntax
_INERT = str.maketrans({c: f"&#{ord(c)};" for c in "\n[]()!`$:.*_~|\\"} | {"\r": ""})


def inert_html(text: str) -> str:
    """Text for a raw-HTML snippet given to `st.markdown(..., unsafe_allow_html=True)`: HTML-escaped, on one
    source line, with Markdown's punctuation as entities, so neither the browser nor Markdown builds anything."""
    return html.escape(text, quote=True).translate(_INERT)


def response_diff_html(original: str, edited: str) -> str:
    """A word-level diff as HTML: deletions struck through in red, insertions in green."""
    a, b = original.split(" "), edited.split(" ")
    parts = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op in ("delete", "replace"):
            parts.append(f'<del style="background:#fdd">{inert_html(" ".join(a[i1:i2]))}</del>')
        if op in ("insert", "replace"):
            parts.append(f'<ins style="background:#dfd">{inert_html(" ".join(b[j1:j2]))}</ins>')
        if op == "equal":
            parts.append(inert_html(" ".join(a[i1:i2])))
    return '<div class="response-diff" style="white-space:pre-wrap">' + " ".join(parts) + "</div>"


def reject_problem(reasons: list[str]) -> str | None:
    """Why a reject cannot be saved yet, or None."""
    return None if reasons else "Pick at least one reason before rejecting."


def filters_from_widgets(origins: list[str], quality: tuple[float, float] | None, quality_bounds: tuple[Any, Any],
                         pii: str, source: str, tags: list[str]) -> dict[str, Any]:
    """ItemFilter fields from the sidebar widgets; a quality slider left at its full range does not filter
    (so unscored items stay visible)."""
    out: dict[str, Any] = {"origins": tuple(origins), "tags": tuple(tags), "source": source.strip() or None,
                           "pii": {"flagged": True, "not flagged": False}.get(pii)}
    if quality is not None and tuple(quality) != tuple(quality_bounds):
        out["min_quality"], out["max_quality"] = float(quality[0]), float(quality[1])
    return out


def progress_figures(progress: dict[str, Any]) -> dict[str, Any]:
    """Fractions and captions for the two progress bars (this reviewer, everyone)."""
    me = progress.get("reviewer") or {"decided": 0, "available": 0}
    mine_total = me["decided"] + me["available"]
    items = progress["items"]
    return {
        "mine": me["decided"] / mine_total if mine_total else 1.0,
        "mine_text": f"you: {me['decided']} decided, {me['available']} left for you",
        "overall": progress["complete"] / items if items else 1.0,
        "overall_text": f"all: {progress['complete']} of {items} items complete ({progress['auto_decided']} by rule)",
    }


def shortcut_script() -> str:
    """JavaScript for a zero-height components.html iframe: keys a/r/s/u click Accept/Reject/Skip/Undo in the
    parent page, unless the focus is in a text field (so typing an edit never triggers a decision)."""
    return """<script>
const doc = window.parent.document;
if (!window.parent.__reviewShortcuts) {
  window.parent.__reviewShortcuts = true;
  const keys = __KEYS__;
  doc.addEventListener("keydown", (ev) => {
    const t = ev.target;
    const tag = (t && t.tagName || "").toLowerCase();
    if (tag === "textarea" || tag === "input" || (t && t.isContentEditable)) return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const labels = keys[ev.key.toLowerCase()];
    if (!labels) return;
    const button = Array.from(doc.querySelectorAll("button"))
      .find((b) => labels.some((l) => b.innerText.trim().startsWith(l)) && !b.disabled);
    if (button) { ev.preventDefault(); button.click(); }
  });
}
</script>""".replace("__KEYS__", json.dumps(SHORTCUTS))


def disagreement_rows(disagreements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One table row per disagreeing item: who said what, and the resolution if any."""
    rows = []
    for d in disagreements:
        rows.append({
            "item": d["item_id"],
            "verdicts": ", ".join(f"{x['reviewer']}: {x['verdict']}" for x in d["decisions"]),
            "reasons": "; ".join(", ".join(x["reasons"]) for x in d["decisions"] if x["reasons"]),
            "resolved": d["resolution"]["verdict"] if d["resolution"] else "",
        })
    return rows
