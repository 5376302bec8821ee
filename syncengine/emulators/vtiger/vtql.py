"""VTQL, the SQL subset of vtiger's ``query`` operation: lexer and parser with vtiger's quirks.

The lexer is a port of ``include/Webservices/VTQL_Lexer.php`` (a stateful lexer whose token kinds
depend on the clause it believes it is in), so odd input is tokenised the way vtiger does it; the
parser is a hand-written equivalent of ``VTQL_Parser`` whose syntax errors read like the
LALR parser's (``Syntax Error on line 1: token 'x' Unexpected COLUMNNAME(x), expected one of: …``).
Lexer failures (double quotes, the empty literal ``''``) raise :class:`VtqlLexError`, which the
webservice reports as ``INTERNAL_SERVER_ERROR``.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

_TOKEN = re.compile(
    r"(\w+|'(?:[^']|'')+'|\(|\)|(?:\+|-)?\d+|,|\*|(?!<|>)=|<(?!=)|>(?!=)|<=|>=|!=|;)|([ \t\r\n]+)",
    re.ASCII)
END = "End of Input"
UNKNOWN = "Unknown"
OPERATORS = {"EQ": "=", "LT": "<", "GT": ">", "LTE": "<=", "GTE": ">=", "NE": "!=", "LIKE": "LIKE"}


class VtqlLexError(Exception):
    """The lexer met input no rule matches (a plain PHP Exception in vtiger)."""


class VtqlSyntaxError(Exception):
    """A parse error, worded like VTQL_Parser's."""


@dataclass
class Condition:
    column: str
    op: str                 # = < > <= >= != LIKE IN
    values: list[str]       # raw literals (quotes still on), one unless IN


@dataclass
class Select:
    columns: list[str] = field(default_factory=list)   # empty with star
    star: bool = False
    count: bool = False
    module: str = ""
    where: list[tuple[str, Condition]] = field(default_factory=list)  # (AND|OR|"", cond)
    order_by: list[str] = field(default_factory=list)
    descending: bool = False
    limit: tuple[str | None, str] | None = None        # (offset, count) as raw tokens


class _Lexer:
    """``VTQL_Lexer`` with its global flags, one instance per statement."""

    MANDATORY = ("select", "column_list", "from", "table")
    OPTIONAL = ("where", "orderby", "limit")

    def __init__(self, text: str):
        self.text = text
        self.index = 0
        self.value = ""
        self.mandatory = True
        self.state = 0
        self.where_col = False
        self.orderby = False
        self.in_started = False
        self.count = False

    def tokens(self) -> Iterator[tuple[str, str]]:
        while self.index < len(self.text):
            match = _TOKEN.match(self.text, self.index)
            if match is None:
                raise VtqlLexError(f"Unexpected input at line1: {self.text[self.index]}")
            self.index = match.end()
            if match.group(2) is not None:
                continue
            self.value = match.group(1)
            kind = self._classify(self.value)
            if kind == "SKIP":
                continue
            yield (kind or UNKNOWN), self.value

    def _classify(self, val: str) -> str | None:
        if self.mandatory:
            return getattr(self, "_" + self.MANDATORY[self.state])(val)
        if val == ";":
            return "SEMICOLON"
        low = val.lower()
        if low == "order":
            self.orderby = True
            return "SKIP"
        if low == "by" and self.orderby:
            self.orderby = False
            self.state = 1
        if low in self.OPTIONAL:
            self.state = self.OPTIONAL.index(low)
        return getattr(self, "_" + self.OPTIONAL[self.state])(val)

    def _advance(self, n: int = 1) -> None:
        self.state += n
        if self.state == len(self.MANDATORY):
            self.mandatory = False

    def _select(self, val: str) -> str | None:
        if val.lower() == "select":
            self._advance()
            return "SELECT"
        return None

    def _column_list(self, val: str) -> str | None:
        if val.lower() == "from":
            self._advance(2)
            return "FRM"
        if val == "*":
            if not self.count:
                self._advance()
            return "ASTERISK"
        if val == "(":
            return "PARENOPEN"
        if val == ")":
            return "PARENCLOSE"
        if val.lower() == "count":
            self.count = True
            return "COUNT"
        if val == ",":
            return "COMMA"
        return "COLUMNNAME"

    def _from(self, val: str) -> str | None:
        if val.lower() == "from":
            self._advance()
            return "FRM"
        return None

    def _table(self, val: str) -> str | None:
        self.state = 0
        self.mandatory = False
        return None if val.lower() == "where" else "TABLENAME"

    def _where(self, val: str) -> str | None:
        val = val.strip()
        simple = {"=": "EQ", "<": "LT", "<=": "LTE", ">=": "GTE", "!=": "NE", ">": "GT", "(": "PARENOPEN"}
        if val in simple:
            return simple[val]
        if val.lower() == "where":
            return "WHERE"
        if val == ")":
            if self.in_started:
                self.in_started = False
                self.where_col = False
            return "PARENCLOSE"
        if val.lower() == "and":
            return "LOGICAL_AND"
        if val.lower() == "or":
            return "LOGICAL_OR"
        if not self.where_col:
            self.where_col = True
            return "COLUMNNAME"
        if val.lower() == "in":
            self.in_started = True
            return "IN"
        if val == ",":
            return "COMMA"
        if val.lower() == "like":
            return "LIKE"
        if not self.in_started:
            self.where_col = False
        return "VALUE"

    def _orderby(self, val: str) -> str:
        if not self.orderby:
            self.orderby = True
            return "ORDERBY"
        return {",": "COMMA", "asc": "ASC", "desc": "DESC"}.get(val.lower(), "COLUMNNAME")

    def _limit(self, val: str) -> str:
        return {"limit": "LIMIT", "(": "PARENOPEN", ")": "PARENCLOSE", ",": "COMMA"}.get(val.lower(), "VALUE")


