"""Compiled loops (numba) for the hot inner parts of `curate.minhash`: word hashing, n-gram combination,
one-permutation signatures with densification, band keys, estimates, exact set intersection and union-find.

Each kernel computes exactly the values of the NumPy formulation documented in `curate.minhash` (the same
hash functions, the same order of operations, wrapping uint64 arithmetic), one document or one pair at a time
in a plain loop instead of whole-batch array passes: no temporaries, one read of each byte or hash.
tests/test_near_dedupe.py checks them against the NumPy reference functions on real text.

Compiled on first use and cached on disk (`cache=True`: next to this file in `__pycache__`, or in
$NUMBA_CACHE_DIR), so only the first process on a machine pays the compile (a few seconds per kernel); every
process pays numba's runtime start-up (~0.3-0.5 s, the first call of any compiled function) and the loading of
the kernels from that cache once, at its first call (or up front with `curate.minhash.load_kernels`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_U64 = np.uint64
MIX1 = _U64(0xBF58476D1CE4E5B9)
MIX2 = _U64(0x94D049BB133111EB)
POLY = _U64(0x9E3779B1F0F5A1B3)
_S27, _S30, _S31, _S32, _S58 = _U64(27), _U64(30), _U64(31), _U64(32), _U64(58)
_LOW32 = _U64(0xFFFFFFFF)


@njit(cache=True, inline="always")
def _mix(x):
    """splitmix64 finaliser, as `curate.minhash.mix64`."""
    x ^= x >> _S30
    x *= MIX1
    x ^= x >> _S27
    x *= MIX2
    x ^= x >> _S31
    return x


@njit(cache=True, inline="always")
def _word_run(data, i, end, word_byte, lower):
    """End of the word starting at `i`, and the hash input of its first 8 lower-cased bytes (little-endian)."""
    s = i
    acc = _U64(0)
    while i < end and word_byte[data[i]] and i - s < 8:
        acc |= _U64(lower[data[i]]) << _U64(8 * (i - s))
        i += 1
    while i < end and word_byte[data[i]]:
        i += 1
    return i, acc


@njit(cache=True, inline="always")
def _load_lower(data, pos, m, lower):
    v = _U64(0)
    for j in range(m):
        v |= _U64(lower[data[pos + j]]) << _U64(8 * j)
    return v


@njit(cache=True)
def word_shingles(offsets, data, alt_offsets, alt_data, alt, word_byte, lower, seed_word, size, final_word):
    """(offsets, hashes) of the word shingles of every document, in one pass per document: the document's word
    hashes go to a scratch buffer, then its n-grams are combined from there (see `ngrams` for the n-gram hash).

    Document d is read from (`offsets`, `data`), or from (`alt_offsets`, `alt_data`) at index `alt[d]` when that
    is >= 0 (documents with non-ASCII text, lower-cased beforehand by Unicode rules); ASCII letters are
    lower-cased here through the byte table `lower`. A word is a maximal run of bytes with `word_byte[b]`; its
    hash packs its first 8 bytes, xors in its length (<< 58) and the seed word, mixes, then folds each further
    8 bytes as mix(acc * P ^ chunk).
    """
    n = len(offsets) - 1
    words = np.zeros(n, dtype=np.int64)
    for d in range(n):  # pass 1, branch-free: count word starts
        if alt[d] >= 0:
            buf, s0, e0 = alt_data, alt_offsets[alt[d]], alt_offsets[alt[d] + 1]
        else:
            buf, s0, e0 = data, offsets[d], offsets[d + 1]
        prev = 0
        c = 0
        for i in range(s0, e0):
            w = word_byte[buf[i]]
            c += w & (prev ^ 1)
            prev = w
        words[d] = c
    out_off = np.zeros(n + 1, dtype=np.int64)
    longest = 0
    for d in range(n):
        m = words[d]
        out_off[d + 1] = out_off[d] + (m - size + 1 if m >= size else (1 if m > 0 else 0))
        longest = max(longest, m)
    out = np.empty(out_off[n], dtype=np.uint64)
    units = np.empty(longest, dtype=np.uint64)
    for d in range(n):
        if alt[d] >= 0:
            buf, i, end = alt_data, alt_offsets[alt[d]], alt_offsets[alt[d] + 1]
        else:
            buf, i, end = data, offsets[d], offsets[d + 1]
        k = 0
        while i < end:
            if not word_byte[buf[i]]:
                i += 1
                continue
            s = i
            i, acc = _word_run(buf, i, end, word_byte, lower)
            wlen = i - s
            acc ^= _U64(wlen) << _S58
            acc ^= seed_word
            acc = _mix(acc)
            done = 8
            while done < wlen:
                acc = _mix((acc * POLY) ^ _load_lower(buf, s + done, min(wlen - done, 8), lower))
                done += 8
            units[k] = acc
            k += 1
        _ngrams_of(units, k, size, final_word, out, out_off[d])
    return out_off, out


@njit(cache=True, inline="always")
def _ngrams_of(units, m, size, final_word, out, o):
    """The n-gram hashes of one document's `m` unit hashes `units[:m]`, written to `out[o:]`."""
    if m >= size:
        for i in range(m - size + 1):
            acc = units[i]
            for j in range(1, size):
                acc = acc * POLY + units[i + j]
            out[o + i] = _mix(acc ^ final_word)
    elif m > 0:
        acc = units[0]
        for j in range(1, m):
            acc = acc * POLY + units[j]
        out[o] = _mix(acc ^ final_word)


