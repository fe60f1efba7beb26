"""The presidio analyzer, built once per process, and batch analysis of many texts with it.

`analyze_texts(texts, config)` is the one entry point: it skips texts without letters or digits, analyses each
distinct text once (system prompts repeat in every row), runs spaCy's `nlp.pipe` in batches, and, for inputs of
`parallel_min_turns` texts or more, spreads the work over a pool of processes (one per idle core, see
`usable_workers`). Workers are forked
after the analyzer is built, so they inherit it instead of loading spaCy again; where fork is unavailable each
worker builds its own once.

Speed choices (measured in bench/pii.py): spaCy runs only its `ner` component (the small English model's NER has
its own embedding layer; tagger, parser and lemmatizer cost 45% of the time and presidio needs only tokens,
entities and lower-cased words for context), recognizers whose entities cannot occur in a text (no digit, no
`@`) are not run on it, and only the recognizers for the configured entities are loaded. Per text, presidio's
`AnalyzerEngine.analyze` is not called: its per-call machinery (registry lookup, NlpArtifacts with token/lemma/
keyword lists, a deep copy of every result for context enhancement) cost as much CPU as the recognizers and
post-processing together; `Analyzer.analyze_docs` runs the same recognizers and the same context rule directly
(identical results on the benchmark set; spaCy's NER is now ~75% of the time).
"""

from __future__ import annotations

import atexit
import bisect
import functools
import logging
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor

from curate.pii.config import PiiConfig, PiiEntity

log = logging.getLogger("curate.pii")

#: spaCy labels mapped to our entity types (presidio's mapping; ORG only when ORGANIZATION is asked for).
SPACY_LABELS = {"PERSON": "PERSON", "PER": "PERSON", "NORP": "NRP", "FAC": "LOCATION", "LOC": "LOCATION",
                "GPE": "LOCATION", "ORG": "ORGANIZATION", "DATE": "DATE_TIME", "TIME": "DATE_TIME"}
#: Entities that always contain a digit, so texts without digits skip their recognizers.
NEEDS_DIGIT = {"PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "DATE_OF_BIRTH",
               "MEDICAL_RECORD_NUMBER", "ORDER_NUMBER", "CLAIM_NUMBER", "POLICY_NUMBER", "ACCOUNT_NUMBER",
               "US_DRIVER_LICENSE", "ADDRESS"}
#: Recognizers of entities that may lack a digit whose every pattern needs one (presidio's DateRecognizer: numeric
#: dates; month-name dates come from spaCy): not run on texts without a digit.
DIGIT_RECOGNIZERS = {"DateRecognizer"}
_WARM_UP_TEXT = ("Maria Lopez (maria@example.com, 415-555-0100) lives at 12 Main Street, Apt 4, Springfield, IL 62704; "
                 "card 4111 1111 1111 1111, born 3 March 1961 in Lisbon, order number AB-1234, IP 10.0.0.1.")
_HAS_WORD = re.compile(r"[^\W_]")
_HAS_DIGIT = re.compile(r"\d")


_ENGINES: dict[str, Analyzer] = {}
_POOL: ProcessPoolExecutor | None = None
_POOL_WORKERS = 0


def quiet_tldextract() -> None:
    """presidio's email/URL recognizers call tldextract, which would fetch the public-suffix list from the
    internet on first use; point it at the snapshot shipped inside the package instead (offline, deterministic)."""
    import tldextract
    import tldextract.tldextract as tld

    if not getattr(tld.TLD_EXTRACTOR, "_studio_offline", False):
        extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
        extractor._studio_offline = True
        tld.TLD_EXTRACTOR = extractor


