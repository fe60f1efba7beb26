"""Recognizers for what support, claims and clinical text holds beyond presidio's defaults.

Each is a presidio `LocalRecognizer` added to the analyzer built in `engine.py`:
- `KeyedValueRecognizer`: a value right after a keyword ("claim number: CLM-2024-00917", "DOB 03/14/1961",
  "MRN 4471203", "zip 02139", "my name is ana"). Reference numbers come from `PiiConfig.id_patterns`, so a
  company adds its own (ticket, member, RMA ...) without code.
- `AddressRecognizer`: postal addresses by the shapes of the US Postal Service (house number + street +
  suffix, unit, PO box, APO/FPO, "City, ST 12345") and of continental Europe (street word + house number).
- `PhoneRecognizer`: phone numbers by shape (7-15 digits in groups, optional +country code, extension); the
  bare-digit-group shape is weak (0.2) and needs a context word ("phone", "call", "mobile", ...), which
  presidio's context enhancer turns into a score of at least 0.4.
- `CardNumberRecognizer`: 12-19 digits after "card"/"cc" even when the Luhn check fails (a mistyped card
  number is still a card number); presidio's own CreditCardRecognizer keeps finding Luhn-valid ones anywhere.
Scores: 0.85 for keyed values (the keyword is the evidence, as presidio scores spaCy entities), 0.5-0.7 for
distinctive shapes, 0.2 for shapes that need context.
"""

from __future__ import annotations

from collections.abc import Iterable

import regex
from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult
from spacy.lang.en.stop_words import STOP_WORDS

from curate.pii.names import NOT_NAMES, faker_names, lower_names
from curate.pii.postprocess import SENTENCE_OPENING, plural_of

# Between a keyword and its value: "number", "no.", "#", "id", "is", ":" ... (up to three of them).
_FILLER = r"(?:[\s:#=\-]*(?:numbers?|nos?\.?|num\.?|nr\.?|#|ids?|code|is|was|of|reads)\b\.?){0,3}[\s:#=\-]*"
_WORD_BOUNDARY_LEFT = r"(?<![\w])"


def _result(recognizer: LocalRecognizer, entity: str, start: int, end: int, score: float) -> RecognizerResult:
    # presidio's context enhancer writes into the explanation, so every result carries one.
    return RecognizerResult(entity, start, end, score,
                            analysis_explanation=AnalysisExplanation(recognizer.name, original_score=score))


def _keyword_alternation(keywords: Iterable[str]) -> str:
    words = sorted({k.strip() for k in keywords if k.strip()}, key=len, reverse=True)
    return "|".join(regex.escape(w).replace(r"\ ", r"\s+") for w in words)


class KeyedValueRecognizer(LocalRecognizer):
    """`keyword [filler] value`: reports the value only. The value must hold a digit unless `needs_digit` is off."""

    def __init__(self, entity: str, keywords: list[str], value: str, score: float = 0.85,
                 needs_digit: bool = True, name: str | None = None, filler: str = _FILLER,
                 case_sensitive_value: bool = False) -> None:
        self.entity = entity
        self.score = score
        self.needs_digit = needs_digit
        value_flags = "" if case_sensitive_value else "(?i)"
        pattern = (rf"(?i:{_WORD_BOUNDARY_LEFT}(?:{_keyword_alternation(keywords)})){filler}"
                   rf"(?P<value>{value_flags}{value})(?![\w@])")
        self.pattern = regex.compile(pattern, regex.MULTILINE)
        super().__init__(supported_entities=[entity], name=name or f"Keyed{entity.title().replace('_', '')}Recognizer")

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        out = []
        for m in self.pattern.finditer(text):
            value = m.group("value")
            if self.needs_digit and not any(c.isdigit() for c in value):
                continue
            start, end = m.span("value")
            out.append(_result(self, self.entity, start, end, self.score))
        return out


class RegexRecognizer(LocalRecognizer):
    """Several (regex, score) shapes for one entity, with a validator and context words.

    Context is checked here rather than by presidio's enhancer, which looks at whole tokens next to the
    match's first token and so misses "655 437 108 office" (the word follows the last token): a context word
    starting a word within 40 characters before or 20 after the match adds 0.35 (at least 0.4), presidio's
    own figures."""

    CONTEXT_BOOST = 0.35
    CONTEXT_MIN = 0.4

    def __init__(self, entity: str, patterns: list[tuple[str, float]], context: list[str] | None = None,
                 name: str | None = None, flags: int = regex.MULTILINE) -> None:
        self.entity = entity
        self.patterns = [(regex.compile(p, flags), score) for p, score in patterns]
        self.context_words = regex.compile(rf"(?i)\b(?:{_keyword_alternation(context)})") if context else None
        super().__init__(supported_entities=[entity], context=[], name=name)

    def boost(self, text: str, start: int, end: int, score: float) -> float:
        if self.context_words is None or score >= 0.7:
            return score
        if self.context_words.search(text, max(0, start - 40), start) or self.context_words.search(text, end, end + 20):
            return max(score + self.CONTEXT_BOOST, self.CONTEXT_MIN)
        return score

    def load(self) -> None:
        pass

    def validate(self, text: str) -> bool:
        return True

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        out = []
        for pattern, score in self.patterns:
            for m in pattern.finditer(text):
                start, end = m.span("value") if "value" in pattern.groupindex else m.span()
                if end > start and self.validate(text[start:end]):
                    out.append(_result(self, self.entity, start, end, self.boost(text, start, end, score)))
        return out


# --- postal addresses --------------------------------------------------------------------------------------
# Street suffixes: USPS Publication 28 appendix C1 (the common ones) plus UK usage.
_STREET_SUFFIX = (r"street|st|avenue|ave|av|road|rd|lane|ln|drive|dr|boulevard|blvd|way|court|ct|place|pl|terrace|"
                  r"ter|circle|cir|highway|hwy|parkway|pkwy|square|sq|trail|trl|crescent|cres|close|grove|gardens|"
                  r"row|walk|hill|park|alley|plaza|loop|pike|mews|wharf|quay|expressway|freeway|turnpike|causeway|"
                  r"point|pt|ridge|view|heights|hts|estates|junction|jct|crossing|xing|green|manor|meadow|meadows")
# Continental street words that come before the name ("rue de la Paix 12", "ul. Długa 5").
_STREET_PREFIX = (r"rue|avenue|av\.|boulevard|bd\.?|chemin|allée|impasse|quai|via|viale|piazza|corso|vicolo|calle|"
                  r"avenida|avda\.?|plaza|paseo|carrer|rua|travessa|largo|praça|ul\.|ulica|al\.|aleja|os\.|"
                  r"osiedle|pl\.|náměstí|nám\.")
# Street words that end a continental street name ("Koskikatu 25", "Hauptstraße 5", "Kirkegade 3").
_STREET_ENDING = (r"straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|laan|straat|gracht|plein|kade|dijk|"
                  r"vej|gade|gatan|vägen|väg|gränd|veien|vegen|gata|gate|katu|tie|kuja|polku|kaari|rinne|tori|"
                  r"utca|útca|út|tér|ulice|třída|cesta|ulica|iela|gatvė|tee|põik|puiestee")
_CAP = r"[[:Lu:]][[:L:]'’.\-]*"
_UNIT = r"(?:apt|apartment|suite|ste|unit|flat|fl|floor|bldg|building|room|rm)\.?\s*#?\s*\d{1,5}[A-Za-z]?"

