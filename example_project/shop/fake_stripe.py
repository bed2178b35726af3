"""A fake Stripe API on 127.0.0.1 that the real ``stripe`` SDK can talk to.

It serves ``GET /v1/invoices`` the way Stripe does (newest first; ``limit``,
``starting_after``, ``created`` and ``created[gt|gte|lt|lte]``; ``has_more``) from invoices
the caller controls, and fails requests on demand with 429 or 5xx, so the sync job's paging,
retries and catch-up can be tested and shown without a Stripe account or the internet.

Standard library only: ``demo.py`` runs it before any virtualenv exists.

In Python::

    with FakeStripe() as fake:                    # a thread serving on a free port
        fake.add_invoice(total=1999, customer_email="ada@example.com")
        fake.fail_next(2, status=429)             # the next two requests get 429
        fake.fail_request(3, status=500)          # the third request (counting from 1) gets 500
        client = StripeClient("sk_test_fake", base_addresses={"api": fake.url})

From a shell: ``python3 -m example_project.shop.fake_stripe --port 12111 --seed 5``; then
``curl -X POST 'http://127.0.0.1:12111/_fake/fail?status=500&count=3'`` fails the next three
API requests and ``curl -X POST http://127.0.0.1:12111/_fake/invoices`` adds an invoice
(form fields override its values: ``-d total=500 -d status=open``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: The ``error.type`` Stripe sends with each status the fake can be told to fail with.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    402: "card_error",
    404: "invalid_request_error",
    409: "idempotency_error",
    429: "invalid_request_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
}
_FILTERS = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}

_NAMES = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov",
          "Donald Knuth", "Margaret Hamilton", "Ken Thompson", "Frances Allen", "John Backus"]


@dataclass
class RecordedRequest:
    """One request the fake answered."""

    number: int  # counting from 1, API requests only (not /_fake/ ones)
    method: str
    path: str
    query: dict[str, str]
    status: int


@dataclass
class FakeStripe:
    """The fake's data, its failure plan, and the HTTP server serving them."""

    api_key: str | None = None  # None: any bearer token is accepted
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, chosen when the server starts
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._fail_next: list[int] = []  # statuses for the next requests, in order
        self._fail_at: dict[int, int] = {}  # request number -> status
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- the data ------------------------------------------------------------------------------

    def add_invoice(self, **fields: Any) -> dict[str, Any]:
        """Add an invoice; unspecified fields get plausible values. Returns it."""
        with self._lock:
            n = next(self._ids)
            name = _NAMES[(n - 1) % len(_NAMES)]
            invoice = {
                "id": f"in_fake{n:06d}",
                "object": "invoice",
                "number": f"FAKE-{n:04d}",
                "customer_email": f"{name.split()[0].lower()}@example.com",
                "customer_name": name,
                "total": 1000 + 250 * n,
                "currency": "eur",
                "status": "paid",
                "created": int(time.time()),
                "livemode": False,
            }
            invoice.update(fields)
            invoice["_seq"] = n  # the tie-break among invoices created in the same second
            self.invoices[invoice["id"]] = invoice
            return _public(invoice)

    def update_invoice(self, invoice_id: str, **fields: Any) -> dict[str, Any]:
        """Change an invoice's fields (its status, its total, …). Returns it."""
        with self._lock:
            self.invoices[invoice_id].update(fields)
            return _public(self.invoices[invoice_id])

    def seed(self, count: int, now: float | None = None, spread: float = 3 * 86400) -> None:
        """Add ``count`` invoices created over the ``spread`` seconds before ``now``."""
        now = time.time() if now is None else now
        rng = random.Random(count)  # the same demo data every time
        for i in range(count):
            self.add_invoice(
                created=int(now - spread * (count - i) / (count + 1)),
                total=rng.randrange(500, 20000, 50),
                status=rng.choice(["paid", "paid", "paid", "open"]),
            )

    # -- failures on demand --------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 429) -> None:
        """Answer the next ``count`` API requests with ``status`` (429, 500, 503, …)."""
        with self._lock:
            self._fail_next.extend([status] * count)

    def fail_request(self, number: int, status: int = 500) -> None:
        """Answer API request number ``number`` (counting from 1 since start) with ``status``."""
        with self._lock:
            self._fail_at[number] = status

    def clear_failures(self) -> None:
        with self._lock:
            self._fail_next.clear()
            self._fail_at.clear()

    # -- serving -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base address to give the SDK: ``base_addresses={"api": fake.url}``."""
        if self._server is None:
            raise RuntimeError("FakeStripe is not started: call start(), or use it in a with block")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> FakeStripe:
        """Serve from a daemon thread until stop()."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-stripe",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answering -----------------------------------------------------------------------------

    def answer(self, method: str, path: str, query: dict[str, str],
               authorization: str) -> tuple[int, dict[str, Any]]:
        """Return the (status, JSON body) of one API request, and record it."""
        with self._lock:
            number = len(self.requests) + 1
            failure = self._fail_at.pop(number, None)
            if failure is None and self._fail_next:
                failure = self._fail_next.pop(0)
            if failure is not None:
                status, body = failure, _error(failure, f"Fake failure of request {number}.")
            else:
                status, body = self._route(method, path, query, authorization)
            self.requests.append(RecordedRequest(number, method, path, query, status))
            return status, body

    def _route(self, method: str, path: str, query: dict[str, str],
               authorization: str) -> tuple[int, dict[str, Any]]:
        token = authorization.removeprefix("Bearer ").strip()
        if not token or (self.api_key is not None and token != self.api_key):
            return 401, _error(401, f"Invalid API Key provided: {token[:8]}****")
        if (method, path) != ("GET", "/v1/invoices"):
            return 404, _error(404, f"Unrecognized request URL ({method}: {path}). The fake "
                                    f"Stripe serves GET /v1/invoices only.")
        return self._list_invoices(query)

    def _list_invoices(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            limit = int(query.get("limit", "10"))
            bounds = {op: int(query[f"created[{op}]"])
                      for op in _FILTERS if f"created[{op}]" in query}
            if "created" in query:
                bounds["eq"] = int(query["created"])
        except ValueError as exc:
            return 400, _error(400, f"Invalid integer: {exc}")
        if not 1 <= limit <= 100:
            return 400, _error(400, "Invalid limit: must be between 1 and 100.")
        rows = sorted(self.invoices.values(), key=lambda i: (i["created"], i["_seq"]), reverse=True)
        rows = [
            row for row in rows
            if all(row["created"] == value if op == "eq" else _FILTERS[op](row["created"], value)
                   for op, value in bounds.items())
        ]
        after = query.get("starting_after")
        if after is not None:
            ids = [row["id"] for row in rows]
            if after not in ids:
                return 400, _error(400, f"No such invoice: '{after}'")
            rows = rows[ids.index(after) + 1:]
        page = rows[:limit]
        return 200, {
            "object": "list",
            "url": "/v1/invoices",
            "has_more": len(rows) > limit,
            "data": [_public(row) for row in page],
        }


def _public(invoice: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in invoice.items() if not key.startswith("_")}


def _error(status: int, message: str) -> dict[str, Any]:
    error = {"type": ERROR_TYPES.get(status, "api_error"), "message": message}
    if status == 429:
        error["code"] = "rate_limit"
    return {"error": error}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeStripe  # set on the subclass FakeStripe.start() makes

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        if parts.path.startswith("/_fake/"):
            status, body = self._control(parts.path, query)
        else:
            status, body = self.fake.answer(self.command, parts.path, query,
                                            self.headers.get("Authorization", ""))
        payload = json.dumps(body, indent=2).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Request-Id", f"req_fake{len(self.fake.requests)}")
        self.end_headers()
        self.wfile.write(payload)

    def _control(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if self.command != "POST":
            return 405, {"error": "POST to /_fake/fail or /_fake/invoices"}
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        try:
            if path == "/_fake/fail":
                count, status = int(query.get("count", "1")), int(query.get("status", "500"))
                self.fake.fail_next(count, status)
                return 200, {"failing_next": count, "status": status}
            if path == "/_fake/invoices":
                fields: dict[str, Any] = dict(form)
                for key in ("total", "created"):
                    if key in fields:
                        fields[key] = int(fields[key])
                return 200, self.fake.add_invoice(**fields)
        except ValueError as exc:
            return 400, {"error": str(exc)}
        return 404, {"error": f"no control endpoint {path}"}

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the requests are recorded in fake.requests; stderr stays the caller's


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake Stripe API until Ctrl-C.")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--seed", type=int, default=5, help="invoices to start with")
    options = parser.parse_args(argv)
    fake = FakeStripe(port=options.port)
    fake.seed(options.seed)
    fake.start()
    print(f"fake Stripe at {fake.url} with {options.seed} invoices; Ctrl-C stops it", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
