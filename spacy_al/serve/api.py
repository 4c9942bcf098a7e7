"""A JSON API over the feed: label from a script, another front end, or a test.

``python -m spacy_al RECIPE ... --api`` serves an interactive recipe's feed with
this API instead of the Streamlit app (same pool, leases, store and trainer)::

    POST /next    {"annotator", "token"}          → {"task": {...} or null}
    POST /answer  {"annotator", "token", "task"}  → {"id": 12, "duplicate": false}
    GET  /stats?annotator=NAME&token=TOKEN        → Feed.stats(annotator)
    GET  /health                                  → {"status": "ok"}

The server answers from what it served: ``task`` names the task /next gave by
its ``_input_key`` and carries only the answer (``answer``: accept, reject or
ignore; ``accept``: the right labels; ``spans`` where spans are edited). Text,
hashes, model version and meta are stored as they were served, whatever else
the client sends (sending the whole task back is fine). An answer to a task not
leased to the annotator (never served to them, or their lease ended) gets 409.

``/answer`` replies only once the answer is committed to the store, so an
answer whose reply arrived survives any crash after it. Sending the same answer
again (a retry after a lost reply, or several at once) stores nothing and
replies with the stored answer's id and ``"duplicate": true``. ``token`` is
needed only when the server was started with ``--annotators``; a missing or
wrong token, and an unknown name, get the same 401 reply, which says nothing
about the data. Errors are JSON (``{"error": message}``) with a status code;
bodies over ``MAX_BODY`` bytes are refused unread, and a request must arrive
whole within ``REQUEST_SECONDS`` (a client trickling bytes is cut off). A
refused connection is one warning line in the ``spacy_al.api`` log, never a
traceback. Texts are only ever sent back as JSON strings.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from spacy_al.errors import Errors
from spacy_al.serve.feed import Feed, LeaseError, ServingStopped, check_annotator

MAX_BODY = 1_000_000  # bytes of one request body
MAX_WAIT = 10.0  # seconds /next may wait for the selector
DEFAULT_WAIT = 2.0
REQUEST_TIMEOUT = 30.0  # seconds a connection may sit idle (per read)
REQUEST_SECONDS = 30.0  # seconds to receive one request whole (line, headers, body)
MAX_QUERY_FIELDS = 8
WATCH_SECONDS = 0.25  # how often the watchdog looks for requests past their time
# The key that names a task in an answer (the identity key /next sent with it).
TASK_KEY = "_input_key"
# Identity keys are 64-bit integers: sent as decimal strings, since a JavaScript
# client reads a JSON number above 2**53 with its last digits changed. An answer
# may name its task by the string or by the integer.
KEY_FIELDS = ("_input_key", "_task_key")

logger = logging.getLogger("spacy_al.api")


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
    """A threaded HTTP server that answers every request from one :class:`Feed`.

    A watchdog thread cuts off a connection whose request hasn't arrived whole
    within ``REQUEST_SECONDS`` (the socket's timeout is per read: a client
    sending a byte every few seconds would otherwise hold it for ever).
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a team's connections wait instead of being refused

    def __init__(self, feed: Feed, address: tuple[str, int]) -> None:
        self.feed = feed
        self._deadlines: dict[ApiHandler, float] = {}
        self._watch_lock = threading.Lock()
        self._closed = threading.Event()
        super().__init__(address, ApiHandler)
        self._watchdog = threading.Thread(
            target=self._watch_forever, name="spacy_al-api-watchdog", daemon=True
        )
        self._watchdog.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def watch(self, handler: ApiHandler) -> None:
        """Start timing the request ``handler`` is receiving."""
        with self._watch_lock:
            self._deadlines[handler] = time.monotonic() + REQUEST_SECONDS

    def unwatch(self, handler: ApiHandler) -> None:
        """The request arrived whole (or the connection ended)."""
        with self._watch_lock:
            self._deadlines.pop(handler, None)

    def _watch_forever(self) -> None:
        while not self._closed.wait(WATCH_SECONDS):
            now = time.monotonic()
            with self._watch_lock:
                late = [h for h, end in self._deadlines.items() if end <= now]
                for handler in late:
                    del self._deadlines[handler]
            for handler in late:
                handler.cut(Errors.E983.format(seconds=REQUEST_SECONDS))

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One warning line, never a traceback, for a connection that failed."""
        logger.warning(
            Errors.E984.format(client=_client(client_address), reason="it failed")
        )

    def server_close(self) -> None:
        self._closed.set()
        super().server_close()


def make_server(feed: Feed, host: str = "127.0.0.1", port: int = 0) -> ApiServer:
    """An :class:`ApiServer` for ``feed`` on ``host:port`` (0: any free port),
    listening already; call ``serve_forever()`` to answer."""
    return ApiServer(feed, (host, port))


class _Cut(Exception):
    """The connection was cut off (too slow, or gone): nothing more to send."""


class ApiHandler(BaseHTTPRequestHandler):
    """One request: route it, check the caller, reply with JSON."""

    server: ApiServer
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT
    server_version = "spacy_al"
    sys_version = ""
    _gone = False  # cut off, and logged once

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: the library prints nothing (and logs no texts)."""

    def handle(self) -> None:
        try:
            super().handle()
        except OSError as e:  # the client went away, or was cut off
            self.close_connection = True
            if not self._gone:
                self._gone = True
                logger.warning(
                    Errors.E984.format(
                        client=_client(self.client_address), reason=type(e).__name__
                    )
                )
        finally:
            self.server.unwatch(self)

    def handle_one_request(self) -> None:
        # Waiting for a request is bounded by the per-read timeout; once its
        # first byte is there, the whole request must arrive in REQUEST_SECONDS.
        try:
            if not self.rfile.peek(1):  # closed by the client
                self.close_connection = True
                return
        except (TimeoutError, OSError):  # an idle connection: closed quietly
            self.close_connection = True
            return
        self.server.watch(self)
        super().handle_one_request()

    def cut(self, reason: str) -> None:
        """Cut the connection off (from the watchdog): one log line."""
        if self._gone:
            return
        self._gone = True
        logger.warning(
            Errors.E984.format(client=_client(self.client_address), reason=reason)
        )
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

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
                request = _query(parts.query)
            self.server.unwatch(self)  # received whole: the action may take its time
            self._reply(HTTPStatus.OK, action(self.server.feed, request))
        except _Cut:
            self.close_connection = True
        except ApiError as e:
            self._reply(e.status, {"error": str(e)})
        except Exception as e:  # never a traceback, never the data, to the client
            message = Errors.E849.format(kind=type(e).__name__)
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": message})

    def _refuse_body(self) -> None:
        if self.headers.get("Transfer-Encoding") or self.headers.get(
            "Content-Length", "0"
        ).strip() not in ("", "0"):
            self.close_connection = True
            raise ApiError(HTTPStatus.BAD_REQUEST, Errors.E845)

    def _read_json(self) -> dict[str, Any]:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, Errors.E846.format(max=MAX_BODY))
        text = self.headers.get("Content-Length", "").strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 12:
            self.close_connection = True
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, Errors.E846.format(max=MAX_BODY))
        length = int(text)
        if length > MAX_BODY:
            self.close_connection = True  # the body is left unread
            raise ApiError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                Errors.E847.format(size=length, max=MAX_BODY),
            )
        try:
            body = self.rfile.read(length)
        except (TimeoutError, OSError) as e:  # stalled mid-body, or gone
            self.cut(Errors.E983.format(seconds=REQUEST_SECONDS))
            raise _Cut from e
        if len(body) < length:  # cut off by the watchdog, or the client closed
            self.cut(Errors.E983.format(seconds=REQUEST_SECONDS))
            raise _Cut
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
        if self._gone:
            return
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