@njit(cache=True)
def ngrams(units, lengths, size, final_word):
    """(offsets, hashes) of every run of `size` consecutive units per document (a shorter, non-empty document:
    one hash of all its units), each mix((u_1 * P^(size-1) + ... + u_size) ^ final_word)."""
    n = len(lengths)
    offsets = np.zeros(n + 1, dtype=np.int64)
    for d in range(n):
        m = lengths[d]
        offsets[d + 1] = offsets[d] + (m - size + 1 if m >= size else (1 if m > 0 else 0))
    out = np.empty(offsets[n], dtype=np.uint64)
    u = 0
    for d in range(n):
        _ngrams_of(units[u:], lengths[d], size, final_word, out, offsets[d])
        u += lengths[d]
    return offsets, out


@njit(cache=True)
def signatures(offsets, hashes, k, salt, donors, out):
    """One-permutation MinHash with optimal densification into `out` (n, k) uint32: the values of
    `curate.minhash.signatures`. `donors[t, i]` is bin i's donor at attempt t; after the table's attempts a
    still-empty bin takes the first filled bin."""
    n = len(offsets) - 1
    attempts = donors.shape[0]
    kk = _U64(k)
    filled = np.zeros(k, dtype=np.bool_)
    first = 0
    for d in range(n):
        row = out[d]
        s, e = offsets[d], offsets[d + 1]
        if s == e:
            row[:] = 0
            continue
        row[:] = 0xFFFFFFFF
        filled[:] = False
        for p in range(s, e):
            x = _mix(hashes[p] ^ salt)
            b = np.int64(((x >> _S32) * kk) >> _S32)
            v = np.uint32(x & _LOW32)
            if v < row[b]:
                row[b] = v
            filled[b] = True
        for b in range(k):
            if filled[b]:
                first = b
                break
        for b in range(k):
            if filled[b]:
                continue
            t = 0
            while True:
                src = donors[t, b] if t < attempts else first
                if filled[src]:
                    row[b] = row[src]
                    break
                t += 1


@njit(cache=True)
def band_keys(sig, bands, rows, salts):
    """(n, bands) uint64: mix(fold of the band's `rows` values as acc * P + v, starting from the band's salt)."""
    n = sig.shape[0]
    out = np.empty((n, bands), dtype=np.uint64)
    for d in range(n):
        for b in range(bands):
            acc = salts[b]
            for r in range(rows):
                acc = acc * POLY + _U64(sig[d, b * rows + r])
            out[d, b] = _mix(acc)
    return out


@njit(cache=True)
def estimated_jaccard(sig, a, b):
    """Share of equal signature values of rows a[p] and b[p]."""
    k = sig.shape[1]
    out = np.empty(len(a))
    for p in range(len(a)):
        x, y = sig[a[p]], sig[b[p]]
        same = 0
        for j in range(k):
            same += x[j] == y[j]
        out[p] = same / k
    return out


@njit(cache=True, inline="always")
def _run_of_pairs(offsets, a, b, p):
    """End (exclusive) of the run of pairs sharing `a[p]`, and the most hashes of any B in it."""
    q = p
    most_b = 0
    while q < len(a) and a[q] == a[p]:
        most_b = max(most_b, offsets[b[q] + 1] - offsets[b[q]])
        q += 1
    return q, most_b


