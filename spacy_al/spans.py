"""Character-offset spans and their alignment to spaCy tokens.

Character offsets (Python code points, end exclusive) are the truth; tokens are
a view on them. Offsets from a browser are UTF-16 code units and are converted
at the boundary with :func:`utf16_spans_to_char`. A span that doesn't sit on
token boundaries is moved only across whitespace or punctuation; anything else
is rejected with a message that says where the nearest boundaries are. One
concept, one module: every place a span enters (sources, answers, db-in, the
editor) checks it here, so the rules can't drift apart.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from spacy_al.errors import Errors, SourceError

ACCEPT = "accept"
REJECT = "reject"
_SNIPPET = 60


def _snippet(text: str) -> str:
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 1] + "…"


def _utf16_table(text: str) -> list[int]:
    """Map every UTF-16 offset to a code point offset (-1 inside a surrogate pair)."""
    table: list[int] = []
    for i, char in enumerate(text):
        table.append(i)
        if ord(char) > 0xFFFF:
            table.append(-1)
    table.append(len(text))
    return table


def _convert(text: str, table: list[int], offset: int) -> int:
    if not _is_int(offset):
        raise ValueError(Errors.E516.format(offset=offset))
    if offset < 0 or offset >= len(table):
        raise ValueError(
            Errors.E502.format(offset=offset, length=len(table) - 1, n_chars=len(text))
        )
    index = table[offset]
    if index < 0:
        char_index = table[offset - 1]
        raise ValueError(
            Errors.E501.format(offset=offset, char=text[char_index], index=char_index)
        )
    return index


def utf16_to_char_offset(text: str, offset: int) -> int:
    """Convert a UTF-16 code unit offset (JavaScript string index) to a code point
    offset into ``text``.

    "Hi 😀 Paris": JavaScript puts "Paris" at 6, Python at 5. Raises ValueError
    for an offset inside a surrogate pair or outside the text.
    """
    return _convert(text, _utf16_table(text), offset)


def utf16_spans_to_char(
    text: str, spans: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Copy ``spans`` with their ``start`` and ``end`` converted from UTF-16 code
    units to code point offsets. Other keys are kept as they are."""
    table = _utf16_table(text)
    return [
        {
            **span,
            "start": _convert(text, table, span["start"]),
            "end": _convert(text, table, span["end"]),
        }
        for span in spans
    ]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_spans(
    text: str,
    spans: Iterable[Mapping[str, Any]],
    *,
    labels: Iterable[str] | None = None,
    allow_overlap: bool = False,
    path: str | None = None,
    line: int | None = None,
) -> list[dict[str, Any]]:
    """Check character-offset spans against ``text`` and return copies sorted by
    (start, end).

    Raises SourceError (field "spans") for a malformed span, a negative start, an
    end past the text, an empty or whitespace-only span, a label not in
    ``labels`` (when given) and, unless ``allow_overlap``, overlapping spans.
    """
    known = None if labels is None else set(labels)
    checked: list[dict[str, Any]] = []

    def fail(message: str) -> SourceError:
        return SourceError(message, path=path, line=line, field="spans")

    for i, span in enumerate(spans):
        if (
            not isinstance(span, Mapping)
            or not _is_int(span.get("start"))
            or not _is_int(span.get("end"))
            or not isinstance(span.get("label"), str)
        ):
            raise fail(Errors.E503.format(i=i, span=span))
        start, end, label = span["start"], span["end"], span["label"]
        if start < 0:
            raise fail(Errors.E504.format(i=i, start=start, end=end, label=label))
        if end > len(text):
            raise fail(
                Errors.E505.format(
                    i=i,
                    start=start,
                    end=end,
                    label=label,
                    length=len(text),
                    text=_snippet(text[start:end]),
                )
            )
        if start >= end:
            raise fail(Errors.E506.format(i=i, start=start, end=end, label=label))
        if not text[start:end].strip():
            raise fail(
                Errors.E507.format(
                    i=i, start=start, end=end, label=label, text=text[start:end]
                )
            )
        if known is not None and label not in known:
            raise fail(
                Errors.E508.format(
                    i=i,
                    start=start,
                    end=end,
                    label=label,
                    text=_snippet(text[start:end]),
                    labels=", ".join(sorted(known)) or "(none)",
                )
            )
        checked.append({**span})
    checked.sort(key=lambda span: (span["start"], span["end"]))
    if not allow_overlap:
        widest: dict[str, Any] | None = None
        for span in checked:
            if widest is not None and span["start"] < widest["end"]:
                raise fail(
                    Errors.E509.format(
                        start1=widest["start"],
                        end1=widest["end"],
                        label1=widest["label"],
                        text1=_snippet(text[widest["start"] : widest["end"]]),
                        start2=span["start"],
                        end2=span["end"],
                        label2=span["label"],
                        text2=_snippet(text[span["start"] : span["end"]]),
                        overlap_end=min(widest["end"], span["end"]),
                    )
                )
            if widest is None or span["end"] > widest["end"]:
                widest = span
    return checked


