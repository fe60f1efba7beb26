"""Clean-up of presidio's raw results for one text: thresholds, allow list, known false positives, overlaps.

Known presidio/spaCy false positives handled here (each has a test in tests/test_pii_detection.py):
- numbers and codes read as PERSON ("4417-B", "XJ220", "RMA 55012"): a PERSON span with a digit, without a
  letter, or made only of greeting/sign-off/code words is dropped;
- LOCATION read as PERSON ("Kenosha", "Lisbon"): a PERSON span that is a known place (countries and US states
  from Faker's lists, the ~400 cities of the IANA time-zone database) or follows a locative phrase ("live in",
  "moved to", "travelling to", ...) or the prepositions "in"/"near" becomes LOCATION;
- relative dates ("tomorrow", "next week", "30 days") identify nobody and are not DATE_TIME;
- eponyms and product names read as PERSON: a PERSON span followed by a medical term ("Hodgkin lymphoma",
  "Crohn's disease", "Tommy John surgery"), or up to three words right after an article and before a lower-case
  word ("the Murphy bed", "the Kodiak Cooler keeps"), names a thing, not a person, and is dropped; so does one
  before a thing named after people ("Marie Curie Hospice", "Ferris wheel"), a bare possessive ("history of
  Alzheimer's;"), or one after a selling/screening/diagnosis word ("do you sell Dr Pepper", "screening for Hodgkin"),
  a measure ("a bottle of Jim Beam") or where it was bought ("bought at John Lewis"); so does a span that English
  words around it show to be a thing, in text written with capitals: lower-case words ("iris intact"), a hyphen
  into a word ("Gram-positive"), a unit after a number ("2700 Kelvin"), the rest of a name after a capitalised
  possessive ("Clare's Law"), and "a"/"my" + a span that ends a clause ("a Jack Russell, wound cleaned").
Overlaps: a span found by a pattern (card, phone, address, keyed number ...) beats an NER span (spaCy's
guess); spans of the same type that overlap are merged; an ADDRESS swallows LOCATIONs it touches.
"""

from __future__ import annotations

import functools
import re

from curate.pii.config import PiiConfig, PiiEntity
from curate.pii.names import NOT_NAMES, faker_names, lower_names

NER_TYPES = {"PERSON", "LOCATION", "NRP", "DATE_TIME", "ORGANIZATION"}
_EDGE_CHARS = " \t\n\r,;:!?\"'“”‘’()[]{}<>*_|/\\-"
_NOT_NAME_WORDS = {
    "hi", "hello", "hey", "dear", "thanks", "thank", "regards", "cheers", "best", "sincerely", "team", "support",
    "customer", "agent", "admin", "sir", "madam", "ok", "okay", "yes", "no", "please", "pls", "asap", "fyi", "btw",
    "id", "dob", "ssn", "mrn", "sku", "rma", "pin", "otp", "iban", "vin", "eta", "faq", "url", "api", "cvv", "po",
    "mr", "mrs", "ms", "dr", "prof", "miss", "account", "order", "claim", "policy", "invoice", "ticket", "ref",
    # imperatives that open support messages and that the small model tags as names ("Email me at ...")
    "email", "e-mail", "call", "text", "phone", "message", "contact", "kindly", "reply", "send",
}
#: medical suffixes of a condition ("thyroiditis", "neuroma", "aphasia"), and words that end so but are none
_CONDITION_SUFFIX = r"(?:itis|oma|osis|pathy|aemia|emia|algia|plasia|trophy|uria|rrhoea|rrhea|phasia|plegia|praxia)"
_NOT_CONDITIONS = r"(?<!diploma)(?<!aroma)(?<!diagnosis)(?<!prognosis)"
#: words for a storm, which is named like a person ("Storm Ciara", "Hurricane Ida": storm claims)
_STORM_WORDS = r"(?:storm|hurricane|typhoon|cyclone)"
#: terms that make the name before them an eponym (a disease, a sign, a procedure), not a person
_EPONYM_NEXT = re.compile(
    # a second, hyphenated name may come first ("Osgood-Schlatter disease", "Cheyne-Stokes breathing")
    r"(?:-[^\W\d_]+)?(?:"
    r"(?:['’]s)?\s+(?:disease|syndrome|lymphoma|palsy|sign|test|score|scale|maneuver|manoeuvre|procedure|surgery|"
    r"operation|reflex|fracture|criteria|classification|tumou?r|ulcer|anomaly|phenomenon|law|effect|"
    # eponymous rules and laws ("Naegele's rule", "Clare's Law", "Occam's razor"), and conditions that go by a
    # discoverer's name more than by a patient's ("Todd's paresis", "Ludwig's angina", "Dupuytren's contracture")
    r"rule|principle|razor|paradox|theorem|paresis|paralysis|angina|chorea|ataxia|purpura|contracture|"
    r"diverticulum|o?esophagus|"
    # places and things named after people ("Marie Curie Hospice", "Murphy bed", "Ferris wheel")
    r"hospice|hospital|clinic|foundation|institute|house|station|airport|bridge|school|college|university|"
    r"stadium|bed|wheel|flask|dish|chair|jacket|award|prize|method|technique|model|tunnel|tower|centre|center|"
    r"mall|arena|theatre|theater|museum|library|gardens|cathedral|chapel|hotel)\b"
    r"|s?['’]\s+(?:disease|syndrome|palsy|sign|ophthalmopathy)\b"
    # a condition or procedure by its medical suffix right after the name, without a possessive ("Kaposi sarcoma",
    # "Hashimoto thyroiditis"; "Anna's tonsillitis" is Anna's)
    rf"|\s+[a-z]+(?:{_CONDITION_SUFFIX}|ectomy|otomy|plasty|scopy)\b{_NOT_CONDITIONS}"
    # devices, fluids and signs of clinical notes named after people, without a possessive ("Foley catheter",
    # "Kussmaul breathing"; "Anna's catheter" is Anna's), and the eponymous fluids ("Hartmann's solution")
    r"|\s+(?:catheter|cannula|cyst|breathing|respirations?|duct|gland|canal|tube|line|splint|shunt|stent|valve|triad|"
    r"pouch|membrane|nodes?|solution|stain|staining|incision|cells|bodies|nodules|regimen|foot|sucker|forceps|"
    r"retractor|speculum|frame|contractions|equation|formula)\b|['’]s\s+(?:solution|lactate)\b)",
    re.I)
