"""The mock's flow endpoints (``mock: {flow: true}``) against a real mock process and aiohttp with cookie jars."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import h2.config
import h2.connection
import h2.events
import orjson
import pytest

from bench.mock import MockConfig, MockConfigError, MockServerProcess
from bench.mock.flow import FlowState

TIMEOUT = aiohttp.ClientTimeout(total=10)


def run(coro: Any, timeout: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def client(cookies: bool = True) -> aiohttp.ClientSession:
    # unsafe=True: the mock is reached by IP address, whose cookies aiohttp's jar refuses by default.
    jar = aiohttp.CookieJar(unsafe=True) if cookies else aiohttp.DummyCookieJar()
    return aiohttp.ClientSession(cookie_jar=jar, timeout=TIMEOUT)


async def login(session: aiohttp.ClientSession, url: str, user: str) -> tuple[str, int, aiohttp.ClientResponse]:
    async with session.post(f"{url}/flow/login", json={"user": user}) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
        return body["token"], body["user_id"], response


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with session.request(method, url, **kwargs) as response:
        return response.status, await response.json(content_type=None)


@pytest.fixture(scope="module")
def mock() -> Any:
    config = MockConfig.from_mapping({"flow": True, "latency": {"model": "fixed", "delay": "20ms"}})
    with MockServerProcess(config) as server:
        yield server


def test_login_cart_items_and_the_stats_add_up(mock: Any) -> None:
    async def scenario() -> None:
        url = mock.url
        async with client() as ann, client() as bob, client(cookies=False) as anon:
            before = (await call(anon, "GET", f"{url}/flow/stats"))[1]
            started = time.monotonic()
            token, user_id, response = await login(ann, url, "ann")
            assert time.monotonic() - started >= 0.020  # after the latency model, as any request
            cookie = response.headers["Set-Cookie"]
            assert cookie.startswith("session=") and cookie.endswith("; Path=/; HttpOnly")
            assert response.headers["Location"] == f"/flow/users/{user_id}"
            assert len(ann.cookie_jar) == 1

            status, cart = await call(ann, "GET", f"{url}/flow/cart", headers=bearer(token))
            assert (status, cart["items"]) == (200, 0)
            cart_id = cart["cart_id"]
            for count in (1, 2, 3):
                status, body = await call(ann, "POST", f"{url}/flow/cart/{cart_id}/items", headers=bearer(token))
                assert (status, body) == (201, {"cart_id": cart_id, "items": count})
            assert await call(ann, "GET", f"{url}/flow/cart", headers=bearer(token)) == (
                200,
                {"cart_id": cart_id, "items": 3},
            )
            # The Location header leads to the user; a token is enough there.
            assert await call(anon, "GET", url + response.headers["Location"], headers=bearer(token)) == (
                200,
                {"user_id": user_id, "name": "ann"},
            )

            # No cookie: 403. No token or a wrong one: 401.
            assert (await call(anon, "GET", f"{url}/flow/cart", headers=bearer(token)))[0] == 403
            assert (await call(ann, "GET", f"{url}/flow/cart"))[0] == 401
            assert (await call(ann, "GET", f"{url}/flow/cart", headers=bearer(token + "x")))[0] == 401
            assert (await call(anon, "GET", f"{url}/flow/users/{user_id}"))[0] == 401

            # Someone else's cart: 404, and nothing added to it.
            bob_token, bob_id, _ = await login(bob, url, "bob")
            assert bob_id != user_id
            status, bob_cart = await call(bob, "GET", f"{url}/flow/cart", headers=bearer(bob_token))
            assert status == 200 and bob_cart["cart_id"] != cart_id
            assert (await call(bob, "POST", f"{url}/flow/cart/{cart_id}/items", headers=bearer(bob_token)))[0] == 404
            # Bob's token with Ann's cookie: the two are not of one login.
            assert (await call(ann, "GET", f"{url}/flow/cart", headers=bearer(bob_token)))[0] == 403

            # A second login of ann is a new session with the same user id; the old cookie is replaced.
            token2, again, _ = await login(ann, url, "ann")
            assert again == user_id and token2 != token
            status, cart2 = await call(ann, "GET", f"{url}/flow/cart", headers=bearer(token2))
            assert status == 200 and cart2 == {"cart_id": cart2["cart_id"], "items": 0} and cart2["cart_id"] != cart_id
            assert (await call(ann, "GET", f"{url}/flow/cart", headers=bearer(token)))[0] == 403

            after = (await call(anon, "GET", f"{url}/flow/stats"))[1]
        delta = {key: after[key] - before[key] for key in after}
        assert delta == {
            "logins": 3,
            "carts": 3,
            "items": 3,
            "users": 2,
            "bad_requests": 0,
            "unauthorized": 3,
            "forbidden": 3,
            "not_found": 1,
        }

    run(scenario())


def test_bad_logins_unknown_paths_and_methods(mock: Any) -> None:
    async def scenario() -> None:
        url = mock.url
        async with client(cookies=False) as anon:
            before = (await call(anon, "GET", f"{url}/flow/stats"))[1]
            for body in (b"not json", b"[]", b'{"user": ""}', b'{"name": "ann"}', b'{"user": 3}'):
                status, answer = await call(anon, "POST", f"{url}/flow/login", data=body)
                assert status == 400 and "user" in answer["error"], body
            assert (await call(anon, "GET", f"{url}/flow/login"))[0] == 405
            assert (await call(anon, "POST", f"{url}/flow/cart"))[0] == 405
            assert (await call(anon, "GET", f"{url}/flow/nowhere"))[0] == 404
            assert (await call(anon, "GET", f"{url}/flow/users/999999"))[0] == 401  # the token is checked first
            token, _, _ = await login(anon, url, "carl")
            assert (await call(anon, "GET", f"{url}/flow/users/999999", headers=bearer(token)))[0] == 404
            assert (await call(anon, "GET", f"{url}/flow/users/x", headers=bearer(token)))[0] == 404
            assert (await call(anon, "GET", f"{url}/flow/users/{'9' * 5000}", headers=bearer(token)))[0] == 404  # int() refuses 4,300+ digits
            after = (await call(anon, "GET", f"{url}/flow/stats"))[1]
        delta = {key: after[key] - before[key] for key in after}
        assert delta["bad_requests"] == 5 and delta["not_found"] == 4 and delta["unauthorized"] == 1
        assert delta["logins"] == 1

    run(scenario())


def test_flow_off_keeps_the_plain_answer_and_errors_change_nothing() -> None:
    async def scenario(url: str, expect: int) -> dict[str, Any]:
        async with client() as session:
            status, body = await call(session, "POST", f"{url}/flow/login", json={"user": "ann"})
            assert status == expect and "token" not in body
            return body

    with MockServerProcess(MockConfig.from_mapping({"body_bytes": 40})) as plain:
        assert run(scenario(plain.url, 200))["status"] == 200
    config = MockConfig.from_mapping({"flow": True, "errors": {"rate": 1.0, "statuses": [503]}})
    with MockServerProcess(config) as failing:
        run(scenario(failing.url, 503))

        async def stats() -> Any:
            async with client() as session:
                return await call(session, "GET", f"{failing.url}/flow/stats")

        status, counts = run(stats())
        assert status == 200 and counts["logins"] == 0


def test_flow_config() -> None:
    assert MockConfig.from_mapping({}).flow is False
    assert MockConfig.from_mapping({"flow": True}).flow is True
    with pytest.raises(MockConfigError) as info:
        MockConfig.from_mapping({"flow": "yes"})
    assert info.value.field == "flow"
    with pytest.raises(MockConfigError) as info:
        MockConfig.from_mapping({"flwo": True})
    assert "did you mean 'flow'" in str(info.value)


def test_flow_state_without_sockets() -> None:
    state = FlowState(seed=5)
    answer = state.handle(b"POST", "/flow/login", None, None, b'{"user": "dee"}')
    assert answer.status == 200 and dict(answer.headers)[b"location"] == b"/flow/users/1"
    again = FlowState(seed=5).handle(b"POST", "/flow/login", None, None, b'{"user": "dee"}')
    assert again.body == answer.body  # seeded: the same tokens for the same seed
    token = answer.body.split(b'"token":"')[1].split(b'"')[0]
    sid = dict(answer.headers)[b"set-cookie"].split(b";")[0].split(b"=")[1]
    auth = b"bearer " + token  # the scheme is case-insensitive
    cookie = b"theme=dark; session=" + sid
    assert state.handle(b"GET", "/flow/cart", auth, cookie, b"").status == 200
    assert state.handle(b"GET", "/flow/cart", auth, b"session=" + sid + b"x", b"").status == 403
    assert state.handle(b"GET", "/flow/cart", b"Basic " + token, cookie, b"").status == 401


class H2Client:
    """One HTTP/2 (h2c) connection on the h2 library, a request at a time, keeping its own cookie."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        self.cookie: bytes | None = None

    async def request(self, method: str, path: str, token: str | None = None, body: bytes = b"") -> tuple[int, dict[bytes, bytes], Any]:
        conn = self.conn
        stream_id = conn.get_next_available_stream_id()
        headers = [(b":method", method.encode()), (b":path", path.encode()), (b":scheme", b"http"), (b":authority", b"t")]
        if token is not None:
            headers.append((b"authorization", f"Bearer {token}".encode()))
        if self.cookie is not None:
            headers += [(b"cookie", b"theme=dark"), (b"cookie", self.cookie)]  # split cookie fields, as h2 clients do
        conn.send_headers(stream_id, headers, end_stream=not body)
        if body:
            conn.send_data(stream_id, body, end_stream=True)
        self.writer.write(conn.data_to_send())
        response: dict[bytes, bytes] = {}
        data = b""
        for _ in range(1000):  # bounded: a response takes a few reads
            chunk = await self.reader.read(65536)
            assert chunk, "connection closed"
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                    response = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                    self.writer.write(conn.data_to_send())
                    if b"set-cookie" in response:
                        self.cookie = response[b"set-cookie"].split(b";")[0]
                    return int(response[b":status"]), response, orjson.loads(data)
            self.writer.write(conn.data_to_send())
        raise AssertionError("no response")


