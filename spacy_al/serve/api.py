"""A JSON API over the feed: label from a script, another front end, or a test.

``python -m spacy_al RECIPE ... --api`` serves an interactive recipe's feed with
this API instead of the Streamlit app (same pool, leases, store and trainer)::

    POST /next    {"annotator", "token"}          → {"task": {...} or null}
    POST /answer  {"annotator", "token", "task"}  → {"id": 12, "duplicate": false}
    GET  /stats?annotator=NAME&token=TOKEN        → Feed.stats(annotator)
    GET  /health                                  → {"status": "ok"}

``/answer`` replies only once the answer is committed to the store, so an
answer whose reply arrived survives any crash after it. Sending the same answer
again (a retry after a lost reply) stores nothing and replies with the stored
answer's id and ``"duplicate": true``. ``token`` is needed only when the server
was started with ``--annotators``; a missing or wrong token, and an unknown
name, get the same 401 reply, which says nothing about the data. Errors are JSON
(``{"error": message}``) with a status code; bodies over ``MAX_BODY`` bytes are
refused unread. Texts are only ever sent back as JSON strings.
"""

from __future__ import annotations

import json
import math
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from spacy_al.corpus import set_hashes
from spacy_al.errors import Errors
from spacy_al.serve.feed import Feed, check_annotator

MAX_BODY = 1_000_000  # bytes of one request body
MAX_WAIT = 10.0  # seconds /next may wait for the selector
DEFAULT_WAIT = 2.0
REQUEST_TIMEOUT = 30.0  # seconds a connection may sit idle


class ApiError(Exception):
    """A request the API refuses: its status code and the message sent back."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        self.status = status
        super().__init__(message)


def _json_default(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, default=_json_default, ensure_ascii=True).encode("ascii")


class ApiServer(ThreadingHTTPServer):
    """A threaded HTTP server that answers every request from one :class:`Feed`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a team's connections wait instead of being refused

    def __init__(self, feed: Feed, address: tuple[str, int]) -> None:
        self.feed = feed
        super().__init__(address, ApiHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def make_server(feed: Feed, host: str = "127.0.0.1", port: int = 0) -> ApiServer:
    """An :class:`ApiServer` for ``feed`` on ``host:port`` (0: any free port),
    listening already; call ``serve_forever()`` to answer."""
    return ApiServer(feed, (host, port))


class ApiHandler(BaseHTTPRequestHandler):
    """One request: route it, check the caller, reply with JSON."""

    server: ApiServer
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT
    server_version = "spacy_al"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: the library prints nothing (and logs no texts)."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        try:
            parts = urlsplit(self.path)
            route = ROUTES.get(parts.path)
            if route is None:
                raise ApiError(HTTPStatus.NOT_FOUND, Errors.E843.format(routes=PATHS))
            wanted, action = route
            if method != wanted:
                raise ApiError(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    Errors.E844.format(method=method, path=parts.path, wanted=wanted),
                )
            if method == "POST":
                request = self._read_json()
            else:
                self._refuse_body()
                request = {
                    k: v[-1] for k, v in parse_qs(parts.query, max_num_fields=8).items()
                }
            self._reply(HTTPStatus.OK, action(self.server.feed, request))
        except ApiError as e:
            self._reply(e.status, {"error": str(e)})
        except Exception as e:  # never a traceback, never the data, to the client
            message = Errors.E849.format(kind=type(e).__name__)
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": message})

    def _refuse_body(self) -> None:
        if self.headers.get("Transfer-Encoding") or int(
            self.headers.get("Content-Length") or 0
        ):
            self.close_connection = True
            raise ApiError(HTTPStatus.BAD_REQUEST, Errors.E845)

    def _read_json(self) -> dict[str, Any]:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, Errors.E846.format(max=MAX_BODY))
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            raise ApiError(
                HTTPStatus.LENGTH_REQUIRED, Errors.E846.format(max=MAX_BODY)
            ) from None
        if length < 0 or length > MAX_BODY:
            self.close_connection = True  # the body is left unread
            raise ApiError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                Errors.E847.format(size=length, max=MAX_BODY),
            )
        body = self.rfile.read(length)
        try:
            request = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise ApiError(
                HTTPStatus.BAD_REQUEST, Errors.E848.format(err=type(e).__name__)
            ) from None
        if not isinstance(request, dict):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                Errors.E848.format(err=f"a {type(request).__name__}, not an object"),
            )
        return request

    def _reply(self, status: HTTPStatus, payload: Any) -> None:
        body = _dumps(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'none'")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


# --- the routes -------------------------------------------------------------------


def _annotator(feed: Feed, request: dict[str, Any]) -> str:
    """The caller's checked name: 401 (always the same reply) without the right
    token on a restricted server; 400 for a name that can't be one."""
    name = request.get("annotator")
    token = request.get("token")
    if feed.restricted:
        if not (isinstance(name, str) and feed.check_token(name, token)):
            raise ApiError(HTTPStatus.UNAUTHORIZED, Errors.E842)
        return check_annotator(name)
    try:
        return check_annotator(name)
    except ValueError as e:
        raise ApiError(HTTPStatus.BAD_REQUEST, str(e)) from None


def _next(feed: Feed, request: dict[str, Any]) -> dict[str, Any]:
    who = _annotator(feed, request)
    wait = request.get("wait", DEFAULT_WAIT)
    if (
        not isinstance(wait, (int, float))
        or isinstance(wait, bool)
        or not math.isfinite(wait)
    ):
        raise ApiError(HTTPStatus.BAD_REQUEST, Errors.E850.format(max=MAX_WAIT))
    task = feed.next_task(who, timeout=min(max(float(wait), 0.0), MAX_WAIT))
    return {"task": task}


def _answer(feed: Feed, request: dict[str, Any]) -> dict[str, Any]:
    who = _annotator(feed, request)
    task = request.get("task")
    if not isinstance(task, dict):
        raise ApiError(HTTPStatus.BAD_REQUEST, Errors.E851)
    try:
        answer_id = feed.answer(who, task)
    except ValueError as e:  # a bad answer, named by the feed or the store
        raise ApiError(HTTPStatus.BAD_REQUEST, str(e)) from None
    if answer_id is not None:
        return {"id": answer_id, "duplicate": False}
    # Answered before (a retry whose first reply was lost): the stored answer.
    task_hash = set_hashes(task).get("_task_hash")
    stored = (
        feed.store.answer_id(feed.dataset, task_hash=task_hash, annotator=who)
        if feed.store is not None
        else None
    )
    return {"id": stored, "duplicate": True}


def _stats(feed: Feed, request: dict[str, Any]) -> dict[str, Any]:
    who = _annotator(feed, request)
    return feed.stats(who)


def _health(feed: Feed, request: dict[str, Any]) -> dict[str, Any]:
    return {"status": "ok"}


ROUTES = {
    "/next": ("POST", _next),
    "/answer": ("POST", _answer),
    "/stats": ("GET", _stats),
    "/health": ("GET", _health),
}
PATHS = ", ".join(f"{method} {path}" for path, (method, _) in ROUTES.items())
