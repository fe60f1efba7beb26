"""Secrets that travel with URLs: the one place that masks a URL's password before it is printed, logged or
recorded (`mask_url`, `db_label` for database URLs), and decides whether the OpenAI-compatible API key may go to an endpoint.

The key in $OPENAI_API_KEY belongs to one endpoint: $OPENAI_BASE_URL, or api.openai.com when that is unset. A
`--base-url` or `--judge-url` on another origin (scheme, host and port) gets no key, and neither does plain
http to a host other than this machine, so a typo or a hostile URL in a config never receives it. To use a key
with another server, point $OPENAI_BASE_URL at that server.
"""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import urlsplit

log = logging.getLogger("studio")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: user:password@ in any scheme://... URL (database URLs, proxies, endpoints)
_USERINFO = re.compile(r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^:/@\s]*):(?P<password>[^@\s/]+)@", re.I)
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def mask_url(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***
    (postgresql://ann:s3cret@db/review -> postgresql://ann:***@db/review)."""
    return _USERINFO.sub(lambda m: f"{m['head']}:***@", text)


def db_label(url: str) -> str:
    """A database as manifests and the console show it: a SQLite file's path, any other URL without its password
    (sqlite:////srv/review.db -> /srv/review.db; postgresql://ann:s3cret@db/review -> postgresql://ann:***@db/review)."""
    return mask_url(str(url).removeprefix("sqlite:///"))


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"https": 443, "http": 80}.get(scheme)


def api_key_for(url: str, env: str = "OPENAI_API_KEY") -> str | None:
    """The API key from `$env` when `url` is the endpoint it belongs to (see the module docstring), else None."""
    key = os.environ.get(env)
    if not key:
        return None
    home = os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    scheme, host, _ = _origin(url)
    if _origin(url) != _origin(home):
        log.warning("$%s is not sent to %s://%s: the key belongs to %s; set OPENAI_BASE_URL to this endpoint to "
                    "use the key there.", env, scheme, host, mask_url(home))
        return None
    if scheme != "https" and host not in _LOOPBACK:
        log.warning("$%s is not sent to %s://%s over plain http; use https.", env, scheme, host)
        return None
    return key