class Analyzer:
    """presidio's AnalyzerEngine with our recognizers and an NER-only spaCy pipeline, plus the post-processing
    of `postprocess.py`. Build through `get_analyzer(config)` so each process builds it once."""

    def __init__(self, config: PiiConfig) -> None:
        quiet_tldextract()
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
        from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
        from spacy.lang.en.stop_words import STOP_WORDS

        from curate.pii import recognizers as ours
        from curate.pii.postprocess import PostProcessor

        class NerOnlySpacyEngine(SpacyNlpEngine):
            def load(self) -> None:
                import spacy

                self.nlp = {m["lang_code"]: spacy.load(m["model_name"], exclude=[
                    "tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter"])
                    for m in self.models}
                load_ner_weights(self.nlp["en"], config.ner_weights)
                use_numpy_gemm(self.nlp.values())

            def _doc_to_nlp_artifact(self, doc, language):
                from presidio_analyzer.nlp_engine import NlpArtifacts

                entities, scores = self._get_updated_entities(list(doc.ents), self._get_scores_for_entities(doc))
                artifacts = NlpArtifacts(entities=entities, tokens=doc, tokens_indices=[t.idx for t in doc],
                                         lemmas=[t.lower_ for t in doc], nlp_engine=self, language=language,
                                         scores=scores)
                # presidio drops stop words from the context it searches, but "call", "me", "on" are exactly
                # the words around a phone number; keep every word, drop only punctuation and spaces.
                artifacts.keywords = [t.lower_ for t in doc if not (t.is_punct or t.is_space)]
                return artifacts

        self.config = config
        # Entities of configured reference-number patterns and deny lists are wanted without listing them again.
        wanted = set(config.entities) | {p.entity for p in config.id_patterns} | set(config.deny_list)
        mapping = {label: ent for label, ent in SPACY_LABELS.items() if ent in wanted}
        ignore = [label for label in ("CARDINAL", "EVENT", "LANGUAGE", "LAW", "MONEY", "ORDINAL", "PERCENT",
                                      "PRODUCT", "QUANTITY", "WORK_OF_ART", *SPACY_LABELS) if label not in mapping]
        ner_conf = NerModelConfiguration(model_to_presidio_entity_mapping=mapping, labels_to_ignore=ignore,
                                         low_score_entity_names=[])
        self.nlp_engine = NerOnlySpacyEngine(models=[{"lang_code": "en", "model_name": config.spacy_model}],
                                             ner_model_configuration=ner_conf)
        self.nlp_engine.load()
        registry = RecognizerRegistry(supported_languages=["en"])
        # A snapshot of the model's words as loaded: spaCy adds every string it tokenizes to the live store.
        vocabulary = frozenset(w.lower() for w in self.nlp_engine.nlp["en"].vocab.strings)
        dictionary = english_words(self.nlp_engine.nlp["en"])
        for recognizer in self._recognizers(config, ours, set(STOP_WORDS), vocabulary, dictionary):
            if wanted & set(recognizer.supported_entities):
                registry.add_recognizer(recognizer)
        # Context words may also follow a value ("416 60 039 office"): look two words ahead as well as five back.
        enhancer = LemmaContextAwareEnhancer(context_prefix_count=5, context_suffix_count=2)
        self.engine = AnalyzerEngine(registry=registry, nlp_engine=self.nlp_engine, supported_languages=["en"],
                                     context_aware_enhancer=enhancer)
        supported = set(self.engine.get_supported_entities("en"))
        self.entities = sorted(e for e in wanted if e in supported)
        unknown = wanted - set(self.entities)
        if unknown:
            from studio.errors import StudioError

            raise StudioError(f"redact_pii: no recognizer detects {', '.join(sorted(unknown))}; "
                              f"known entity types: {', '.join(sorted(self.engine.get_supported_entities('en')))}.")
        self.no_digit_entities = [e for e in self.entities if e not in NEEDS_DIGIT]
        self.post = PostProcessor(config, vocabulary, dictionary)
        self._plan(config, wanted)
        # Pay first-use costs (place list, regex caches, spaCy's first batch) here, once: forked workers inherit them.
        from curate.pii.postprocess import known_places

        known_places()
        self.analyze_docs([_WARM_UP_TEXT])

    @staticmethod
    def _recognizers(config: PiiConfig, ours, stop_words: set[str], vocabulary=None, dictionary=None) -> list:
        from presidio_analyzer import PatternRecognizer
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            DateRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
            SpacyRecognizer,
            UrlRecognizer,
            UsSsnRecognizer,
        )

        found = [
            SpacyRecognizer(supported_entities=["PERSON", "LOCATION", "NRP", "DATE_TIME", "ORGANIZATION"]),
            CreditCardRecognizer(), UsSsnRecognizer(), EmailRecognizer(), IbanRecognizer(), IpRecognizer(),
            UrlRecognizer(), DateRecognizer(),
            ours.AddressRecognizer(), ours.PhoneRecognizer(), ours.CardNumberRecognizer(),
            ours.date_of_birth_recognizer(), ours.zip_code_recognizer(), ours.NameAfterKeywordRecognizer(stop_words),
            ours.KnownNameRecognizer(vocabulary, dictionary),
            *ours.id_recognizers(config.id_patterns),
        ]
        for entity, values in config.deny_list.items():
            if values:
                found.append(PatternRecognizer(supported_entity=entity, deny_list=values,
                                               name=f"DenyList{entity.title().replace('_', '')}Recognizer"))
        return found

    def _plan(self, config: PiiConfig, wanted: set[str]) -> None:
        """Precompute what `analyze_docs` runs per text: the spaCy label mapping, and the pattern recognizers for
        each kind of text (with/without a digit, with/without `@`), as presidio's registry would select them."""
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

        conf = self.nlp_engine.ner_model_configuration
        self.ner_score = conf.default_score
        spacy_rec = next((r for r in self.engine.registry.recognizers if isinstance(r, SpacyRecognizer)), None)
        ner_types = set(spacy_rec.supported_entities) & set(self.entities) if spacy_rec else set()
        self.ner_labels = {label: ent for label, ent in conf.model_to_presidio_entity_mapping.items()
                           if label not in conf.labels_to_ignore and ent not in conf.labels_to_ignore
                           and ent in ner_types}
        patterns = [r for r in self.engine.registry.recognizers if not isinstance(r, SpacyRecognizer)]
        self.plans = {}
        for digit in (False, True):
            for at in (False, True):
                entities = set(self.entities if digit else self.no_digit_entities)
                if not at:
                    entities.discard("EMAIL_ADDRESS")
                self.plans[digit, at] = (sorted(entities),
                                         [r for r in patterns if entities & set(r.supported_entities)
                                          and (digit or r.name not in DIGIT_RECOGNIZERS)])

    def analyze_docs(self, texts: list[str]) -> list[list[PiiEntity]]:
        """Analyse texts that all hold a letter or digit, batching spaCy through `nlp.pipe`.

        What presidio's `AnalyzerEngine.analyze` does per text, without its per-call machinery (registry lookup,
        NlpArtifacts, a deep copy of all results for context enhancement): spaCy entities become results with
        the NER configuration's score, each pattern recognizer's `analyze` runs on the text, presidio's
        lemma-context enhancement (`_enhance`) is applied to the results of recognizers with context words, and
        presidio's `remove_duplicates` runs before our post-processing. Same results, a fraction of the cost."""
        from presidio_analyzer import EntityRecognizer, RecognizerResult

        nlp = self.nlp_engine.nlp["en"]
        out = []
        with _blas_controller().limit(limits=1, user_api="blas"):
            docs = list(nlp.pipe(texts, batch_size=self.config.batch_size))
        for text, doc in zip(texts, docs, strict=True):
            entities, recognizers = self.plans[_HAS_DIGIT.search(text) is not None, "@" in text]
            results = [RecognizerResult(self.ner_labels[ent.label_], ent.start_char, ent.end_char, self.ner_score)
                       for ent in doc.ents if ent.label_ in self.ner_labels]
            tokens = None
            for recognizer in recognizers:
                found = recognizer.analyze(text=text, entities=entities, nlp_artifacts=None)
                if not found:
                    continue
                if recognizer.context:
                    for r in found:
                        if r.score < 1.0:
                            if tokens is None:
                                tokens = _context_tokens(doc)
                            _enhance(r, recognizer.context, tokens)
                results.extend(found)
            out.append(self.post(text, EntityRecognizer.remove_duplicates(results)))
        return out


