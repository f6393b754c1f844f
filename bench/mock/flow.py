"""The mock's session endpoints (``mock: {flow: true}``): log in, then use a token and a cookie together.

They give a load tester's virtual users something with state to talk to: a
login whose answer carries values to capture (a token in the JSON body, a
session cookie, a ``Location`` header), and requests that only succeed with
all of them from the same login. ``FlowState`` decides every answer and keeps
the counters a test reads back (``GET /flow/stats``); it does no I/O, so the
HTTP/1.1 side (``FlowConnection``) and the HTTP/2 side (``bench.mock.h2``)
answer the same way.

Paths (every body is JSON):

- ``POST /flow/login`` ``{"user": "<name>"}`` -> 200 ``{"token", "user_id"}``,
  ``Set-Cookie: session=<sid>; Path=/; HttpOnly``, ``Location: /flow/users/<id>``;
  400 for any other body. Every login is a new session; a name keeps its user id.
- ``GET /flow/cart`` -> 200 ``{"cart_id", "items"}`` (the session's cart, made on first use).
- ``POST /flow/cart/<cart_id>/items`` -> 201 ``{"cart_id", "items"}`` (one item more);
  404 if the cart is not this session's.
- ``GET /flow/users/<user_id>`` -> 200 ``{"user_id", "name"}``; 404 for an unknown id.
- ``GET /flow/stats`` -> the counters, at once (no latency draw, not counted).

Authentication, in this order: ``Authorization: Bearer <token>`` of a live
session (else 401; the users path needs nothing more), then ``Cookie:
session=<sid>`` of that same session (else 403). Other ``/flow/`` paths: 404;
a known path with another method: 405. The state is this process's: with
``bench mock --processes P`` each process knows only its own sessions.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from bench.mock.openai import OpenAIConnection, _json_response

__all__ = ["FLOW_PREFIX", "SESSIONS_KEPT", "FlowAnswer", "FlowConnection", "FlowState", "flow_http1_response"]

#: Paths under this prefix are served by ``FlowState`` when ``flow`` is on.
FLOW_PREFIX = b"/flow/"
#: Sessions (and user names) kept; beyond it the oldest is forgotten (its token then gets 401).
SESSIONS_KEPT = 100_000
#: Larger login bodies get 413.
MAX_FLOW_BODY = 64 * 1024
STATS = "/flow/stats"
COUNTERS = ("logins", "carts", "items", "users", "bad_requests", "unauthorized", "forbidden", "not_found")


@dataclass(frozen=True, slots=True)
class FlowAnswer:
    """One answer: status, JSON body, and the headers besides Content-Type and Content-Length."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(slots=True)
class _Session:
    token: str
    sid: str
    user_id: int
    cart_id: str | None = None
    items: int = 0


def _error(status: int, message: str) -> FlowAnswer:
    return FlowAnswer(status, orjson.dumps({"error": message, "status": status}))


class FlowState:
    """Users, sessions and carts of one server process, and its counters (``stats()``)."""

    def __init__(self, seed: int = 1) -> None:
        self._rng = random.Random(f"bench.mock.flow:{seed}")
        self._sessions: dict[str, _Session] = {}  # by token, oldest first
        self._user_ids: dict[str, int] = {}  # by name, oldest first
        self._names: dict[int, str] = {}
        self._next_user = 1
        self._next_cart = 1
        self.counts: Counter[str] = Counter()

    def stats(self) -> dict[str, int]:
        """What ``GET /flow/stats`` answers: every counter of ``COUNTERS``."""
        return {name: self.counts[name] for name in COUNTERS}

    def _opaque(self, prefix: str) -> str:
        return f"{prefix}{self._rng.getrandbits(96):024x}"

    def handle(self, method: bytes, path: str, authorization: bytes | None, cookie: bytes | None, body: bytes) -> FlowAnswer:
        """The answer to one ``/flow/`` request (``path`` without the query); changes the state it names."""
        parts = path.rstrip("/").split("/")[2:]  # "/flow/cart/x/items" -> ["cart", "x", "items"]
        if path == STATS:
            if method != b"GET":
                return _error(405, f"{path} takes GET")
            return FlowAnswer(200, orjson.dumps(self.stats()))
        if parts == ["login"]:
            return self._login(body) if method == b"POST" else _error(405, f"{path} takes POST")
        if parts == ["cart"]:
            if method != b"GET":
                return _error(405, f"{path} takes GET")
        elif len(parts) == 3 and parts[0] == "cart" and parts[2] == "items":
            if method != b"POST":
                return _error(405, f"{path} takes POST")
        elif len(parts) == 2 and parts[0] == "users":
            if method != b"GET":
                return _error(405, f"{path} takes GET")
        else:
            self.counts["not_found"] += 1
            return _error(404, f"no such path: {path}")
        session = self._by_token(authorization)
        if session is None:
            self.counts["unauthorized"] += 1
            return _error(401, "needs Authorization: Bearer <token> of a live session")
        if parts[0] == "users":
            return self._user(parts[1])
        if not self._cookie_matches(cookie, session.sid):
            self.counts["forbidden"] += 1
            return _error(403, "needs the Cookie session=<sid> set by the same login as the token")
        if len(parts) == 1:
            if session.cart_id is None:
                session.cart_id = f"c{self._next_cart}"
                self._next_cart += 1
                self.counts["carts"] += 1
            return FlowAnswer(200, orjson.dumps({"cart_id": session.cart_id, "items": session.items}))
        if parts[1] != session.cart_id:
            self.counts["not_found"] += 1
            return _error(404, f"no cart {parts[1]!r} in this session")
        session.items += 1
        self.counts["items"] += 1
        return FlowAnswer(201, orjson.dumps({"cart_id": session.cart_id, "items": session.items}))

    def _login(self, body: bytes) -> FlowAnswer:
        try:
            data: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        name = data.get("user") if isinstance(data, dict) else None
        if not isinstance(name, str) or not name:
            self.counts["bad_requests"] += 1
            return _error(400, 'the body must be a JSON object {"user": "<name>"}')
        user_id = self._user_ids.get(name)
        if user_id is None:
            user_id = self._user_ids[name] = self._next_user
            self._names[user_id] = name
            self._next_user += 1
            self.counts["users"] += 1
            if len(self._user_ids) > SESSIONS_KEPT:
                self._names.pop(self._user_ids.pop(next(iter(self._user_ids))), None)
        session = _Session(self._opaque("t"), self._opaque("s"), user_id)
        sessions = self._sessions
        sessions[session.token] = session
        if len(sessions) > SESSIONS_KEPT:
            del sessions[next(iter(sessions))]
        self.counts["logins"] += 1
        headers = (
            (b"set-cookie", f"session={session.sid}; Path=/; HttpOnly".encode()),
            (b"location", f"/flow/users/{user_id}".encode()),
        )
        return FlowAnswer(200, orjson.dumps({"token": session.token, "user_id": user_id}), headers)

    def _user(self, raw_id: str) -> FlowAnswer:
        name = self._names.get(int(raw_id)) if raw_id.isascii() and raw_id.isdigit() and len(raw_id) <= 18 else None
        if name is None:
            self.counts["not_found"] += 1
            return _error(404, f"no user {raw_id!r}")
        return FlowAnswer(200, orjson.dumps({"user_id": int(raw_id), "name": name}))

    def _by_token(self, authorization: bytes | None) -> _Session | None:
        if not authorization:
            return None
        scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self._sessions.get(token.strip())

    @staticmethod
    def _cookie_matches(cookie: bytes | None, sid: str) -> bool:
        if not cookie:
            return False
        for pair in cookie.decode("latin-1").split(";"):
            name, _, value = pair.strip().partition("=")
            if name == "session" and value.strip() == sid:
                return True
        return False