class _Parser:
    # Where the LALR parser may reduce to a complete statement it only announces SEMICOLON.
    CAN_END = ("SEMICOLON",)

    def __init__(self, text: str):
        self.lexer = _Lexer(text)
        self.stream = self.lexer.tokens()
        self.kind, self.value = self._next()

    def _next(self) -> tuple[str, str]:
        return next(self.stream, (END, "0"))

    def advance(self) -> str:
        value = self.value
        self.kind, self.value = self._next()
        return value

    def fail(self, expected: tuple[str, ...]) -> VtqlSyntaxError:
        shown = self.lexer.value
        minor = self.value if self.kind != END else "0"
        return VtqlSyntaxError(f"Syntax Error on line 1: token '{shown}' Unexpected {self.kind}({minor}), "
                               f"expected one of: {','.join(expected)}")

    def expect(self, *kinds: str) -> str:
        if self.kind not in kinds:
            raise self.fail(kinds)
        return self.advance()

    def parse(self) -> Select:
        stmt = Select()
        self.expect("SELECT")
        self._select_list(stmt)
        self.expect("FRM")
        stmt.module = self.expect("TABLENAME")
        if self.kind == "WHERE":
            self.advance()
            self._where(stmt)
        if self.kind == "ORDERBY":
            self.advance()
            stmt.order_by.append(self.expect("COLUMNNAME"))
            while self.kind == "COMMA":
                self.advance()
                stmt.order_by.append(self.expect("COLUMNNAME"))
            if self.kind in ("ASC", "DESC"):
                stmt.descending = self.advance().lower() == "desc"
        if self.kind == "LIMIT":
            self.advance()
            first = self.expect("VALUE")
            if self.kind == "COMMA":
                self.advance()
                stmt.limit = (first, self.expect("VALUE"))
            else:
                stmt.limit = (None, first)
        self.expect(*self.CAN_END)
        if self.kind != END:
            raise self.fail(())
        return stmt

    def _select_list(self, stmt: Select) -> None:
        if self.kind == "ASTERISK":
            self.advance()
            stmt.star = True
            return
        while True:
            if self.kind == "COUNT":
                self.advance()
                self.expect("PARENOPEN")
                self.expect("ASTERISK")
                self.expect("PARENCLOSE")
                stmt.count = True
            else:
                stmt.columns.append(self.expect("COLUMNNAME", "COUNT", "ASTERISK"))
            if self.kind != "COMMA":
                if self.kind != "FRM":
                    raise self.fail(("COMMA", "FRM"))
                return
            self.advance()

    def _where(self, stmt: Select) -> None:
        joiner = ""
        while True:
            column = self.expect("COLUMNNAME")
            if self.kind == "IN":
                self.advance()
                self.expect("PARENOPEN")
                values = [self.expect("VALUE")]
                while self.kind == "COMMA":
                    self.advance()
                    values.append(self.expect("VALUE"))
                self.expect("PARENCLOSE")
                stmt.where.append((joiner, Condition(column, "IN", values)))
            else:
                kind = self.kind
                self.expect(*OPERATORS, "IN")
                stmt.where.append((joiner, Condition(column, OPERATORS[kind], [self.expect("VALUE")])))
            if self.kind not in ("LOGICAL_AND", "LOGICAL_OR"):
                if self.kind not in ("ORDERBY", "LIMIT", "SEMICOLON"):
                    raise self.fail(self.CAN_END)
                return
            joiner = "AND" if self.advance().lower() == "and" else "OR"


def parse(text: str) -> Select:
    """Parse one VTQL statement (trailing ``;`` included) or raise VtqlSyntaxError/VtqlLexError."""
    return _Parser(text).parse()


_MYSQL_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a",
                  "%": "\\%", "_": "\\_"}


def mysql_string(token: str) -> str:
    r"""The value MySQL reads from a VALUE token that vtiger pasted into its SQL as it came.

    MySQL's string rules, not VTQL's: a backslash escapes the next character (``\\`` is one
    backslash, ``\'`` a quote, ``\n`` a newline; ``\%`` and ``\_`` keep theirs for LIKE), and
    ``''`` is one quote. Raises ValueError where MySQL fails: a backslash that escapes the
    closing quote, or a quote that ends the string early (``'it\''s'``)."""
    if not (len(token) >= 2 and token[0] == "'" and token[-1] == "'"):
        return token
    body, out, i = token[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 == len(body):
                raise ValueError("the closing quote is escaped")
            out.append(_MYSQL_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        elif ch == "'":
            if body[i + 1:i + 2] != "'":
                raise ValueError("the string ends before the closing quote")
            out.append("'")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)