ADDRESS_PATTERNS: list[tuple[str, float]] = [
    # 1600 Pennsylvania Avenue NW[, Suite 200]
    (rf"\b\d{{1,6}}[A-Za-z]?(?:[ \t]+\d{{1,5}})?[ \t]+(?:[NSEW]\.?[ \t]+)?(?:{_CAP}[ \t]+){{0,4}}(?i:{_STREET_SUFFIX})\b\.?"
     rf"(?:[ \t]+(?:[NS][EW]|[NSEW])\b)?(?:,?[ \t]+(?i:{_UNIT}))?", 0.7),
    # rue de la Paix 12 / ul. Biskupa Bogedaina 118 / 31 rue de la Hulotais
    (rf"(?:\b\d{{1,5}}[ \t]+)?(?i:\b(?:{_STREET_PREFIX}))(?=\s)(?:[ \t]+(?:{_CAP}|de|del|della|di|da|la|le|les|du|des|do|dos)){{1,5}}"
     rf"(?:[ \t]+\d{{1,5}}[A-Za-z]?)?", 0.6),
    # Koskikatu 25 / Hauptstraße 5a / 3657 Laukaantie 80
    (rf"(?:\b\d{{1,6}}[ \t]+)?\b[[:Lu:]][[:L:]\-]*(?i:{_STREET_ENDING})[ \t]+\d{{1,5}}[A-Za-z]?\b", 0.6),
    # Apt. 117 / Suite 464 / Unit 3B
    (rf"(?i:\b{_UNIT})\b", 0.55),
    # P.O. Box 255
    (r"(?i:\bP\.?\s?O\.?\s*Box\s+\d{1,6})\b", 0.7),
    # US military: PSC 3294, Box 9168 APO AA 61487 / USS Lorenzen FPO AE 25990 / Unit 1234 Box 5678 DPO AP 12345
    (r"\b(?:(?:PSC|CMR|Unit)\s+\d{1,5},?\s+Box\s+\d{1,5}|(?:USS|USNS|USNV|USCGC)\s+(?:[[:Lu:]][[:L:]]+\s*){1,3})"
     r"[\s,]*(?:APO|FPO|DPO)\s+(?:AA|AE|AP)\s+\d{5}\b", 0.85),
    # Springfield, IL 62704 / Toronto, ON M5V 2T6 (city, state/province, ZIP/postcode)
    (rf"\b{_CAP}(?:\s+{_CAP}){{0,2}},\s*[A-Z]{{2}}\s+(?:\d{{5}}(?:-\d{{4}})?|[A-Z]\d[A-Z]\s?\d[A-Z]\d)\b", 0.7),
]


ADDRESS_PATTERNS += [
    # 5850 Jana Nerudy 894: house number, street name, number (several European formats)
    (rf"\b\d{{1,6}}[ \t]+{_CAP}(?:[ \t]+(?:{_CAP}|[[:Ll:]]{{1,3}}\.?)){{0,3}}[ \t]+\d{{1,5}}[A-Za-z]?\b(?!\s*(?:%|years|days|am|pm))", 0.45),
]
ADDRESS_CONTEXT = ["address", "live", "lives", "living", "ship", "deliver", "delivery", "send", "mail", "moved",
                   "street", "residence", "reside", "located", "apartment"]
# After an address line, further lines or comma-separated parts that are address parts continue the address.
_SEP = r"[ \t]*(?:,[ \t]*\n?|\n)[ \t>]*"
_CONTINUATION = regex.compile(
    rf"(?:{_SEP}|[ \t]+)(?i:{_UNIT})\b"                                   # Apt. 425
    rf"|{_SEP}(?:(?:[[:Lu:]][[:L:]'’.\-]*|\([[:L:]]+\))(?:[ \t]+(?:[[:Lu:]][[:L:]'’.\-]*|\([[:L:]]+\)|"
    rf"de|del|di|da|la|le|na|am|an|im|u|z|sur|upon|on)){{0,4}})(?:[ \t,]+(?:[A-Z]{{2}}[ \t]+)?\d{{3,6}}(?:[ \-]\d{{2,4}})?(?![ \t\-.]*\d))?\b(?![ \t]*:)"
    rf"|{_SEP}[A-Z]{{1,3}}\b"                                              # , CO
    rf"|(?:{_SEP}|[ \t]+)\d{{3,6}}(?:-\d{{3,4}})?\b(?![ \t\-.]*\d)")     # 46381 / 12345-6789


class AddressRecognizer(RegexRecognizer):
    """Postal addresses (entity ADDRESS): an address line found by shape, continued over the following lines
    or comma-separated parts that are address parts (unit, place, region code, postal code), as in a letter's
    address block. "Sweden 65062" (a known place and a postal code) counts on its own. Cities and countries
    alone are LOCATION (spaCy)."""

    def __init__(self) -> None:
        super().__init__("ADDRESS", ADDRESS_PATTERNS, context=ADDRESS_CONTEXT, name="AddressRecognizer")
        # A capitalised street name and a house number ("Kuuse 53"), only with an address word near.
        self.weak = regex.compile(rf"\b{_CAP}(?:[ \t]+{_CAP}){{0,2}}[ \t]+\d{{1,5}}[A-Za-z]?\b")
        self.place_code = regex.compile(r"\b(?P<place>[[:Lu:]][[:L:]]+(?:[ \t][[:Lu:]][[:L:]]+)?)[ \t]+"
                                        r"\d{4,6}(?:-\d{3,4})?\b(?![\-.]\d)")

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        from curate.pii.postprocess import known_places

        found = [(r.start, r.end, r.score) for r in super().analyze(text, entities, nlp_artifacts)]
        for m in self.weak.finditer(text):
            found.append((m.start(), m.end(), self.boost(text, m.start(), m.end(), 0.2)))
        for m in self.place_code.finditer(text):
            if m.group("place").lower() in known_places():
                found.append((m.start(), m.end(), 0.6))
        out = []
        for start, end, score in found:
            while m := _CONTINUATION.match(text, end):
                end = m.end()
            if text[end - 1] == "." and regex.search(r"[[:L:]]{4}\.$", text[start:end]):
                end -= 1  # "Baker Street." ends a sentence; "Baker St." keeps its abbreviation point
            out.append(_result(self, "ADDRESS", start, end, score))
        return out


# --- phone numbers -------------------------------------------------------------------------------------------
PHONE_CONTEXT = ["phone", "tel", "telephone", "mobile", "cell", "fax", "call", "desk", "reach", "contact",
                 "whatsapp", "text", "sms", "landline", "ext", "dial", "number", "office", "home", "work",
                 "answer", "message", "voicemail", "ring", "hotline"]
_EXT = r"(?:[ \t]*(?:x|ext\.?|extension)[ \t]*\d{1,5})?"
PHONE_PATTERNS: list[tuple[str, float]] = [
    # +44 7700 900123 / +1 (415) 555-0100 / +447700 921 916
    (rf"(?<![\w+])\+\d{{1,3}}(?:[ \t.\-]?\(?\d{{1,5}}\)?){{1,6}}{_EXT}(?!\w)", 0.7),
    # (415) 555-0100 / 415-555-0100 / 415.555.0100 (North American numbering plan)
    (rf"(?<![\w\-])(?:\(\d{{3}}\)[ \t]?|\d{{3}}[\-.])\d{{3}}[\-.]\d{{4}}{_EXT}(?!\w|[\-.]\d)", 0.6),
    # 0490 39 07 81 / (99) 645-791 / 467 3395: digit groups, weak without a context word
    (rf"(?<![\w\-+/.:])(?:\(\d{{1,5}}\)[ \t]?)?\d{{2,5}}(?:[ \t.\-]\d{{2,8}}){{1,4}}{_EXT}(?![\w/:]|[\-.]\d)", 0.2),
    # 5403926876: 10-11 digits in one run, weak without a context word
    (rf"(?<![\w\-+/.:])\d{{10,11}}{_EXT}(?![\w/:]|[\-.]\d)", 0.2),
]


