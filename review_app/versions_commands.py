"""`studio versions`, `studio versions move` and `studio diff`: the dataset versions `studio export` makes.

CLI layer over `review_app.versions`; imports stay inside the commands so `studio --help` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

DB_HELP = "Review database URL (default: the workspace's review.db)."


def _workspace():
    from studio.context import current_workspace
    from studio.errors import StudioError

    ws = current_workspace()
    if ws is None:
        raise StudioError("dataset versions live in a workspace: run inside one or pass --workspace DIR.")
    return ws


def register(app: typer.Typer) -> None:
    versions = typer.Typer(
        name="versions",
        help=("Dataset versions: every `studio export` without --out adds one (exports/v1/, v2/, ...), never "
              "changed afterwards.\n\n`studio versions` lists them; `studio versions move ID --to train --reason ...` "
              "moves an example's split on purpose; `studio diff v1 v2` compares two."),
        invoke_without_command=True,
        rich_markup_mode="markdown",
    )
    app.add_typer(versions)

    @versions.callback()
    def list_all(ctx: typer.Context) -> None:
        """List the workspace's dataset versions, oldest first, with format, records per split and how many
        earlier examples changed split (0 unless a person moved one).

        Example: `studio versions`
        """
        if ctx.invoked_subcommand is not None:
            return
        from review_app.versions import list_versions
        from studio.context import reporter

        ws = _workspace()
        found = list_versions(ws)
        if not found:
            reporter().info("no versions yet; `studio export` (without --out) makes v1.")
            return
        rows = []
        for v in found:
            info = v.manifest.get("export", {})
            vinfo = v.manifest.get("versioning", {})
            splits = ", ".join(f"{s} {n}" for s, n in info.get("splits", {}).items())
            rows.append([v.name, v.manifest.get("started_at", "?"), v.format, splits,
                         vinfo.get("moved_from_earlier_split", "–"), v.manifest.get("run_id", "?"), str(v.dir)])
        reporter().table("dataset versions", ["version", "exported (UTC)", "format", "records per split",
                                              "moved from earlier split", "export run", "folder"], rows)

    @versions.command("move")
    def move(
        example: Annotated[str, typer.Argument(help="A review item id or an exported example id (ids.jsonl lists them).")],
        to: Annotated[str, typer.Option("--to", help="The split it belongs in from the next version on, e.g. train.")],
        reason: Annotated[str, typer.Option("--reason", help="Why; kept in the review audit log with your name.")],
        by: Annotated[str | None, typer.Option("--by", help="Who decides (default: your login name).", show_default=False)] = None,
        db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    ) -> None:
        """Move an example (and its duplicate group) to another split in every later version, on purpose.

        Splits are sticky: once in val or test, an example stays there. This is the one way to change that;
        the move is recorded in the review store's audit log (who, when, from, to, why) and counted in the
        next version's manifest and card. Versions already made do not change.

        Example: `studio versions move 3f2a9c0d1e4b5a6c7d8e --to train --reason "template text, not a real test case"`
        """
        import getpass

        from review_app.store import ReviewStore
        from review_app.versions import record_move
        from studio.context import reporter
        from studio.workspace import review_db

        ws = _workspace()
        with ReviewStore(review_db(db, ws)) as store:
            moved = record_move(store, ws, example, to, reason, by or getpass.getuser())
        reporter().out.print(f"item {moved['item_id']}: {moved['from'] or 'not yet exported'} → {moved['to']} from the "
                             f"next version on (recorded by {moved['by']}).", markup=False, highlight=False)

    @app.command("diff")
    def diff(
        version_a: Annotated[str, typer.Argument(help="The older version, e.g. v1.")],
        version_b: Annotated[str, typer.Argument(help="The newer version, e.g. v2.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print the diff as JSON (for scripts).")] = False,
    ) -> None:
        """What changed between two dataset versions: examples added, removed, edited (with the text diff) and
        re-split (none unless a person moved one), and the counts by split, origin and source file.

        Examples:

            studio diff v1 v2

            studio diff v1 v2 --json | jq '.edited[].item_id'
        """
        import json

        from review_app.versions import diff_versions, get_version, render_diff
        from studio.context import reporter

        ws = _workspace()
        result = diff_versions(get_version(ws, version_a), get_version(ws, version_b))
        if as_json:
            typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        else:
            reporter().out.print(render_diff(result), markup=False, highlight=False)
