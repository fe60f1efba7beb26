"""Hostile data in the review app, checked in headless Chromium's DOM.

Ids, sources, tags, message text, comments, reasons and reviewer names carry HTML, Markdown and script payloads;
the data set is loaded through the CLI (`studio review load`) and the app runs with the flags `studio review`
uses. A sink HTTP server stands in for a remote host: any image, frame, stylesheet or prefetch that a payload
manages to load shows up there. The page must show the payloads as text, run none of them, load nothing from
the sink, link nowhere, and show neither a Deploy menu nor a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from appserver import CHROMIUM, FLAGS, REPO, log_in, need_chromium, review_app

from review_app.store import ReviewStore


def hostile_payloads(sink: str) -> list[str]:
    """Each one tries to run script, load a remote resource or plant a link when rendered."""
    return [
        "<script>window.__pwned = 1</script>",
        f'<img src="{sink}/raw-img.png" onerror="window.__pwned = 1">',
        f"![tracker]({sink}/md-image.png)",
        "[click me](javascript:window.__pwned=1)",
        f"[ref link][r1]\n\n[r1]: {sink}/ref-link",
        f"![ref image][r2]\n\n[r2]: {sink}/ref-image.png",
        f"<{sink}/autolink>",
        f"{sink}/bare-url",
        f'<iframe src="{sink}/frame"></iframe>',
        f"$\\href{{{sink}/katex}}{{x}}$ $$\\includegraphics{{{sink}/katex.png}}$$",
        f'<a href="{sink}/anchor">anchor</a>',
        f"`inline code ![img]({sink}/in-code.png)` stays code",
        f"| a | `b | ![x]({sink}/table.png)` |\n|---|---|\n| 1 | 2 |",
        f"```\n![x]({sink}/fence.png)\n```",
        f"  ```\n![x]({sink}/indented-fence.png)",
        "<svg onload=\"window.__pwned = 1\"></svg>",
        f"<link rel=stylesheet href='{sink}/style.css'><style>@import '{sink}/import.css';</style>",
        f":red[colored] :material/home: www.example.com/{sink}",
        "\"><script>window.__pwned = 1</script><\"",
        f"\\\\![escaped backslash]({sink}/backslash.png)",
    ]


class Sink(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        Sink.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def hostile_app(tmp_path):
    import polars as pl

    from studio.schema import example_id, polars_schema

    need_chromium()
    sink_server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink_server.serve_forever, daemon=True).start()
    sink = f"http://127.0.0.1:{sink_server.server_address[1]}"
    payloads = hostile_payloads(sink)
    body = "\n\n".join(payloads)
    rows = []
    for i, (tag, source) in enumerate([(payloads[1], payloads[2]), (payloads[0], payloads[3])]):
        messages = [{"role": "user", "content": f"Question {i}\n\n{body}"},
                    {"role": "assistant", "content": f"Answer {i}\n\n{body}"}]
        rows.append({"id": example_id(messages), "messages": messages, "origin": "real", "source": source,
                     "meta": f'{{"category": {tag!r}}}'.replace("'", '"'), "quality": 0.1 * (i + 1)})
    bad = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    rows.append({"id": '"><img src=x onerror="window.__pwned=1">', "messages": bad, "origin": "real", "source": "s",
                 "meta": "{}", "quality": 0.0})
    data = tmp_path / "hostile.parquet"
    pl.DataFrame(rows, schema={**polars_schema(), "quality": pl.Float64}).write_parquet(data)
    url = f"sqlite:///{tmp_path / 'review.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    res = subprocess.run([sys.executable, "-m", "studio_app.cli", "review", "load", str(data), "--overlap", "2", "--db", url],
                         capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "quarantined        │     1" in res.stdout  # the id that is not a content hash never enters
    store = ReviewStore(url, bcrypt_rounds=4)
    store.add_reviewer("lead.amy", "amy-password", role="lead")
    second = store.get_item(rows[1]["id"])
    for name, verdict in ((payloads[1] + "@x.org", "reject"), (payloads[0] + "@y.org", "accept")):
        store.record_decision(second.id, name, verdict, reasons=[payloads[2]] if verdict == "reject" else (),
                              comment=body, source="labelstudio")
    with review_app(url, tmp_path, env) as base:
        yield base, sink, payloads
    store.close()
    sink_server.shutdown()


DOM_PROBE = """(sink) => {
  const bad = [];
  for (const el of document.querySelectorAll('img, iframe, script, link, source, video, audio, object, embed')) {
    const src = el.getAttribute('src') || el.getAttribute('href') || el.getAttribute('data') || '';
    if (src.includes(sink)) bad.push(el.tagName + ' ' + src);
  }
  for (const a of document.querySelectorAll('a[href]')) {
    const href = a.getAttribute('href');
    if (href.includes(sink) || href.toLowerCase().startsWith('javascript:')) bad.push('A ' + href);
  }
  for (const el of document.querySelectorAll('[data-testid="stMain"] svg[onload], [data-testid="stMain"] [onerror]')) {
    bad.push('handler on ' + el.tagName);
  }
  return {bad, pwned: window.__pwned === 1, text: document.body.innerText};
}"""


def check_page(page, sink: str, where: str) -> str:
    page.wait_for_timeout(1500)  # let any image, frame or prefetch a payload planted try to load
    found = page.evaluate(DOM_PROBE, sink)
    assert found["bad"] == [], f"{where}: {found['bad']}"
    assert not found["pwned"], f"{where}: a payload ran script"
    assert "Deploy" not in found["text"] and "Traceback" not in found["text"], where
    return found["text"]


@pytest.mark.slow
def test_hostile_ids_text_tags_comments_and_names_render_inert_in_chromium(hostile_app):
    from playwright.sync_api import expect, sync_playwright

    base, sink, payloads = hostile_app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        log_in(page, base, "lead.amy", "amy-password", timeout_ms=60_000)
        expect(page.get_by_text("Question 0").first).to_be_visible(timeout=60_000)
        text = check_page(page, sink, "review page")
        assert "<script>window.__pwned = 1</script>" in text  # shown as typed, not run and not dropped
        assert f"![tracker]({sink}/md-image.png)" in text

        editor = page.locator("textarea").first
        editor.fill("Answer 0 " + payloads[1] + " " + payloads[2])
        editor.press("Control+Enter")
        expect(page.locator(".response-diff")).to_be_visible(timeout=30_000)
        check_page(page, sink, "edit diff")

        for _ in range(3):  # a click landing during the edit's rerun can be undone by it: click again
            # the radio's label, not the page title that appears once the view has switched
            page.get_by_test_id("stRadioGroup").get_by_text("Lead view").click()
            try:
                # the disagreements come last, below the dashboard (which already names the reviewers)
                expect(page.get_by_role("button", name="Resolve: accept").first).to_be_visible(timeout=30_000)
                break
            except AssertionError:
                continue
        text = check_page(page, sink, "lead view")
        assert "@x.org" in text and "Question 1" in text
        browser.close()
    assert Sink.hits == [], f"the page loaded {Sink.hits} from the sink"