#: a condition or device after a possessive ("Baker's cyst", "Morton's neuroma", "Wernicke's encephalopathy"): an
#: eponym when the owner is a surname only; after a first name it is the person's ("Anna's tonsillitis")
_OWNED_CONDITION_NEXT = re.compile(
    rf"['’]s\s+(?:[a-z]+{_CONDITION_SUFFIX}\b{_NOT_CONDITIONS}|cyst|nodes?|nodules|cells|ulcer|fracture|hernia|"
    # and the instruments and landmarks named after a surgeon ("Ryle's tube", "McBurney's point")
    r"point|tubes?|foot|frame|forceps|needle|pins?|splint|line|catheter|cannula|sucker|bag|sign|test)\b", re.I)
#: terms after a surname alone that name a method or a tool, not the person ("Kegel exercises", "Doppler
#: ultrasound", "Gillick competence"): after a first name they are as often a verb or the person's own
_SURNAME_TERM_NEXT = re.compile(r"(?:['’]s)?\s+(?:exercises|ultrasound|competence|chart|scan|manoeuvre|maneuver|"
                                r"sounds|choice|mustard|sauce|ketchup|relish|marmalade|gin|rum)\b", re.I)
#: a tear or repair named after two people ("Mallory-Weiss tear"), after the second name: after one name these
#: words are as often verbs ("have Anna repair it")
_DOUBLE_EPONYM_NEXT = re.compile(r"(-[A-Z][^\W\d_]*)?\s+(?:tear|repair|position|approach)\b")
#: a capitalised possessive right before a one-word span that is an English word: the rest of a thing's name
#: ("Clare's Law", "Martha's Vineyard"; "Google's Sundar Pichai" is a person)
_OWNER_BEFORE = re.compile(r"(?<![^\W_])[A-Z][^\W\d_]*['’]s[ \t]+$")
#: a lower-case word run onto a span by a hyphen ("Gram-positive", "Cushing-like"; "Hauta-aho" is a surname)
_HYPHEN_WORD_NEXT = re.compile(r"-([a-z]+)\b")
#: a number of two or more digits right before a one-word span ("2700 Kelvin"), and the word after that span
_NUMBER_BEFORE = re.compile(r"\d[\d,.]*\d[ \t]+$")
_WORD_AFTER = re.compile(r"[ \t]*(?:([^\W\d_]+)|[.,;:!?)]|$)")