class PhoneRecognizer(RegexRecognizer):
    def __init__(self) -> None:
        super().__init__("PHONE_NUMBER", PHONE_PATTERNS, context=PHONE_CONTEXT, name="StudioPhoneRecognizer")

    def validate(self, text: str) -> bool:
        digits = sum(c.isdigit() for c in text.split("x")[0].split("ext")[0])
        if not 7 <= digits <= 15:
            return False
        # dates and times are not phone numbers: 2020-06-20, 12.03.1999, 07:04:41
        return not regex.fullmatch(r"\d{4}[\-./]\d{1,2}[\-./]\d{1,2}|\d{1,2}[\-./]\d{1,2}[\-./]\d{2,4}", text.strip())


# --- card numbers after a keyword ------------------------------------------------------------------------------
class CardNumberRecognizer(KeyedValueRecognizer):
    def __init__(self) -> None:
        super().__init__(
            "CREDIT_CARD",
            ["card", "credit card", "debit card", "cc", "visa", "mastercard", "amex", "maestro", "discover"],
            r"\d(?:[ \-]?\d){11,18}", score=0.75, name="KeyedCardNumberRecognizer")


# --- dates of birth, zip codes, names after a keyword -----------------------------------------------------------
_DATE_VALUE = (r"(?:\d{1,4}[\-./]\d{1,2}[\-./]\d{1,4}"
               r"|\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?,?\s+\d{2,4}"
               r"|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{2,4})")


def date_of_birth_recognizer() -> KeyedValueRecognizer:
    return KeyedValueRecognizer(
        "DATE_OF_BIRTH",
        ["date of birth", "dob", "d.o.b.", "d.o.b", "born on", "born", "birthday", "birth date", "birthdate"],
        _DATE_VALUE, filler=r"(?:[\s:#=\-]*(?:is|was|on|of)\b){0,2}[\s:#=\-]*",
        name="DateOfBirthRecognizer")


def zip_code_recognizer() -> KeyedValueRecognizer:
    return KeyedValueRecognizer("ADDRESS", ["zip", "zip code", "zipcode", "postal code", "postcode", "post code"],
                                r"[A-Z0-9]{2,5}(?:[ \-][A-Z0-9]{2,4})?", name="KeyedZipCodeRecognizer")


# A name after a keyword that announces one; lower-case names count ("my name is ana").
NAME_KEYWORDS = ["my name is", "name is", "name:", "names are", "named", "called", "first name", "last name",
                 "surname", "full name", "maiden name", "signed", "patient name", "customer name"]
