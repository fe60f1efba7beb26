"""MinHash + LSH over whole batches: shingles → signatures → band keys → candidate pairs → clusters.

The core of the `near_dedupe` step, kept free of step plumbing so the Ray engine can reuse it (it shuffles
by the band keys of `band_keys`). Every stage works on a whole batch: the per-byte, per-shingle and per-pair
loops (word hashing, n-grams, signatures, set intersection, union-find) are compiled with numba
(`curate._kernels`), the rest is NumPy and Polars; no Python loop runs per shingle or per document (the
`python_shingles` / `datasketch_*` functions are the reference path, kept for `impl: datasketch` and tests).

Sketch: one-permutation hashing with optimal densification (Li, Owen & Zhang, "One Permutation Hashing",
NeurIPS 2012; Shrivastava, "Optimal Densification for Fast and Accurate Minwise Hashing", ICML 2017).
Each shingle is hashed once; its hash picks one of `num_perm` bins and the bin keeps the minimum. Empty
bins (documents with fewer shingles than bins) borrow the value of a bin chosen by a fixed hash sequence,
so two documents agree in a bin with probability equal to their Jaccard similarity, as with `num_perm`
independent permutations (datasketch's MinHash) — at the cost of one hash per shingle instead of
`num_perm`.

LSH: `optimal_param` picks bands × rows for a threshold exactly as datasketch's
`datasketch.lsh._optimal_param` does (minimise the weighted false-positive and false-negative areas under
the S-curve 1 - (1 - s^r)^b).

Shingles, the same in the fast and the reference path:
- `word`: lower-cased text split into words = runs of ASCII letters, digits, `_` and non-ASCII characters
  (so words of any script stay whole; ASCII punctuation and whitespace separate); a shingle is `size`
  consecutive words.
- `char`: lower-cased text with whitespace runs collapsed to one space and trimmed; a shingle is `size`
  consecutive characters.
A text shorter than `size` units (but not empty) is one shingle; an empty text has none and is never a
near-duplicate of anything.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from curate import _kernels

Unit = Literal["word", "char"]

_U64 = np.uint64
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_POLY = _U64(0x9E3779B1F0F5A1B3)  # odd multiplier for polynomial combination

#: Default shingle size per unit (word 3-grams, character 5-grams).
DEFAULT_SIZE = {"word": 3, "char": 5}


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (Steele, Lea & Flood 2014): a bijective, well-mixing map of uint64 values."""
    x = x.astype(_U64, copy=True)
    x ^= x >> _U64(30)
    x *= _MIX1
    x ^= x >> _U64(27)
    x *= _MIX2
    x ^= x >> _U64(31)
    return x


def _seed_word(seed: int, salt: int) -> np.uint64:
    return mix64(np.array([(seed * 0x9E3779B1 + salt) & 0xFFFFFFFFFFFFFFFF], dtype=_U64))[0]


@dataclass
class Shingles:
    """Shingle hashes of a batch in CSR form: document d owns `hashes[offsets[d]:offsets[d + 1]]`.

    Hashes are uint64; a document's slice may repeat a value (sets are taken where it matters).
    """

    offsets: np.ndarray  # int64, length n + 1
    hashes: np.ndarray  # uint64

    @property
    def n(self) -> int:
        return len(self.offsets) - 1

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def slice(self, start: int, stop: int) -> Shingles:
        """Documents start..stop-1 (a view of the hashes; offsets rebased to 0)."""
        off = self.offsets[start: stop + 1]
        return Shingles(off - off[0], self.hashes[off[0]: off[-1]])

    def take(self, docs: np.ndarray) -> Shingles:
        """The documents `docs` (indices), in that order, as a new Shingles."""
        return Shingles(*_kernels.take_docs(self.offsets, self.hashes, np.asarray(docs, dtype=np.int64)))

    def local_view(self, docs: np.ndarray) -> ShingleView:
        """The documents `docs` without copying their hashes (for readers in the same process: `exact_jaccard`)."""
        return ShingleView(self, np.asarray(docs, dtype=np.int64))

    @staticmethod
    def concat(parts: list[Shingles]) -> Shingles:
        if not parts:
            return Shingles(np.zeros(1, dtype=np.int64), np.zeros(0, dtype=_U64))
        if len(parts) == 1:
            return parts[0]
        counts = np.concatenate([p.counts for p in parts])
        return Shingles(_offsets(counts), np.concatenate([p.hashes for p in parts]))


@dataclass
class ShingleView:
    """Documents `docs` of `base`, in that order, sharing its hashes (`Shingles.local_view`)."""

    base: Shingles
    docs: np.ndarray


