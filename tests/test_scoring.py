"""Scoring a case's output against its expected check: each check type passes and fails as documented,
and a pathological regex becomes a case error within a bounded time instead of hanging the run."""

from __future__ import annotations

import time

import pytest

from edgegate_cli.errors import ExitCode, InvalidInput
from edgegate_cli.measure.scoring import REGEX_TIMEOUT_S, CaseScore, regex_search, score_case

PASS = [
    ({"type": "exact", "value": "Paris."}, " Paris.", "output equals 'Paris.'"),
    ({"type": "exact", "value": "a\nb"}, "a\r\nb\n", "output equals 'a\\nb'"),
    ({"type": "contains", "values": ["No", "star"]}, " No. The sun is a star.", "output contains all of 'No', 'star'"),
    ({"type": "regex", "pattern": r"^there was a \w+ robot\.$"}, " there was a small robot.\n",
     "pattern '^there was a \\\\w+ robot\\\\.$' matched 'there was a small robot.'"),
    ({"type": "one_of", "values": ["Tokyo", "Tokyo."]}, " Tokyo.", "output 'Tokyo.' is one of 'Tokyo', 'Tokyo.'"),
    ({"type": "json_schema", "schema": {"type": "object", "required": ["capital"]}},
     ' {"country": "France", "capital": "Paris"}', "output is JSON and matches the schema"),
    ({"type": "json_schema", "schema": {"type": "array", "maxItems": 3}},
     '```json\n["red", "green", "blue"]\n```', "output is JSON and matches the schema"),
    ({"type": "numeric", "value": 42}, " 42", "first number 42 is within 42 ± 0"),
    ({"type": "numeric", "value": 2.5, "tolerance": 0.01}, " 2.5", "first number 2.5 is within 2.5 ± 0.01"),
    ({"type": "numeric", "value": -3, "tolerance": 0.5}, "It is -3.2 degrees.", "first number -3.2 is within -3 ± 0.5"),
    ({"type": "numeric", "value": 1000}, "1e3", "first number 1000 is within 1000 ± 0"),
]

FAIL = [
    ({"type": "exact", "value": "Paris."}, " Madrid.", "expected exactly 'Paris.', got 'Madrid.'"),
    ({"type": "exact", "value": "Paris.", "strip": False}, " Paris.", "expected exactly 'Paris.', got ' Paris.'"),
    ({"type": "contains", "values": ["No", "star", "moon"]}, " No. The sun is a star.",
     "output lacks 'moon' (2 of 3 found); got ' No. The sun is a star.'"),
    ({"type": "contains", "values": ["no"]}, "No.", "output lacks 'no' (0 of 1 found); got 'No.'"),
    ({"type": "regex", "pattern": "^Paris"}, " Madrid.", "pattern '^Paris' not found in ' Madrid.'"),
    ({"type": "regex", "pattern": "^Paris", "strip": False}, " Paris.", "pattern '^Paris' not found in ' Paris.'"),
    ({"type": "one_of", "values": ["Paris", "Paris."]}, " Madrid.", "expected one of 'Paris', 'Paris.', got 'Madrid.'"),
    ({"type": "json_schema", "schema": {"type": "object"}}, " Paris.",
     "output is not JSON (Expecting value at line 1, column 1): 'Paris.'"),
    ({"type": "json_schema", "schema": {"type": "object", "properties": {"capital": {"const": "Paris"}}}},
     '{"capital": "Madrid"}', "output JSON does not match the schema at $.capital: 'Paris' was expected"),
    ({"type": "numeric", "value": 42}, " 41", "first number 41 is not within 42 ± 0; got ' 41'"),
    ({"type": "numeric", "value": 42, "tolerance": 0.5}, " forty-two",
     "no number in the output ' forty-two'; expected 42 ± 0.5"),
]


