"""LLM backends behind one small interface: `complete(ChatRequest) -> ChatReply`, never raising for a transient fault.

Both backends speak the OpenAI chat API through the official `openai` client (AsyncOpenAI):
- `OpenAIBackend`: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, a llama.cpp server). Bounded
  concurrency (a semaphore), a per-request timeout, retries with exponential backoff and full jitter on 429,
  408/409, 5xx, timeouts, connection errors and garbled bodies, honouring `Retry-After` / `retry-after-ms`;
  structured (JSON) output when the server supports it, falling back json_schema → json_object → plain text
  on a 400 that names the response format; token usage and cost from a price table.
- `LocalBackend`: the same code path against llama.cpp's HTTP server started in this process by `xllamacpp`
  on the bundled SmolLM2-135M-Instruct GGUF (or a GGUF the user names), so offline and remote behave alike.

Backoff follows the "exponential backoff and full jitter" scheme (AWS Architecture Blog, 2015):
delay = uniform(0, min(cap, base * 2**attempt)), or the server's Retry-After when it names one.
Secrets (API keys) come from the environment or a flag and are never stored in the config or the manifest.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from studio.errors import StudioError

log = logging.getLogger("synth.backends")

#: Status codes worth retrying: throttling, request timeout/conflict, and server-side failures.
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
STRUCTURED_MODES = ("schema", "object", "off")


class Price(BaseModel):
    """US dollars per million tokens."""

    input_per_1m: float = 0.0
    output_per_1m: float = 0.0


#: Default price table (USD per 1M tokens, list prices when written); override it under `synth.prices`
#: in studio.yaml. Models not listed cost 0 (local models, self-hosted endpoints).
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(input_per_1m=0.15, output_per_1m=0.60),
    "gpt-4o": Price(input_per_1m=2.50, output_per_1m=10.00),
    "gpt-4.1-mini": Price(input_per_1m=0.40, output_per_1m=1.60),
    "gpt-4.1": Price(input_per_1m=2.00, output_per_1m=8.00),
}


class BackendConfig(BaseModel):
    """How to reach and pace a model. Everything here may be written to a manifest (no secrets)."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field("local", description="local (embedded llama.cpp server) or openai (any compatible endpoint)")
    model: str | None = Field(None, description="model name sent to the endpoint; $OPENAI_MODEL for openai")
    base_url: str | None = Field(None, description="endpoint, e.g. https://api.openai.com/v1; $OPENAI_BASE_URL")
    gguf: str | None = Field(None, description="local: path of a GGUF model (default: bundled SmolLM2-135M)")
    concurrency: int = Field(4, ge=1, le=256, description="requests in flight at once")
    timeout_s: float = Field(60.0, gt=0, description="per-request timeout, seconds")
    max_retries: int = Field(6, ge=0, description="retries after the first attempt of one request")
    backoff_base_s: float = Field(0.5, ge=0, description="first backoff ceiling; doubles per attempt")
    backoff_max_s: float = Field(30.0, ge=0, description="cap on one backoff delay (also caps Retry-After)")
    structured: str = Field("schema", description="schema (json_schema), object (json_object) or off")
    prices: dict[str, Price] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    local_threads: int = Field(1, ge=1, description="local: llama.cpp CPU threads (1 is fastest on 2 cores)")
    local_ctx_per_slot: int = Field(2048, ge=256, description="local: context tokens per parallel slot")


@dataclass
class ChatRequest:
    """One chat completion request. `schema` asks for a JSON object of that JSON schema."""

    messages: list[dict[str, str]]
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int | None = None
    schema: dict[str, Any] | None = None

    def key(self, model: str) -> str:
        """Request hash: the same logical request always gets the same key (used for resume and idempotency)."""
        canonical = json.dumps(
            {"model": model, "messages": self.messages, "max_tokens": self.max_tokens,
             "temperature": self.temperature, "seed": self.seed, "schema": self.schema},
            sort_keys=True, ensure_ascii=False, separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


@dataclass
class ChatReply:
    """What came back. `error` is set (and `text` None) when the request failed after all retries."""

    text: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    attempts: int = 1
    seconds: float = 0.0
    error: str | None = None
    faults: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "finish_reason": self.finish_reason, "attempts": self.attempts, "seconds": round(self.seconds, 3)}


@dataclass
class Usage:
    """Token usage and request outcomes of one backend over a run."""

    requests: int = 0
    attempts: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    faults: dict[str, int] = field(default_factory=dict)

    def add(self, reply: ChatReply) -> None:
        self.requests += 1
        self.attempts += reply.attempts
        self.failed += reply.error is not None
        self.prompt_tokens += reply.prompt_tokens
        self.completion_tokens += reply.completion_tokens
        for f in reply.faults:
            self.faults[f] = self.faults.get(f, 0) + 1

    def cost(self, price: Price | None) -> float:
        if price is None:
            return 0.0
        return (self.prompt_tokens * price.input_per_1m + self.completion_tokens * price.output_per_1m) / 1e6

    def to_dict(self, price: Price | None = None) -> dict[str, Any]:
        return {"requests": self.requests, "attempts": self.attempts, "retries": self.attempts - self.requests,
                "failed": self.failed, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "faults": dict(sorted(self.faults.items())),
                "cost_usd": round(self.cost(price), 6)}


