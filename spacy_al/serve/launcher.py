"""Start the labelling app for an interactive recipe, and rebuild its feed inside it.

``python -m spacy_al textcat.teach ...`` runs the recipe, then :func:`serve_recipe`
starts ``python -m streamlit run app.py`` as a child process, passing the recipe's
name and arguments in the environment. The app process runs the recipe again
(:func:`build_feed`) and serves its components through one shared
:class:`~spacy_al.serve.feed.Feed`. This module is the CLI's launcher: it is the only
library module that prints (through wasabi), and it never imports streamlit.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import typing
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from importlib import resources
from pathlib import Path, PurePath
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import urlencode

from spacy_al.errors import Errors
from spacy_al.serve.feed import Feed, make_tokens, parse_annotators

ENV_RECIPE = "SPACY_AL_RECIPE"
ENV_ARGS = "SPACY_AL_ARGS"
ENV_TOKENS = "SPACY_AL_TOKENS"
ENV_FILES = "SPACY_AL_RECIPE_FILES"
# Feed settings for every server of this process (the app's and the API's).
ENV_CHECKPOINT_SECONDS = "SPACY_AL_CHECKPOINT_SECONDS"
ENV_LEASE_SECONDS = "SPACY_AL_LEASE_SECONDS"
TOKENS_SUFFIX = ".tokens.json"
CHECKOUT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


def resource_path(package: str, name: str, *, checkout_dir: str) -> Path:
    """A file shipped as package data of ``package`` (an installed wheel), or in
    ``checkout_dir`` of a source checkout."""
    places: list[str] = []
    try:
        path = resources.files(package) / name
        places.append(str(path))
        if path.is_file():
            return Path(str(path))
    except ModuleNotFoundError:
        places.append(f"package {package} (not installed)")
    path = CHECKOUT / checkout_dir / name
    places.append(str(path))
    if path.is_file():
        return path
    raise FileNotFoundError(Errors.E607.format(places=", ".join(places)))


def app_path() -> Path:
    """The Streamlit script: ``spacy_al/app/app.py`` in a wheel, ``app.py`` here."""
    return resource_path("spacy_al.app", "app.py", checkout_dir=".")


def streamlit_command(*, host: str, port: int, app: Path | None = None) -> list[str]:
    """The command line that serves the app headless on ``host:port``."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app or app_path()),
        "--server.headless",
        "true",
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "minimal",
    ]


def _json_value(value: Any) -> Any:
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"Can't pass {type(value).__name__} {value!r} to the app")