#: presidio's LemmaContextAwareEnhancer settings (defaults), with two words after the value as well as five before
#: (context words may follow a value: "416 60 039 office").
CONTEXT_PREFIX, CONTEXT_SUFFIX, CONTEXT_FACTOR, CONTEXT_MIN_SCORE = 5, 2, 0.35, 0.4


#: The `ner` weights fine-tuned for the studio's domains (scripts/train_person_ner.py), loaded over the spaCy model's.
NER_WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ner_model")


def load_ner_weights(nlp, weights: str) -> None:
    """Put the `ner` weights that `PiiConfig.ner_weights` names into `nlp` (`model` keeps the spaCy model's own)."""
    if weights == "model":
        return
    path = NER_WEIGHTS if weights == "studio" else weights
    if not os.path.isfile(os.path.join(path, "model")):
        from studio.errors import StudioError

        raise StudioError(f"redact_pii: ner_weights {weights!r}: {path} holds no spaCy `ner` component (no `model` "
                          "file); give a folder written by scripts/train_person_ner.py, or `model` for the spaCy "
                          "model's own weights.")
    nlp.get_pipe("ner").from_disk(path, exclude=["vocab"])   # the words stay the spaCy model's


def english_words(nlp) -> frozenset[str]:
    """The words of the spaCy model's lemmatizer index (WordNet's nouns, verbs, adjectives and adverbs, ~83,000) and
    its irregular forms (~6,000), read from the model folder: the NER-only pipeline does not load the lemmatizer.
    Empty where the model has none."""
    from spacy.lookups import Lookups

    path = nlp.path / "lemmatizer" / "lookups" if nlp.path else None
    if path is None or not path.exists():
        return frozenset()
    lookups = Lookups().from_disk(path)
    if not lookups.has_table("lemma_index"):
        return frozenset()
    index = lookups.get_table("lemma_index")
    words = {w for pos in index.keys() for w in index[pos]}
    if lookups.has_table("lemma_exc"):  # irregular forms ("media", "geese") are words too
        exceptions = lookups.get_table("lemma_exc")
        words.update(form for pos in exceptions.keys() for form in exceptions[pos])
    return frozenset(words)


