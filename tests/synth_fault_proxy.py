"""A FAULT INJECTOR for the synth tests and bench: an HTTP proxy between the openai client and a real server.

It is a deliberate fake, used only to produce faults the real llama.cpp server cannot produce on demand:
429 with Retry-After, 500, a stalled connection (client timeout), a truncated body (connection closed
mid-body), a non-JSON body, and "garbled content" (a valid reply whose message text is junk the model never
wrote). Everything else is forwarded unchanged to the real server. It records every request it sees
(the Idempotency-Key header, the body, the fault it injected) so tests can check what went over the wire.
Stdlib `ThreadingHTTPServer` + `httpx`; one instance per test, started and stopped explicitly.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

FAULT_KINDS = ("429", "500", "timeout", "truncated", "nonjson")
GARBLED_TEXT = "Sorry!! <<< this is not what you asked for {{{"


@dataclass
class Seen:
    key: str | None
    body: str
    fault: str | None
    answered: bool = False
    auth: str | None = None  # the Authorization header, to check where an API key went


class FaultProxy:
    def __init__(self, upstream: str, rate: float = 0.0, kinds: tuple[str, ...] = FAULT_KINDS, seed: int = 0,
                 stall_s: float = 5.0, retry_after: str = "0.2") -> None:
        self.upstream = upstream.rstrip("/")
        self.rate = rate
        self.kinds = kinds
        self.stall_s = stall_s
        self.retry_after = retry_after
        self.seen: list[Seen] = []
        self._rng = random.Random(seed)
        self._turn = 0
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=120)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                resp = proxy._client.get(proxy.upstream + self.path)
                self._send(resp.status_code, resp.content)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fault = proxy._pick()
                seen = Seen(self.headers.get("Idempotency-Key"), body.decode("utf-8", "replace"), fault,
                            auth=self.headers.get("Authorization"))
                with proxy._lock:
                    proxy.seen.append(seen)
                if fault == "429":
                    return self._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": proxy.retry_after})
                if fault == "500":
                    return self._send(500, b'{"error": {"message": "internal error"}}')
                if fault == "nonjson":
                    return self._send(200, b"<html><body>502 Bad Gateway</body></html>")
                if fault == "timeout":
                    time.sleep(proxy.stall_s)
                    self.close_connection = True
                    return None
                resp = proxy._client.post(proxy.upstream + self.path, content=body,
                                          headers={"Content-Type": "application/json"})
                content = resp.content
                if fault == "truncated":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content[: len(content) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return None
                if fault == "garble" and resp.status_code == 200:
                    data = json.loads(content)
                    data["choices"][0]["message"]["content"] = GARBLED_TEXT
                    content = json.dumps(data).encode()
                seen.answered = resp.status_code == 200
                return self._send(resp.status_code, content)

            def _send(self, status: int, content: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(content)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout): fine
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _pick(self) -> str | None:
        with self._lock:
            if self.rate <= 0 or self._rng.random() >= self.rate:
                return None
            kind = self.kinds[self._turn % len(self.kinds)]
            self._turn += 1
            return kind

    def faults(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.seen:
            if s.fault:
                out[s.fault] = out.get(s.fault, 0) + 1
        return out

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()
