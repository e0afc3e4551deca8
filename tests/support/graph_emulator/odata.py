"""The subset of OData ``$filter`` the emulator understands, parsed properly.

Grammar (OData keywords are lower-case)::

    expr    := and ("or" and)*
    and     := primary ("and" primary)*
    primary := "(" expr ")" | NAME "eq" literal | NAME "/any(" VAR ":" VAR "eq" literal ")"
             | NAME "in" "(" literal ("," literal)* ")"      (at most 15 values, as Graph)
    literal := 'text with '' for a quote' | true | false | null

Strings compare case-insensitively, as Entra ID's directory does for these properties
(``mail``, ``userPrincipalName``, ``proxyAddresses``, the on-prem ids).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<punct>[()/:,])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)

Literal = str | bool | None

#: The most values Graph accepts in one ``in`` of a ``$filter``.
MAX_IN_VALUES = 15
Predicate = Callable[[Mapping[str, Any]], bool]


class FilterError(ValueError):
    """The filter is malformed (``syntax``) or uses what the emulated endpoint does not support."""

    def __init__(self, message: str, *, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


@dataclass
class _Token:
    kind: str
    text: str


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise FilterError(f"Syntax error at position {pos} in '{text}'.")
        kind = match.lastgroup or ""
        tokens.append(_Token(kind, match.group(kind)))
        pos = match.end()
    return tokens


def _equal(left: Any, right: Literal) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    return bool(left == right)


class _Parser:
    def __init__(self, text: str, properties: Collection[str], collections: Collection[str]):
        self.tokens = _tokenize(text)
        self.pos = 0
        self.properties = properties
        self.collections = collections

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str | None = None, text: str | None = None) -> _Token:
        token = self.peek()
        if token is None or (kind and token.kind != kind) or (text and token.text != text):
            wanted = text or kind or "a token"
            got = token.text if token else "end of filter"
            raise FilterError(f"Syntax error: expected {wanted}, found '{got}'.")
        self.pos += 1
        return token

    def at_word(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text == word

    def parse(self) -> Predicate:
        predicate = self.expr()
        if self.peek() is not None:
            raise FilterError(f"Syntax error: unexpected '{self.peek().text}'.")  # type: ignore[union-attr]
        return predicate

    def expr(self) -> Predicate:
        terms = [self.conjunction()]
        while self.at_word("or"):
            self.take()
            terms.append(self.conjunction())
        if len(terms) == 1:
            return terms[0]
        return lambda obj: any(term(obj) for term in terms)

    def conjunction(self) -> Predicate:
        terms = [self.primary()]
        while self.at_word("and"):
            self.take()
            terms.append(self.primary())
        if len(terms) == 1:
            return terms[0]
        return lambda obj: all(term(obj) for term in terms)

    def literal(self) -> Literal:
        token = self.take()
        if token.kind == "string":
            # Inside an OData string literal a quote is written twice.
            return token.text[1:-1].replace("''", "'")
        if token.kind == "word" and token.text in ("true", "false"):
            return token.text == "true"
        if token.kind == "word" and token.text == "null":
            return None
        raise FilterError(f"Syntax error: '{token.text}' is not a literal.")

    def primary(self) -> Predicate:
        token = self.peek()
        if token is not None and token.text == "(":
            self.take()
            inner = self.expr()
            self.take("punct", ")")
            return inner
        name = self.take("word").text
        nxt = self.peek()
        if nxt is not None and nxt.text == "/":
            return self.lambda_any(name)
        if name not in self.properties:
            raise FilterError(
                f"Unsupported or invalid query filter clause: {name}", unsupported=True
            )
        op = self.take("word").text
        if op == "in":
            return self.in_list(name)
        if op != "eq":
            raise FilterError(f"Unsupported operator '{op}'.", unsupported=True)
        value = self.literal()
        return lambda obj: _equal(obj.get(name), value)

    def in_list(self, name: str) -> Predicate:
        """``NAME in ('a', 'b')``: Graph allows at most 15 values in one ``in``."""
        self.take("punct", "(")
        values = [self.literal()]
        while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
            self.take()
            values.append(self.literal())
        self.take("punct", ")")
        if len(values) > MAX_IN_VALUES:
            raise FilterError(
                f"Too many values in the 'in' operator: {len(values)} (at most {MAX_IN_VALUES})."
            )
        return lambda obj: any(_equal(obj.get(name), v) for v in values)

    def lambda_any(self, name: str) -> Predicate:
        if name not in self.collections:
            raise FilterError(
                f"Unsupported or invalid query filter clause: {name}", unsupported=True
            )
        self.take("punct", "/")
        self.take("word", "any")
        self.take("punct", "(")
        var = self.take("word").text
        self.take("punct", ":")
        self.take("word", var)
        op = self.take("word").text
        if op != "eq":
            raise FilterError(f"Unsupported operator '{op}' in any().", unsupported=True)
        value = self.literal()
        self.take("punct", ")")
        return lambda obj: any(_equal(item, value) for item in obj.get(name) or ())


def parse_filter(
    text: str, properties: Collection[str], collections: Collection[str] = ()
) -> Predicate:
    """Compile ``text`` into a predicate over an object's Graph JSON.

    Args:
        properties: single-valued properties that support ``eq`` on this endpoint.
        collections: multi-valued string properties that support ``any(x:x eq ...)``.

    Raises:
        FilterError: a syntax error, or a property/operator the endpoint does not support.
    """
    return _Parser(text, properties, collections).parse()