def use_numpy_gemm(pipelines) -> None:
    """Matrix products of the spaCy models through numpy's BLAS (OpenBLAS) instead of thinc's bundled BLIS:
    the NER's embedding/CNN layers are most of its time and run faster so, with the same entities (figures in
    bench/README.md `## pii`). `analyze_docs`
    limits BLAS to one thread while spaCy runs: parallelism comes from processes, and a second BLAS thread on
    a loaded 2-core machine only waits."""
    from thinc.api import NumpyOps

    ops = NumpyOps(use_blis=False)
    for nlp in pipelines:
        for _, pipe in nlp.pipeline:
            model = getattr(pipe, "model", None)
            if model is not None and hasattr(model, "walk"):
                for node in model.walk():
                    node.ops = ops


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _context_tokens(doc) -> tuple[list[int], list[str], set[str]]:
    """Token end offsets, lower-cased words, and the words that count as context (all but punctuation/space:
    presidio would drop stop words, but "call", "me", "on" are exactly the words around a phone number)."""
    ends = [t.idx + len(t) for t in doc]
    lowers = [t.lower_ for t in doc]
    keywords = {t.lower_ for t in doc if not (t.is_punct or t.is_space)}
    return ends, lowers, keywords


def _enhance(result, context: list[str], tokens: tuple[list[int], list[str], set[str]]) -> None:
    """presidio's lemma context enhancement for one result, in place: collect up to CONTEXT_PREFIX words before
    the token where the match starts and CONTEXT_SUFFIX after it (plus that token itself), and if a recognizer
    context word is a substring of one of them, add CONTEXT_FACTOR to the score (at least CONTEXT_MIN_SCORE,
    at most 1)."""
    ends, lowers, keywords = tokens
    index = bisect.bisect_right(ends, result.start)
    if index >= len(ends):
        return
    words = []
    for step, count in ((-1, CONTEXT_PREFIX), (1, CONTEXT_SUFFIX)):
        i, remaining = index, count + 1
        while 0 <= i < len(lowers) and remaining > 0:
            if lowers[i] in keywords:
                words.append(lowers[i])
                remaining -= 1
            i += step
    for word in context:
        w = word.lower()
        if any(w in k for k in words):
            result.score = min(max(result.score + CONTEXT_FACTOR, CONTEXT_MIN_SCORE), 1.0)
            return


