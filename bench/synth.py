"""Bench: generated tokens/s of synth's client vs a minimal raw HTTP client on the same llama.cpp server.

Same input for both: N chat requests (fixed prompts, temperature 0, max_tokens T) against one in-process
xllamacpp server on the bundled SmolLM2 GGUF (1 thread, 16 slots). For each concurrency (1, 4, 8, 16):
a raw client (httpx + asyncio.Semaphore, no retries, no parsing) then ours (OpenAIBackend through the
request log, as a run uses it). Target: ours ≥ 90% of raw at the best concurrency.
One pair of short runs is noisy on a shared machine (a burst of load during one side decides the ratio), so
the best concurrency is then measured in `--rounds` alternating pairs (raw, ours, raw, ours, ...); the ratio
reported against the target is total tokens/s of ours over total tokens/s of raw across the rounds, with each
round's own ratio printed beside it.
Then ours again through the fault-injecting proxy (tests/synth_fault_proxy.py) with 20% faults
(429, 500, stalled connection, truncated body, non-JSON body): lost and duplicated answers, and the time it cost.

Run: PYTHONPATH=. python bench/synth.py [--requests 16] [--max-tokens 48] [--rounds 5] [--fault-rate 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import time
from pathlib import Path

import httpx

# This file is named like the package it measures: take bench/ off the path, add tests/ for the fault proxy.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "tests"))

from synth_fault_proxy import FaultProxy  # noqa: E402

from studio.models import smollm2_gguf_path  # noqa: E402
from synth.backends import BackendConfig, ChatRequest, OpenAIBackend, start_llama_server  # noqa: E402
from synth.runner import CachedChat, RequestLog  # noqa: E402

TOPICS = ["refunds", "shipping", "warranty", "passwords", "subscriptions", "invoices", "gift cards", "returns",
          "delivery delays", "damaged items", "account deletion", "payment methods", "discount codes",
          "order tracking", "address changes", "customer support hours"]


def prompts(n: int) -> list[str]:
    return [f"Write a short customer question about {TOPICS[i % len(TOPICS)]} (variant {i // len(TOPICS)}) "
            "and answer it in two sentences." for i in range(n)]


async def raw_client(url: str, texts: list[str], concurrency: int, max_tokens: int) -> tuple[int, float]:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=concurrency + 4)) as client:
        async def one(text: str) -> int:
            async with sem:
                r = await client.post(url + "/v1/chat/completions", json={
                    "model": "m", "messages": [{"role": "user", "content": text}],
                    "max_tokens": max_tokens, "temperature": 0})
                return r.json()["usage"]["completion_tokens"]
        t0 = time.perf_counter()
        tokens = await asyncio.gather(*(one(t) for t in texts))
        return sum(tokens), time.perf_counter() - t0


async def ours(url: str, texts: list[str], concurrency: int, max_tokens: int, folder: Path, **cfg) -> dict:
    backend = OpenAIBackend(BackendConfig(kind="openai", base_url=url + "/v1", model="m", concurrency=concurrency,
                                          backoff_base_s=0.2, **cfg))
    log = RequestLog(folder)
    chat = CachedChat(backend, log)
    t0 = time.perf_counter()
    replies = await asyncio.gather(*(chat(ChatRequest([{"role": "user", "content": t}], max_tokens=max_tokens,
                                                      temperature=0), stage="bench") for t in texts))
    seconds = time.perf_counter() - t0
    await backend.aclose()
    log.close()
    logged = [line for p in folder.glob("shard-*.jsonl") for line in p.read_text().splitlines()]
    return {"tokens": backend.usage.completion_tokens, "seconds": seconds,
            "lost": sum(r.error is not None for r in replies), "logged": len(logged),
            "unique_logged": len({line.split('"key": "')[1][:32] for line in logged}),
            "retries": backend.usage.attempts - backend.usage.requests, "faults": backend.usage.faults}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--fault-rate", type=float, default=0.2)
    ap.add_argument("--rounds", type=int, default=5, help="alternating raw/ours pairs at the best concurrency")
    args = ap.parse_args()
    texts = prompts(args.requests)
    server = start_llama_server(smollm2_gguf_path(), n_parallel=16, threads=1, ctx_per_slot=512)
    url = server.listening_address
    asyncio.run(raw_client(url, texts, 16, args.max_tokens))  # warm-up: page in weights, fill prompt caches
    rows, best = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for k, c in enumerate((1, 4, 8, 16)):
            raw_tok, raw_s = asyncio.run(raw_client(url, texts, c, args.max_tokens))
            res = asyncio.run(ours(url, texts, c, args.max_tokens, Path(tmp) / f"c{k}"))
            raw_rate, our_rate = raw_tok / raw_s, res["tokens"] / res["seconds"]
            rows.append((c, raw_rate, our_rate, our_rate / raw_rate))
            if best is None or our_rate > best[2]:
                best = (c, raw_rate, our_rate, res["seconds"])
        print(f"machine: {platform.machine()}, {__import__('os').cpu_count()} cores, python {platform.python_version()}; "
              f"{args.requests} requests x max_tokens {args.max_tokens}, SmolLM2-135M Q4_1, llama.cpp 1 thread")
        print(f"{'concurrency':>11} {'raw tok/s':>10} {'ours tok/s':>11} {'ratio':>6}")
        for c, r, o, ratio in rows:
            print(f"{c:>11} {r:>10.1f} {o:>11.1f} {ratio:>6.2f}")
        c, raw_rate, our_rate, clean_s = best
        print(f"sweep: best concurrency {c}: ours/raw = {our_rate / raw_rate:.2f} in one pair")
        raw_tot = [0, 0.0]
        our_tot = [0, 0.0]
        per_round = []
        for k in range(args.rounds):
            raw_tok, raw_s = asyncio.run(raw_client(url, texts, c, args.max_tokens))
            res = asyncio.run(ours(url, texts, c, args.max_tokens, Path(tmp) / f"r{k}"))
            raw_tot[0] += raw_tok
            raw_tot[1] += raw_s
            our_tot[0] += res["tokens"]
            our_tot[1] += res["seconds"]
            per_round.append((res["tokens"] / res["seconds"]) / (raw_tok / raw_s))
        ratio = (our_tot[0] / our_tot[1]) / (raw_tot[0] / raw_tot[1])
        print(f"{args.rounds} alternating rounds at concurrency {c}: raw {raw_tot[0] / raw_tot[1]:.1f} tok/s, "
              f"ours {our_tot[0] / our_tot[1]:.1f} tok/s; per-round ratios "
              f"{', '.join(f'{x:.2f}' for x in per_round)}")
        print(f"ours/raw over the rounds = {ratio:.2f} (target >= 0.90): {'met' if ratio >= 0.9 else 'NOT met'}")
        with FaultProxy(url, rate=args.fault_rate, seed=5, stall_s=16.0) as proxy:
            res = asyncio.run(ours(proxy.url, texts, c, args.max_tokens, Path(tmp) / "faults",
                                   timeout_s=15.0, max_retries=8))
        print(f"with {args.fault_rate:.0%} injected faults {proxy.faults()} at concurrency {c}: "
              f"lost {res['lost']}, duplicated {res['logged'] - res['unique_logged']}, "
              f"answers {res['unique_logged']}/{args.requests}, retries {res['retries']}, "
              f"time {res['seconds']:.1f}s vs {clean_s:.1f}s clean (+{res['seconds'] - clean_s:.1f}s)")
    del server


if __name__ == "__main__":
    main()
