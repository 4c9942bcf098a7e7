"""Who may label: annotators' names and their access tokens.

A server lets anyone label under any name, or, with ``--annotators``, only the
named annotators, each with a random token of their own (:func:`make_tokens`).
:class:`Access` checks a name and a token; tokens are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from spacy_al.errors import Errors

MAX_ANNOTATOR_LENGTH = 64


def check_annotator(name: Any) -> str:
    """An annotator's name, stripped; raises ValueError if it can't be one."""
    value = name.strip() if isinstance(name, str) else name
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_ANNOTATOR_LENGTH
        or not value.isprintable()
    ):
        text = repr(name)
        snippet = text if len(text) <= 60 else text[:57] + "..."
        raise ValueError(Errors.E601.format(max=MAX_ANNOTATOR_LENGTH, snippet=snippet))
    return value


def parse_annotators(value: str | Iterable[str] | None) -> list[str]:
    """``"alice,bob"`` (or a list of names) as checked names, in order, no repeats."""
    if value is None:
        return []
    names = value.split(",") if isinstance(value, str) else list(value)
    return list(dict.fromkeys(check_annotator(n) for n in names if str(n).strip()))


def make_tokens(annotators: Iterable[str]) -> dict[str, str]:
    """A fresh random access token per annotator."""
    return {name: secrets.token_urlsafe(16) for name in parse_annotators(annotators)}


class Access:
    """Who may label: anyone (no ``tokens``, or none), or only the annotators
    of ``tokens`` ({annotator: token}), each with their token."""

    def __init__(self, tokens: Mapping[str, str] | None = None) -> None:
        self._tokens = (
            {check_annotator(k): v for k, v in tokens.items()} if tokens else None
        )
        self._no_token = secrets.token_urlsafe(16)  # compared for unknown names

    @property
    def restricted(self) -> bool:
        """Whether only named annotators, with their tokens, may label."""
        return self._tokens is not None

    @property
    def annotators(self) -> list[str]:
        """The annotators allowed to label (empty: anyone)."""
        return list(self._tokens or ())

    @property
    def tokens(self) -> dict[str, str]:
        """Each allowed annotator's token (empty when anyone may label)."""
        return dict(self._tokens or {})

    def allows(self, name: str) -> bool:
        """Whether the (checked) name ``name`` may label."""
        return self._tokens is None or name in self._tokens

    def check(self, annotator: Any) -> str:
        """``annotator``'s checked name; raises ValueError if it can't be a name,
        PermissionError if they may not label."""
        name = check_annotator(annotator)
        if self._tokens is not None and name not in self._tokens:
            allowed = ", ".join(repr(n) for n in self._tokens)
            raise PermissionError(Errors.E602.format(name=name, allowed=allowed))
        return name

    def check_token(self, annotator: str, token: str | None) -> bool:
        """Whether ``annotator`` may label with ``token`` (always, if unrestricted)."""
        if self._tokens is None:
            return True
        expected = self._tokens.get(
            annotator.strip() if isinstance(annotator, str) else ""
        )
        given = token if isinstance(token, str) else ""
        # Compare fixed-length digests, and compare even for unknown names (with a
        # random token), so timing tells neither names nor token lengths apart.
        ok = hmac.compare_digest(
            hashlib.sha256((expected or self._no_token).encode()).digest(),
            hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest(),
        )
        return ok and expected is not None
