"""Replace detected spans: `tag` (<PERSON>), `mask` (*****), `hash` (<PERSON_1f3a9c0b2e>) or `pseudonym`.

Pseudonyms are consistent and keep the type: the same original (case and spacing aside) becomes the same fake
value everywhere, in every row, run and process, because Faker is seeded from a salted hash of the original.
Names are replaced word by word (a known first name by a fake first name, any other word by a fake surname,
titles kept), so "Maria Lopez", "Ms. Lopez" and "maria" stay one person; emails stay emails, phone and card
numbers keep their layout (card numbers pass the Luhn check), dates keep their format.

The salt comes from the environment variable named by `PiiConfig.salt_env` (never from a config file, which the
run manifest records), else from the workspace's own random salt file; there is no built-in salt (see
`resolve_salt`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import random
import re
import secrets
from collections.abc import Callable

from curate.pii.config import PiiConfig, PiiEntity

log = logging.getLogger("curate.pii")

NAME_KEEP = {"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "madam", "jr", "sr", "ii", "iii", "iv",
             "md", "phd", "dds", "esq", "van", "von", "de", "da", "del", "der", "la", "le"}
NATIONALITIES = ["Canadian", "Irish", "Dutch", "Norwegian", "Chilean", "Kenyan", "Portuguese", "Austrian",
                 "Filipino", "Estonian", "Peruvian", "Danish", "Scottish", "Icelandic", "Moroccan", "Finnish"]
_DATE_FORMATS = ["%m/%d/%Y", "%d/%m/%Y", "%Y-%m-%d", "%d.%m.%Y", "%m-%d-%Y", "%B %d, %Y", "%b %d, %Y", "%d %B %Y",
                 "%d %b %Y", "%Y-%m-%d %H:%M:%S", "%m/%d/%y", "%B %d %Y", "%Y"]


#: the workspace file holding its secret salt (made on first use, readable only by its owner)
SALT_FILE = ".pii_salt"
#: hex characters of the salted hash `hash` mode shows (64 bits: no two values of a type share one in practice)
HASH_HEX_CHARS = 16


def resolve_salt(config: PiiConfig) -> str:
    """The secret salt of `hash` and `pseudonym` mode: $STUDIO_PII_SALT (the variable `salt_env` names), else the
    workspace's own random salt in `<workspace>/.pii_salt` (made on first use with mode 0600), else an error:
    a salt everyone knows would let anyone reverse hashes and pseudonyms by trying candidate values. The salt
    found is put in the environment, so processes started later (a local Ray cluster's workers) share it."""
    salt = os.environ.get(config.salt_env)
    if salt or config.mode not in ("hash", "pseudonym"):
        return salt or ""
    from studio.context import current_workspace
    from studio.errors import StudioError

    ws = current_workspace()  # --workspace, $STUDIO_WORKSPACE, or the nearest one upwards
    if ws is None:
        raise StudioError(f"PII {config.mode} mode needs a secret salt: set ${config.salt_env}, or run inside a "
                          f"workspace (the studio then keeps a random one in its {SALT_FILE}).")
    path = ws.root / SALT_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        salt = path.read_text(encoding="utf-8").strip()
    else:
        salt = secrets.token_hex(32)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(salt + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        log.info("made a random PII salt in %s (keep it: it keeps pseudonyms the same across runs)", path)
    if not salt:
        raise StudioError(f"{path} is empty; delete it (a new salt is made) or set ${config.salt_env}.")
    os.environ[config.salt_env] = salt
    return salt


def _norm(value: str) -> str:
    return " ".join(value.split()).casefold()


class Replacer:
    """Turns one detected value into its replacement, per the configured mode; remembers pairs when asked."""

    def __init__(self, config: PiiConfig, record_mapping: bool = False) -> None:
        self.config = config
        self.salt = resolve_salt(config)
        self.mapping: dict[tuple[str, str], str] | None = {} if record_mapping else None
        self._cache: dict[tuple[str, str], str] = {}
        self._faker = None
        self._first_names: frozenset[str] | None = None

    # -- public
    def __call__(self, kind: str, value: str) -> str:
        key = (kind, value)
        out = self._cache.get(key)
        if out is None:
            out = self._replace(kind, value)
            self._cache[key] = out
        if self.mapping is not None:
            self.mapping[key] = out
        return out

    def apply(self, text: str, entities: list[PiiEntity]) -> str:
        """`text` with each (non-overlapping) entity replaced."""
        parts, pos = [], 0
        for e in sorted(entities, key=lambda e: e.start):
            parts.append(text[pos:e.start])
            parts.append(self(e.type, text[e.start:e.end]))
            pos = e.end
        parts.append(text[pos:])
        return "".join(parts)

    # -- modes
    def _replace(self, kind: str, value: str) -> str:
        mode = self.config.mode
        if mode == "tag":
            return f"<{kind}>"
        if mode == "mask":
            return re.sub(r"[^\W_]", self.config.mask_char, value)
        if mode == "hash":
            digest = hmac.new(self.salt.encode(), f"{kind}\x00{_norm(value)}".encode(), hashlib.sha256).hexdigest()
            return f"<{kind}_{digest[:HASH_HEX_CHARS]}>"
        return self._pseudonym(kind, value)

    def _seed(self, kind: str, value: str) -> int:
        return int.from_bytes(hashlib.sha256(f"{self.salt}\x00{kind}\x00{_norm(value)}".encode()).digest()[:8], "big")

    def _fake(self, kind: str, value: str):
        if self._faker is None:
            from faker import Faker

            self._faker = Faker("en_US")
        self._faker.seed_instance(self._seed(kind, value))
        return self._faker

    def _pseudonym(self, kind: str, value: str) -> str:
        handler: Callable[[str], str] = {
            "PERSON": self._person, "EMAIL_ADDRESS": self._email, "LOCATION": self._location,
            "ADDRESS": lambda v: self._fake("ADDRESS", v).street_address(),
            "URL": lambda v: self._fake("URL", v).url(),
            "IP_ADDRESS": lambda v: (self._fake("IP", v).ipv6() if ":" in v else self._fake("IP", v).ipv4_public()),
            "US_SSN": lambda v: self._fake("SSN", v).ssn(),
            "IBAN_CODE": self._iban, "CREDIT_CARD": self._card, "DATE_TIME": self._date, "DATE_OF_BIRTH": self._date,
            "NRP": lambda v: random.Random(self._seed("NRP", v)).choice(NATIONALITIES),
            "ORGANIZATION": lambda v: self._fake("ORG", v).company(),
        }.get(kind, lambda v: self._same_shape(kind, v))
        return handler(value)

    def _person(self, value: str) -> str:
        if self._first_names is None:
            from faker.providers.person.en_US import Provider

            self._first_names = frozenset(n.lower() for n in Provider.first_names)
        words = []
        for word in value.split():
            core = word.strip(".,")
            if core.lower() in NAME_KEEP or len(core) <= 1:
                words.append(word)
                continue
            fake = self._fake("NAME", core)
            new = fake.first_name() if core.lower() in self._first_names else fake.last_name()
            words.append(word.replace(core, _same_case(core, new)))
        return " ".join(words)

    def _email(self, value: str) -> str:
        fake = self._fake("EMAIL", value)
        user = re.sub(r"[^a-z0-9.]", "", f"{fake.first_name()}.{fake.last_name()}".lower())
        return f"{user}{fake.random_int(1, 99)}@example.{fake.random_element(['com', 'org', 'net'])}"

    def _location(self, value: str) -> str:
        from curate.pii.postprocess import known_places

        fake = self._fake("LOCATION", value)
        from faker.providers.address.en import Provider

        new = fake.country() if value.lower() in {c.lower() for c in Provider.countries} else fake.city()
        return new if value.lower() in known_places() or not value.isupper() else new.upper()

    def _card(self, value: str) -> str:
        shaped = self._same_shape("CREDIT_CARD", value)
        digits = [int(c) for c in shaped if c.isdigit()]
        if len(digits) < 2:
            return shaped
        # make the last digit the Luhn check digit, so the fake reads as a card number
        total = 0
        for i, d in enumerate(reversed(digits[:-1])):
            d = d * 2 if i % 2 == 0 else d
            total += d - 9 if d > 9 else d
        check = str((10 - total % 10) % 10)
        last = max(i for i, c in enumerate(shaped) if c.isdigit())
        return shaped[:last] + check + shaped[last + 1:]

    def _iban(self, value: str) -> str:
        compact = value.replace(" ", "")
        country = compact[:2].upper() if compact[:2].isalpha() else "GB"
        rng = random.Random(self._seed("IBAN", value))
        body = "".join(rng.choice("0123456789") if c.isdigit() else rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
                       for c in compact[2:])
        return country + body

    def _date(self, value: str) -> str:
        rng = random.Random(self._seed("DATE", value))
        for fmt in _DATE_FORMATS:
            try:
                parsed = dt.datetime.strptime(value.strip(), fmt)
            except ValueError:
                continue
            if fmt == "%Y":
                return str(parsed.year + rng.randint(-6, 6))
            shifted = parsed + dt.timedelta(days=rng.randint(-400, 400))
            return shifted.strftime(fmt)
        return self._fake("DATE", value).date(pattern="%B %d, %Y")

    def _same_shape(self, kind: str, value: str) -> str:
        """Digits become other digits, letters other letters (case kept), separators stay."""
        rng = random.Random(self._seed(kind, value))
        out = []
        for c in value:
            if c.isdigit():
                out.append(rng.choice("0123456789"))
            elif c.isalpha() and c.isascii():
                letter = rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ")
                out.append(letter if c.isupper() else letter.lower())
            else:
                out.append(c)
        return "".join(out)


def _same_case(original: str, new: str) -> str:
    if original.isupper() and len(original) > 1:
        return new.upper()
    if original.islower():
        return new.lower()
    return new