def app_env(
    recipe: str,
    kwargs: Mapping[str, Any],
    *,
    tokens: Mapping[str, str] | None = None,
    recipe_files: Sequence[str | Path] = (),
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of the app process: ``base`` (default: this process's)
    plus the recipe, its arguments, the annotators' tokens and ``-F`` files."""
    env = dict(os.environ if base is None else base)
    env[ENV_RECIPE] = recipe
    env[ENV_ARGS] = json.dumps(dict(kwargs), default=_json_value)
    env[ENV_TOKENS] = json.dumps(dict(tokens or {}))
    env[ENV_FILES] = json.dumps([str(Path(f).resolve()) for f in recipe_files])
    return env


def read_app_env(env: Mapping[str, str]) -> tuple[str, dict, dict, list[str]]:
    """(recipe, kwargs, tokens, recipe files) from the app process's environment."""
    recipe = env.get(ENV_RECIPE, "").strip()
    if not recipe:
        raise ValueError(Errors.E608.format(var=ENV_RECIPE, err="not set"))
    values = []
    for var, default in ((ENV_ARGS, "{}"), (ENV_TOKENS, "{}"), (ENV_FILES, "[]")):
        try:
            values.append(json.loads(env.get(var) or default))
        except json.JSONDecodeError as e:
            raise ValueError(Errors.E608.format(var=var, err=e)) from e
    kwargs, tokens, files = values
    return recipe, kwargs, tokens, files


def _wants_path(hint: Any) -> bool:
    origin = get_origin(hint)
    if origin is Annotated:
        return _wants_path(get_args(hint)[0])
    if origin in (Union, types.UnionType):
        return any(_wants_path(arg) for arg in get_args(hint))
    return isinstance(hint, type) and issubclass(hint, PurePath)


def restore_paths(func: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """JSON turned the recipe's Path arguments into strings: make them Paths again."""
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except (NameError, TypeError):  # unresolvable annotations: pass values as they are
        return dict(kwargs)
    return {
        key: Path(value)
        if isinstance(value, str) and _wants_path(hints.get(key))
        else value
        for key, value in kwargs.items()
    }


def build_components(
    recipe: str, kwargs: Mapping[str, Any], *, recipe_files: Iterable[str] = ()
) -> dict[str, Any]:
    """Run the interactive recipe ``recipe`` with ``kwargs``; return its components."""
    from spacy_al import registry
    from spacy_al.cli import load_builtin_recipes, load_recipe_file

    load_builtin_recipes()
    for path in recipe_files:
        load_recipe_file(path)
    recipes = registry.recipes.get_all()
    if recipe not in recipes:
        names = ", ".join(sorted(recipes))
        raise ValueError(Errors.E609.format(name=recipe, names=names))
    func = recipes[recipe]
    components = func(**restore_paths(func, kwargs))
    if not isinstance(components, dict) or "view_id" not in components:
        raise ValueError(
            Errors.E610.format(name=recipe, kind=type(components).__name__)
        )
    return components


def build_feed(
    recipe: str,
    kwargs: Mapping[str, Any],
    *,
    tokens: Mapping[str, str] | None = None,
    recipe_files: Iterable[str] = (),
    **feed_kwargs: Any,
) -> Feed:
    """The app's shared feed: run ``recipe`` and wrap its components."""
    components = build_components(recipe, kwargs, recipe_files=recipe_files)
    return Feed.from_components(
        components, tokens=tokens or None, **{**feed_settings(), **feed_kwargs}
    )


def feed_settings(env: Mapping[str, str] | None = None) -> dict[str, float]:
    """Feed settings from the environment: ``SPACY_AL_CHECKPOINT_SECONDS`` (how
    often the model is saved, default 30) and ``SPACY_AL_LEASE_SECONDS`` (how long
    an example stays with an annotator who went quiet, default 120)."""
    env = os.environ if env is None else env
    out: dict[str, float] = {}
    for var, key in (
        (ENV_CHECKPOINT_SECONDS, "checkpoint_seconds"),
        (ENV_LEASE_SECONDS, "lease_seconds"),
    ):
        if env.get(var):
            try:
                out[key] = float(env[var])
            except ValueError as e:
                raise ValueError(Errors.E608.format(var=var, err=e)) from e
    return out


def annotator_tokens(
    annotators: Iterable[str], checkpoint: str | Path | None
) -> dict[str, str]:
    """Each annotator's token, the same across restarts of the server.

    Kept beside the dataset's model checkpoint (``CHECKPOINT.tokens.json``,
    readable by the owner only), so that after a crash or a restart everyone's
    link still works; a new name gets a new token. Without a checkpoint folder,
    fresh tokens.
    """
    names = parse_annotators(list(annotators))
    if checkpoint is None:
        return make_tokens(names)
    path = Path(checkpoint)
    path = path.with_name(path.name + TOKENS_SUFFIX)
    try:
        saved = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        if not isinstance(saved, dict):
            saved = {}
        tokens = {
            name: saved[name] if isinstance(saved.get(name), str) else token
            for name, token in make_tokens(names).items()
        }
        if any(saved.get(name) != token for name, token in tokens.items()):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({**saved, **tokens}, f)
            os.replace(tmp, path)
    except (OSError, ValueError) as e:
        raise ValueError(Errors.E852.format(path=path, err=e)) from e
    return tokens


def session_urls(
    host: str, port: int, *, tokens: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each annotator's link (with their token), or ``{"": base URL}`` when open."""
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    base = f"http://{shown}:{port}/"
    if not tokens:
        return {"": base}
    return {
        name: base + "?" + urlencode({"session": name, "token": token})
        for name, token in tokens.items()
    }


def check_port(host: str, port: int) -> None:
    """Raise ValueError if ``host:port`` can't be listened on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as e:
            raise ValueError(Errors.E611.format(host=host, port=port, err=e)) from e


def wait_until_ready(
    url: str, process: subprocess.Popen, *, timeout: float = READY_TIMEOUT
) -> bool:
    """Poll Streamlit's health endpoint until it answers (True) or the process
    exits or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    health = url.rstrip("/") + "/_stcore/health"
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(health, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def stop(process: subprocess.Popen, *, timeout: float = STOP_TIMEOUT) -> int:
    """Stop the server: SIGINT (as Ctrl+C), then SIGTERM, then SIGKILL."""
    for send in (
        lambda: process.send_signal(signal.SIGINT),
        process.terminate,
        process.kill,
    ):
        if process.poll() is not None:
            break
        send()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            continue
    return process.wait()


def serve_recipe(
    name: str,
    kwargs: Mapping[str, Any],
    components: dict[str, Any],
    *,
    recipe_files: Sequence[str | Path] | None = None,
) -> int:
    """Serve an interactive recipe's app until it stops; return its exit code.

    ``components`` (what the recipe returned here) are only read for their
    settings and then released: the app process builds its own from ``name`` and
    ``kwargs``. ``recipe_files`` are the ``-F`` files (default: those on this
    process's command line). Ctrl+C stops the server and returns 0.
    """
    from wasabi import msg

    from spacy_al.cli import split_recipe_files

    config = components.get("config") or {}
    host = str(config.get("host") or "127.0.0.1")
    port = int(config.get("port") or 8501)
    annotators = parse_annotators(config.get("annotators"))
    try:
        tokens = (
            annotator_tokens(annotators, components.get("checkpoint"))
            if annotators
            else {}
        )
    except ValueError as e:
        msg.fail(str(e))
        return 1
    if recipe_files is None:
        recipe_files, _ = split_recipe_files(sys.argv[1:])
    # This process's copy of the pool and model isn't used again: let it go.
    store = components.get("store")
    if store is not None:
        store.close()
    components.clear()
    try:
        check_port(host, port)
    except ValueError as e:
        msg.fail(str(e))
        return 1
    env = app_env(name, kwargs, tokens=tokens, recipe_files=recipe_files)
    process = subprocess.Popen(streamlit_command(host=host, port=port), env=env)
    # SIGTERM (a service manager, docker stop) stops the server too, as Ctrl+C does.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        urls = session_urls(host, port, tokens=tokens)
        base = next(iter(urls.values())).split("?")[0]
        if not wait_until_ready(base, process):
            code = stop(process)
            msg.fail(Errors.E612.format(code=code, url=base))
            return code or 1
        if tokens:
            msg.good(f"Labelling app for {name} is running. One link per annotator:")
            for who, url in urls.items():
                msg.text(f"  {who}: {url}")
        else:
            msg.good(f"Labelling app for {name}: {base}?session=YOUR_NAME")
        msg.text("Press Ctrl+C to stop.")
        return process.wait()
    except KeyboardInterrupt:
        stop(process)
        msg.info("Stopped the labelling app.")
        return 0
    finally:
        stop(process)  # whatever happened here, never leave the server behind
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def serve_api(name: str, components: dict[str, Any]) -> int:
    """Serve an interactive recipe's feed as a JSON API (see :mod:`spacy_al.serve.api`)
    in this process until Ctrl+C or SIGTERM; return the exit code.

    The recipe already built the components here, so nothing is built twice. The
    API listens on the recipe's ``--host`` and ``--port``; with ``--annotators``
    each annotator's token is printed (and kept for the next start).
    """
    from wasabi import msg

    from spacy_al.serve.api import make_server

    config = components.get("config") or {}
    host = str(config.get("host") or "127.0.0.1")
    port = int(config.get("port") if config.get("port") is not None else 8501)
    annotators = parse_annotators(config.get("annotators"))
    try:
        tokens = (
            annotator_tokens(annotators, components.get("checkpoint"))
            if annotators
            else None
        )
        feed = Feed.from_components(components, tokens=tokens, **feed_settings())
    except ValueError as e:
        msg.fail(str(e))
        return 1
    try:
        httpd = make_server(feed, host, port)
    except OSError as e:
        feed.close()
        msg.fail(Errors.E611.format(host=host, port=port, err=e))
        return 1
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        shown = "localhost" if host in ("0.0.0.0", "::", "") else host
        msg.good(f"JSON API for {name}: http://{shown}:{httpd.port}/ (POST /next)")
        for who, token in (tokens or {}).items():
            msg.text(f"  {who}: token {token}")
        msg.text("Press Ctrl+C to stop.")
        sys.stdout.flush()
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        msg.info("Stopping the API (saving the model)...")
    finally:
        httpd.server_close()
        feed.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