def _is_filler(chars: str) -> bool:
    """Whitespace or punctuation only (what alignment may add or drop)."""
    return all(c.isspace() or unicodedata.category(c).startswith("P") for c in chars)


def _boundaries(doc: Doc) -> tuple[list[int], list[int]]:
    starts = [token.idx for token in doc]
    ends = [token.idx + len(token) for token in doc]
    return starts, ends


def _nearest(points: Sequence[int], offset: int) -> tuple[int, int]:
    if not points:
        return offset, offset
    below = [p for p in points if p <= offset]
    above = [p for p in points if p >= offset]
    lo = max(below) if below else min(points)
    hi = min(above) if above else max(points)
    return lo, hi


def _either(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo} or {hi}"


def _misalignment(doc: Doc, start: int, end: int) -> str:
    starts, ends = _boundaries(doc)
    parts = []
    for name, offset, points in (("start", start, starts), ("end", end, ends)):
        if offset in points:
            continue
        inside = [t for t in doc if t.idx < offset < t.idx + len(t)]
        if inside:
            token = inside[0]
            parts.append(
                f"{name} {offset} is inside the token {token.text!r} "
                f"({token.idx}-{token.idx + len(token)})"
            )
        else:
            parts.append(f"{name} {offset} is not a token {name}")
    return "; ".join(parts)


def align_span(
    doc: Doc,
    start: int,
    end: int,
    label: str,
    *,
    path: str | None = None,
    line: int | None = None,
) -> Span:
    """Return the Span of ``doc`` for the characters ``start:end`` with ``label``.

    Whitespace at either edge is stripped first, then the span must align
    exactly with token boundaries ("strict"). Failing that, the span is
    contracted or expanded to token boundaries, but only when the characters
    dropped or added are whitespace or punctuation ("New York," → "New York");
    "ew York" or "York" inside "Yorkshire" are rejected. Raises SourceError
    (field "spans") naming the offsets, the text and the nearest token
    boundaries.
    """
    text = doc.text

    def fail(message: str) -> SourceError:
        return SourceError(message, path=path, line=line, field="spans")

    if start < 0:
        raise fail(Errors.E504.format(i=0, start=start, end=end, label=label))
    if end > len(text):
        raise fail(
            Errors.E505.format(
                i=0,
                start=start,
                end=end,
                label=label,
                length=len(text),
                text=_snippet(text[start:end]),
            )
        )
    if start >= end:
        raise fail(Errors.E506.format(i=0, start=start, end=end, label=label))
    s, e = start, end
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    if s == e:
        raise fail(
            Errors.E507.format(
                i=0, start=start, end=end, label=label, text=text[start:end]
            )
        )
    span = doc.char_span(s, e, label=label)
    if span is not None:
        return span
    for mode in ("contract", "expand"):
        span = doc.char_span(s, e, label=label, alignment_mode=mode)
        if span is None or len(span) == 0:
            continue
        lo, hi = span.start_char, span.end_char
        edges = text[min(s, lo) : max(s, lo)] + text[min(e, hi) : max(e, hi)]
        if _is_filler(edges):
            return span
    starts, ends = _boundaries(doc)
    start_lo, start_hi = _nearest(starts, s)
    end_lo, end_hi = _nearest(ends, e)
    raise fail(
        Errors.E510.format(
            start=start,
            end=end,
            label=label,
            text=_snippet(text[start:end]),
            detail=_misalignment(doc, s, e),
            starts=_either(start_lo, start_hi),
            ends=_either(end_lo, end_hi),
            start_lo=start_lo,
            end_hi=end_hi,
            expanded=_snippet(text[start_lo:end_hi]),
        )
    )


