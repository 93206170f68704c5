"""The contracts' own `key: value` text form: parse it into plain data and render data back.

The form is the indented block the FastVideo contracts use (and GitHub issues copy):

    component_context:
      model_family: stable_audio
      official_definition_files:
        - path: src/model.py
          symbols: Model
      concerns_or_unknowns:
        - none

It looks like YAML but is not: values may contain `: `, backticks, `<`, `|` and `#` freely.
The parser takes the first `: ` as the separator, strips matching backticks/quotes around a
value and supports `key: |` blocks for multi-line values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_KEY_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:(?:\s+(.*)|\s*)$")
_FENCE_RE = re.compile(r"^\s*(```+|~~~+)\s*([A-Za-z0-9_+-]*)\s*$")


class TextFormError(ValueError):
    """A line of the text form could not be read; `line` is 1-based in the original document."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}")


@dataclass
class _Line:
    number: int
    indent: int
    text: str
    skip: bool = False  # blank or `#` comment: ignored except inside a `key: |` block


def _scalar(raw: str) -> str:
    """Strip one pair of matching backticks or quotes around a value."""
    value = raw.strip()
    for quote in ("`", '"', "'"):
        if len(value) >= 2 and value[0] == quote and value[-1] == quote and quote not in value[1:-1]:
            return value[1:-1]
    return value


def _value(raw: str) -> Any:
    """A one-line value: `[a, b]` becomes a list, anything else a string."""
    value = raw.strip()
    if value.startswith("[") and value.endswith("]"):
        inner = value[1:-1].strip()
        return [_scalar(part) for part in inner.split(",")] if inner else []
    return _scalar(value)


class _Parser:
    def __init__(self, lines: list[_Line]) -> None:
        self.lines = lines
        self.pos = 0

    def peek(self) -> _Line | None:
        while self.pos < len(self.lines) and self.lines[self.pos].skip:
            self.pos += 1
        return self.lines[self.pos] if self.pos < len(self.lines) else None

    def parse_block(self, indent: int) -> Any:
        first = self.peek()
        if first is None or first.indent < indent:
            return ""
        if first.text.startswith("- ") or first.text == "-":
            return self.parse_list(first.indent)
        return self.parse_mapping(first.indent)

    def parse_mapping(self, indent: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while (line := self.peek()) is not None and line.indent >= indent:
            if line.indent > indent:
                raise TextFormError(line.number, "unexpected indentation")
            if line.text.startswith("- ") or line.text == "-":
                raise TextFormError(line.number, "list item where a `key: value` line was expected")
            match = _KEY_RE.match(line.text)
            if not match:
                raise TextFormError(line.number, f"expected `key: value`, got {line.text!r}")
            key, raw = match.group(1), match.group(2)
            if key in result:
                raise TextFormError(line.number, f"duplicate key {key!r}")
            self.pos += 1
            result[key] = self.parse_value(raw, indent, line)
        return result

    def parse_value(self, raw: str | None, indent: int, line: _Line) -> Any:
        if raw is not None and raw.strip() in ("|", "|-", ">", ">-"):
            return self.parse_block_scalar(indent, folded=raw.strip().startswith(">"))
        if raw is not None and raw.strip():
            return _value(raw)
        nxt = self.peek()
        # A nested block is deeper, or (YAML style) a list at the key's own indentation.
        if nxt is not None and (nxt.indent > indent or (nxt.indent == indent and nxt.text.startswith("- "))):
            return self.parse_block(nxt.indent)
        return ""

    def parse_block_scalar(self, indent: int, folded: bool) -> str:
        parts: list[str] = []
        block_indent: int | None = None
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if line.text and line.indent <= indent:
                break
            if line.text:
                block_indent = line.indent if block_indent is None else block_indent
            parts.append("" if not line.text else " " * max(0, line.indent - (block_indent or 0)) + line.text)
            self.pos += 1
        while parts and not parts[-1]:
            parts.pop()  # blank lines after the block belong to the document
        return (" " if folded else "\n").join(parts)

    def parse_list(self, indent: int) -> list[Any]:
        items: list[Any] = []
        while (line := self.peek()) is not None and line.indent == indent and (line.text.startswith("- ") or line.text == "-"):
            rest = line.text[1:].lstrip()
            self.pos += 1
            if not rest:
                items.append(self.parse_block(indent + 1))
            elif _KEY_RE.match(rest):
                # `- key: value` opens a mapping whose other keys align with `key`.
                item_indent = indent + (len(line.text) - len(rest))
                self.lines.insert(self.pos, _Line(line.number, item_indent, rest))
                items.append(self.parse_mapping(item_indent))
            else:
                items.append(_value(rest))
        line = self.peek()
        if line is not None and line.indent > indent:
            raise TextFormError(line.number, "unexpected indentation after a list item")
        return items


def parse_text(text: str, first_line: int = 1) -> Any:
    """Parse the contract text form into dicts, lists and strings; blank and `#` lines are skipped."""
    lines: list[_Line] = []
    for offset, raw in enumerate(text.splitlines()):
        if raw.strip() and "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise TextFormError(first_line + offset, "tab used for indentation; use spaces")
        stripped = raw.rstrip()
        indent = len(raw) - len(raw.lstrip())
        lines.append(_Line(first_line + offset, indent, stripped.lstrip(), skip=not stripped or stripped.lstrip().startswith("#")))
    if not any(not line.skip for line in lines):
        raise TextFormError(first_line, "empty document")
    parser = _Parser(lines)
    result = parser.parse_block(parser.peek().indent)
    if (rest := parser.peek()) is not None:
        raise TextFormError(rest.number, "unexpected dedent or content after the block")
    return result


def fenced_blocks(text: str) -> list[tuple[int, str, str]]:
    """Every fenced code block in a markdown text as (first content line number, info, body)."""
    blocks: list[tuple[int, str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE_RE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, info = opening.group(1), opening.group(2)
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence[0] * len(fence)):
            body.append(lines[j])
            j += 1
        blocks.append((i + 2, info, "\n".join(body)))
        i = j + 1
    return blocks


def _render_scalar(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _list_item(text: str) -> str:
    """A list item on one line; quoted when it would otherwise read as `key: value`."""
    text = text.replace("\n", " ")
    if _KEY_RE.match(text):
        for quote in ('"', "'", "`"):
            if quote not in text:
                return f"{quote}{text}{quote}"
    return text


def render_text(data: Any, indent: int = 0) -> str:
    """Render dicts/lists/strings in the text form (2-space indents, `- ` list items)."""
    return "\n".join(_render_lines(data, indent)) + "\n"


def _render_lines(data: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, dict):
                lines.append(f"{pad}{key}:")
                lines.extend(_render_lines(value, indent + 2))
            elif isinstance(value, list):
                if not value:
                    lines.append(f"{pad}{key}: none")
                else:
                    lines.append(f"{pad}{key}:")
                    lines.extend(_render_lines(value, indent + 2))
            elif isinstance(value, str) and "\n" in value:
                lines.append(f"{pad}{key}: |")
                lines.extend(f"{pad}  {part}" if part else "" for part in value.split("\n"))
            else:
                lines.append(f"{pad}{key}: {_render_scalar(value)}")
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict):
                inner = _render_lines(item, indent + 2)
                inner[0] = f"{pad}- {inner[0][indent + 2:]}"
                lines.extend(inner)
            else:
                lines.append(f"{pad}- {_list_item(_render_scalar(item))}")
    else:
        lines.append(f"{pad}{_render_scalar(data)}")
    return lines