@pytest.mark.parametrize(("expected", "output", "detail"), PASS)
def test_check_passes(expected, output, detail):
    """Each check type passes on a matching output, with score 1.0 and a detail saying what matched."""
    assert score_case(expected, output) == CaseScore(score=1.0, passed=True, detail=detail, error=None)


@pytest.mark.parametrize(("expected", "output", "detail"), FAIL)
def test_check_fails(expected, output, detail):
    """Each check type fails on a wrong output, with score 0.0 and a detail naming expected and actual."""
    assert score_case(expected, output) == CaseScore(score=0.0, passed=False, detail=detail, error=None)


def test_exact_strips_both_sides_by_default():
    """With strip (the default) surrounding whitespace on the expected value is ignored too."""
    assert score_case({"type": "exact", "value": " Paris.\n"}, "Paris.").passed
    assert not score_case({"type": "exact", "value": " Paris.", "strip": False}, "Paris.").passed
    assert score_case({"type": "exact", "value": " Paris.", "strip": False}, " Paris.").passed


def test_long_output_is_cut_in_the_detail():
    """A long output is shown cut to 120 characters, with its length, so reports stay readable."""
    result = score_case({"type": "exact", "value": "x"}, "y" * 500)
    assert result.detail == f"expected exactly 'x', got {'y' * 120!r}... (500 chars)"


def test_pathological_regex_is_a_bounded_case_error():
    """`(a+)+$` on 'a'*30+'b' backtracks for minutes in `re`; it is cut off and reported as a case error."""
    output = "a" * 30 + "b"
    started = time.monotonic()
    result = score_case({"type": "regex", "pattern": "(a+)+$"}, output)
    elapsed = time.monotonic() - started
    assert elapsed < REGEX_TIMEOUT_S + 8  # the timeout plus generous process start-up and teardown
    assert result == CaseScore(score=0.0, passed=False, error="regex timed out after 2s",
                               detail=f"pattern '(a+)+$' did not finish on {output!r}")


def test_regex_timeout_is_configurable_and_memoized():
    """A shorter bound is honoured, and the same (pattern, text) is not evaluated twice."""
    output = "a" * 32 + "!"
    started = time.monotonic()
    first = score_case({"type": "regex", "pattern": "(a|aa)+$"}, output, regex_timeout_s=0.5)
    assert time.monotonic() - started < 6
    assert first.error == "regex timed out after 0.5s"
    hits = regex_search.cache_info().hits
    again = time.monotonic()
    assert score_case({"type": "regex", "pattern": "(a|aa)+$"}, output, regex_timeout_s=0.5) == first
    assert time.monotonic() - again < 0.4
    assert regex_search.cache_info().hits == hits + 1


def test_regex_runs_python_re_search():
    """The child evaluates Python `re.search`: inline flags work, and the match is anywhere in the text."""
    assert regex_search("(?i)paris", "in PARIS today") == ("ok", "PARIS")
    assert regex_search(r"\d+", "no digits") == ("ok", None)


def test_unknown_check_type_is_invalid_input():
    """A check type outside the schema's list raises InvalidInput (exit 2) naming the accepted types."""
    with pytest.raises(InvalidInput) as info:
        score_case({"type": "fuzzy", "value": "x"}, "x")
    assert info.value.message == ("unknown check type 'fuzzy'; use one of exact, contains, regex, one_of, "
                                  "json_schema, numeric")
    assert info.value.exit_code == ExitCode.INVALID_INPUT


def test_invalid_regex_and_schema_are_invalid_input():
    """Checks load_pack would refuse raise InvalidInput here too, instead of scoring silently."""
    with pytest.raises(InvalidInput) as info:
        score_case({"type": "regex", "pattern": "(["}, "x")
    assert info.value.message == "invalid regex '([': unterminated character set at position 1"
    with pytest.raises(InvalidInput) as info:
        score_case({"type": "json_schema", "schema": {"type": "objekt"}}, "{}")
    assert info.value.message.startswith("invalid JSON Schema in a json_schema check: 'objekt' is not valid")