@njit(cache=True)
def exact_jaccard(offsets, hashes, a, b):
    """|A ∩ B| / |A ∪ B| of the distinct hashes of documents a[p] and b[p] (0 when both are empty); the pairs
    come grouped by `a` (`curate.minhash.exact_jaccard` orders them so), and each run of pairs sharing one `a`
    puts A's hashes in an open-addressing table once (linear probing; the hashes are already mixed, so their
    low bits index it), then only probes it with each B's hashes.

    Slots are stamped instead of cleared: `run_of[s]` = the run whose A hash the slot holds, `pair_of[s]` = the
    last pair whose B met it or put it there. A slot is live for pair r of run k when it holds A's hash of run
    k or a hash put there by r; every other slot counts as empty. A's hashes all go in before any B's, so a
    probe from a hash's home slot to an A hash crosses only live slots, and a B hash put in a stale slot is
    found the same way for the rest of its pair. A hash of B counts once toward |B| (repeats inside a document
    count once: set sizes), and toward |A ∩ B| when it is one of A's.
    """
    n = len(a)
    out = np.empty(n)
    need = 16
    p = 0
    while p < n:  # table size: twice the largest A + B of a run
        q, most_b = _run_of_pairs(offsets, a, b, p)
        while need < 2 * ((offsets[a[p] + 1] - offsets[a[p]]) + most_b):
            need *= 2
        p = q
    keys = np.empty(need, dtype=np.uint64)
    run_of = np.full(need, -1, dtype=np.int64)
    pair_of = np.full(need, -1, dtype=np.int64)
    run = 0
    p = 0
    while p < n:
        q, most_b = _run_of_pairs(offsets, a, b, p)
        sa, ea = offsets[a[p]], offsets[a[p] + 1]
        size = 16
        while size < 2 * ((ea - sa) + most_b):
            size *= 2
        mask = size - 1
        na = 0
        for i in range(sa, ea):
            v = hashes[i]
            slot = np.int64(v & _U64(mask))
            while run_of[slot] == run and keys[slot] != v:
                slot = (slot + 1) & mask
            if run_of[slot] != run:
                run_of[slot] = run
                pair_of[slot] = -1
                keys[slot] = v
                na += 1
        for r in range(p, q):
            nb = 0
            inter = 0
            for i in range(offsets[b[r]], offsets[b[r] + 1]):
                v = hashes[i]
                slot = np.int64(v & _U64(mask))
                while True:
                    live = run_of[slot] == run or pair_of[slot] == r
                    if not live or keys[slot] == v:
                        break
                    slot = (slot + 1) & mask
                if not live:  # in neither A nor this B so far
                    keys[slot] = v
                    run_of[slot] = -2
                    pair_of[slot] = r
                    nb += 1
                elif pair_of[slot] != r:  # one of A's, first met by this B
                    pair_of[slot] = r
                    nb += 1
                    inter += 1
            union = na + nb - inter
            out[r] = inter / union if union > 0 else 0.0
        run += 1
        p = q
    return out


@njit(cache=True)
def components(n, a, b):
    """Union-find over the edges (a[p], b[p]): each node's label is the smallest node of its component.

    The root of a component is always its smallest node (the larger root is hung under the smaller one);
    paths are halved on every find."""
    parent = np.arange(n)
    for p in range(len(a)):
        x = a[p]
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        y = b[p]
        while parent[y] != y:
            parent[y] = parent[parent[y]]
            y = parent[y]
        if x < y:
            parent[y] = x
        elif y < x:
            parent[x] = y
    for i in range(n):  # parents point to smaller nodes, so one pass in index order resolves every root
        parent[i] = parent[parent[i]]
    return parent


@njit(cache=True)
def take_docs(offsets, hashes, docs):
    """The CSR documents `docs` (indices, in that order) of (offsets, hashes): one copy of each hash, no index
    arrays (what `np.repeat` + `np.arange` + a gather would build over every selected hash)."""
    out_off = np.empty(len(docs) + 1, dtype=np.int64)
    out_off[0] = 0
    for i in range(len(docs)):
        d = docs[i]
        out_off[i + 1] = out_off[i] + offsets[d + 1] - offsets[d]
    out = np.empty(out_off[-1], dtype=hashes.dtype)
    for i in range(len(docs)):
        d = docs[i]
        out[out_off[i]: out_off[i + 1]] = hashes[offsets[d]: offsets[d + 1]]
    return out_off, out