class _Retryable(Exception):
    def __init__(self, label: str, retry_after: float | None = None) -> None:
        super().__init__(label)
        self.label = label
        self.retry_after = retry_after


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds named by `retry-after-ms` or `Retry-After` (seconds or an HTTP date); None when absent."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None, rng: random.Random) -> float:
    """Full-jitter exponential backoff; a server's Retry-After wins (capped) when it names a delay."""
    if retry_after is not None:
        return min(cap, retry_after) + rng.uniform(0, base / 4)
    return rng.uniform(0, min(cap, base * (2 ** attempt)))


def response_format(schema: dict[str, Any] | None, mode: str) -> dict[str, Any] | None:
    if schema is None or mode == "off":
        return None
    if mode == "object":
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "output", "strict": True, "schema": schema}}


class OpenAIBackend:
    """An OpenAI-compatible endpoint through AsyncOpenAI, with our own retry loop (the client's is off)."""

    is_remote = True

    def __init__(self, config: BackendConfig, api_key: str | None = None, seed: int = 0) -> None:
        self.config = config
        self.base_url = config.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.model = config.model or os.environ.get("OPENAI_MODEL") or ""
        if not self.model:
            raise StudioError("no model named for the openai backend; pass --model NAME or set OPENAI_MODEL.")
        from studio.credentials import api_key_for

        key = api_key or api_key_for(self.base_url)  # $OPENAI_API_KEY goes only to the endpoint it belongs to
        if not key and self.is_remote and "api.openai.com" in self.base_url:
            raise StudioError("OPENAI_API_KEY is not set; export it (it is never written to manifests) or use --backend local.")
        self._client = self._make_client(key or "none")
        self._sem = asyncio.Semaphore(config.concurrency)
        self._rng = random.Random(seed)
        self.structured = config.structured if config.structured in STRUCTURED_MODES else "schema"
        self.usage = Usage()

    def _make_client(self, api_key: str):
        import httpx
        from openai import AsyncOpenAI

        limits = httpx.Limits(max_connections=self.config.concurrency + 4,
                              max_keepalive_connections=self.config.concurrency + 4)
        return AsyncOpenAI(base_url=self.base_url, api_key=api_key, max_retries=0,
                           timeout=self.config.timeout_s, http_client=httpx.AsyncClient(limits=limits))

    @property
    def price(self) -> Price | None:
        return self.config.prices.get(self.model)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the backend (no secrets)."""
        from studio.credentials import mask_url

        return {"kind": self.config.kind, "model": self.model, "base_url": mask_url(self.base_url), "remote": self.is_remote,
                "concurrency": self.config.concurrency, "timeout_s": self.config.timeout_s,
                "max_retries": self.config.max_retries, "structured": self.structured}

    async def complete(self, request: ChatRequest, idempotency_key: str | None = None) -> ChatReply:
        """Send one request with retries. Transient failures end as a reply with `error`, never an exception."""
        async with self._sem:
            reply = await self._complete(request, idempotency_key)
        self.usage.add(reply)
        return reply

    async def _complete(self, request: ChatRequest, idempotency_key: str | None) -> ChatReply:
        t0 = time.perf_counter()
        faults: list[str] = []
        attempt = 0
        while True:
            attempt += 1
            try:
                reply = await self._attempt(request, idempotency_key)
                reply.attempts, reply.seconds, reply.faults = attempt, time.perf_counter() - t0, faults
                return reply
            except _Retryable as err:
                faults.append(err.label)
                if attempt > self.config.max_retries:
                    log.warning("request %s failed after %d attempts: %s", idempotency_key, attempt, err.label)
                    return ChatReply(text=None, attempts=attempt, seconds=time.perf_counter() - t0, faults=faults,
                                     error=f"request failed after {attempt} attempts: {err.label}")
                delay = backoff_delay(attempt - 1, self.config.backoff_base_s, self.config.backoff_max_s,
                                      err.retry_after, self._rng)
                log.info("request %s: %s; retry %d in %.2fs", idempotency_key, err.label, attempt, delay)
                await asyncio.sleep(delay)

    async def _attempt(self, request: ChatRequest, idempotency_key: str | None) -> ChatReply:
        import openai

        kwargs: dict[str, Any] = {"model": self.model, "messages": request.messages,
                                  "max_tokens": request.max_tokens, "temperature": request.temperature}
        if request.seed is not None:
            kwargs["seed"] = request.seed
        fmt = response_format(request.schema, self.structured)
        if fmt is not None:
            kwargs["response_format"] = fmt
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        try:
            resp = await self._client.chat.completions.create(**kwargs, extra_headers=headers)
        except openai.APITimeoutError:
            raise _Retryable("timeout") from None
        except openai.APIConnectionError as err:
            raise _Retryable(f"connection error ({type(err.__cause__).__name__ if err.__cause__ else 'closed'})") from None
        except openai.APIStatusError as err:
            status = err.status_code
            if status in RETRY_STATUS:
                raise _Retryable(f"HTTP {status}", retry_after_seconds(err.response.headers)) from None
            if status == 400 and fmt is not None and self._downgrade_structured(str(err)):
                return await self._attempt(request, idempotency_key)
            if status in (401, 403):
                raise StudioError(f"the endpoint {self.base_url} refused the API key (HTTP {status}); "
                                  "check OPENAI_API_KEY.") from None
            if status == 404:
                raise StudioError(f"the endpoint {self.base_url} has no model {self.model!r} (HTTP 404); "
                                  "check --model and --base-url.") from None
            return ChatReply(text=None, error=f"HTTP {status}: {_short(err.message)}")
        except (json.JSONDecodeError, openai.APIResponseValidationError, UnicodeDecodeError, ValueError) as err:
            raise _Retryable(f"garbled response body ({type(err).__name__})") from None
        if isinstance(resp, str) or not getattr(resp, "choices", None):
            raise _Retryable("garbled response body (no choices)")
        choice = resp.choices[0]
        usage = resp.usage
        return ChatReply(text=choice.message.content or "", finish_reason=choice.finish_reason,
                         prompt_tokens=usage.prompt_tokens if usage else 0,
                         completion_tokens=usage.completion_tokens if usage else 0)

    def _downgrade_structured(self, message: str) -> bool:
        """After a 400 that names the response format, fall back one level (schema → object → off)."""
        text = message.lower()
        if not any(word in text for word in ("response_format", "json_schema", "json_object", "schema")):
            return False
        nxt = {"schema": "object", "object": "off"}.get(self.structured)
        if nxt is None:
            return False
        log.warning("endpoint rejected structured output mode %s; falling back to %s", self.structured, nxt)
        self.structured = nxt
        return True

    async def aclose(self) -> None:
        await self._client.close()

    def close(self) -> None:
        """Release resources that are not tied to an event loop (the local server)."""


class LocalBackend(OpenAIBackend):
    """llama.cpp's own OpenAI-compatible server (xllamacpp) in this process, on a local GGUF model."""

    is_remote = False

    def __init__(self, config: BackendConfig, seed: int = 0) -> None:
        from studio.models import smollm2_gguf_path

        gguf = Path(config.gguf) if config.gguf else smollm2_gguf_path()
        if not gguf.is_file():
            raise StudioError(f"GGUF model {gguf} does not exist; pass --gguf PATH to a .gguf file or leave it out "
                              "for the bundled SmolLM2.")
        self.gguf = gguf
        self._server = start_llama_server(gguf, n_parallel=config.concurrency, threads=config.local_threads,
                                          ctx_per_slot=config.local_ctx_per_slot)
        config = config.model_copy(update={"base_url": self._server.listening_address + "/v1",
                                           "model": config.model or gguf.stem})
        super().__init__(config, api_key="none", seed=seed)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "base_url": "embedded llama.cpp server (xllamacpp)", "gguf": str(self.gguf),
                "threads": self.config.local_threads}

    def close(self) -> None:
        self._server = None  # deleting the server object closes its port


