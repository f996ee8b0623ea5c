"""Kubernetes label selectors, checked as the API server's labels.Parse reads them, so that a
bad `destination_selector` stops the operator at start-up with one line instead of a watch
the API server refuses again and again. Linear: one regex pass, then one walk of the tokens."""

from __future__ import annotations

import re

__all__ = ["SELECTOR_MAX", "label_selector"]

SELECTOR_MAX = 4096
# The API server's lexer: blanks are these four; a word is anything up to a blank or a symbol.
SELECTOR_TOKEN = re.compile(r"[ \t\r\n]*(!=|==|[=!(),<>]|[^ \t\r\n=!(),<>]+)")
SYMBOLS = frozenset(("!=", "==", "=", "!", "(", ")", ",", "<", ">"))
SET_OPERATORS = frozenset(("in", "notin"))  # operators only where one is expected
VALUE_OPERATORS = frozenset(("=", "==", "!=", "<", ">"))
LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
INT64 = 2**63


def _label_key(key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if "/" in prefix or (slash and not prefix):
        raise ValueError(f"label key {key!r}: at most one '/', after a non-empty prefix")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.fullmatch(prefix)):
        raise ValueError(f"label key {key!r}: its prefix is not a DNS subdomain")
    if len(name) > 63 or not LABEL_NAME.fullmatch(name):
        raise ValueError(
            f"label key {key!r}: a name of at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )


def _label_value(key: str, value: str) -> None:
    if value in SYMBOLS:
        raise ValueError(f"found {value!r} where a value of {key!r} was expected")
    if value and (len(value) > 63 or not LABEL_NAME.fullmatch(value)):
        raise ValueError(
            f"label value {value!r} of {key!r}: at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )


def _set_values(key: str, tokens: list[str], at: int) -> int:
    """Check the values of `in (...)` or `notin (...)` from the token after the operator;
    the index after its ')'. An empty item is the empty value, as the API server reads it."""
    if at >= len(tokens) or tokens[at] != "(":
        raise ValueError(f"expected '(' after {key!r} in or notin")
    last, at = "(", at + 1
    while at < len(tokens) and tokens[at] != ")":
        token = tokens[at]
        if token != ",":
            if last not in ("(", ","):
                raise ValueError(f"found {token!r} in the values of {key!r}; expected ',' or ')'")
            _label_value(key, token)
        last, at = token, at + 1
    if at >= len(tokens):
        raise ValueError(f"the values of {key!r} have no ')'")
    return at + 1


def _requirement(tokens: list[str], at: int) -> int:
    """Check one requirement (`key`, `!key`, `key=v`, `key in (...)`, `key>1`...) from
    `tokens[at]`; the index after it."""
    absent = tokens[at] == "!"
    at += absent
    key = tokens[at] if at < len(tokens) else ""
    if not key or key in SYMBOLS:
        raise ValueError(f"found {key or 'the end'!r} where a label key was expected")
    _label_key(key)
    at += 1
    operator = tokens[at] if at < len(tokens) else ","
    if operator == ",":
        return at
    if absent:
        raise ValueError(f"found {operator!r} after !{key}; expected ',' or the end")
    if operator in SET_OPERATORS:
        return _set_values(key, tokens, at + 1)
    if operator not in VALUE_OPERATORS:
        raise ValueError(
            f"found {operator!r} after {key!r}; expected =, ==, !=, in, notin, <, > or ','"
        )
    at += 1
    value = tokens[at] if at < len(tokens) and tokens[at] != "," else ""
    _label_value(key, value)
    if operator in ("<", ">") and not (value.isdigit() and int(value) < INT64):
        raise ValueError(f"{key}{operator}{value}: '<' and '>' take a whole number")
    return at + bool(value)


def label_selector(value: str) -> str:
    """A Kubernetes label selector (`shard=a`, `shard in (a,b)`, `!shard`), checked as the
    API server parses it, so that a bad one stops the operator at start-up with one line
    instead of a watch the API server refuses again and again."""
    if len(value) > SELECTOR_MAX:
        raise ValueError(f"a label selector of at most {SELECTOR_MAX} characters")
    tokens = SELECTOR_TOKEN.findall(value)
    at = 0
    while at < len(tokens):
        at = _requirement(tokens, at)
        if at < len(tokens):
            if tokens[at] != ",":
                raise ValueError(f"found {tokens[at]!r}; expected ',' or the end")
            at += 1
            if at == len(tokens):
                raise ValueError("a ',' with no requirement after it")
    return value
