"""`studio labelstudio ...`: start/stop a local Label Studio, push review items to it, pull annotations back.

CLI composition layer over `review_app.labelstudio` (bridge) and `review_app.labelstudio_server` (local
server). Without `--url`, commands use the server that `studio labelstudio start` runs (its URL and token
are in `<data-dir>/studio-labelstudio.json`); with `--url`, the API key comes from LABEL_STUDIO_API_KEY.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

URL_HELP = "URL of your own Label Studio (its API key is read from $LABEL_STUDIO_API_KEY, never from a flag)."
DATA_DIR_HELP = "Data folder of the local server (default: the studio cache's labelstudio-data)."


def _client(url: str | None, data_dir: Path | None):
    import os

    from review_app.labelstudio import connect
    from review_app.labelstudio_server import read_state
    from studio.errors import StudioError

    if url:
        return connect(url, os.environ.get("LABEL_STUDIO_API_KEY", ""))
    state = read_state(data_dir)
    if state is None:
        raise StudioError("no Label Studio server is known here; start one with `studio labelstudio start`, "
                          "or pass --url with LABEL_STUDIO_API_KEY set.")
    return connect(state["url"], state["token"])


def _store(db: str | None):
    from review_app.commands import _store as review_store

    return review_store(db)


def register(app: typer.Typer) -> None:
    ls = typer.Typer(
        name="labelstudio",
        help=("Hand review work to Label Studio and take the decisions back.\n\n"
              "`start` runs a local server (in its own environment, created on first use); `push` sends "
              "examples to a project; `pull` records the annotations as review decisions; `stop` ends the server."),
        no_args_is_help=True,
        rich_markup_mode="markdown",
    )
    app.add_typer(ls)

    @ls.command("start")
    def start(
        port: Annotated[int | None, typer.Option(help="Port (default: a free one).")] = None,
        data_dir: Annotated[Path | None, typer.Option("--data-dir", help=DATA_DIR_HELP)] = None,
    ) -> None:
        """Start a local Label Studio on 127.0.0.1 and print its URL and login.

        The first start installs Label Studio into its own virtual environment (~1-2 minutes) and migrates
        its database (~40 s); later starts take seconds. Example: `studio labelstudio start --port 8080`
        """
        from review_app.labelstudio_server import STATE_FILE
        from review_app.labelstudio_server import start as start_server
        from studio.context import reporter

        rep = reporter()
        state = start_server(data_dir=data_dir, port=port, echo=rep.info)
        rep.table("Label Studio", ["", ""], [["URL", state["url"]], ["user", state["username"]],
                                            ["password", state["password"]], ["API token", state["token"]],
                                            ["data", state["data_dir"]]])
        rep.out.print(f"(credentials are kept in {Path(state['data_dir']) / STATE_FILE}, readable only by you)")

    @ls.command("stop")
    def stop(data_dir: Annotated[Path | None, typer.Option("--data-dir", help=DATA_DIR_HELP)] = None) -> None:
        """Stop the local Label Studio started with `studio labelstudio start`."""
        from review_app.labelstudio_server import stop as stop_server
        from studio.context import reporter

        reporter().out.print("Label Studio stopped." if stop_server(data_dir) else "no local Label Studio was running.")

    @ls.command("push")
    def push(
        dataset: Annotated[Path | None, typer.Argument(help="A data set (kept.parquet or any example file); it is also queued in the review store.", show_default=False)] = None,
        project: Annotated[str, typer.Option("--project", "-p", help="Label Studio project title (created if missing).")] = "studio-review",
        from_review_queue: Annotated[bool, typer.Option("--from-review-queue", help="Push the open items of the review store instead of a data set.")] = False,
        url: Annotated[str | None, typer.Option(help=URL_HELP)] = None,
        data_dir: Annotated[Path | None, typer.Option("--data-dir", help=DATA_DIR_HELP)] = None,
        db: Annotated[str | None, typer.Option("--db", help="Review database URL (default: the workspace's review.db).")] = None,
        redact: Annotated[bool, typer.Option("--redact/--no-redact", help="PII-redact the text before it is sent (turning it off is recorded in the manifest).")] = True,
    ) -> None:
        """Send examples to a Label Studio project; pushing again never duplicates tasks or touches annotations.
        The text is PII-redacted first (`curate.pii`), as `studio synth` does before calling a remote model.

        Examples:

            studio labelstudio push runs/demo-curate/kept.parquet --project claims-review

            studio labelstudio push --from-review-queue --project claims-review --url https://ls.example.com
        """
        from review_app.labelstudio import push as push_items
        from review_app.labelstudio_queue import items_from_dataset, open_items
        from studio.context import current_workspace, reporter
        from studio.errors import StudioError
        from studio.runs import Run

        if (dataset is None) == (not from_review_queue):
            raise StudioError("give either a DATASET or --from-review-queue (not both, not neither).")
        client = _client(url, data_dir)
        store = _store(db)
        redactor = None
        if redact:
            from curate.pii import PiiRedactor

            redactor = PiiRedactor().redact_texts
        with Run("labelstudio-push", workspace=current_workspace(), config={"project": project, "url": url or "local",
                 "from_review_queue": from_review_queue}) as run:
            run.extra["privacy"] = {"pii_redacted_before_sending": redact, "redaction_turned_off_by_user": not redact}
            if dataset is not None:
                run.add_input(dataset)
                store.load_dataset(dataset)
                items = items_from_dataset(store, dataset)
            else:
                items = open_items(store)
            counts = push_items(client, project, items, redact=redactor)
            run.counts.input = counts["input"]
            run.counts.kept = counts["imported"]
            run.counts.drop("already_in_project", counts["already_present"])
            run.extra["labelstudio"] = {"project_id": counts["project_id"], "project": counts["project"]}
        reporter().table(f"pushed to Label Studio project {project!r} ({counts['project']})", ["", "tasks"],
                         [["items", counts["input"]], ["imported", counts["imported"]],
                          ["already in the project", counts["already_present"]]])

    @ls.command("pull")
    def pull(
        project: Annotated[str, typer.Option("--project", "-p", help="Label Studio project title.")] = "studio-review",
        url: Annotated[str | None, typer.Option(help=URL_HELP)] = None,
        data_dir: Annotated[Path | None, typer.Option("--data-dir", help=DATA_DIR_HELP)] = None,
        db: Annotated[str | None, typer.Option("--db", help="Review database URL (default: the workspace's review.db).")] = None,
    ) -> None:
        """Record a project's annotations as review decisions (reviewer = annotator e-mail, source labelstudio).

        Each annotation is checked against the project's label config; invalid ones (a choice not in the
        config, a rating out of range, no verdict) go to quarantine.jsonl in the run folder with the reason.
        Pulling again changes nothing. Example: `studio labelstudio pull --project claims-review`
        """
        import json

        from review_app.labelstudio import pull as pull_annotations
        from studio.atomic import atomic_open
        from studio.context import current_workspace, reporter
        from studio.runs import Run

        client = _client(url, data_dir)
        store = _store(db)
        with Run("labelstudio-pull", workspace=current_workspace(), config={"project": project, "url": url or "local"}) as run:
            result = pull_annotations(client, project, store)
            c = result.counts
            run.counts.input = c["annotations"]
            run.counts.kept = c["recorded"]
            run.counts.drop("already_recorded", c["already_recorded"])
            run.counts.quarantined = c["quarantined"]
            with atomic_open(run.dir / "quarantine.jsonl") as fh:
                for q in result.quarantine:
                    fh.write(json.dumps(q, ensure_ascii=False) + "\n")
            run.add_output(run.dir / "quarantine.jsonl", rows=len(result.quarantine))
        rep = reporter()
        rep.table(f"pulled from Label Studio project {project!r}", ["", "annotations"],
                  [["annotations", c["annotations"]], ["recorded as decisions", c["recorded"]],
                   ["already recorded", c["already_recorded"]], ["quarantined (invalid)", c["quarantined"]]])
        if result.quarantine:
            rep.warn(f"{len(result.quarantine)} invalid annotations: see {run.dir / 'quarantine.jsonl'}")