def start_llama_server(gguf: Path, n_parallel: int = 4, threads: int = 1, ctx_per_slot: int = 2048,
                       verbose: bool = False, chat_template: str | None = None):
    """Start llama.cpp's HTTP server in-process on a free port; `server.listening_address` is its URL.

    One thread by default: on 2-core machines llama.cpp's spinning threads otherwise fight the caller.
    `chat_template` names one of llama.cpp's built-in templates (gemma, chatml, llama3, ...), applied without
    Jinja, for a GGUF whose metadata has none (llama.cpp would use chatml).
    """
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = str(gguf)
    params.port = 0
    params.n_parallel = n_parallel
    params.n_ctx = ctx_per_slot * n_parallel
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    if chat_template:
        params.chat_template = chat_template
        params.use_jinja = False  # a built-in name is a template only to llama.cpp's non-Jinja formatter
    if not verbose:
        params.verbosity = -1
    return xlc.Server(params)


def make_backend(config: BackendConfig, api_key: str | None = None, seed: int = 0) -> OpenAIBackend:
    if config.kind == "local":
        return LocalBackend(config, seed=seed)
    if config.kind == "openai":
        return OpenAIBackend(config, api_key=api_key, seed=seed)
    raise StudioError(f"unknown backend {config.kind!r}; choose local or openai.")


def _short(text: str, n: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"