def _offsets(lengths: np.ndarray) -> np.ndarray:
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def _utf8_buffer(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(offsets int64 n+1, bytes uint8) of a string Series, via its Arrow buffers (no per-row Python)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pc.cast(texts.fill_null("").to_arrow(), pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    if data_buf is None:
        return np.zeros(len(arr) + 1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    data = np.frombuffer(data_buf, dtype=np.uint8)[offsets[0]: offsets[-1]]
    return offsets - offsets[0], data


# A byte belongs to a word when it is an ASCII letter, digit or underscore, or any byte of a non-ASCII
# character (so words in any script stay whole; non-ASCII punctuation is part of a word).
_WORD_BYTE = np.zeros(256, dtype=bool)
_WORD_BYTE[[*range(48, 58), *range(97, 123), 95, *range(128, 256)]] = True
_WORD_BYTE[range(65, 91)] = True


#: Byte → byte with ASCII capitals lower-cased (every other byte unchanged).
_LOWER_ASCII = np.arange(256, dtype=np.uint8)
_LOWER_ASCII[65:91] += 32


def _word_shingles(texts: pl.Series, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, hashes) of the word shingles of the lower-cased texts (`curate._kernels.word_shingles`).

    A word's hash packs its first 8 bytes (little-endian), xors in its length << 58 and a seed word, mixes
    (splitmix64), then folds each further 8 bytes as mix(acc * P ^ chunk). Pure-ASCII texts are lower-cased
    inside that compiled pass; only texts with other characters go through Polars' Unicode `to_lowercase`
    first (same result, without copying every text once more)."""
    texts = texts.fill_null("")
    offsets, data = _utf8_buffer(texts)
    non_ascii = np.flatnonzero((texts.str.len_bytes() != texts.str.len_chars()).to_numpy())
    alt = np.full(len(texts), -1, dtype=np.int64)
    if len(non_ascii):
        alt[non_ascii] = np.arange(len(non_ascii))
        alt_offsets, alt_data = _utf8_buffer(texts.gather(non_ascii).str.to_lowercase())
    else:
        alt_offsets, alt_data = np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    return _kernels.word_shingles(offsets, data, alt_offsets, alt_data, alt, _WORD_BYTE.view(np.uint8),
                                  _LOWER_ASCII, _seed_word(seed, 0x77), size, _seed_word(seed, size))


def _char_units(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """One uint64 per character (its UTF-8 bytes packed, times an odd constant), and characters per text."""
    normalized = texts.fill_null("").str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()
    offsets, data = _utf8_buffer(normalized)
    lead = (data & 0xC0) != 0x80
    chars_before = np.zeros(len(data) + 1, dtype=np.int64)
    np.cumsum(lead, out=chars_before[1:])
    lengths = np.diff(chars_before[offsets])
    pos = np.flatnonzero(lead)
    padded = np.concatenate([data, np.zeros(3, dtype=np.uint8)]).astype(np.uint32)
    first = padded[pos]
    value = first | (padded[pos + 1] << 8) | (padded[pos + 2] << 16) | (padded[pos + 3] << 24)
    nbytes = 1 + (first >= 0xC0).astype(np.uint32) + (first >= 0xE0) + (first >= 0xF0)
    mask = np.where(nbytes >= 4, np.uint32(0xFFFFFFFF), (np.uint32(1) << (nbytes * 8)) - 1)
    return (value & mask).astype(_U64) * _GOLDEN, lengths


def shingle_hashes(texts: pl.Series, unit: Unit = "word", size: int | None = None, seed: int = 1) -> Shingles:
    """Hashes of the shingles of every text in a batch: lower-cased in Polars, units and n-grams hashed in one
    compiled pass per document (`curate._kernels`). A shingle's hash is mix((u_1 * P^(s-1) + ... + u_s) ^ seed
    word) over its `s` unit hashes (a text shorter than `size` units: all of its units)."""
    size = size or DEFAULT_SIZE[unit]
    if size < 1:
        raise ValueError(f"shingle size must be at least 1, got {size}")
    if unit not in ("word", "char"):
        raise ValueError(f"unknown shingle unit {unit!r}; choose word or char")
    if unit == "word":
        return Shingles(*_word_shingles(texts, size, seed))
    units, lengths = _char_units(texts)
    return Shingles(*_kernels.ngrams(units, lengths.astype(np.int64), size, _seed_word(seed, size)))


# ------------------------------------------------------------------------------------------ signatures


def signatures(shingles: Shingles, num_perm: int = 128, seed: int = 1, out: np.ndarray | None = None) -> np.ndarray:
    """MinHash signatures, an (n, num_perm) uint32 matrix, by one-permutation hashing + optimal densification.

    Each shingle hash x = mix(h ^ salt) goes to bin ((x >> 32) * num_perm) >> 32, which keeps the minimum of
    the low 32 bits. An empty bin i takes the value of bin donor(t, i) for the first attempt t = 0, 1, ... that
    hits a bin the document filled itself; the sequence is the same for every document (consistency), and after
    16 * num_perm attempts ((1 - 1/k)^(16k) < 1e-6 per bin) a bin takes the first filled bin.
    Rows of documents without shingles are all zeros: exclude them (see `has_shingles`) before LSH.
    `out`: an (n, num_perm) uint32 array to fill (e.g. a slice of a larger matrix) instead of a new one.
    """
    n, k = shingles.n, int(num_perm)
    sig = np.empty((n, k), dtype=np.uint32) if out is None else out
    _kernels.signatures(shingles.offsets, shingles.hashes, k, _seed_word(seed, 0x51), _donor_table(k, seed), sig)
    return sig


_DONORS: dict[tuple[int, int], np.ndarray] = {}


def _donor_table(k: int, seed: int) -> np.ndarray:
    """(16k, k) int64: the donor bin of every bin at each attempt of the densification sequence (cached)."""
    key = (k, seed)
    if key not in _DONORS:
        base = _seed_word(seed, 0xD3)
        attempt = np.arange(16 * k, dtype=_U64)[:, None]
        cols = np.arange(k, dtype=_U64)[None, :]
        h = mix64(((cols << _U64(32)) | attempt) ^ base)
        _DONORS[key] = (((h >> _U64(32)) * _U64(k)) >> _U64(32)).astype(np.int64)
    return _DONORS[key]


def has_shingles(shingles: Shingles) -> np.ndarray:
    return shingles.counts > 0


# ------------------------------------------------------------------------------------------------- LSH


@functools.lru_cache(maxsize=64)  # ~40 ms of integration; a staged step asks in two stages
def optimal_param(threshold: float, num_perm: int, false_positive_weight: float = 0.5,
                  false_negative_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false-positive and false-negative probability areas.

    The same search as datasketch 2.0 `datasketch.lsh._optimal_param` (which integrates with
    scipy.integrate.quad); here every (b, r) with b·r ≤ num_perm is evaluated at once on a fine grid (Simpson's
    rule), and ties go to the first in datasketch's order (b, then r, ascending).
    """
    b, r = zip(*[(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)], strict=True)
    bands = np.array(b, dtype=np.float64)[:, None]
    rows = np.array(r, dtype=np.float64)[:, None]
    lo = np.linspace(0.0, threshold, 1001)[None, :]
    hi = np.linspace(threshold, 1.0, 1001)[None, :]

    def simpson(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        h = x[0, 1] - x[0, 0]
        return h / 3 * (y[:, 0] + y[:, -1] + 4 * y[:, 1:-1:2].sum(axis=1) + 2 * y[:, 2:-1:2].sum(axis=1))

    fp = simpson(1 - (1 - lo**rows) ** bands, lo)
    fn = simpson((1 - hi**rows) ** bands, hi)
    best = int(np.argmin(fp * false_positive_weight + fn * false_negative_weight))
    return b[best], r[best]


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64: a hash of each band's `rows` signature values, salted by the band's index so keys of
    different bands never meet. Documents sharing a key in any band are candidate pairs."""
    if bands * rows > sig.shape[1]:
        raise ValueError(f"{bands} bands x {rows} rows need {bands * rows} signature values, have {sig.shape[1]}")
    salts = mix64(np.arange(1, bands + 1, dtype=_U64))
    return _kernels.band_keys(np.ascontiguousarray(sig), bands, rows, salts)


def estimated_jaccard(sig: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Share of equal signature values per pair (the MinHash estimate of Jaccard similarity)."""
    if len(pairs) == 0:
        return np.zeros(0)
    pairs = np.asarray(pairs, dtype=np.int64)
    return _kernels.estimated_jaccard(np.ascontiguousarray(sig), pairs[:, 0].copy(), pairs[:, 1].copy())


def exact_jaccard(shingles: Shingles | ShingleView, pairs: np.ndarray) -> np.ndarray:
    """Exact Jaccard similarity of the shingle sets of each pair (|A ∩ B| / |A ∪ B|; 0 when both are empty).

    Takes the raw shingle hashes (repeats inside a document count once). Each pair is turned so that its
    document met in more pairs comes first, and the pairs are grouped by it: one compiled pass
    (`curate._kernels.exact_jaccard`) then hashes that document once per group and only probes with the
    others (star candidates and representative–member pairs share their first document), so no sorted sets are
    needed. Exact up to collisions of the 64-bit shingle hashes.
    """
    if len(pairs) == 0:
        return np.zeros(0)
    pairs = np.asarray(pairs, dtype=np.int64)
    if isinstance(shingles, ShingleView):
        shingles, pairs = shingles.base, shingles.docs[pairs]
    seen = np.bincount(pairs.ravel())
    first, second = seen[pairs[:, 0]], seen[pairs[:, 1]]
    turn = (second > first) | ((second == first) & (pairs[:, 1] < pairs[:, 0]))
    a = np.where(turn, pairs[:, 1], pairs[:, 0])
    b = np.where(turn, pairs[:, 0], pairs[:, 1])
    order = np.argsort(a, kind="stable")
    out = np.empty(len(pairs))
    out[order] = _kernels.exact_jaccard(shingles.offsets, shingles.hashes, a[order], b[order])
    return out


# ------------------------------------------------------------------------------------------- clusters


def connected_components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Union-find over the pairs (compiled, `curate._kernels.components`): each document's label is the
    smallest index in its component."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return _kernels.components(n, pairs[:, 0].copy(), pairs[:, 1].copy())


def label_components(n: int, pairs: np.ndarray) -> np.ndarray:
    """`connected_components` without compiled code (no numba start-up, ~0.5 s of CPU in a fresh process), for
    small shallow graphs such as the Ray driver's union of spanning forests: every node takes the smallest label
    among its edges' ends, then labels jump to their label's label, until nothing changes."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    labels = np.arange(n, dtype=np.int64)
    a, b = pairs[:, 0], pairs[:, 1]
    while True:
        low = np.minimum(labels[a], labels[b])
        new = labels.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        new = new[new]
        if np.array_equal(new, labels):
            return labels
        labels = new


def representatives(labels: np.ndarray, quality: np.ndarray | None = None) -> np.ndarray:
    """Index of the row each row's cluster keeps: highest `quality` (missing or NaN counts as lowest), ties and
    no quality → the first row in input order. Deterministic for a given input."""
    n = len(labels)
    frame = pl.DataFrame({"row": np.arange(n, dtype=np.int64), "label": labels})
    if quality is None:
        key = [pl.col("row")]
        desc = [False]
    else:
        frame = frame.with_columns(pl.Series("q", quality, dtype=pl.Float64).fill_nan(None))
        key, desc = [pl.col("q"), pl.col("row")], [True, False]
    rep = pl.col("row").sort_by(key, descending=desc, nulls_last=True).first().over("label")
    return frame.select(rep).to_series().to_numpy().astype(np.int64)


# ------------------------------------------------------------------------------------ reference path


_WORD_RE = re.compile("[0-9A-Za-z_\u0080-\U0010FFFF]+")
_SPACE_RE = re.compile(r"\s+")


def python_shingles(text: str | None, unit: Unit = "word", size: int | None = None) -> set[str]:
    """The shingle set of one text in plain Python: the definition the fast path implements on batches."""
    size = size or DEFAULT_SIZE[unit]
    text = (text or "").lower()
    if unit == "word":
        units: list[str] | str = _WORD_RE.findall(text)
        joiner = " "
    else:
        units = _SPACE_RE.sub(" ", text).strip()
        joiner = ""
    if not units:
        return set()
    if len(units) < size:
        return {joiner.join(units)}
    return {joiner.join(units[i: i + size]) for i in range(len(units) - size + 1)}


def datasketch_pairs(sets: list[set[str]], threshold: float, num_perm: int, seed: int = 1) -> np.ndarray:
    """Candidate pairs from datasketch's MinHash + MinHashLSH (the reference implementation), (p, 2) int64."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    sketches: dict[int, MinHash] = {}
    for i, shingles in enumerate(sets):
        if not shingles:
            continue
        m = MinHash(num_perm=num_perm, seed=seed)
        m.update_batch([s.encode("utf-8") for s in shingles])
        sketches[i] = m
        lsh.insert(i, m)
    found = {(min(i, j), max(i, j)) for i, m in sketches.items() for j in lsh.query(m) if j != i}
    return np.array(sorted(found), dtype=np.int64).reshape(-1, 2)


def set_jaccard(sets: list[set[str]], pairs: np.ndarray) -> np.ndarray:
    out = np.empty(len(pairs))
    for k, (i, j) in enumerate(pairs.tolist()):
        a, b = sets[i], sets[j]
        out[k] = len(a & b) / len(a | b) if a or b else 0.0
    return out


def load_kernels() -> None:
    """Start numba's runtime and load every compiled kernel of the word path now, as a compiled extension loads
    its functions at import: the first call of any compiled function starts the runtime (~0.5 s of CPU), and
    each kernel's machine code is loaded from its on-disk cache at its first call (with the text buffers'
    import of pyarrow.compute, ~0.1 s more). Otherwise that happens inside the first batch's work. Not done at
    import: a process that only builds the step (the Ray driver) never pays it."""
    shingles = shingle_hashes(pl.Series(["a b c d", "a b c e"]), "word", 3, 1)
    sig = signatures(shingles, 8, 1)
    pairs = np.array([[0, 1]], dtype=np.int64)
    band_keys(sig, 2, 4)
    estimated_jaccard(sig, pairs)
    exact_jaccard(shingles, pairs)
    shingles.take(np.array([1, 0]))
    connected_components(2, pairs)