#: goods sold under a person's name, right after it ("Charles Tyrwhitt shirts", "a Jo Malone candle", "Tom Ford
#: sunglasses"): nouns whose form is no verb a person does ("dresses the wound", "coats", "boots", "samples",
#: "frames" are left out) and that do not open a new noun phrase after a name ("tell Anna Kowalska shop staff ...")
_GOODS_NEXT = re.compile(
    r"\s+(?:shirts?|blouses?|jeans|coat|shoes|trainers|sneakers|handbags?|purses?|wallets?|perfume|fragrances?|"
    r"candles?|sunglasses|spectacles|earrings|necklaces?|bracelets?|scarf|scarves|lipsticks?|mascara|"
    r"moisturi[sz]ers?|serums?|sofas?|armchairs?|mattress(?:es)?|duvets?|rugs?|mug|teapots?|"
    r"dinner\s+(?:set|service)|crockery|tableware|cookware|pizzas?|sandwich(?:es)?|burgers?|biscuits|chocolates?|"
    r"ice\s+cream|gin|whisky|whiskey|vodka|kettles?|toasters?|blenders?|fridges?|freezers?|prams?|pushchairs?|"
    r"strollers?|leggings|tops|hoodies|t-shirts|skirts|socks|tights|slippers|swimwear|sportswear|knitwear|"
    r"lingerie|jewell?ery|watches|crackers|cookies|bars|crisps|cereal|multipacks?|dolls?|toys|figurines?|lamps?|"
    r"glassware|bedding|towels|luggage|suitcases?|backpacks?|gift\s+(?:cards?|vouchers?|sets?)|vouchers?|"
    r"underwear|curtains|cosmetics|make-?up|products|sausages|desserts|pies|cakes|coffee|beer|wine|cider|lager|"
    r"cheese|apples|potatoes|beans|beds)\b",
    re.I)
#: a verb that takes a person and then a thing ("gave Maria chocolates", "got Tom Evans shoes"): the name is the
#: person it went to (not "buy"/"bought": `_THING_BEFORE` reads the name after them as what is sold either way)
_DATIVE_BEFORE = re.compile(r"(?i)\b(?:give|gives|gave|given|giving|send|sends|sent|bring|brings|brought|get|gets|"
                            r"got|offer|offered|hand|handed|show|showed|lend|lent|pass|passed|make|made|"
                            r"tell|told|let|ask|asked)\s+$")
#: a possessive with no noun after it names a disease or a shop ("history of Alzheimer's;", "lunch at Wendy's."):
#: a person's possessive is followed by what is theirs ("Shishani's GP")
_BARE_POSSESSIVE = re.compile(r"(?:['’]s|s['’])(?=\s*(?:[.,;:!?)]|$))")
#: words after which a name is what is sold, screened for or diagnosed ("do you sell Dr Pepper", "family history
#: of Alzheimer's", "screening for Hodgkin"), not a person
_THING_BEFORE = re.compile(
    r"(?i)\b(?:sell|sells|selling|sold|buy|buying|bought|stock|stocks|order|ordered|returned|screening\s+for|"
    r"screened\s+for|tested\s+for|history\s+of|diagnosed\s+with|diagnosis\s+of|treated\s+for|signs\s+of|"
    r"ship|ships|shipping|deliver|delivers|carry|carries|swap|exchange|replace|refund|"
    rf"{_STORM_WORDS}|"
    # a measure or container of it ("a bottle of Jim Beam", "a cup of Earl Grey", "a box of Mr Kipling slices")
    r"(?:bottles?|glass|glasses|cups?|mugs?|cans?|pints?|cases?|crates?|box|boxes|packets?|packs?|tins?|jars?|"
    r"tubs?|bowls?|slices?|servings?|portions?|spoonfuls?|shots?|pallets?|cartons?|bags?|sacks?|trays?|"
    r"punnets?|kilos?|kg)\s+of|"
    # where something was bought: a shop ("bought at Ernest Jones"; "bought from" may name a seller)
    r"(?:bought|buy|buying|purchased|shop|shopped|shopping)\s+(?:it\s+|them\s+|one\s+)?at|"
    # a diagnosis list's heading ("Past medical history: Crohn's", "Dx: Bell's palsy")
    r"history\s*:|pmh\s*:|dx\s*:|diagnosis\s*:|diagnoses\s*:|impression\s*:)\s+"
    r"(?:(?:the|a|an|some|any|your|my|our)\s+)?$")
