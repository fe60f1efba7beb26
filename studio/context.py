"""What a running `studio` command knows from the global options: quiet or not, and the workspace.

The application layer's callback puts a `CommandContext` on the command's click context; command bodies in
any package read it with `reporter()` and `current_workspace()`, so no package imports the CLI module.
Outside a command (library use, tests) these return the defaults: progress shown, workspace found from
`$STUDIO_WORKSPACE` or the folders upwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.console import Reporter
from studio.workspace import Workspace


@dataclass
class CommandContext:
    quiet: bool = False
    workspace: str | None = None
    """The --workspace option, if given."""

    def reporter(self) -> Reporter:
        return Reporter(quiet=self.quiet)

    def find_workspace(self) -> Workspace | None:
        return Workspace.find(self.workspace)


def command_context() -> CommandContext:
    """The CommandContext of the running command, else the defaults."""
    try:  # typer 0.29 runs commands on its own copy of click, whose context stack click itself cannot see
        from typer._click.globals import get_current_context
    except ImportError:
        from click import get_current_context

    ctx = get_current_context(silent=True)
    found = ctx.find_object(CommandContext) if ctx is not None else None
    return found or CommandContext()


def reporter() -> Reporter:
    return command_context().reporter()


def current_workspace() -> Workspace | None:
    return command_context().find_workspace()
