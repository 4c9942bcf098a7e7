"""Entity patterns: spans a rule marks before the model knows any (cold start).

A patterns file is JSONL in spaCy's EntityRuler format, one pattern per line:

    {"label": "PERSON", "pattern": "Ada Lovelace"}                  phrase (any case)
    {"label": "ORG", "pattern": [{"LOWER": "acme"}, {"IS_TITLE": true}]}   tokens

``ner.manual`` pre-highlights the matches; ``ner.teach`` asks about them first
while a label has few accepted answers, so rare entities surface without waiting
for the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.pipeline import EntityRuler
from spacy.tokens import Doc

from spacy_al.corpus import read_jsonl
from spacy_al.errors import Errors, SourceError

Entity = tuple[int, int, str]


def _snippet(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


class EntityPatterns:
    """Phrase and token patterns matched with spaCy's EntityRuler.

    Phrases match case-insensitively (on ``LOWER``). Overlapping matches are
    resolved as the EntityRuler does: the longest wins.
    """

    def __init__(
        self,
        nlp: Language,
        patterns: Iterable[dict[str, Any]],
        *,
        labels: Sequence[str] | None = None,
        source: str = "",
    ) -> None:
        self.vocab = nlp.vocab
        self.ruler = EntityRuler(nlp, phrase_matcher_attr="LOWER", validate=True)
        entries = []
        for line, entry in enumerate(patterns, start=1):
            label, pattern = (
                (entry.get("label"), entry.get("pattern"))
                if isinstance(entry, dict)
                else (None, None)
            )
            if (
                not isinstance(label, str)
                or not label
                or not (isinstance(pattern, list | str) and pattern)
            ):
                raise SourceError(
                    Errors.E540.format(snippet=_snippet(entry)),
                    path=source or None,
                    line=line,
                    field="pattern",
                )
            try:
                self.ruler.add_patterns([{"label": label, "pattern": pattern}])
            except (ValueError, TypeError) as e:
                raise SourceError(
                    Errors.E541.format(err=e),
                    path=source or None,
                    line=line,
                    field="pattern",
                ) from e
            entries.append(label)
        self.labels: list[str] = list(dict.fromkeys(entries))
        self.n_patterns = len(entries)
        if labels is not None:
            unknown = [label for label in self.labels if label not in labels]
            if unknown:
                raise ValueError(
                    Errors.E539.format(unknown=unknown, labels=list(labels))
                )

    @classmethod
    def from_file(
        cls, nlp: Language, path: str | Path, *, labels: Sequence[str] | None = None
    ) -> EntityPatterns:
        return cls(
            nlp, read_jsonl(path, validate=False), labels=labels, source=str(path)
        )

    def __len__(self) -> int:
        return self.n_patterns

    def spans(self, doc: Doc) -> list[Entity]:
        """Non-overlapping matches in ``doc`` as (start, end, label), token offsets.

        ``doc`` itself is not changed.
        """
        if not self.n_patterns or not len(doc):
            return []
        copy = Doc(
            self.vocab,
            words=[t.text for t in doc],
            spaces=[bool(t.whitespace_) for t in doc],
        )
        copy = self.ruler(copy)
        return [(ent.start, ent.end, ent.label_) for ent in copy.ents]
