"""Real ``python -m spacy_al ...`` processes (an ``--api`` server, ``train``), to
start, kill and ask.

:class:`CliProcess` runs one command and kills it at will; :class:`ServerProcess`
starts the JSON API of an interactive recipe on a port,
waits until it answers ``/health``, kills it with SIGKILL (no handler, no
cleanup) or stops it with SIGTERM, and starts it again. With ``fork=True`` (the
default) each server is forked from a forkserver (:func:`zygote`) that imported
spacy_al once, so a restart costs the recipe's start-up, not Python's imports;
``fork=False`` runs ``python -m spacy_al`` each time. :func:`request` sends one
JSON request. The durability trials (:mod:`spacy_al.benchmarks.durability`) are
built on these.
"""

from __future__ import annotations

import http.client
import importlib
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
READY_TIMEOUT = 120.0
REQUEST_TIMEOUT = 30.0


def log_tail(
    path: Path, n: int = 3000, *, what: str = "the server didn't start"
) -> str:
    """The last ``n`` characters of the log at ``path``, after ``what`` (for an
    error message about a process that failed)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"{what} (no log at {path})"
    return f"{what}:\n" + text[-n:]


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


#: What ``python -m spacy_al ... --api`` imports, loaded once by the forkserver.
#: The server is the command-line program, driven from outside: named here as
#: ``python -m`` names it, not imported by this module.
PROGRAM = "spacy_al"
PRELOAD = ("spacy_al.cli", "spacy_al.serve.launcher", "spacy_al.serve.api")


def _run_cli(argv: list[str], env: dict[str, str], log: str) -> None:
    """A forked server's main: ``python -m spacy_al ARGV`` with output to ``log``."""
    os.environ.update(env)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    code = 0
    sys.argv = [PROGRAM, *argv]
    try:
        runpy.run_module(PROGRAM, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def zygote() -> None:
    """The forkserver's main (``python -c "from spacy_al.benchmarks.processes import
    zygote; zygote()"``): import spacy_al once, then fork one server per request.

    Reads JSON lines on stdin: ``{"argv", "env", "log"}`` forks a server and
    replies ``{"pid"}``; ``{"poll": pid, "timeout": s}`` waits up to ``s``
    seconds for that child to end and replies ``{"exit": code or null}``. Ends
    at end of input.
    """
    for name in PRELOAD:
        importlib.import_module(name)
    importlib.import_module(PRELOAD[0]).load_builtin_recipes()  # every recipe module
    out = os.fdopen(os.dup(1), "w", buffering=1)
    ended: dict[int, int] = {}

    def reap(pid: int, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while True:
            if pid in ended:
                return ended.pop(pid)
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return None
            if done:
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        command = json.loads(line)
        if "argv" in command:
            pid = os.fork()
            if pid == 0:
                _run_cli(command["argv"], command["env"], command["log"])
            out.write(json.dumps({"pid": pid}) + "\n")
        else:
            code = reap(int(command["poll"]), float(command.get("timeout", 0)))
            out.write(json.dumps({"exit": code}) + "\n")


class Zygote:
    """A running :func:`zygote` process, to fork servers from."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from spacy_al.benchmarks.processes import zygote; zygote()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Lock()
        if json.loads(self._proc.stdout.readline() or "{}").get("ready") is not True:
            raise RuntimeError(
                "the forkserver of spacy_al.benchmarks.processes didn't start"
            )

    def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._proc.stdin.write(json.dumps(command) + "\n")
            self._proc.stdin.flush()
            return json.loads(self._proc.stdout.readline())

    def fork(self, argv: Sequence[str], env: Mapping[str, str], log: str) -> int:
        return int(self._ask({"argv": list(argv), "env": dict(env), "log": log})["pid"])

    def wait(self, pid: int, timeout: float = 0.0) -> int | None:
        """The child's exit code once it ended (None if still running after
        ``timeout`` seconds)."""
        return self._ask({"poll": pid, "timeout": timeout})["exit"]

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


class _Forked:
    """A server forked by a :class:`Zygote`, with Popen's poll/wait."""

    def __init__(self, zygote: Zygote, pid: int) -> None:
        self.zygote = zygote
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.wait(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            wait = 3600.0 if timeout is None else timeout
            self.returncode = self.zygote.wait(self.pid, wait)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
        return self.returncode


class CliProcess:
    """``python -m spacy_al ARGV`` as a process of its own, started and killed at
    will.

    ``env`` is added to this process's environment; the program's output goes
    to ``log``. Each :meth:`start` makes a new process (forked from a preloaded
    forkserver with ``fork``).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log: str | Path,
        env: Mapping[str, str] | None = None,
        fork: bool = True,
    ) -> None:
        self.argv = list(argv)
        self.log = str(log)
        self.env = dict(env or {})
        self.fork = fork
        self._zygote: Zygote | None = None
        self._proc: Any = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        if self.fork:
            if self._zygote is None:
                self._zygote = Zygote()
            pid = self._zygote.fork(self.argv, self.env, self.log)
            proc: Any = _Forked(self._zygote, pid)
        else:
            with open(self.log, "ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", PROGRAM, *self.argv],
                    env={**os.environ, **self.env},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        self._proc = proc
        self.starts += 1

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds for the process to end: its exit code,
        or None if it still runs."""
        if self._proc is None:
            return None
        return self._exit_code() if self._join(timeout) else None

    def kill(self) -> None:
        """SIGKILL: no handler, no cleanup, no final save."""
        if self._proc is None:
            return
        try:
            os.kill(self._proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # it had ended (and is being reaped)
            pass
        self._join()

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (as a service manager stops it: the model is saved), then
        SIGKILL after ``timeout``. Returns the exit code."""
        if self._proc is None or not self.alive():
            return self._exit_code()
        os.kill(self._proc.pid, signal.SIGTERM)
        if not self._join(timeout):
            self.kill()
        return self._exit_code()

    def _join(self, timeout: float | None = None) -> bool:
        try:
            self._proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def _exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    def close(self) -> None:
        """Stop the process if it runs, and the forkserver."""
        self.stop()
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None


class ServerProcess(CliProcess):
    """``python -m spacy_al ARGV --api`` on ``port``, started and killed at will
    (see :class:`CliProcess`); :meth:`wait_ready` waits for ``/health``."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        port: int,
        log: str | Path,
        env: Mapping[str, str] | None = None,
        fork: bool = True,
    ) -> None:
        super().__init__(
            [*argv, "--port", str(port), "--host", HOST, "--api"],
            log=log,
            env=env,
            fork=fork,
        )
        self.port = port

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> bool:
        """Poll ``/health`` until it answers (True), or the process dies or
        ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            try:
                status, _ = request(self.port, "GET", "/health", timeout=2.0)
                if status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False


def request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    timeout: float = REQUEST_TIMEOUT,
) -> tuple[int, Any]:
    """One JSON request to the API on ``port``: (status, decoded reply).

    Raises OSError (or http.client.HTTPException) when the server is down or
    the connection breaks.
    """
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None
    finally:
        conn.close()