def _client(address: Any) -> str:
    try:
        return f"{address[0]}:{address[1]}"
    except (TypeError, IndexError):
        return str(address)


def _query(query: str) -> dict[str, str]:
    """The query string's fields (the last of repeated ones); 400 for too many."""
    try:
        fields = parse_qs(query, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:
        raise ApiError(
            HTTPStatus.BAD_REQUEST, Errors.E982.format(max=MAX_QUERY_FIELDS)
        ) from None
    return {k: v[-1] for k, v in fields.items()}


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


def _wait(request: dict[str, Any]) -> float:
    """The seconds /next may wait: a number, clipped to 0..MAX_WAIT; 400 else."""
    wait = request.get("wait", DEFAULT_WAIT)
    try:
        ok = isinstance(wait, int | float) and not isinstance(wait, bool)
        seconds = float(wait) if ok else math.nan
    except OverflowError:  # an int of thousands of digits
        seconds = math.nan
    if not math.isfinite(seconds):
        raise ApiError(HTTPStatus.BAD_REQUEST, Errors.E850.format(max=MAX_WAIT))
    return min(max(seconds, 0.0), MAX_WAIT)


def _next(feed: Feed, request: dict[str, Any]) -> dict[str, Any]:
    who = _annotator(feed, request)
    wait = _wait(request)
    try:
        task = feed.next_task(who, timeout=wait)
    except ServingStopped as e:
        raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, str(e)) from None
    if task is not None:
        task = {
            **task,
            **{key: str(task[key]) for key in KEY_FIELDS if key in task},
        }
    return {"task": task}


def _task_key(value: Any) -> Any:
    """The integer of a key sent as a decimal string (as /next sends it); any
    other value as it is (the feed refuses what names no task of yours)."""
    if isinstance(value, str) and value.lstrip("-").isdigit() and len(value) <= 20:
        return int(value)
    return value


def _answer(feed: Feed, request: dict[str, Any]) -> dict[str, Any]:
    who = _annotator(feed, request)
    task = request.get("task")
    if not isinstance(task, dict):
        raise ApiError(HTTPStatus.BAD_REQUEST, Errors.E851)
    if TASK_KEY in task:
        task = {**task, TASK_KEY: _task_key(task[TASK_KEY])}
    try:
        answer_id = feed.answer(who, task)
    except LeaseError as e:  # not this annotator's task (now)
        raise ApiError(HTTPStatus.CONFLICT, str(e)) from None
    except ServingStopped as e:
        raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, str(e)) from None
    except (ValueError, PermissionError) as e:  # a bad answer, named by the feed
        raise ApiError(HTTPStatus.BAD_REQUEST, str(e)) from None
    if answer_id is not None:
        return {"id": answer_id, "duplicate": False}
    # Answered before (a retry whose first reply was lost, or a repeat sent at
    # the same time): the id of the answer stored.
    return {"id": feed.answer_id(who, task.get(TASK_KEY)), "duplicate": True}


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
