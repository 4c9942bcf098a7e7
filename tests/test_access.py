"""Who may label: annotator names and access tokens."""

from __future__ import annotations

import pytest

from spacy_al.serve import access, feed
from spacy_al.serve.access import (
    MAX_ANNOTATOR_LENGTH,
    Access,
    check_annotator,
    make_tokens,
    parse_annotators,
)


@pytest.mark.parametrize(
    "name,expected",
    [("alice", "alice"), ("  bob\n", "bob"), ("Zoë", "Zoë"), ("x" * 64, "x" * 64)],
)
def test_access_check_annotator_strips_good_names(name, expected):
    assert check_annotator(name) == expected


@pytest.mark.parametrize("name", ["", "x" * (MAX_ANNOTATOR_LENGTH + 1), "a\x00b", 7])
def test_access_check_annotator_rejects_bad_names(name):
    with pytest.raises(ValueError, match="E601"):
        check_annotator(name)


def test_access_parse_annotators_takes_lists_and_none():
    assert parse_annotators(None) == []
    assert parse_annotators(["bob", " alice ", "", "bob"]) == ["bob", "alice"]
    with pytest.raises(ValueError, match="E601"):
        parse_annotators("alice,x" + "y" * 64)


def test_access_make_tokens_gives_each_name_its_own_token():
    tokens = make_tokens(["alice", " bob ", "alice"])
    assert list(tokens) == ["alice", "bob"]
    assert tokens["alice"] != tokens["bob"] and len(tokens["alice"]) >= 20
    assert make_tokens(["alice"])["alice"] != tokens["alice"]  # fresh each time


def test_access_feed_still_offers_the_name_functions():
    assert feed.check_annotator is access.check_annotator
    assert feed.parse_annotators is access.parse_annotators
    assert feed.make_tokens is access.make_tokens


@pytest.mark.parametrize("tokens", [None, {}])
def test_access_without_tokens_lets_anyone_label(tokens):
    anyone = Access(tokens)
    assert not anyone.restricted
    assert anyone.annotators == [] and anyone.tokens == {}
    assert anyone.check_token("mallory", None)
    assert anyone.allows("mallory")
    assert anyone.check(" mallory ") == "mallory"
    with pytest.raises(ValueError, match="E601"):
        anyone.check("")


def test_access_with_tokens_checks_name_and_token():
    tokens = {" alice ": "s3cret-a", "bob": "s3cret-b"}
    only = Access(tokens)
    assert only.restricted and only.annotators == ["alice", "bob"]
    assert only.tokens == {"alice": "s3cret-a", "bob": "s3cret-b"}
    only.tokens["mallory"] = "x"  # a copy: the allowed set doesn't change
    assert only.annotators == ["alice", "bob"]
    assert only.check_token("alice", "s3cret-a")
    assert only.check_token(" alice ", "s3cret-a")
    assert not only.check_token("alice", "s3cret-b")
    assert not only.check_token("alice", "s3cret-a ")
    assert not only.check_token("alice", None)
    assert not only.check_token("alice", "\ud800")  # a lone surrogate: no crash
    assert not only.check_token("mallory", "s3cret-a")
    assert not only.check_token(None, "s3cret-a")  # type: ignore[arg-type]
    assert only.allows("bob") and not only.allows("mallory")
    assert only.check("bob") == "bob"
    with pytest.raises(PermissionError, match="E602") as info:
        only.check("mallory")
    assert "'alice', 'bob'" in str(info.value)


def test_access_unknown_name_is_compared_against_a_random_token():
    # An unknown name is compared too (constant time), with a token nobody holds.
    only = Access({"alice": "a"})
    assert not only.check_token("mallory", only._no_token)
    assert Access({"alice": "a"})._no_token != only._no_token