#: an article (or possessive) right before a one-word PERSON span, and a lower-case word right after it
_ARTICLE_BEFORE = re.compile(r"(?i)\b(?:the|a|an|our|your|this|that|these|those|my|his|her|their)\s+$")
#: an indefinite article (or a possessive determiner) before a span that ends a clause names a kind of thing
_A_BEFORE = re.compile(r"(?i)\b(?:a|an|my|our|your|his|her|their)\s+$")
_STREET_AFTER = re.compile(r"\s+(?:St|Street|Rd|Road|Ave|Avenue|Blvd|Boulevard|Ln|Lane|Dr|Drive|Way|Ct|Court|Pl|Place)"
                           r"\b")
_STORM_IN = re.compile(rf"(?i){_STORM_WORDS}\s")  # spaCy takes the word in ("Storm Ciara")
_COMPANY_BEFORE = re.compile(r"(?<![^\W_])([A-Z][^\W\d_]*)[ \t]*&[ \t]*$")
_TITLE_WORDS = {"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "lord", "lady"}
_TITLE_IN = re.compile(r"(?i)(?:dr|mr|mrs|ms|miss|mx|prof)\.?\s")  # "a Ms Kowalczyk, who ...": a person
_CLAUSE_END_AFTER = re.compile(r"\s*(?:[,;:!?)]|\.(?:\s|$)|$)")
#: determiners that spaCy sometimes puts inside a PERSON span ("the Ray-Ban", "a Mr Muscle"): no name starts so
_LEADING_DETERMINER = re.compile(r"(?i)(?:the|a|an|my|our|your|his|her|their|this|that)\s+")
#: a possessive followed by a capitalised word inside one span names a shop or brand ("Victoria's Secret")
_POSSESSIVE_BRAND = re.compile(r"[^\W\d_]['’]s\s+[A-Z][a-z]")
_LOWER_AFTER = re.compile(r"\s+[a-z]")
#: an auxiliary or modal verb: after "that" + name, "that" is a conjunction and the name a clause's subject
_VERB_AFTER = re.compile(r"\s+(?:is|was|has|had|will|would|can|could|should|may|might|must|did|does|said|says)\b")
_LOCATIVE = re.compile(
    r"(?i)\b(?:live[sd]?|living|lives|moved|moving|move|travel(?:l)?ing|travel(?:l)?ed|flew|fly(?:ing)?|born|"
    r"grew up|based|located|stay(?:ing|ed)?|visit(?:ing|ed)?|trip|city|town|village|state|country|"
    r"vacation|holiday|office|branch|store)\s+(?:in|to|from|at|of|near)?\s*(?:the\s+)?$"
    r"|\b(?:in|near|outside|around|past|opposite)\s+$")
_RELATIVE_DATE_WORDS = {
    "today", "tomorrow", "yesterday", "tonight", "now", "day", "days", "week", "weeks", "month", "months", "year",
    "years", "next", "last", "this", "that", "the", "a", "an", "few", "couple", "of", "morning", "afternoon",
    "evening", "night", "weekend", "ago", "later", "earlier", "recently", "daily", "weekly", "monthly", "yearly",
    "annually", "hour", "hours", "minute", "minutes", "second", "seconds", "past", "previous", "coming", "every",
    "each", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "several", "within",
    "over", "about", "around", "half", "quarter", "business", "working", "same", "end", "beginning", "mid",
    "old", "aged", "age",
}


@functools.cache
def known_places() -> frozenset[str]:
    """Lower-cased place names: Faker's countries and US states, IANA time-zone cities."""
    import zoneinfo

    from faker.providers.address.en import Provider as AddressEn
    from faker.providers.address.en_US import Provider as AddressUS

    names = {c.lower() for c in AddressEn.countries} | {s.lower() for s in AddressUS.states}
    for zone in zoneinfo.available_timezones():
        city = zone.rsplit("/", 1)[-1].replace("_", " ")
        if len(city) > 3 and not city.isupper() and not any(ch.isdigit() for ch in city):
            names.add(city.lower())
    return frozenset(names)


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in _EDGE_CHARS:
        start += 1
    while end > start and text[end - 1] in _EDGE_CHARS:
        end -= 1
    return start, end


#: where a name run on by spaCy's small model stops: a spaced dash, or a word with a digit
_RUN_ON = re.compile(r"\s+[-–—]\s|\s+\S*\d")


def _before_numbers(text: str, start: int, end: int) -> int:
    """End of a PERSON span cut before a spaced dash or its first word with a digit, when two words come before it:
    spaCy's small model runs a name into what follows ("Martina Urbanová - INR 4.2" is one PERSON span, which the
    digits would otherwise drop whole, and the recognizers' "Martina Urbanová" inside it with it). One word before
    a number is as often a date or a thing ("Oct 2", "Switchboard Hub5'00"): such a span is left whole."""
    m = _RUN_ON.search(text, start, end)
    if not m:
        return end
    cut = _trim(text, start, m.start())[1]
    return cut if len(text[start:cut].split()) >= 2 else end


def is_code_or_number(value: str) -> bool:
    """True for spans no person is called: digits anywhere, no letters, or only greeting/code words."""
    if any(c.isdigit() for c in value) or not any(c.isalpha() for c in value):
        return True
    words = [w.strip(".").lower() for w in value.split()]
    return all(w in _NOT_NAME_WORDS for w in words)


def is_plausible_date_number(value: str) -> bool:
    """A bare number is a date only as a year (1000-2099) or a compact date (8 digits); postcodes and phone
    fragments that spaCy calls DATE are not."""
    digits = value.replace(" ", "")
    if not digits.isdigit():
        return True
    return (len(digits) == 4 and 1000 <= int(digits) <= 2099) or len(digits) == 8


def _line_pieces(text: str, start: int, end: int) -> list[tuple[int, int]]:
    pieces, pos = [], start
    for m in re.finditer(r"\n", text[start:end]):
        pieces.append((pos, start + m.start()))
        pos = start + m.end()
    pieces.append((pos, end))
    return pieces


def is_relative_date(value: str) -> bool:
    words = re.findall(r"[^\W_]+", value.lower())
    return bool(words) and all(w in _RELATIVE_DATE_WORDS or (w.isdigit() and int(w) < 100) for w in words)


class PostProcessor:
    def __init__(self, config: PiiConfig, vocabulary: frozenset[str] = frozenset(),
                 dictionary: frozenset[str] = frozenset()) -> None:
        self.config = config
        #: lower-cased words of the spaCy model's string store: a word missing from it is one English lacks
        self.vocabulary = vocabulary
        #: English words (the spaCy model's lemmatizer index, `engine.english_words`)
        self.dictionary = dictionary
        self.allow = {v.strip().casefold() for v in config.allow_list}

    def __call__(self, text: str, results, artifacts=None) -> list[PiiEntity]:
        spans: list[PiiEntity] = []
        self._allowed = self._allowed_ranges(text) if self.allow else []
        for r in results:
            if r.score < self.config.threshold_for(r.entity_type):
                continue
            if r.entity_type in NER_TYPES:
                # A name or place never spans lines ("Lena Wirth\nAddress"): keep the pieces, each checked.
                for piece in _line_pieces(text, r.start, r.end):
                    self._add(text, r.entity_type, *piece, r.score, spans)
            else:
                self._add(text, r.entity_type, r.start, r.end, r.score, spans)
        return resolve_overlaps(spans)

    def _allowed_ranges(self, text: str) -> list[tuple[int, int]]:
        """Where allow-listed values occur; nothing inside them is redacted (not even the domain of an
        allowed email address)."""
        folded = text.casefold()
        ranges = []
        for value in self.allow:
            pos = folded.find(value)
            while pos >= 0:
                ranges.append((pos, pos + len(value)))
                pos = folded.find(value, pos + 1)
        return ranges

    def _add(self, text: str, kind: str, start: int, end: int, score: float, spans: list[PiiEntity]) -> None:
        if kind in NER_TYPES:
            start, end = _trim(text, start, end)
        if end <= start:
            return
        value = text[start:end]
        if any(a <= start and end <= b for a, b in self._allowed):
            return
        if kind == "PERSON":
            end = _before_numbers(text, start, end)
            value = text[start:end]
            lead = _LEADING_DETERMINER.match(value)
            if lead and lead.end() < len(value):
                start += lead.end()
                value = text[start:end]
            start = _extend_left(text, start)
            end = self._extend_right(text, start, end)
            value = text[start:end]
            if (is_code_or_number(value) or names_a_thing(text, start, end) or _POSSESSIVE_BRAND.search(value)
                    or self._english_around(text, start, end)):
                return
            place = value.lower() in known_places()
            if not place and self._opening_word(text, start, value):
                return
            if place or _LOCATIVE.search(text[max(0, start - 40):_title_start(text, start)]):
                if "LOCATION" not in self.config.entities:
                    return
                kind = "LOCATION"
        elif kind in ("LOCATION", "NRP", "ORGANIZATION") and not any(c.isalpha() for c in value):
            return
        elif kind == "DATE_TIME" and (is_relative_date(value) or not is_plausible_date_number(value)):
            return
        spans.append(PiiEntity(kind, start, end, round(float(score), 4)))

    def _english_around(self, text: str, start: int, end: int) -> bool:
        """A span that English words around it show to be a thing, in text that opens with a capital (where a writer
        capitalises names; in lower-case writing only an English plural):
        - lower-case English words that are no listed name ("the keypad scanner was smashed": spaCy's small model
          tags some as names; a lower-case name typed carelessly, "spoke to kazu", "ask grace", stays one);
        - one capitalised English word after a capitalised possessive ("Clare's Law", `_OWNER_BEFORE`);
        - a name run into an English word by a hyphen ("Gram-positive", "Cushing-like"; "Hauta-aho" is a surname);
        - one word after a number of two or more digits and before an English word or the end of a clause: a unit
          ("2700 Kelvin on the box", "4000 Kelvin colour"); before a word English lacks it may be a street
          ("518 Árpád fejedelem útja"), whose address stays redacted."""
        if not self.dictionary:
            return False
        value = text[start:end]
        words = re.findall(r"[^\W\d_]+", value)
        unlisted = not any(map(listed_name, words))
        if not _written_with_capitals(text):
            # in lower-case writing only the plural of an English noun ("separate the tags with commas"): a name
            # typed in lower case may be an English word too ("ask saber", "ot shun")
            return (len(words) == 1 and value.islower() and unlisted and value not in self.dictionary
                    and plural_of(value, self.dictionary))
        if value.islower() and unlisted and all(self._english_word(w) for w in words):
            return True
        if value.islower() and " " not in value and self._english_word(value) and self._between_things(text, start, end):
            return True     # "Shopping list: spinach, kale, olive oil": an item of a list of things
        if (" " not in value and value.lower() in self.dictionary
                and _OWNER_BEFORE.search(text[max(0, start - 30):start])):
            return True
        hyphen = _HYPHEN_WORD_NEXT.match(text, end)
        if hyphen and hyphen.group(1) in self.dictionary:
            return True
        if " " in value or not _NUMBER_BEFORE.search(text[max(0, start - 16):start]):
            return False
        after = _WORD_AFTER.match(text, end)
        return bool(after) and (after.group(1) is None or after.group(1).lower() in self.dictionary
                                or after.group(1).lower() in _stop_words())

    def _between_things(self, text: str, start: int, end: int) -> bool:
        """The span is an item of a comma-separated list whose items on both sides are lower-case English words, one
        of them on no name list ("spinach, kale, olive oil"; "tom, kate, sue" and "tom, grace, rose" list people)."""
        before = _LIST_ITEM_BEFORE.search(text, max(0, start - 40), start)
        after = _LIST_ITEM_AFTER.match(text, end)
        if not (before and after):
            return False
        words = (before.group(1), after.group(1))
        return all(w.islower() and self._english_word(w) for w in words) and not all(map(listed_name, words))

    def _english_word(self, word: str) -> bool:
        """A lower-case word of the dictionary (a lemma index), or a plural of one ("commas", "boxes")."""
        return word in self.dictionary or plural_of(word, self.dictionary)

    def _opening_word(self, text: str, start: int, value: str) -> bool:
        """One capitalised word that opens a sentence, is an English word (the dictionary) and is on no name list:
        spaCy's small model reads such openers as names ("Bilirubin mildly raised", "Meningitis ruled out")."""
        if not self.dictionary or " " in value or not value[:1].isupper() or value.lower() not in self.dictionary:
            return False
        first, last = faker_names()
        if value in first or value in last or value in NOT_NAMES or listed_name(value.lower()):
            return False  # a name too ("Mark is ..."): privacy first
        before = text[max(0, start - 12):start]
        return bool(SENTENCE_OPENING.search(text, 0, start)) and not _TITLE_BEFORE.search(before)  # "Mrs. Saucier"

    def _extend_right(self, text: str, start: int, end: int) -> int:
        """End of a PERSON span taken one word further right when the word after it, on the same line with
        nothing but spaces between, is a surname: a last name of Faker's lists, a "Mc"/"Mac"/"O'" name or a word
        English lacks ("Dear Ingrid Hansen", "from Aoife McLean"); in text written all in lower case, a
        lower-case such word ("<PERSON> sneddon"). Stop words, titles, greetings and listed common words
        never are."""
        if not self.vocabulary:
            return end
        m = _NAME_WORD_AFTER.match(text, end)
        if not m:
            return end
        word = m.group(1)
        bare = word[:-2] if word.endswith(("'s", "’s")) else word
        low = bare.lower()
        if (low in _stop_words() or low in _NOT_NAME_WORDS or low in _MORE_TITLES or bare in NOT_NAMES
                or low in lower_names()[2] or len(low) < 3):
            return end
        if bare[0].isupper():
            # a word English lacks only after a one-word span: a first name wants a surname, a two-word span
            # ("Mel Robbins Podcast") has one
            named = bare in faker_names()[1] or _CELTIC_SURNAME.match(bare) or (
                low not in self.vocabulary and " " not in text[start:end].strip())
        else:
            named = not any(c.isupper() for c in text) and (low in lower_names()[1] or (
                low.isalpha() and low not in self.vocabulary))
        return m.start(1) + len(bare) if named else end


#: the list item right before a span and right after it ("spinach, <span>, olive")
_LIST_ITEM_BEFORE = re.compile(r"([^\W\d_]+),[ \t]*$")
_LIST_ITEM_AFTER = re.compile(r",[ \t]*([^\W\d_]+)")
#: nothing, or the end of a sentence or line, before a position
SENTENCE_OPENING = re.compile(r"(?:^|[.!?\n])[ \t\"'“(]*$")
#: the word right after a PERSON span, separated by spaces only ("Hansen", "McLean", "O'Neill", "sneddon")
_NAME_WORD_AFTER = re.compile(r"[ \t]+([^\W\d_][^\W\d_'’\-]*(?:[\-'’][^\W\d_]+)*)(?![\w@])")
_CELTIC_SURNAME = re.compile(r"(?:Mc|Mac|O['’])[A-Z][a-z]+$")


def plural_of(word: str, words: frozenset[str]) -> bool:
    """`word` is the plural of one of `words` ("commas" of "comma", "boxes" of "box")."""
    return word.endswith("s") and (word[:-1] in words or (word.endswith("es") and word[:-2] in words))


def listed_name(word: str) -> bool:
    """A lower-case word on the lower-case first- or last-name lists (`names.lower_names`)."""
    first, last, _ = lower_names()
    return word in first or word in last


def _written_with_capitals(text: str) -> bool:
    """The text opens with a capital letter: its writer capitalises (chat that capitalises only "I" does not: "my
    name is tomas eriksen and I need help")."""
    first = next((c for c in text if c.isalpha()), "")
    return first.isupper()


def names_a_thing(text: str, start: int, end: int) -> bool:
    """A PERSON span that names a thing: an eponym before a medical term, or up to three words between an article
    and a lower-case word (see the module docstring)."""
    if _EPONYM_NEXT.match(text, end) or _BARE_POSSESSIVE.match(text, end):
        return True
    if _GOODS_NEXT.match(text, end) and not _DATIVE_BEFORE.search(text[max(0, start - 12):start]):
        return True
    if " " in text[start:end].strip() and _EPONYM_NEXT.match(text, text.rindex(" ", start, end), end):
        # the span took the term in ("Hashimoto thyroiditis" tagged as one name), unless the term is a surname
        # after a first name ("Customer James Law reports")
        words = text[start:end].split()
        if not (len(words) == 2 and words[1] in faker_names()[1] and words[0] in faker_names()[0]
                or _STREET_AFTER.match(text, end)):  # "Martinez Mall St." is a street of an address
            return True
    value = text[start:end]
    if ((_OWNED_CONDITION_NEXT.match(text, end) or _SURNAME_TERM_NEXT.match(text, end)) and " " not in value.strip()
            and value.strip() not in faker_names()[0] and not _TITLE_BEFORE.search(text[max(0, start - 8):start])):
        return True
    if (_A_BEFORE.search(text[max(0, start - 12):start]) and _CLAUSE_END_AFTER.match(text, end)
            and not _TITLE_IN.match(value)):
        return True  # "a Jack Russell, wound cleaned", "was an Aston Martin, repair ...": a kind of thing
    if _STORM_IN.match(value):
        return True  # spaCy takes the word in ("Storm Ciara")
    company = _COMPANY_BEFORE.search(text[max(0, start - 30):start])
    if company and company.group(1) not in faker_names()[0] and company.group(1).lower() not in _TITLE_WORDS:
        return True  # the second name of a firm ("Marks & Spencer"; "John & Mary Smith", "Mr & Mrs Lee" are people)
    double = _DOUBLE_EPONYM_NEXT.match(text, end)
    if double and (double.group(1) or "-" in value.strip("-")):
        return True
    if _THING_BEFORE.search(text[max(0, start - 30):_title_start(text, start)]):
        return True
    short = len(text[start:end].split()) <= 3
    article = _ARTICLE_BEFORE.search(text[max(0, start - 12):_title_start(text, start)])
    if article and article.group().strip().lower() == "that" and _VERB_AFTER.match(text, end):
        return False  # "that" opens a clause whose subject is the name ("a note that Marie Pfeifer is allowed")
    return short and bool(article) and bool(_LOWER_AFTER.match(text, end))


#: a capitalised word right before a PERSON span, itself after a word on the same line (not a sentence start)
_NAME_WORD_BEFORE = re.compile(r"(?<=[^\W\d_][ \t,])[ \t]*([A-Z][^\W\d_'’\-]*[a-z][^\W\d_'’\-]*) $")


@functools.cache
def _stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS)


