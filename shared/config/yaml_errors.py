"""Describe a YAML syntax error by where it is and which key, never by what is written there.

PyYAML's own message quotes the offending line, and a password is often on it; some
problems also quote a piece of the value (an alias name, an escape). This message keeps
the line, the column, the key path (``databases[0].password``) and PyYAML's words with
every quoted fragment of the document hidden.
"""

from __future__ import annotations

import re

import yaml

# A key at the start of a block-style line, after any indentation and list dashes.
_KEY_LINE = re.compile(
    r"^(?P<indent>[ \t]*(?:-[ \t]+)*)(?P<key>[^\s:#'\"\[\]{},&*!|>%@`-][^:#]*?|\"[^\"]*\"|'[^']*')"
    r"[ \t]*:(?:[ \t]|$)")
_DASH_LINE = re.compile(r"^(?P<indent>[ \t]*)-(?:[ \t]|$)")
# Python reprs inside PyYAML's problem texts ('\t', 'the-alias', '<block end>').
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")
# Fragments that are YAML's own vocabulary, not the document's.
_STRUCTURAL = {",", "[", "]", "{", "}", ":", "-", "?"}


def describe_yaml_error(exc: yaml.YAMLError, text: str, source: str) -> str:
    """Return a one-line description of ``exc`` in ``text`` naming positions and the key."""
    if isinstance(exc, yaml.reader.ReaderError):
        line, column = _position(text, exc.position)
        return (f"{source} is not valid YAML: line {line}, column {column}: a character "
                "YAML does not allow (a control character?)")
    if not isinstance(exc, yaml.MarkedYAMLError):
        return f"{source} is not valid YAML"
    marks = [m for m in (exc.problem_mark, exc.context_mark) if m is not None]
    lines = text.splitlines()
    key = next((path for m in marks if (path := key_path(lines, m.line)) is not None), None)
    where = f" at key {key}" if key else ""
    parts = []
    if exc.context and exc.context_mark is not None:
        parts.append(f"{_hide_values(exc.context)} ({_at(exc.context_mark)})")
    if exc.problem:
        at = f" ({_at(exc.problem_mark)})" if exc.problem_mark is not None else ""
        parts.append(f"{_hide_values(exc.problem)}{at}")
    return f"{source} is not valid YAML{where}: {', '.join(parts)} (values are not shown)"


def key_path(lines: list[str], index: int) -> str | None:
    """Return the path of the block-style key on line ``index`` (0-based), or None.

    ``databases:`` / ``  - id: a`` / ``    password: "x`` gives ``databases[0].password``.
    Flow style (``{a: 1}``) is not followed: the line's first key is the answer.
    """
    if not 0 <= index < len(lines) or not (match := _KEY_LINE.match(lines[index])):
        return None
    path = [match.group("key").strip("'\"")]
    column = len(match.group("indent"))
    # In a list item (``- key: …``), a sequence may sit at its parent key's own indent.
    in_item = False
    if dash := _DASH_LINE.match(lines[index]):
        column, in_item = len(dash.group("indent")), True
        path.insert(0, f"[{_item_index(lines, index, column)}]")
    for number in range(index - 1, -1, -1):
        if column == 0 and not in_item:
            break
        line = lines[number]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if _DASH_LINE.match(line):
            if indent < column:  # the list item holding the key
                path.insert(0, f"[{_item_index(lines, number, indent)}]")
                column, in_item = indent, True
        elif (indent < column or (in_item and indent == column)) and (
                parent := _KEY_LINE.match(line)):
            path.insert(0, parent.group("key").strip("'\""))
            column, in_item = indent, False
    return "".join(p if p.startswith("[") or i == 0 else f".{p}" for i, p in enumerate(path))


def _item_index(lines: list[str], number: int, indent: int) -> int:
    """Count the list items at ``indent`` before line ``number``, up to their parent key."""
    count = 0
    for line in reversed(lines[:number]):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        current = len(line) - len(line.lstrip())
        if current < indent:
            break
        if current == indent:
            if not _DASH_LINE.match(line):
                break  # the parent key, when the list sits at its indent
            count += 1
    return count


def _hide_values(words: str) -> str:
    """Replace every quoted fragment of the document in PyYAML's ``words``."""

    def hide(match: re.Match[str]) -> str:
        inner = match.group(1) if match.group(1) is not None else match.group(2)
        if inner == "\\t":
            return "'\\t' (a tab)"
        if inner in _STRUCTURAL or (inner.startswith("<") and inner.endswith(">")):
            return match.group(0)
        return "(hidden)"

    return _QUOTED.sub(hide, words)


def _at(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _position(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1
