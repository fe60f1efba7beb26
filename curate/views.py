"""Which text of an example a step looks at, as a Polars expression over `messages`.

`prompt` = user turns, `response` = assistant turns, `prompt_response` = both, `all` = every turn
including system; turns are joined with newlines, in order (as `studio.schema.prompt_text` does per row).
"""

from __future__ import annotations

from typing import Literal

import polars as pl

View = Literal["prompt", "response", "prompt_response", "all"]
ROLES: dict[str, list[str]] = {"prompt": ["user"], "response": ["assistant"], "prompt_response": ["user", "assistant"],
                               "all": ["system", "user", "assistant"]}


def view_text(view: View) -> pl.Expr:
    turn = pl.element()
    return pl.col("messages").list.eval(
        turn.filter(turn.struct.field("role").is_in(ROLES[view])).struct.field("content")
    ).list.join("\n")