def test_flow_over_h2c(mock: Any) -> None:
    async def scenario() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", mock.port)
        try:
            client = H2Client(reader, writer)
            status, headers, body = await client.request("POST", "/flow/login", body=b'{"user": "h2user"}')
            assert status == 200 and headers[b"location"] == b"/flow/users/%d" % body["user_id"]
            token = body["token"]
            status, _, cart = await client.request("GET", "/flow/cart", token)
            assert status == 200 and cart["items"] == 0
            status, _, added = await client.request("POST", f"/flow/cart/{cart['cart_id']}/items", token)
            assert (status, added["items"]) == (201, 1)
            assert (await client.request("POST", "/flow/cart/nope/items", token))[0] == 404
            assert (await client.request("GET", "/flow/cart", token + "x"))[0] == 401
            client.cookie = None
            assert (await client.request("GET", "/flow/cart", token))[0] == 403
        finally:
            writer.close()

    run(scenario())


def test_flow_and_openai_together() -> None:
    config = MockConfig.from_mapping(
        {"flow": True, "openai": {"ttft": {"model": "fixed", "delay": "5ms"}, "output_tokens": {"fixed": 3}}}
    )

    async def scenario(url: str) -> None:
        async with client() as session:
            token, _, _ = await login(session, url, "ann")
            assert (await call(session, "GET", f"{url}/flow/cart", headers=bearer(token)))[0] == 200
            chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            status, body = await call(session, "POST", f"{url}/v1/chat/completions", json=chat)
            assert status == 200 and body["usage"]["completion_tokens"] == 3
            status, counts = await call(session, "GET", f"{url}/v1/mock/stats")
            assert status == 200 and counts["requests"] == 1 and counts["prompt_tokens"] == 1

    with MockServerProcess(config) as mock:
        run(scenario(mock.url))