def flow_http1_response(answer: FlowAnswer, keep_alive: bool) -> bytes:
    """The HTTP/1.1 bytes of an answer, its extra headers included."""
    if not answer.headers:
        return _json_response(answer.status, answer.body, keep_alive)
    head, sep, rest = _json_response(answer.status, answer.body, keep_alive).partition(b"\r\n")
    extra = b"".join(b"%s: %s\r\n" % (name.title(), value) for name, value in answer.headers)
    return head + sep + extra + rest


class FlowConnection(OpenAIConnection):
    """An ``OpenAIConnection`` that also serves ``/flow/`` (used when ``flow`` is on, with or without ``openai``).

    A flow request draws its delay and status from the server's ``Behaviour``
    like any plain request: an injected error or a full capacity queue answers
    as it would there, and the request changes nothing. Otherwise its effect
    happens when it arrives and its answer leaves after the delay.
    """

    __slots__ = ("_flow_auth", "_flow_cookie")

    def __init__(self, shared: Any) -> None:
        super().__init__(shared)
        self._flow_auth: bytes | None = None
        self._flow_cookie: bytes | None = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._flow_auth = self._flow_cookie = None

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"authorization":
            self._flow_auth = value
        elif lower == b"cookie":
            self._flow_cookie = value if self._flow_cookie is None else self._flow_cookie + b"; " + value

    def _route(self, path: bytes) -> str | None:
        if path.startswith(FLOW_PREFIX):
            return "flow"
        return None if self._shared.openai is None else super()._route(path)

    def on_message_complete(self) -> None:
        if self._oa_kind != "flow":
            super().on_message_complete()
            return
        if self._close_seq is not None:
            return
        parser = self._parser
        keep_alive = parser.should_keep_alive()
        seq = self._number(keep_alive)
        body, self._oa_body = b"".join(self._oa_body), []
        path = self._oa_url.split(b"?", 1)[0].decode("latin-1")
        shared = self._shared
        delay, answer = answer_flow(
            shared, shared.time(), parser.get_method(), path, self._flow_auth, self._flow_cookie, body, self._oa_body_size
        )
        if isinstance(answer, int):
            data = shared.responses[answer][keep_alive]
        else:
            data = flow_http1_response(answer, keep_alive)
        if delay > 0.0:
            shared.call_later(delay, self._deliver, seq, data)
        else:
            self._deliver(seq, data)


def answer_flow(
    shared: Any,
    now: float,
    method: bytes,
    path: str,
    authorization: bytes | None,
    cookie: bytes | None,
    body: bytes,
    size: int,
) -> tuple[float, FlowAnswer | int]:
    """(Delay from ``now``, what to answer) for one flow request: a ``FlowAnswer``, or a plain status drawn."""
    flow: FlowState = shared.flow
    if path == STATS:
        return 0.0, flow.handle(method, path, authorization, cookie, body)
    behaviour = shared.behaviour
    delay, status = (0.0, 200) if behaviour.instant else behaviour.next_response(now)
    if status != 200:
        return delay, status
    if size > MAX_FLOW_BODY:
        return delay, _error(413, f"the request body is larger than {MAX_FLOW_BODY} bytes")
    return delay, flow.handle(method, path, authorization, cookie, body)
