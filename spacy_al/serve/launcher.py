"""Serve an interactive recipe's components in this process: the app or the API.

``python -m spacy_al textcat.teach ...`` runs the recipe once; :func:`serve_app`
then wraps its components in one shared :class:`~spacy_al.serve.feed.Feed`,
hands the feed to the labelling app through :func:`serving_feed`, and runs
Streamlit's server in this same process until Ctrl+C or SIGTERM (the caller
passes the function that starts Streamlit: the library never imports it). When
the server stops, the feed closes and the model is checkpointed; there is no
child process to outlive its launcher. :func:`serve_api` serves the same feed
as a JSON API instead.

Nothing here prints: what the person at the terminal should read goes to the
``report`` callable the CLI passes in. ``app.py`` run on its own (``streamlit
run app.py``, or Streamlit's ``AppTest``) builds its feed from the environment
instead (:func:`app_env`, :func:`build_feed`).

With ``--learner process`` the recipe's config carries the arguments of its
learner process (``learner_argv``): the server starts ``python -m spacy_al
learner ...`` beside itself once its feed is built, and stops it when it stops
(:func:`learner_beside`). A learner already running for the dataset keeps the
lock; the new one waits as a standby and takes over if the first one ends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import types
import typing
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from importlib import resources
from pathlib import Path, PurePath
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import urlencode

from spacy_al import registry
from spacy_al.checkpoints import Checkpoints
from spacy_al.errors import Errors
from spacy_al.serve.access import make_tokens, parse_annotators
from spacy_al.serve.feed import Feed
from spacy_al.serve.learner import start_learner_process, stop_learner_process
from spacy_al.serve.settings import configure_process

ENV_RECIPE = "SPACY_AL_RECIPE"
ENV_ARGS = "SPACY_AL_ARGS"
ENV_TOKENS = "SPACY_AL_TOKENS"
ENV_FILES = "SPACY_AL_RECIPE_FILES"
# Feed settings for every server of this process (the app's and the API's).
ENV_CHECKPOINT_SECONDS = "SPACY_AL_CHECKPOINT_SECONDS"
ENV_LEASE_SECONDS = "SPACY_AL_LEASE_SECONDS"
CHECKOUT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60.0

#: ``report(kind, text)``: a line for the person at the terminal; ``kind`` is
#: "good", "info", "warn", "fail" or "text" (the CLI prints it with wasabi).
Report = Callable[[str, str], None]
#: ``run_server(app_path, flag_options)``: start Streamlit's server in this
#: process on the script ``app_path`` and return once it has stopped.
RunServer = Callable[[Path, dict[str, Any]], None]

_serving: Feed | None = None


def serving_feed() -> Feed | None:
    """The feed this process serves to the labelling app (None when the app
    script runs without the CLI: it then builds its own from the environment)."""
    return _serving


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


def streamlit_options(*, host: str, port: int) -> dict[str, Any]:
    """Streamlit's settings for the labelling server (``streamlit run``'s flags):
    headless on ``host:port``, no file watcher, no usage statistics, and no
    welcome message (the links are reported once the server listens)."""
    return {
        "server.headless": True,
        "server.address": host,
        "server.port": port,
        "browser.gatherUsageStats": False,
        "server.fileWatcherType": "none",
        "client.toolbarMode": "minimal",
        "logger.hideWelcomeMessage": True,
    }


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
    registry.load_builtin_recipes()
    for path in recipe_files:
        registry.load_recipe_file(path)
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
    configure_process()  # the app's process serves: requests first
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
    annotators: Iterable[str], checkpoint: Checkpoints | str | Path | None
) -> dict[str, str]:
    """Each annotator's token, the same across restarts of the server.

    Kept in the dataset's checkpoint folder (readable by the owner only), so
    that after a crash or a restart everyone's link still works; a new name
    gets a new token. Without a checkpoint folder, fresh tokens.
    """
    names = parse_annotators(list(annotators))
    if checkpoint is None:
        return make_tokens(names)
    if isinstance(checkpoint, str | Path):  # a model folder: tokens beside it
        checkpoint = Checkpoints.at(checkpoint)
    saved = checkpoint.read_tokens()
    tokens = {
        name: saved.get(name, token) for name, token in make_tokens(names).items()
    }
    if any(saved.get(name) != token for name, token in tokens.items()):
        checkpoint.write_tokens({**saved, **tokens})
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
    url: str, *, timeout: float = READY_TIMEOUT, stopped: threading.Event | None = None
) -> bool:
    """Poll Streamlit's health endpoint until it answers (True), or ``timeout``
    passes or ``stopped`` is set (False)."""
    deadline = time.monotonic() + timeout
    health = url.rstrip("/") + "/_stcore/health"
    while time.monotonic() < deadline and not (stopped and stopped.is_set()):
        try:
            with urllib.request.urlopen(health, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def _settings(components: Mapping[str, Any]) -> tuple[str, int, dict[str, str]]:
    """(host, port, tokens) of an interactive recipe's components: with
    ``--annotators``, each annotator's token (kept for the next start)."""
    config = components.get("config") or {}
    host = str(config.get("host") or "127.0.0.1")
    port = int(config.get("port") if config.get("port") is not None else 8501)
    annotators = parse_annotators(config.get("annotators"))
    tokens = (
        annotator_tokens(annotators, components.get("checkpoint")) if annotators else {}
    )
    return host, port, tokens