def get_analyzer(config: PiiConfig) -> Analyzer:
    """The analyzer for this config, built on first use in this process and kept."""
    key = config.engine_key()
    if key not in _ENGINES:
        log.info("building the PII analyzer (spaCy %s, %d entity types)", config.spacy_model, len(config.entities))
        _ENGINES[key] = Analyzer(config)
    return _ENGINES[key]


def _worker_analyze(config_json: str, texts: list[str]) -> list[list[PiiEntity]]:
    return get_analyzer(PiiConfig.model_validate_json(config_json)).analyze_docs(texts)


def _pool(workers: int) -> ProcessPoolExecutor:
    global _POOL, _POOL_WORKERS
    if _POOL is None or _POOL_WORKERS != workers:
        shutdown_pool()
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        _POOL = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))
        _POOL_WORKERS = workers
    return _POOL


@atexit.register
def shutdown_pool() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(cancel_futures=True)
        _POOL = None


def worker_count(config: PiiConfig) -> int:
    return config.workers if config.workers > 0 else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                       else os.cpu_count() or 1)


def usable_workers(config: PiiConfig, n_texts: int) -> int:
    """Processes worth starting for `n_texts` distinct texts: one below `parallel_min_turns` or two spaCy
    batches per worker; with `workers: 0` (auto), no more than the cores the other runnable processes leave idle,
    by the 1-minute load average (GNU make's `-l` rule; this process counts itself once). On this project's
    shared 2-core machine a second worker on a busy core made the benchmark slower, not faster (bench/README.md)."""
    workers = worker_count(config)
    if n_texts < config.parallel_min_turns:
        return 1
    workers = min(workers, max(1, n_texts // (2 * max(1, config.batch_size))))
    if config.workers == 0 and workers > 1 and hasattr(os, "getloadavg"):
        others = max(0.0, os.getloadavg()[0] - 1.0)
        workers = max(1, min(workers, int(worker_count(config) - others + 0.5)))
    return workers


def analyze_texts(texts: list[str], config: PiiConfig) -> list[list[PiiEntity]]:
    """Entities per text (offsets into that text). Texts without a letter or digit get [] without analysis."""
    analyzer = get_analyzer(config)
    distinct: dict[str, int] = {}
    for text in texts:
        if text and _HAS_WORD.search(text) and text not in distinct:
            distinct[text] = len(distinct)
    todo = list(distinct)
    workers = usable_workers(config, len(todo))
    if workers > 1:
        # Interleaved chunks keep the workers' loads even when long texts cluster in the input; each chunk holds
        # at least two spaCy batches.
        n_chunks = max(workers, min(workers * 4, len(todo) // (2 * max(1, config.batch_size))))
        chunks = [todo[i::n_chunks] for i in range(n_chunks)]
        cfg = config.model_dump_json()
        results: list[list[PiiEntity]] = [[] for _ in todo]
        for i, chunk_result in enumerate(_pool(workers).map(_worker_analyze, [cfg] * n_chunks, chunks)):
            results[i::n_chunks] = chunk_result
    else:
        results = analyzer.analyze_docs(todo)
    return [results[distinct[t]] if t in distinct else [] for t in texts]
