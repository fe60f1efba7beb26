"""User-facing errors: one clear sentence, a non-zero exit code, never a traceback.

Commands raise `StudioError` for anything the user can fix (a missing path, an empty file, a bad flag);
`studio_app.cli.main` prints its message and exits with its code.
"""


class StudioError(Exception):
    """An error the user can act on. `str(err)` is the whole message shown to them."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InputError(StudioError):
    """Bad input paths or files (missing, unreadable, empty, unknown format): exit code 2."""