def _report_links(
    name: str, host: str, port: int, tokens: Mapping[str, str], report: Report
) -> None:
    urls = session_urls(host, port, tokens=tokens)
    if tokens:
        report("good", f"Labelling app for {name} is running. One link per annotator:")
        for who, url in urls.items():
            report("text", f"  {who}: {url}")
    else:
        # No link with a placeholder name (clicked, it would label as "NAME"):
        # the base URL, and what each annotator adds to it.
        report("good", f"Labelling app for {name} is running at {urls['']}")
        report("text", "  Each annotator adds their own name to it: ?session=NAME")
    report("text", "Press Ctrl+C to stop.")


def learner_beside(components: Mapping[str, Any], report: Report) -> Any:
    """Start the learner process of a server started with ``--learner process``
    (None otherwise); stop it with :func:`stop_learner_process`."""
    config = components.get("config") or {}
    argv = config.get("learner_argv")
    if config.get("learner") != "process" or not argv:
        return None
    report("info", "Starting the learner process (python -m spacy_al learner ...)")
    return start_learner_process(argv)


def serve_app(
    name: str,
    components: dict[str, Any],
    *,
    run_server: RunServer,
    report: Report,
) -> int:
    """Serve an interactive recipe's components in the labelling app, in this
    process, until the server stops; return the exit code.

    The feed is built before the server starts (the first page never waits for
    the model) and handed to the app script through :func:`serving_feed`. The
    links are reported once the server answers. ``run_server`` starts Streamlit
    (which handles Ctrl+C and SIGTERM itself) and returns when it has stopped;
    then the feed is closed, which checkpoints the model. Expected problems (a
    port in use, unreadable tokens) raise ValueError before anything is served.
    """
    global _serving
    host, port, tokens = _settings(components)
    check_port(host, port)
    configure_process()  # this process serves: requests first
    feed = Feed.from_components(components, tokens=tokens or None, **feed_settings())
    _serving = feed
    learner = learner_beside(components, report)
    stopped = threading.Event()

    def announce() -> None:
        base = session_urls(host, port)[""]
        if wait_until_ready(base, stopped=stopped):
            _report_links(name, host, port, tokens, report)

    threading.Thread(target=announce, name="spacy_al-links", daemon=True).start()
    try:
        run_server(app_path(), streamlit_options(host=host, port=port))
    except KeyboardInterrupt:  # Ctrl+C before Streamlit took the signal over
        pass
    finally:
        stopped.set()
        report("info", "Stopping the labelling app (saving the model)...")
        _serving = None
        feed.close()
        if learner is not None:
            stop_learner_process(learner)
    return 0


def serve_api(name: str, components: dict[str, Any], *, report: Report) -> int:
    """Serve an interactive recipe's feed as a JSON API (see :mod:`spacy_al.serve.api`)
    in this process until Ctrl+C or SIGTERM; return the exit code.

    The API listens on the recipe's ``--host`` and ``--port``; with
    ``--annotators`` each annotator's token is reported (and kept for the next
    start). Expected problems (a port in use, unreadable tokens) raise ValueError.
    """
    from spacy_al.serve.api import make_server

    host, port, tokens = _settings(components)
    configure_process()  # this process serves: requests first
    feed = Feed.from_components(components, tokens=tokens or None, **feed_settings())
    try:
        httpd = make_server(feed, host, port)
    except OSError as e:
        feed.close()
        raise ValueError(Errors.E611.format(host=host, port=port, err=e)) from e
    learner = learner_beside(components, report)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        shown = "localhost" if host in ("0.0.0.0", "::", "") else host
        report(
            "good", f"JSON API for {name}: http://{shown}:{httpd.port}/ (POST /next)"
        )
        for who, token in tokens.items():
            report("text", f"  {who}: token {token}")
        report("text", "Press Ctrl+C to stop.")
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        report("info", "Stopping the API (saving the model)...")
    finally:
        httpd.server_close()
        feed.close()
        if learner is not None:
            stop_learner_process(learner)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
