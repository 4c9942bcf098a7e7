"""Keyword and regex patterns that propose a label before the model knows any.

A patterns file is JSONL, one pattern per line, as in Prodigy:

    {"label": "spam", "pattern": "free entry"}                 phrase (case-insensitive)
    {"label": "spam", "pattern": [{"lower": "win"}, {"IS_DIGIT": true}]}   token pattern
    {"label": "spam", "regex": "\\b0[0-9]{9,}\\b"}                 regular expression

The loop uses matches for the first examples (cold start): while a label has
fewer than a few answers that say it is true, half of each batch is random texts
that a pattern says may carry it (the labels with few taking turns), so rare
classes surface without waiting for the model; its uncertainty picks the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from spacy.language import Language
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc

from spacy_al.corpus import read_jsonl
from spacy_al.errors import Errors, SourceError


class PatternMatcher:
    """Match phrase, token and regex patterns; report the labels each doc matches."""

    def __init__(
        self, nlp: Language, patterns: Iterable[dict], *, source: str = ""
    ) -> None:
        self.nlp = nlp
        self.phrases = PhraseMatcher(nlp.vocab, attr="LOWER")
        self.tokens = Matcher(nlp.vocab)
        self.regexes: list[tuple[str, re.Pattern]] = []
        self.labels: list[str] = []
        self.n_patterns = 0
        for i, entry in enumerate(patterns, start=1):
            self._add(entry, source=source, line=i)

    def _add(self, entry: dict, *, source: str, line: int) -> None:
        label = entry.get("label")
        if not isinstance(label, str) or not label:
            raise SourceError(
                Errors.E405, path=source or None, line=line, field="label"
            )
        if label not in self.labels:
            self.labels.append(label)
        key = f"{label}\t{line}"
        if "regex" in entry:
            try:
                self.regexes.append((label, re.compile(entry["regex"])))
            except (re.error, TypeError) as e:
                raise SourceError(
                    Errors.E406.format(err=e),
                    path=source or None,
                    line=line,
                    field="regex",
                ) from e
        elif isinstance(entry.get("pattern"), str):
            self.phrases.add(key, [self.nlp.make_doc(entry["pattern"])])
        elif isinstance(entry.get("pattern"), list):
            try:
                self.tokens.add(key, [entry["pattern"]])
            except ValueError as e:
                raise SourceError(
                    Errors.E407.format(err=e),
                    path=source or None,
                    line=line,
                    field="pattern",
                ) from e
        else:
            raise SourceError(
                Errors.E405, path=source or None, line=line, field="pattern"
            )
        self.n_patterns += 1

    @classmethod
    def from_file(cls, nlp: Language, path: str | Path) -> PatternMatcher:
        return cls(nlp, read_jsonl(path, validate=False), source=str(path))

    def match(self, doc: Doc) -> list[str]:
        """The labels whose patterns match ``doc``, in first-match order."""
        found: dict[str, None] = {}
        matches = list(self.phrases(doc)) if len(self.phrases) else []
        if len(self.tokens):
            matches += self.tokens(doc)
        for match_id, _, _ in matches:
            found[self.nlp.vocab.strings[match_id].split("\t", 1)[0]] = None
        for label, regex in self.regexes:
            if regex.search(doc.text):
                found[label] = None
        return list(found)

    def match_many(self, docs: Sequence[Doc]) -> list[list[str]]:
        return [self.match(doc) for doc in docs]
