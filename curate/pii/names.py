"""Name lists shared by the recognizers and the post-processing: Faker's first and last names of every locale, their
lower-case forms for chat, and the capitalised words that are names in the lists but words in this domain."""

from __future__ import annotations

import functools

from spacy.lang.en.stop_words import STOP_WORDS

#: Capitalised words that are first or last names in Faker's lists but in support, claims and clinical text are
#: mostly colours, materials, days or product words ("Rose Gold", "Forest Green", "Easter Sunday").
NOT_NAMES = {"Gold", "Silver", "Green", "Black", "White", "Brown", "Gray", "Grey", "Blue", "Red", "Sand", "Stone",
             "Rose", "Forest", "Storm", "Easter", "Christmas", "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday",
             "Friday", "Saturday", "Summer", "Winter", "Spring", "Autumn", "Can", "Will", "May", "Mark", "Grant",
             "Bill", "Pat", "Art", "Chase", "Hunter", "Page", "Hope", "Faith", "Joy", "Trail", "Ridge", "Pro",
             "Max", "Sky", "River", "Brook", "Hill", "Field", "Park", "Lake", "Bay", "Star", "Sun", "North",
             "South", "East", "West", "King", "Prince", "Young", "Price", "Long", "Short", "Best", "Love"}


@functools.lru_cache(maxsize=1)
def faker_names() -> tuple[frozenset[str], frozenset[str]]:
    """(first names, last names) from every locale of Faker's person provider, alphabetic (diacritics too), minus
    NOT_NAMES: tens of thousands of real names from many countries, offline."""
    import importlib
    import pkgutil

    import faker.providers.person as people

    found: dict[str, set[str]] = {"first": set(), "last": set()}
    attrs = {"first": ("first_names", "first_names_male", "first_names_female"), "last": ("last_names",)}
    for module in pkgutil.iter_modules(people.__path__):
        try:
            provider = importlib.import_module(f"{people.__name__}.{module.name}").Provider
        except (ImportError, AttributeError):
            continue
        for kind, names in attrs.items():
            for attr in names:
                values = next((c.__dict__[attr] for c in provider.__mro__ if attr in c.__dict__), ())
                values = list(values) if isinstance(values, dict | list | tuple) else []
                found[kind].update(v for v in values if isinstance(v, str) and v.isalpha()
                                   and len(v) >= 3 and v[0].isupper() and v not in NOT_NAMES)
    return frozenset(found["first"]), frozenset(found["last"])


@functools.lru_cache(maxsize=1)
def lower_names() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """Lower-cased first and last names for chat written in lower case, minus English stop words and NOT_NAMES
    ("will", "may", "mark" are words first), and that set of common words."""
    first, last = faker_names()
    common = {w.lower() for w in NOT_NAMES} | set(STOP_WORDS) | {
        "january", "february", "march", "april", "june", "july", "august", "september", "october", "november",
        "december", "billing", "support", "sales", "reception", "pharmacy", "home", "work", "site", "store"}
    return (frozenset(n.lower() for n in first) - common, frozenset(n.lower() for n in last) - common,
            frozenset(common))
