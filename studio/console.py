"""Terminal output for commands: progress bars with counts and rate, short result tables, quiet mode.

One `Reporter` is made per command invocation and passed down; library code never prints directly.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


class Reporter:
    """Progress and messages for one command. `quiet=True` silences progress and info, not errors."""

    def __init__(self, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self.console = console or Console(stderr=True, highlight=False)
        self.out = Console(highlight=False, soft_wrap=True)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {message}")

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None = None, unit: str = "rows") -> Iterator[Any]:
        """A progress bar; yields `advance(n=1, status=None)`. Shows done/total, rate and ETA; `status`, when
        given, replaces the rate with a short line of the caller's counts (e.g. candidates and tokens)."""
        if self.quiet or not self.console.is_terminal and not _force_progress():
            yield lambda n=1, status=None: None
            return
        columns = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task(description, total=total, rate="")

            def advance(n: int = 1, status: str | None = None) -> None:
                bar.advance(task, n)
                speed = bar.tasks[0].speed
                if status is not None:
                    bar.update(task, rate=status)
                elif speed:
                    bar.update(task, rate=f"{speed:,.0f} {unit}/s")

            yield advance

    def table(self, title: str, columns: list[str], rows: list[list[Any]]) -> None:
        """A result table on stdout (shown even with --quiet: it is the command's answer)."""
        table = Table(title=title, title_justify="left")
        for i, col in enumerate(columns):
            table.add_column(col, justify="right" if i else "left")
        for row in rows:
            table.add_row(*[f"{v:,}" if isinstance(v, int) else str(v) for v in row])
        if not self.out.is_terminal and "COLUMNS" not in os.environ:
            # a log or a pipe has no width: print the table at its natural width (up to 200 columns) instead of
            # rich's 80, which wrapped the demo's summary into a column of fragments in CI logs
            from rich.measure import Measurement

            natural = Measurement.get(self.out, self.out.options.update(max_width=200), table).maximum
            self.out.width = max(self.out.width, min(natural, 200))
        self.out.print(table)


def _force_progress() -> bool:
    return os.environ.get("STUDIO_PROGRESS") == "1" and sys.stderr is not None