_MORE_TITLES = {"sir", "dame", "mister", "doctor", "nurse", "madam", "lord", "lady", "saint", "st", "professor",
                "president", "senator", "sen", "mayor", "governor", "judge", "captain", "coach", "teacher", "officer",
                "sergeant", "general", "minister", "king", "queen", "prince", "princess", "pope", "father", "sister",
                "brother", "uncle", "aunt", "reverend", "rev", "chairman", "ceo", "director", "agent", "detective"}


def _extend_left(text: str, start: int) -> int:
    """Start of a PERSON span taken one capitalised word further left when spaCy tagged only the surname ("Could
    Maika Petrov please ..."): not past a stop word, a title or a greeting word."""
    m = _NAME_WORD_BEFORE.search(text, max(0, start - 30), start)
    if not m:
        return start
    word = m.group(1)
    if word.lower() in _stop_words() or word.lower() in _NOT_NAME_WORDS or word.lower() in _MORE_TITLES:
        return start
    return m.start(1)


_TITLE_BEFORE = re.compile(r"(?i)\b(?:dr|mr|mrs|ms|miss|st|saint)\.?\s+$")


def _title_start(text: str, start: int) -> int:
    """Where a title right before the span starts ("sell Dr Pepper": the span is "Pepper"), else the span start."""
    m = _TITLE_BEFORE.search(text[max(0, start - 8):start])
    return max(0, start - 8) + m.start() if m else start


