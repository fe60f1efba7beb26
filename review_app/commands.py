"""`studio review ...`: launch the review app, queue data sets, apply auto-decision rules, add users, show status.

CLI composition layer over `review_app.store.ReviewStore`; imports stay inside the commands so
`studio --help` stays fast. The database is the workspace's `review.db` unless `--db URL` names another
(SQLite path or URL, or postgresql://user@host/db).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: how `studio review` runs Streamlit: no usage statistics, no tracebacks or exception text in the browser
#: (they stay in the server's console), and a toolbar without the developer menu (Deploy, rerun settings)
STREAMLIT_FLAGS = ("--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.showErrorDetails",
                   "none", "--client.showErrorLinks", "false", "--client.toolbarMode", "minimal")
DB_HELP = "Review database URL (default: the workspace's review.db), e.g. postgresql://me@host/review."


def _db_url(db: str | None) -> str:
    from studio.context import current_workspace
    from studio.workspace import review_db

    return review_db(db, current_workspace() if not db else None)


def _store(db: str | None):
    from review_app.store import ReviewStore

    return ReviewStore(_db_url(db))


def register(app: typer.Typer) -> None:
    review = typer.Typer(
        name="review",
        help=("Human review of examples in the browser.\n\n"
              "`studio review` starts the app on http://127.0.0.1:8501; `studio review load` queues a data set; "
              "`studio review auto` decides the obvious ones by rule; `studio review status` shows progress."),
        invoke_without_command=True,
        rich_markup_mode="markdown",
    )
    app.add_typer(review)

    @review.callback()
    def serve(
        ctx: typer.Context,
        db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
        port: Annotated[int, typer.Option(help="Port of the app.")] = 8501,
        host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 keeps it on this machine.")] = "127.0.0.1",
    ) -> None:
        """Start the review app (Streamlit) on 127.0.0.1. Reviewers log in with `studio review add-user` accounts.

        Example: `studio review --port 8502`
        """
        if ctx.invoked_subcommand is not None:
            ctx.obj = {"db": db}
            return
        import os
        import subprocess
        import sys

        from studio.context import current_workspace

        url = _db_url(db)
        _store(url).close()  # create / migrate the database before the app starts
        ws = current_workspace()
        env = {**os.environ, "STUDIO_REVIEW_DB": url}
        if ws is not None:
            env["STUDIO_WORKSPACE"] = str(ws.root)
        script = Path(__file__).resolve().parent / "app.py"
        from studio.credentials import db_label

        typer.echo(f"review app on http://{host}:{port}  (database {db_label(url)}; Ctrl+C stops it)")
        cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", host,
               "--server.port", str(port), *STREAMLIT_FLAGS]
        try:
            raise typer.Exit(subprocess.call(cmd, env=env))
        except KeyboardInterrupt:
            raise typer.Exit(0) from None

    def _db(ctx: typer.Context, db: str | None) -> str | None:
        return db or (ctx.obj or {}).get("db")

    @review.command("load")
    def load(
        ctx: typer.Context,
        dataset: Annotated[Path, typer.Argument(help="A data set: kept.parquet from curate, or any readable example file.")],
        overlap: Annotated[int, typer.Option(help="How many reviewers must decide each item (2+ measures agreement).")] = 1,
        order: Annotated[str, typer.Option(help="Queue order: quality (lowest first), uncertainty (closest to 0.5 first) or random.")] = "quality",
        db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    ) -> None:
        """Queue a data set for review. Loading the same data again changes nothing.

        Example: `studio review load runs/demo-curate/kept.parquet --overlap 2`

        Pairwise items (pick the better of two or more answers): a JSONL file whose rows carry `candidates`,
        one object a line: {"messages": [{"role": "user", "content": "..."}], "candidates": [{"content": "...",
        "model": "...", "run": "...", "origin": "..."}, ...], "source": "...", "blind": false}. `messages` is the
        prompt in the record schema of studio/schema.py (ending with the user's turn); model/run/origin are
        each answer's provenance, hidden from reviewers when "blind" is true (see review_app/pairwise.py).
        """
        from review_app.recorded import load_recorded
        from studio.context import current_workspace, reporter

        run, counts = load_recorded(_store(_db(ctx, db)), dataset, current_workspace(), overlap=overlap, order=order)
        reporter().table(f"review load ({run.run_id})", ["", "items"], [[k, v] for k, v in counts.items()])

    @review.command("auto")
    def auto(
        ctx: typer.Context,
        name: Annotated[str, typer.Option("--name", help="Rule name; decisions are recorded as reviewer rule:<name>.")],
        accept: Annotated[str | None, typer.Option("--accept", help="Accept items matching this rule, e.g. \"quality >= 0.9 and pii_count == 0\".")] = None,
        reject: Annotated[str | None, typer.Option("--reject", help="Reject items matching this rule, e.g. \"quality < 0.2\".")] = None,
        db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    ) -> None:
        """Decide the obvious items by rule, so people review only the uncertain rest.

        A rule compares an item's fields (quality, pii_count, q_* scores, origin, source, tags) with
        numbers or strings, joined by and/or/not. Items a person has already taken are left alone.

        Example: `studio review auto --accept "quality >= 0.9 and pii_count == 0" --name high-confidence`
        """
        from review_app.recorded import auto_recorded
        from studio.context import current_workspace, reporter
        from studio.errors import StudioError

        if (accept is None) == (reject is None):
            raise StudioError("give exactly one of --accept RULE or --reject RULE.")
        verdict, rule = ("accept", accept) if accept is not None else ("reject", reject)
        from studio.rules import parse_rule

        parse_rule(rule)  # a bad rule is one sentence before any run starts
        rep = reporter()
        run, result = auto_recorded(_store(_db(ctx, db)), rule, name, current_workspace(), verdict=verdict)
        for field_name, n in result["missing"].items():
            rep.warn(f"{n} items have no `{field_name}`, so the rule does not match them.")
        rep.table(f"review auto ({run.run_id})", ["", "items"],
                  [["examined (open, untouched)", result["examined"]], [f"{verdict}ed by {result['reviewer']}", result["decided"]]])

    @review.command("add-user")
    def add_user(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="Login name.")],
        role: Annotated[str, typer.Option(help="reviewer, or lead (also sees disagreements and agreement).")] = "reviewer",
        password: Annotated[str | None, typer.Option("--password", envvar="STUDIO_REVIEW_PASSWORD",
                                                     help="Password (default: asked for; or $STUDIO_REVIEW_PASSWORD).")] = None,
        reset_password: Annotated[bool, typer.Option("--reset-password", help="Set a new password for an existing user.")] = False,
        db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    ) -> None:
        """Add a reviewer who can log in to the app (passwords are stored as bcrypt hashes).

        Example: `studio review add-user nurse.kim --role reviewer`
        """
        if password is None:
            password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
        store = _store(_db(ctx, db))
        if reset_password:
            store.set_password(name, password)
            typer.echo(f"new password set for {name}")
        else:
            store.add_reviewer(name, password, role=role)
            typer.echo(f"added {role} {name}")

    @review.command("deactivate-user")
    def deactivate_user(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="Login name.")],
        activate: Annotated[bool, typer.Option("--activate", help="Reactivate the user instead.")] = False,
        db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    ) -> None:
        """Stop a user from logging in; an open session ends at its next click. Their decisions stay.

        Example: `studio review deactivate-user nurse.kim` (and `--activate` to undo it)
        """
        _store(_db(ctx, db)).set_active(name, activate)
        typer.echo(f"{name} {'reactivated' if activate else 'deactivated'}")

    @review.command("set-role")
    def set_role(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="Login name.")],
        role: Annotated[str, typer.Option(help="reviewer or lead.")],
        db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    ) -> None:
        """Change a user's role; an open session sees it at its next click.

        Example: `studio review set-role nurse.kim --role lead`
        """
        _store(_db(ctx, db)).set_role(name, role)
        typer.echo(f"{name} is now a {role}")

    @review.command("status")
    def status(
        ctx: typer.Context,
        db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    ) -> None:
        """Progress overall and per reviewer, and agreement between reviewers where items overlap.

        Example: `studio review status`
        """
        from studio.context import reporter

        store = _store(_db(ctx, db))
        rep = reporter()
        p = store.progress()
        rep.table("review progress", ["", "value"], [[k.replace("_", " "), v] for k, v in p.items()])
        rows = []
        for r in store.reviewers():
            if r["role"] in ("reviewer", "lead", "external"):
                mine = store.progress(r["name"])["reviewer"]
                rows.append([r["name"], r["role"], mine["decided"], mine["by_verdict"].get("accept", 0),
                             mine["by_verdict"].get("reject", 0), mine["by_verdict"].get("skip", 0), mine["available"]])
        if rows:
            rep.table("reviewers", ["reviewer", "role", "decided", "accepted", "rejected", "skipped", "still available"], rows)
        ag = store.agreement()
        if ag["items_with_overlap"]:
            rows = [[f"{x['a']} × {x['b']}", x["items"], x["agreement"], x["cohen_kappa"]] for x in ag["pairs"]]
            rows.append(["Fleiss' kappa (all)", ag["fleiss"]["items"], "", ag["fleiss"]["fleiss_kappa"]])
            rows.append(["Krippendorff's alpha, verdicts", ag["items_with_overlap"], "", ag["verdict_alpha"]])
            rows.append(["Krippendorff's alpha, ratings", ag["rated_items_with_overlap"], "", ag["rating_alpha"]])
            rep.table("agreement", ["reviewers", "shared items", "raw agreement", "kappa / alpha"], rows)
        n = len(store.disagreements())
        if n:
            rep.info(f"{n} items with disagreeing verdicts; a lead resolves them in the app's lead view.")