def _token_texts(tokens: Sequence[Any]) -> list[str] | int:
    """The token strings, or the index of the first token that has none."""
    words = []
    for i, token in enumerate(tokens):
        if isinstance(token, str):
            words.append(token)
        elif isinstance(token, Mapping) and isinstance(token.get("text"), str):
            words.append(token["text"])
        else:
            return i
    return words


def _doc_from_tokens(vocab: Vocab, text: str, tokens: Sequence[Any]) -> Doc | str:
    """A Doc over ``text`` with ``tokens`` as words, or an E512 message when the
    tokens can't be found in order with only whitespace between them.

    Whitespace beyond one space between tokens becomes whitespace tokens, as
    spaCy's tokenizer does, so that ``doc.text == text``.
    """
    words = _token_texts(tokens)
    if isinstance(words, int):
        return Errors.E512.format(i=words, token=tokens[words], position=0)
    out: list[str] = []
    spaces: list[bool] = []
    position = 0
    for i, word in enumerate(words):
        found = text.find(word, position) if word else -1
        gap = text[position:found] if found >= 0 else ""
        if found < 0 or gap.strip():
            return Errors.E512.format(i=i, token=word, position=position)
        _add_gap(out, spaces, gap)
        out.append(word)
        spaces.append(False)
        position = found + len(word)
    if text[position:].strip():
        return Errors.E512.format(i=len(words), token="", position=position)
    _add_gap(out, spaces, text[position:])
    return Doc(vocab, words=out, spaces=spaces)


def _add_gap(out: list[str], spaces: list[bool], gap: str) -> None:
    if not gap:
        return
    if out and gap[0] == " ":
        spaces[-1] = True
        gap = gap[1:]
    if gap:
        out.append(gap)
        spaces.append(False)


def _make_doc(
    nlp: Language | Vocab,
    task: Mapping[str, Any],
    *,
    path: str | None,
    line: int | None,
) -> Doc:
    text = task.get("text")
    if not isinstance(text, str) or not text.strip():
        raise SourceError(
            Errors.E511.format(value=text), path=path, line=line, field="text"
        )
    vocab = nlp if isinstance(nlp, Vocab) else nlp.vocab
    tokens = task.get("tokens")
    if not tokens and isinstance(nlp, Vocab):
        tokens = text.split()
    if tokens:
        doc = _doc_from_tokens(vocab, text, tokens)
        if isinstance(doc, Doc):
            return doc
        if isinstance(nlp, Vocab):
            raise SourceError(doc, path=path, line=line, field="tokens")
    return nlp.make_doc(text)


def _align_all(
    doc: Doc,
    spans: Sequence[Mapping[str, Any]],
    *,
    path: str | None,
    line: int | None,
    allow_overlap: bool,
) -> list[Span]:
    aligned = [
        align_span(doc, s["start"], s["end"], s["label"], path=path, line=line)
        for s in spans
    ]
    if not allow_overlap:
        owner: dict[int, Span] = {}
        for span in aligned:
            for i in range(span.start, span.end):
                if i in owner:
                    other = owner[i]
                    raise SourceError(
                        Errors.E513.format(
                            start1=other.start_char,
                            end1=other.end_char,
                            label1=other.label_,
                            text1=_snippet(other.text),
                            start2=span.start_char,
                            end2=span.end_char,
                            label2=span.label_,
                            text2=_snippet(span.text),
                            token=i,
                            token_text=doc[i].text,
                        ),
                        path=path,
                        line=line,
                        field="spans",
                    )
                owner[i] = span
    return aligned


def make_ner_doc(
    nlp: Language | Vocab,
    task: Mapping[str, Any],
    *,
    labels: Iterable[str] | None = None,
    missing: bool,
    path: str | None = None,
    line: int | None = None,
) -> Doc:
    """Build a Doc from ``task["text"]`` with ``task["spans"]`` as its entities.

    The words are ``task["tokens"]`` (strings, or Prodigy-style dicts with
    "text") when they can be found in order in the text with only whitespace
    between them; otherwise the text is tokenized with ``nlp.make_doc`` (a bare
    Vocab falls back to whitespace tokenization and rejects inconsistent
    tokens). With ``missing=False`` the annotation is complete: every other
    token is outside any entity (O). With ``missing=True`` it is partial: every
    other token is missing (unknown), so spaCy's ner ignores it in the loss.
    Every span is taken as an entity, whatever its answer; see
    :func:`make_ner_example` for accept/reject answers.
    """
    doc = _make_doc(nlp, task, path=path, line=line)
    spans = validate_spans(
        doc.text, task.get("spans") or [], labels=labels, path=path, line=line
    )
    ents = _align_all(doc, spans, path=path, line=line, allow_overlap=False)
    doc.set_ents(ents, default="missing" if missing else "outside")
    return doc