def resolve_overlaps(spans: list[PiiEntity]) -> list[PiiEntity]:
    """Non-overlapping spans, sorted by start (rules in the module docstring)."""
    # Same-type overlaps, and ADDRESS with LOCATION, merge first.
    merged: list[PiiEntity] = []
    for s in sorted(spans, key=lambda s: (s.start, -s.end)):
        for i, m in enumerate(merged):
            if s.start < m.end and m.start < s.end and _mergeable(s.type, m.type):
                kind = "ADDRESS" if "ADDRESS" in (s.type, m.type) else m.type
                merged[i] = PiiEntity(kind, min(s.start, m.start), max(s.end, m.end), max(s.score, m.score))
                break
        else:
            merged.append(s)
    # A PERSON span that covers another NER guess and more ("Ludmila Gorska" over spaCy's LOCATION "Gorska")
    # wins over it: otherwise the rest of the name is left in the text.
    persons = [s for s in merged if s.type == "PERSON"]
    merged = [s for s in merged if s.type == "PERSON" or s.type not in NER_TYPES or not any(
        p.start <= s.start and s.end <= p.end and (p.end - p.start) > (s.end - s.start) for p in persons)]
    ranked = sorted(merged, key=lambda s: (s.type not in NER_TYPES, s.score, s.end - s.start), reverse=True)
    kept: list[PiiEntity] = []
    for s in ranked:
        if all(s.end <= k.start or k.end <= s.start for k in kept):
            kept.append(s)
    return sorted(kept, key=lambda s: s.start)


def _mergeable(a: str, b: str) -> bool:
    return a == b or {a, b} == {"ADDRESS", "LOCATION"}