_NAME_TOKEN = r"[[:L:]][[:L:]'’\-]*"
_NAME_VALUE = rf"{_NAME_TOKEN}(?:\s(?:[[:Lu:]]\.|{_NAME_TOKEN})){{0,2}}"
TITLES = ["mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "madam", "mister", "doctor", "nurse"]
#: Self-introductions and sign-offs. spaCy's small model misses many names here ("This is Felix Featherstone.",
#: "under the name Tomasz Rosenthal"), so a full name (two or three capitalised words) after them is a PERSON.
INTRO_KEYWORDS = ["this is", "under the name", "in the name of", "i am", "i'm", "regards", "best regards",
                  "kind regards", "sincerely", "cheers", "thanks", "thank you", "best", "-", "--", "—"]
_FULL_NAME = r"[[:Lu:]][[:Ll:]'’\-]+(?:\s[[:Lu:]][[:Ll:]'’\-]+){1,2}"


class NameAfterKeywordRecognizer(KeyedValueRecognizer):
    """PERSON after "my name is", "called", a title ("Dr. Chen") ..., trimmed of trailing common words."""

    def __init__(self, stop_words: set[str]) -> None:
        self.stop_words = stop_words
        super().__init__("PERSON", NAME_KEYWORDS, _NAME_VALUE, score=0.85, needs_digit=False,
                         filler=r"(?:[\s:,\-]*(?:is|was)\b){0,1}[\s:,\-]*", name="NameAfterKeywordRecognizer",
                         case_sensitive_value=True)
        titles = "|".join(TITLES)
        self.title_pattern = regex.compile(
            rf"(?<![\w])(?i:{titles})\.?\s+(?P<value>[[:Lu:]][[:L:]'’\-]+(?:\s(?:[[:Lu:]]\.|[[:Lu:]][[:L:]'’\-]+)){{0,2}})")
        self.intro_pattern = regex.compile(
            rf"(?:^|(?<=[\s.,;:!?(]))(?i:{_keyword_alternation(INTRO_KEYWORDS)})[\s,:]+(?P<value>{_FULL_NAME})(?![\w@])",
            regex.MULTILINE)

    def _trim(self, text: str, start: int, end: int) -> tuple[int, int] | None:
        words = list(regex.finditer(r"\S+", text[start:end]))
        kept = []
        for w in words:
            if w.group().lower().strip(".") in self.stop_words:
                break
            kept.append(w)
        if not kept:
            return None
        return start + kept[0].start(), start + kept[-1].end()

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        out = []
        for pattern in (self.pattern, self.title_pattern, self.intro_pattern):
            for m in pattern.finditer(text):
                span = self._trim(text, *m.span("value"))
                if span:
                    out.append(_result(self, "PERSON", span[0], span[1], self.score))
        return out


def id_recognizers(id_patterns) -> list[KeyedValueRecognizer]:
    """One keyed recognizer per configured reference-number pattern (order, claim, policy, account, MRN ...)."""
    return [KeyedValueRecognizer(p.entity, p.keywords, p.value, score=p.score,
                                 name=f"Keyed{p.entity.title().replace('_', '')}Recognizer{i}")
            for i, p in enumerate(id_patterns)]


#: Words before a first name that make it one ("Thanks Marcus", "I spoke with Camila", "ask Tomasz",
#: "consent obtained from Armand") ...
_NAME_BEFORE = ["hi", "hello", "hey", "dear", "thanks", "thank you", "thx", "cheers", "spoke with", "speak with",
                "spoke to", "speak to", "talked to", "talk to", "talked with", "ask", "asked", "told", "tell",
                "ok so", "so", "and", "best", "regards", "kind regards", "best regards", "sincerely", "this is",
                "i am", "i'm", "from", "to", "with", "for", "by", "contacted", "visited", "met", "saw", "seen",
                "treated", "examined", "forward this to", "behalf of", "according to", "signed for by",
                # greetings and wishes ("happy birthday Kento", "welcome back Ana") and questions that open on
                # a person ("Could Tomas please ...", "Is Ignat still ...": taken for known first names only)
                "birthday", "congratulations", "congrats", "welcome", "welcome back", "bye", "goodbye", "love",
                "wishes", "best wishes", "warm regards", "many thanks", "yours", "yours truly", "could", "can",
                "would", "will", "did", "does", "is", "was", "has", "should", "reviewed", "called", "phoned",
                "emailed", "paid", "interviewed", "consult with", "transferred to", "copied to", "cc",
                # a day's greeting, a caller introducing themself, a source ("per Mehrudin:")
                "good morning", "good afternoon", "good evening", "morning", "it's", "it’s", "its", "it is", "per",
                "d/w", "ta"]
def _strip_possessive(word: str) -> str:
    return word[:-2] if word.endswith(("'s", "’s")) else word


_CAPITALISED_BEFORE = regex.compile(r"[[:Lu:]][[:L:]'’\-]*[ \t]+$")
_CAPITALISED_AFTER = regex.compile(r"[ \t]+[[:Lu:]]")
_LIST_BEFORE = regex.compile(r"[,/&+][ \t]*$")
#: what stands before a thing, not a person: an article, a quantity, or a capitalised word of the same run
_THING_CONTEXT = regex.compile(r"(?:(?i:\b(?:the|a|an|some|any|this|that|our|your|my))|\d|(?P<cap>[[:Lu:]][[:L:]'’\-]*))[ \t]+$")


#: common irregular past forms and negated auxiliaries: what a lower-case subject does ("taiji left a review",
#: "flaviana isn't a valid card holder")
_IRREGULAR_PAST = ("(?:left|told|sent|took|got|gave|came|went|rang|wrote|made|paid|bought|brought|found|kept|lost|saw|"
                   "spoke|thought|felt|fell|broke|ran|sold|knew|became|began|drove|forgot|held|heard|meant|met|"
                   "understood|woke|wore|sat|stood|hit|put|cut|shut|ate|drank|slept|threw|tore|bit|caught|taught)")
_NEGATED = "(?:is|was|does|did|has|had|wo|ca|could|would)n['’]?t"


def _thing_context(text: str, start: int, cue_ok: bool = False) -> bool:
    """An article, a quantity or a capitalised word (not a capitalised stop word: "For", "To") right before. With
    `cue_ok`, not a capitalised cue word either, nor a word in -ed that opens the sentence ("Advised Sophie")."""
    m = _THING_CONTEXT.search(text[max(0, start - 40):start])
    if not m:
        return False
    cap = m["cap"].lower() if m["cap"] else ""
    if not cap:
        return True
    if cap in STOP_WORDS:
        return False
    opens = cap.endswith("ed") and SENTENCE_OPENING.search(text, 0, start - len(m.group()))
    return not (cue_ok and (cap in _CUES or opens))


_CUES = frozenset(c for c in _NAME_BEFORE if " " not in c)
#: cue words after which only a known first name (not any unknown word) is taken
_WEAK_CUES = {"could", "can", "would", "will", "did", "does", "is", "was", "has", "should", "love"}
_PREPOSITIONS = {"from", "to", "with", "for", "by"}
#: "to" that marks an infinitive: the word after it is a verb ("going to chuck it"), not someone spoken to
_INFINITIVE_TO = regex.compile(r"\b(?:going|gonna|want|wants|wanted|need|needs|needed|have|has|had|got|trying|try|"
                               r"tried|able|unable|like|love|hate|used|how|where|what|when|him|her|them|me|us|you|"
                               r"just|ready|about|supposed|meant|allowed)\s+to$")
#: a caller's introduction ("it's Minik"): only a name that is no English word follows it as a name
_INTRO_CUES = {"it's", "its", "it is"}
_BARE_LINKS = {"to", "from", "and", "so", "ok so"}
#: ... words after it ("Amara said", "Tomasz from your billing team", "Alba is listed") ...
_NAME_AFTER = ["said", "says", "told", "asked", "promised", "mentioned", "called", "emailed", "wrote", "from your",
               "from the", "from billing", "is handling", "was handling", "please", "is", "was", "has", "had",
               "will", "would", "reports", "reported", "admitted", "presented", "presents", "signed", "placed",
               "walking", "received", "requested", "requests", "denied", "complained", "here",
               # a caller introducing themself ("indira speaking"), a clinical complaint ("života c/o headache")
               "speaking", "c/o"]
#: ... and words for a person's role: after them any capitalised word (not a common one) is a name
#: ("Patient Juliusz", "the other driver, Marcsa Szepesy", "Next of kin: Ulrich", "my husband Murat").
_ROLES = ["patient", "pt", "customer", "client", "claimant", "policyholder", "policy holder", "account holder",
          "insured", "insured party", "co-insured", "beneficiary", "witness", "driver", "passenger", "tenant",
          "landlord", "neighbour", "neighbor", "husband", "wife", "partner", "mother", "father", "mum", "mom",
          "dad", "son", "daughter", "brother", "sister", "aunt", "uncle", "grandmother", "grandfather", "nurse",
          "doctor", "dr", "agent", "adjuster", "caller", "resident", "guardian", "carer", "caregiver",
          "next of kin", "emergency contact", "contact person", "attn", "attention", "employee", "manager",
          "colleague", "friend", "cc",
          # more people's roles in support, claims and clinical notes
          "assessor", "investigator", "inspector", "surveyor", "technician", "engineer", "physician", "surgeon",
          "consultant", "therapist", "physiotherapist", "pharmacist", "paramedic", "midwife", "officer",
          "receptionist", "representative", "rep", "advisor", "adviser", "courier", "handover", "third party",
          "owner", "homeowner", "occupant", "victim", "applicant", "member", "spouse", "fiance", "fiancé",
          "fiancee", "girlfriend", "boyfriend", "grandson", "granddaughter", "niece", "nephew", "cousin",
          "stepson", "stepdaughter", "child", "baby", "infant", "student", "teacher", "supervisor", "foreman",
          "contractor", "plumber", "electrician", "builder", "mechanic", "dentist", "gp", "locum", "registrar",
          "resident", "intern", "student nurse", "health visitor", "social worker", "interpreter", "translator",
          "claimant's", "patient's", "insured's", "signed by", "signature",
          # grandparents as chat calls them ("my nan norbert")
          "nan", "nana", "nanna", "gran", "granny", "grandma", "grandpa", "grandad", "granddad",
          # people who work in a home or live in one
          "cleaner", "housekeeper", "nanny", "childminder", "babysitter", "gardener", "handyman", "fitter",
          "installer", "lodger", "flatmate", "housemate", "roommate", "hca", "support worker", "care assistant",
          "healthcare assistant", "injured party", "keyholder", "key holder"]
#: after a greeting any capitalised word is a name, except these
_NOT_GREETED = {"Team", "Support", "Everyone", "All", "There", "Again", "Sir", "Madam", "Guys", "Folks", "Customer",
                "Friend", "Friends", "Both", "You", "Regards", "Wishes", "Way", "Price", "Seller", "Practice"}
#: after these (greetings and sign-offs) any capitalised word is taken as a name
_GREETINGS = ["hi", "hello", "hey", "dear", "thanks", "thank you", "best", "regards", "kind regards", "best regards",
              "sincerely", "birthday", "congratulations", "congrats", "welcome", "welcome back", "bye", "goodbye",
              "wishes", "best wishes", "warm regards", "many thanks", "yours", "yours truly", "good morning",
              "good afternoon", "good evening", "morning", "ta"]


class KnownNameRecognizer(LocalRecognizer):
    """PERSON by the names people have and the places names stand in messages, where spaCy's small model
    misses them:
    - a known first name followed by a known last name ("Jamal Washington");
    - a known first name after a cue word ("Thanks Marcus,", "I spoke with Camila", "consent obtained from
      Armand") or before one ("Amara said", "Alba is listed");
    - any capitalised word (and a second one) after a greeting or a role word ("Hello Keiko!", "Patient
      Juliusz", "my husband Murat Yudin", "Next of kin: Ulrich");
    - in lower-case chat, a known first name, or a word English does not have, after a cue or role word or
      before a reporting verb ("ok thx markus", "patient yumika takaki", "zrinko is listed").
    The names are Faker's lists for all its locales (`faker_names`); "a word English does not have" is one
    missing from `vocabulary`, the spaCy model's string store (~85,000 words of its training text: "pain",
    "billing" and "maria" are in it, "szemere" and "yumika" are not)."""

    def __init__(self, vocabulary=None, dictionary=None) -> None:
        super().__init__(supported_entities=["PERSON"], name="KnownNameRecognizer", supported_language="en")
        self.vocabulary = vocabulary if vocabulary is not None else frozenset()
        # first names that are no English word: not in `dictionary` (the lemmatizer's word index of the spaCy
        # model, WordNet's nouns, verbs, adjectives and adverbs: "violet", "rice", "jan" are in it, "sophie" not)
        self.dictionary = dictionary or frozenset()
        self.plain_first = frozenset(lower_names()[0] - self.dictionary) if dictionary else frozenset()
        # a zero-width format character (a pasted BOM or joiner) must not hide a name
        word = r"\p{Cf}*[[:Lu:]][[:Ll:]'’\p{Cf}\-]+"
        # (not a negated auxiliary: "wasn't" is no surname in "wenzeslas wasn't told")
        low = r"\p{Cf}*(?![[:Ll:]]+n['’]t(?![[:L:]]))[[:Ll:]][[:Ll:]'’\p{Cf}\-]+"
        start = r"(?:^|(?<=[\s.,;:!?(]))"
        self.full = regex.compile(rf"(?<![\w@.])(?P<first>{word})\s+(?P<last>{word})(?![\w@])")
        # any word that is a first name somewhere and a word nowhere in English ("Rikke", "þór", "vilhjálmur")
        self.rare_first = regex.compile(rf"(?<![\w@.'’])(?P<first>{word}|{low})(?:['’]s)?(?![\w@'’])")
        self.before = regex.compile(
            rf"{start}(?P<cue>(?i:{_keyword_alternation(_NAME_BEFORE)}))[\s,]+(?P<first>{word})"
            rf"(?:\s+(?P<last>{word}))?(?![\w@])", regex.MULTILINE)
        # "Jarmila, 54, smoker": a word followed by an age, as clinical notes introduce a patient
        self.age = regex.compile(rf"{start}(?P<first>{word}|{low})(?:\s+(?P<last>{word}|{low}))?,\s*\d{{1,3}}\s*"
                                 r"(?:,|y/?o\b|yo\b|years?\b|-year|[MF]\b)", regex.MULTILINE)
        self.after = regex.compile(rf"(?<![\w@.])(?P<first>{word})(?:\s+(?P<last>{word}))?[\s,]+"
                                   rf"(?i:{_keyword_alternation(_NAME_AFTER)})\b")
        self.role = regex.compile(
            rf"{start}(?P<cue>(?i:{_keyword_alternation(_ROLES)}))(?P<dot>\.?)[\s,:]+(?P<first>{word})"
            rf"(?:\s+(?P<last>{word}))?(?![\w@])", regex.MULTILINE)
        cues = _keyword_alternation([*_NAME_BEFORE, *_ROLES])
        self.lower_after = regex.compile(
            rf"{start}(?P<first>{low})(?:\s+(?P<last>{low}))?[\s,]+(?:{_keyword_alternation(_NAME_AFTER)})\b",
            regex.MULTILINE)
        self.lower = regex.compile(
            rf"{start}(?P<cue>{cues})\.?[\s,:]+(?P<first>{low})(?:\s+(?P<last>{low}))?(?![\w@])", regex.MULTILINE)
        # "Campbell confirmed", "Emilia Novak also reported": a name before a past-tense verb
        self.before_verb = regex.compile(rf"{start}(?P<first>{word})(?:\s+(?P<last>{word}))?\s+(?:(?:still|also|then|"
                                         rf"just|has|had|have|was)\s+)?(?P<verb>[[:Ll:]]{{2,}}ed)\b", regex.MULTILINE)
        self.lower_before_verb = regex.compile(rf"{start}(?P<first>{low})(?:\s+(?P<last>{low}))?\s+(?:(?:still|also|"
                                               rf"then|just|has|had|have|was)\s+)?[[:Ll:]]{{2,}}ed\b", regex.MULTILINE)
        bare = r"\p{Cf}*[[:Ll:]][[:Ll:]\p{Cf}\-]+"  # a lower-case word without a possessive
        # at a clause start, a word English lacks before a verb in the past or the third person ("brosca noticed",
        # "hansine wants to know", "whether gayane actually cancelled", "but wenzeslas isn't"): a subject no list
        # names; the second word is no adverb ("actually")
        opener = r"(?:whether|that|saying|says|said|if|because|but|and|so|when|after|before|while|until|since)"
        self.lower_subject = regex.compile(
            rf"(?:^|(?<=[.;:!?\n(][ \t]*)|(?<=\s-\s)|(?<=\b{opener}[ \t]+))(?P<first>{bare})"
            rf"(?:\s+(?![[:Ll:]]+ly\b)(?P<last>{bare}))?\s+(?:(?:still|also|then|just|has|had|have|was|"
            rf"[[:Ll:]]{{3,}}ly)\s+)?(?P<verb>[[:Ll:]]{{2,}}(?:ed|s)|{_IRREGULAR_PAST}|{_NEGATED})\b",
            regex.MULTILINE)
        # a word English lacks opening a sentence or line before a comma, a colon or a dash, as notes and chat
        # address or introduce a person ("jildau, can come off isolation", "athina: pulses present", "blaženko -
        # inr 4.2"); not the first item of a list ("gochujang, soy sauce, sesame oil")
        not_a_list = r"(?![ \t]*[[:L:]]+(?:[ \t]+[[:L:]]+){0,2}[ \t]*(?:,|\band\b|\bor\b))"
        self.lower_opening = regex.compile(
            rf"(?:^|(?<=[.;!?\n][ \t]*))(?P<first>{bare})(?:\s+(?P<last>{bare}))?"
            rf"(?:[ \t]*,{not_a_list}|[ \t]*:|[ \t]+-[ \t])", regex.MULTILINE)
        # a word spelt with letters English does not use ("thaís", "dobrosław", "donát"): in English text, a name
        self.lower_foreign = regex.compile(r"(?<![\w@.'’/\\-])(?P<first>[[:Ll:]]*[^\x00-\x7f\W\d_][[:Ll:]]*)"
                                           r"(?:['’]s)?(?![\w@'’/\\-])")
        # after a preposition of agent or source, a word English lacks that ends the sentence ("supplied by galeno.",
        # "per rumisa."); not after "to"/"for" ("add to linkedin."), nor before a comma ("with physio, pain ...")
        self.lower_prep_end = regex.compile(rf"{start}(?i:from|by|per)\s+(?P<first>{bare})"
                                            rf"(?=\s*(?:[.;!?]|$))", regex.MULTILINE)
        # a sign-off: the line after one that ends in a comma ("Best wishes,\nJanice Orr")
        self.signature = regex.compile(rf",[ \t]*\n[ \t]*(?P<first>{word}|{low})(?:[ \t]+(?P<last>{word}|{low}))?"
                                       rf"(?![\w@])")
        # two lower-case words that are a first name and a surname, or one of them and a word English lacks
        self.lower_pair = regex.compile(rf"(?<![\w@.'’])(?P<first>{low})\s+(?P<last>{low})(?![\w@])")
        # after a bare preposition, a word English lacks is a name when a clause goes on after it ("taken from
        # ayna on site", "rebooked for elbio at the patient's request"), not when a noun follows ("by ortho team")
        # a surname with a particle ("Ancilla van der Wardt", "hi, this is maria du cane")
        particles = r"(?:van|von|der|den|de|du|da|di|del|della|des|le|la|ter|ten|bin|ibn|al|el|dos|das|st\.?)"
        self.particle = regex.compile(rf"(?<![\w@.])(?P<first>{word}|{low})\s+(?:{particles}\s+){{1,2}}"
                                      rf"(?P<last>{word}|{low})(?![\w@])")
        # a title in lower-case chat ("ms vitaly kozlov is anxious", "asked for dr okafor")
        self.lower_title = regex.compile(rf"{start}(?:mr|mrs|ms|miss|mx|dr|prof)\.?\s+(?P<first>{bare})"
                                         rf"(?:\s+(?P<last>{bare}))?(?![\w@])", regex.MULTILINE)
        # after "to"/"from", a capitalised word English lacks is a name when the sentence ends or a clause goes on
        # after it ("send the cheque to Elbek.", "consent obtained from Ignat before the procedure"), not in a
        # heading or a list ("Introduction to Typography", "from Tahoe and Reno")
        self.to_from = regex.compile(rf"(?<![\w@.])(?i:to|from)\s+(?P<first>{word})(?:(?=\s*[.!?](?:\s|$))|(?=['’]s\b)|"
                                     rf"(?=\s+(?:before|after|about|re|regarding|on|at|who|yesterday|today|last|"
                                     rf"this|in\s+person)\b))")
        # two words after a preposition that end a sentence or clause ("from pipaluk lyberth.")
        self.lower_prep_pair = regex.compile(rf"{start}(?i:from|to|with|for|by)\s+(?P<first>{bare})\s+(?P<last>{bare})"
                                             rf"(?=\s*(?:[.,;:!?]|$))", regex.MULTILINE)
        self.lower_prep = regex.compile(
            rf"{start}(?i:from|to|with|for|by)\s+(?P<first>{bare})(?:\s+(?P<last>{bare}))?(?:['’]s\b|\s+(?:on|at|in|re|"
            rf"about|regarding|and|"
            rf"who|to|for|from|with|is|was|has|had|said|says|yesterday|today|before|after|without|but|because|"
            rf"until|when|if|so|then|against|over|into|as|via|since|while)\b|[ \t]*:)", regex.MULTILINE)
        # an appositive first name between commas after a word for a person ("the guy who hit me, Rufus, gave
        # me ..."), not an item of a list ("spinach, kale, tomatoes")
        self.appositive = regex.compile(rf"(?i:\b(?:me|him|her|them|us|guy|man|woman|lady|person|gentleman|girl|"
                                        rf"boy|chap|fellow|someone|somebody|caller|one)),[ \t]*(?P<first>{word}|{bare})(?:[ \t]+(?P<last>{word}|{bare}))?[ \t]*,")
        roles = _keyword_alternation(_ROLES)
        # a name in brackets after a role ("customer (dean) has been locked out", "the landlord (Cerys), who")
        self.role_bracket = regex.compile(rf"(?i:\b(?:{roles}))[ \t]*\([ \t]*(?P<first>{word}|{bare})"
                                          rf"(?:[ \t]+(?P<last>{word}|{bare}))?[ \t]*\)")
        # a known first name that is no English word set off by commas, as a writer addresses someone ("Following our
        # call, Justin, I have"; not "Orange, Violet, Pink")
        self.vocative = regex.compile(rf"(?<=,[ \t]*)(?P<first>{word})[ \t]*,(?![ \t]*(?:and|or)\b)")
        # a verb that takes a person and then a thing ("Sent Candida a prepaid bag", "can we get oles a courtesy car")
        self.dative = regex.compile(rf"(?<![\w@.'’-])(?i:sent|send|gave|give|offered|offer|handed|showed|lent|get|got|"
                                    rf"owe|owes|promised|emailed|texted)[ \t]+(?P<first>{word}|{bare})[ \t]+"
                                    rf"(?i:a|an|some|the|his|her|their|our|my|another)\b")
        # a word set off by commas and followed by "who" or by a role with a possessive ("the crossing patrol,
        # bibulat, who saw ...", "if mina, her carer, can sign"): what "who" or a carer refers to is a person
        # ("booked with marcsa, our coffee machine technician,"; "Pista (community midwife) to ...")
        self.relative = regex.compile(
            rf"(?<![\w@.'’-])(?P<first>{word}|{bare})(?:[ \t]+(?P<last>{word}|{bare}))?(?:[ \t]*,[ \t]*(?:whom?\b|"
            rf"(?i:his|her|my|our|their|the)[ \t]+(?:[[:L:]]+[ \t]+){{0,3}}(?i:{roles})\b)|[ \t]+\((?:[[:L:]]+[ \t]+){{0,2}}"
            rf"(?i:{roles})\))", regex.MULTILINE)

    def load(self) -> None:
        pass

    @staticmethod
    def _common(word: str) -> bool:
        return word in NOT_NAMES or word in _NOT_GREETED or word.lower() in STOP_WORDS or word.startswith(("I'", "I’"))

    @staticmethod
    def _lower_word(word: str) -> bool:
        """A lower-case word that may be an unlisted name: not a stop word, a common word or a verb form."""
        return not (word in STOP_WORDS or word in lower_names()[2] or word.endswith(("ed", "ing", "ly")))

    @staticmethod
    def _lower_common(word: str) -> bool:
        """A lower-case word that is a stop word, a listed common word or a verb/adverb form: never a name."""
        word = word.lower()
        first, last, common = lower_names()
        return word in STOP_WORDS or word in common or len(word) < 3 or (
            word.endswith(("ing", "ly")) and word not in first and word not in last)  # "vitaly", "kelly" are names

    def _plain_first_name(self, word: str) -> bool:
        """A first name of Faker's lists that no English word is spelt like (see `plain_first`)."""
        return word.lower() in self.plain_first

    def _rare_first_name(self, word: str) -> bool:
        """A first name of Faker's lists that the vocabulary lacks and that is no common or dictionary word."""
        low = word.strip("'’-").lower()
        return low in lower_names()[0] and self._unknown(low) and low not in self.dictionary

    def _intro_name(self, cue: str, word: str) -> bool:
        """False when `cue` is a caller's "it's" and `word` is no name: after it a caller names themself with a first
        name that is no English word, or a word English lacks ("it's Minik", "its stepan"); "it's April", "it's
        true", "its prefix" are words. True after any other cue."""
        if cue.lower().replace("’", "'") not in _INTRO_CUES:
            return True
        low = word.lower()
        return low not in self.dictionary and (low in lower_names()[0] or self._unlisted(low))

    def _unlisted(self, word: str) -> bool:
        """A lower-case word of 4+ letters that neither the vocabulary nor the dictionary has, nor as a plural
        ("commas", "beginners"): the evidence the lower-case subject and preposition rules take for a name."""
        if len(word) < 4 or not self._unknown(word) or word in self.dictionary or self._lower_common(word):
            return False
        return not (plural_of(word, self.dictionary) or (word.endswith("s") and word[:-1] in self.vocabulary))

    def _english(self, text: str) -> bool:
        """Most words of `text` (4 in 5) are words of the vocabulary: English text, where a word spelt with other
        letters stands out (in French or Polish text it does not)."""
        words = regex.findall(r"[[:L:]]{3,}", text)
        return bool(words) and sum(w.lower() in self.vocabulary for w in words) >= 0.8 * len(words)

    def _unknown(self, word: str) -> bool:
        """A lower-case word of 3+ letters that the vocabulary lacks: in a name position, most likely a name."""
        word = word.strip("'’-")
        return bool(self.vocabulary) and len(word) >= 3 and word.isalpha() and word not in self.vocabulary

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        first, last = faker_names()
        out = []
        for m in self.full.finditer(text, overlapped=True):
            # a known first name and a known last name, or any capitalised word that is not a common one
            if m["first"] in first and (m["last"] in last or (m["last"] not in NOT_NAMES
                                                               and m["last"].lower() not in STOP_WORDS)):
                out.append(_result(self, "PERSON", m.start(), m.end(), 0.85))
            elif (m["last"] in last or self._unknown(m["last"].lower())) and self._unknown(m["first"].lower()) and not (
                    self._common(m["first"]) or self._common(m["last"]) or _thing_context(text, m.start())
                    or _CAPITALISED_AFTER.match(text, m.end())):
                # a word English lacks before a surname or another such word ("Aloisa Toscano", "Giovana Almeida"),
                # not inside a run of capitalised words ("Crossbody Mountain Climbers"), nor after an article or a
                # quantity ("the Succotash Omelet", "2 Tbsp Sriracha")
                out.append(_result(self, "PERSON", m.start(), m.end(), 0.7))
        lower_text = not any(c.isupper() for c in text)
        for m in self.rare_first.finditer(text):
            word = _strip_possessive(m["first"])
            # a first name of some locale that English has no word for is a name wherever it stands; a lower-case
            # one only in text written all in lower case
            rare = word.strip("\u200b\ufeff\u200d")
            if (lower_text or rare[:1].isupper()) and self._rare_first_name(rare):
                start = m.start("first") + m["first"].index(rare)
                out.append(_result(self, "PERSON", start, start + len(rare), 0.65))
            # a first name that is no English word ("Sophie", "laura"; not "Violet", "Rice", "Jan"), capitalised or
            # in text written all in lower case, alone (a capitalised word after it makes a full name or a brand,
            # found or not by `full`), not in a list, not after an article, a quantity or a capitalised word
            # that is not a cue ("Taco Bell"; "Advised Sophie" at a sentence start is a verb and a name)
            if ((lower_text or word[:1].isupper()) and self._plain_first_name(word)
                    and not _CAPITALISED_AFTER.match(text, m.end())
                    and not _LIST_BEFORE.search(text, max(0, m.start() - 3), m.start())
                    and not _thing_context(text, m.start(), cue_ok=True)):
                out.append(_result(self, "PERSON", m.start("first"), m.start("first") + len(word), 0.6))
        for m in self.appositive.finditer(text, overlapped=True):
            name = m["first"]
            if name in first or name.lower() in lower_names()[0]:
                last_ok = m["last"] and not (self._common(m["last"].capitalize()) or self._lower_common(m["last"]))
                out.append(_result(self, "PERSON", m.start("first"), m.end("last") if last_ok else m.end("first"), 0.7))
        for m in self.vocative.finditer(text):
            if m["first"] in first and not self._common(m["first"]) and m["first"].lower() not in self.dictionary:
                out.append(_result(self, "PERSON", m.start("first"), m.end("first"), 0.65))
        for m in self.dative.finditer(text):
            name = m["first"]
            if self._common(name.capitalize()) or self._lower_common(name) or not (lower_text or name[:1].isupper()):
                continue
            if name in first or name.lower() in lower_names()[0] or self._unlisted(name.lower()):
                out.append(_result(self, "PERSON", m.start("first"), m.end("first"), 0.65))
        for m in (*self.role_bracket.finditer(text), *self.relative.finditer(text, overlapped=True)):
            words = [w for w in (m["first"], m["last"]) if w]
            if any(self._common(w.capitalize()) or self._lower_common(w) for w in words):
                continue
            if not lower_text and not words[0][:1].isupper():
                continue  # in text written with capitals a name is capitalised ("the shoes unworn, my son is ...")
            # a listed first name or a word English lacks ("driver (insured)" is a role)
            if words[0] in first or words[0].lower() in lower_names()[0] or self._unknown(words[0].lower()):
                out.append(_result(self, "PERSON", m.start("first"), m.end("last") if m["last"] else m.end("first"),
                                   0.7))
        for m in self.before.finditer(text):
            word = _strip_possessive(m["first"])  # "Spoke to Andrzej's GP"
            if not self._intro_name(m["cue"], word):
                continue
            greeted = m["cue"].lower() in _GREETINGS and not self._common(word)
            if word in first or greeted:
                out.append(_result(self, "PERSON", m.start("first"), m.end("first"), 0.75))
            elif (m["cue"].lower() not in _WEAK_CUES and m["cue"].lower() not in _BARE_LINKS and not m["last"]
                  and not self._common(word) and self._unknown(word.lower())):
                # one word English lacks after a cue ("reviewed Soib", "copied to Tadanori"); not after a bare
                # preposition or "and", where it is as often a place or a subject ("Introduction to Typography")
                out.append(_result(self, "PERSON", m.start("first"), m.end("first"), 0.65))
            elif m["last"] and not (self._common(word) or self._common(m["last"])):
                # two uncommon capitalised words after a cue ("for Seid Globelnik", "with Duygu Aksoy")
                out.append(_result(self, "PERSON", m.start("first"), m.end("last"), 0.7))
        for m in self.age.finditer(text):
            words = [w for w in (m["first"], m["last"]) if w]
            # not a word for a person ("Smoker, 38,", "Male, 54"): a dictionary word only as a known first name
            if not any(self._common(w.capitalize()) for w in words) and not (
                    len(words) == 1 and words[0].lower() in self.dictionary
                    and words[0].lower() not in lower_names()[0]):
                out.append(_result(self, "PERSON", m.start("first"), m.end("last") if m["last"] else m.end("first"),
                                   0.7))
        for m in self.after.finditer(text):
            # "Amara said"; two uncommon capitalised words before such a verb are a full name ("Liviana Palerma has")
            if m["last"] and not (self._common(m["first"]) or self._common(m["last"])):
                out.append(_result(self, "PERSON", m.start("first"), m.end("last"), 0.7))
            elif m["first"] in first and not m["last"]:
                out.append(_result(self, "PERSON", m.start("first"), m.end("first"), 0.75))
            elif not m["last"] and self._unlisted(m["first"].lower()) and not self._common(m["first"]):
                # one word neither the vocabulary nor the dictionary has, as the subject of such a verb
                # ("Vakha has been off food", "Ancelina was cycling")
                out.append(_result(self, "PERSON", m.start("first"), m.end("first"), 0.6))
        for m in self.to_from.finditer(text):
            if not self._common(m["first"]) and (m["first"] in first or self._unknown(m["first"].lower())):
                out.append(_result(self, "PERSON", m.start("first"), m.end("first"), 0.65))
        for m in self.before_verb.finditer(text):
            words = [w for w in (m["first"], m["last"]) if w]
            if any(self._common(w) for w in words) or m["verb"] in STOP_WORDS or _CAPITALISED_BEFORE.search(
                    text[max(0, m.start("first") - 40):m.start("first")]):
                continue  # part of a longer capitalised run ("the Glasgow Coma Scale covered") names a thing
            known = [w in first or w in last or self._unknown(w.lower()) for w in words]
            if (len(words) == 2 and any(known)) or (len(words) == 1 and (words[0] in first
                                                                         or self._unknown(words[0].lower()))):
                out.append(_result(self, "PERSON", m.start("first"), m.end("last") if m["last"] else m.end("first"),
                                   0.65))
        for m in self.particle.finditer(text, overlapped=True):
            name, rest = m["first"], m["last"]
            if (name in first or name.lower() in lower_names()[0]) and not (
                    self._common(rest.capitalize()) or self._lower_common(rest)):
                out.append(_result(self, "PERSON", m.start("first"), m.end("last"), 0.7))
        for m in self.signature.finditer(text):
            name = m["first"]
            if self._common(name.capitalize()) or self._lower_common(name) or not (
                    name in first or name.lower() in lower_names()[0] or self._unknown(name.lower())):
                continue  # a department or a phrase, not a name ("Faithfully,\nHuman Resources")
            last_ok = m["last"] and not (self._common(m["last"].capitalize()) or self._lower_common(m["last"]))
            out.append(_result(self, "PERSON", m.start("first"), m.end("last") if last_ok else m.end("first"), 0.7))
        for m in self.role.finditer(text):
            # a full stop after a role word longer than an abbreviation ("pt.", "dr.") ends its sentence
            if self._common(m["first"]) or (m["dot"] and len(m["cue"]) > 3):
                continue
            end = m.end("last") if m["last"] and not self._common(m["last"]) else m.end("first")
            out.append(_result(self, "PERSON", m.start("first"), end, 0.75))
        if any(c.isupper() for c in text):
            return out
        low_first, low_last, _ = lower_names()
        for m in self.lower.finditer(text, overlapped=True):
            name = _strip_possessive(m["first"])  # "reviewed vanessza's chest film"
            # after a bare preposition an unknown word is as often shorthand ("with physio", "by ortho")
            if name not in low_first and not (self._unknown(name) and m["cue"].lower() not in _PREPOSITIONS):
                continue
            if not self._intro_name(m["cue"], name):
                continue
            if m["cue"].lower() == "to" and _INFINITIVE_TO.search(text, 0, m.end("cue")) and name in self.dictionary:
                continue  # "going to wade through", "told him to chuck it": a verb
            last_ok = (m["last"] and name == m["first"]
                       and (m["last"] in low_last or m["last"] in low_first or self._unknown(m["last"])))
            end = m.end("last") if last_ok else m.start("first") + len(name)
            out.append(_result(self, "PERSON", m.start("first"), end, 0.7))
        for m in self.lower_title.finditer(text):
            # the title is the evidence: only stop words and listed common words are not names here
            if m["first"] in STOP_WORDS or m["first"] in lower_names()[2]:
                continue
            end = m.end("last") if m["last"] and not self._lower_common(m["last"]) else m.end("first")
            out.append(_result(self, "PERSON", m.start("first"), end, 0.7))
        for m in self.lower_pair.finditer(text, overlapped=True):
            a, b = m["first"], _strip_possessive(m["last"])
            if self._lower_common(a) or self._lower_common(b):
                continue
            # two words English lacks are a name too ("hilarion evdokimov"), when both are long enough not to be
            # chat shorthand
            both_unknown = self._unknown(a) and self._unknown(b) and min(len(a), len(b)) >= 4
            if (a in low_first and (b in low_last or b in low_first or self._unknown(b))) or (
                    self._unknown(a) and b in low_last) or both_unknown:
                out.append(_result(self, "PERSON", m.start("first"), m.end("last"), 0.65))
        for m in self.lower_prep_pair.finditer(text):
            a, b = m["first"], m["last"]
            if not (self._lower_common(a) or self._lower_common(b)) and all(
                    w in low_first or w in low_last or self._unknown(w) for w in (a, b)):
                out.append(_result(self, "PERSON", m.start("first"), m.end("last"), 0.65))
        for m in self.lower_prep.finditer(text):
            words = [w for w in (m["first"], m["last"]) if w]
            if not any(self._lower_common(w) for w in words) and all(w in low_first or w in low_last
                                                                       or self._unknown(w) for w in words):
                out.append(_result(self, "PERSON", m.start("first"), m.end("last") if m["last"] else m.end("first"),
                                   0.65))
        for m in self.lower_subject.finditer(text, overlapped=True):
            words = [w for w in (m["first"], m["last"]) if w]
            if m["verb"] in STOP_WORDS or m["verb"].endswith("ss") or any(self._lower_common(w) for w in words):
                continue
            if self._unlisted(words[0]):
                last_ok = m["last"] and (m["last"] in low_last or self._unlisted(m["last"]))
                out.append(_result(self, "PERSON", m.start("first"), m.end("last") if last_ok else m.end("first"), 0.6))
        for m in self.lower_opening.finditer(text):
            # the opener and a second word that is one too or a surname ("paien delaunay:"); the opener alone
            # before another word that is no stop word ("athina update:"); nothing before a stop word ("golang too:")
            if not self._unlisted(m["first"]):
                continue
            if m["last"] and (self._unlisted(m["last"]) or m["last"] in low_last):
                out.append(_result(self, "PERSON", m.start("first"), m.end("last"), 0.6))
            elif not m["last"] or not self._lower_common(m["last"]):
                out.append(_result(self, "PERSON", m.start("first"), m.end("first"), 0.6))
        if not text.isascii() and self._english(text):  # an ASCII text has no letter `lower_foreign` looks for
            for m in self.lower_foreign.finditer(text):
                if self._unlisted(m["first"]):
                    out.append(_result(self, "PERSON", m.start("first"), m.end("first"), 0.6))
        for m in self.lower_prep_end.finditer(text):
            word = m["first"]
            if self._unlisted(word):
                out.append(_result(self, "PERSON", m.start("first"), m.end("first"), 0.6))
        for m in self.lower_before_verb.finditer(text):
            if m["first"] in low_first and not self._lower_common(m["first"]):
                last_ok = m["last"] and (m["last"] in low_last or self._unknown(m["last"]))
                out.append(_result(self, "PERSON", m.start("first"), m.end("last") if last_ok else m.end("first"),
                                   0.65))
        for m in self.lower_after.finditer(text, overlapped=True):
            if m["last"] and m["first"] not in low_first and self._plain_first_name(m["last"]):
                # a word English lacks, then a first name ("my flatmate laura is"): the name is the second word
                out.append(_result(self, "PERSON", m.start("last"), m.end("last"), 0.7))
            elif m["first"] in low_first or self._unknown(m["first"]):
                last_ok = m["last"] and (m["last"] in low_last or self._unknown(m["last"]) or self._lower_word(m["last"]))
                end = m.end("last") if last_ok else m.end("first")
                out.append(_result(self, "PERSON", m.start("first"), end, 0.7))
        return out