def _answer(value: Any, what: str) -> str:
    if value not in (ACCEPT, REJECT):
        raise ValueError(Errors.E515.format(answer=value, what=what))
    return value


def make_ner_example(
    nlp: Language | Vocab,
    task: Mapping[str, Any],
    *,
    labels: Iterable[str] | None = None,
    missing: bool = True,
    incorrect_spans_key: str | None = None,
    path: str | None = None,
    line: int | None = None,
) -> tuple[Doc, list[Span]]:
    """Build the reference Doc of an answered NER task and its rejected spans.

    A span's own ``"answer"`` wins over the task's ``"answer"`` (default
    "accept"). Accepted spans become the entities, as in :func:`make_ner_doc`
    (``missing=True``, the default, suits binary ``ner.teach`` answers: what
    wasn't asked about stays unknown). Rejected spans are returned as Spans,
    and stored in ``doc.spans[incorrect_spans_key]`` when a key is given: use
    the key the ner was created with (``incorrect_spans_key`` in its config),
    so that spaCy's ner learns that those exact (start, end, label) triples are
    wrong. Rejected spans may overlap each other and the accepted ones, but the
    same triple can't be both accepted and rejected.
    """
    labels = None if labels is None else tuple(labels)
    default = _answer(task.get("answer", ACCEPT), "the task")
    accepted: list[Mapping[str, Any]] = []
    rejected: list[Mapping[str, Any]] = []
    raw = task.get("spans") or []
    for i, span in enumerate(raw):
        answer = (
            _answer(span.get("answer"), f"span {i}")
            if isinstance(span, Mapping) and "answer" in span
            else default
        )
        (accepted if answer == ACCEPT else rejected).append(span)
    doc = make_ner_doc(
        nlp,
        {**task, "spans": accepted},
        labels=labels,
        missing=missing,
        path=path,
        line=line,
    )
    rejected = validate_spans(
        doc.text, rejected, labels=labels, allow_overlap=True, path=path, line=line
    )
    negatives = _align_all(doc, rejected, path=path, line=line, allow_overlap=True)
    positives = {(e.start, e.end, e.label) for e in doc.ents}
    for span in negatives:
        if (span.start, span.end, span.label) in positives:
            raise SourceError(
                Errors.E514.format(
                    start=span.start_char,
                    end=span.end_char,
                    label=span.label_,
                    text=_snippet(span.text),
                ),
                path=path,
                line=line,
                field="spans",
            )
    if incorrect_spans_key is not None:
        doc.spans[incorrect_spans_key] = negatives
    return doc, negatives


#: Views whose spans aren't entities to learn (highlighted pattern matches).
NON_ENTITY_VIEWS: tuple[str, ...] = ("classification", "choice", "text")


def check_answer_spans(
    nlp: Language | Vocab,
    task: Mapping[str, Any],
    *,
    path: str | None = None,
    line: int | None = None,
) -> None:
    """Check that an answer's entities can become the reference Doc that export
    and training build from it, before it is stored.

    Its spans must be inside the text, on ``nlp``'s token boundaries (or moved
    only across whitespace or punctuation) and, where accepted, not overlapping.
    Answers without spans, ignored ones, and those of a view whose spans aren't
    entities (:data:`NON_ENTITY_VIEWS`) pass. Raises SourceError naming ``path``,
    ``line`` and the field.
    """
    if not task.get("spans") or task.get("answer") == "ignore":
        return
    if task.get("_view_id") in NON_ENTITY_VIEWS:
        return
    try:
        make_ner_example(nlp, task, path=path, line=line)
    except SourceError:
        raise
    except ValueError as e:  # an answer value other than accept or reject
        raise SourceError(str(e), path=path, line=line, field="spans") from e
