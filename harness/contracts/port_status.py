"""PORT_STATUS.md, the per-port state file, as a model that keeps hand-written text intact.

The contract (`contracts/port_state.md`) fixes ten sections: Summary, Current Phase, Component
Matrix, Conversion State, Parity Commands, Open Questions, Issues And Blockers, Escape Hatches,
Decisions, Handoff Notes. Real files also carry extra sections, prose, code fences and extra
table columns. The file is parsed into sections of blocks (text, `- key: value` bullets, tables);
every block, bullet and row remembers its original lines and renders them verbatim until it is
edited, so `PortStatus.parse(text).render() == text` and edits leave hand-written parts alone.

IDs (`Q001`, `I001`, `E001`) are never reused: the next ID is one more than the highest number
of that prefix mentioned anywhere in the file. Resolved rows stay, with a Resolution. Raw token
values are refused in every cell, bullet and note, and a parsed file holding one is rejected.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from harness.contracts.secrets import find_secret

SECTIONS: dict[str, list[str]] = {
    "Summary": ["model_family", "workload_types", "official_ref", "official_ref_dir", "hf_weights_path",
                "local_weights_dir", "source_layout", "local_tests_readme"],
    "Current Phase": ["phase", "status", "owner", "last_updated"],
    "Component Matrix": ["Component", "Type", "Reuse/Port", "Official Definition", "Official Instantiation",
                         "FastVideo Target", "Prototype", "Conversion", "Parity", "Open Issues"],
    "Conversion State": ["conversion_script", "converted_weights_dir", "source_layout", "strict_load_status",
                         "passthrough_components", "retry_history"],
    "Parity Commands": ["Scope", "Command", "Last Result", "Notes"],
    "Open Questions": ["ID", "Question", "Owner", "Needed By Phase", "Status", "Resolution"],
    "Issues And Blockers": ["ID", "Phase", "Component", "Severity", "Issue", "Evidence", "Owner", "Status", "Resolution"],
    "Escape Hatches": ["ID", "Phase", "Decision Type", "Question", "Recommended Option", "Status", "Resolution"],
    "Decisions": ["Date", "Decision", "Rationale", "Impact"],
    "Handoff Notes": [],
}
TABLE_SECTIONS = {"Component Matrix", "Parity Commands", "Open Questions", "Issues And Blockers", "Escape Hatches", "Decisions"}
ID_SECTIONS = {"Q": "Open Questions", "I": "Issues And Blockers", "E": "Escape Hatches"}
PHASE_STATUSES = ("not_started", "in_progress", "blocked", "complete")
DECISION_TYPES = ("scope", "dependency", "auth", "cost", "destructive", "ambiguity", "blocker")

_HEADING_RE = re.compile(r"^##\s+(.+?)\s*#*\s*$")
_FENCE_RE = re.compile(r"^\s*(```|~~~)")
_BULLET_RE = re.compile(r"^[-*]\s+(?:([A-Za-z_][A-Za-z0-9_ ./-]*?):(?:\s+(.*)|\s*))?(.*)$")
_SEPARATOR_RE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


class PortStatusError(ValueError):
    """A PORT_STATUS.md edit or parse that would break the contract (unknown ID, raw token, ...)."""


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == "`" and "`" not in value[1:-1]:
        return value[1:-1]
    return value


def _split_cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    cells, current, escaped = [], "", False
    for char in body:
        if escaped:
            current += char if char == "|" else "\\" + char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|":
            cells.append(current.strip())
            current = ""
        else:
            current += char
    cells.append((current + ("\\" if escaped else "")).strip())
    return cells


def _cell(value: str) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


class TextBlock(BaseModel):
    """Lines kept exactly as written: prose, blank lines, code fences, unrecognised markdown."""

    kind: Literal["text"] = "text"
    lines: list[str] = Field(default_factory=list, description="Raw lines.")


class BulletItem(BaseModel):
    """One bullet; `key` is set for `- key: value` bullets."""

    key: str | None = Field(default=None, description="Field name of a `- key: value` bullet.")
    value: str = Field(default="", description="Value (surrounding backticks removed) or the note text.")
    raw: list[str] | None = Field(default=None, description="Original lines; None once edited.")

    def render(self) -> list[str]:
        if self.raw is not None:
            return self.raw
        if self.key is None:
            return [f"- {self.value}"]
        if not self.value:
            return [f"- {self.key}:"]
        shown = self.value if "`" in self.value else f"`{self.value}`"
        return [f"- {self.key}: {shown}"]


class BulletsBlock(BaseModel):
    """A run of bullets."""

    kind: Literal["bullets"] = "bullets"
    items: list[BulletItem] = Field(default_factory=list, description="Bullets in order.")


class TableRow(BaseModel):
    """One table row; cells are unescaped."""

    cells: list[str] = Field(description="Cell values in column order.")
    raw: str | None = Field(default=None, description="Original line; None once edited.")


class TableBlock(BaseModel):
    """A markdown table; extra columns and their cells are kept."""

    kind: Literal["table"] = "table"
    header: list[str] = Field(description="Column names.")
    header_raw: str | None = Field(default=None, description="Original header line; None once edited.")
    separator_raw: str | None = Field(default=None, description="Original separator line; None once edited.")
    rows: list[TableRow] = Field(default_factory=list, description="Body rows.")

    def column(self, name: str) -> int | None:
        wanted = _norm(name)
        return next((i for i, h in enumerate(self.header) if _norm(h) == wanted), None)

    def ensure_column(self, name: str) -> int:
        index = self.column(name)
        if index is None:
            # A hand-made table without the column: add it, re-rendering the table.
            self.header.append(name)
            self.header_raw = self.separator_raw = None
            for row in self.rows:
                row.raw = None
            index = len(self.header) - 1
        return index

    def as_dicts(self) -> list[dict[str, str]]:
        return [{h: (row.cells[i] if i < len(row.cells) else "") for i, h in enumerate(self.header)} for row in self.rows]

    def render(self) -> list[str]:
        lines = [self.header_raw if self.header_raw is not None else "| " + " | ".join(self.header) + " |"]
        lines.append(self.separator_raw if self.separator_raw is not None else "|" + "---|" * len(self.header))
        for row in self.rows:
            if row.raw is not None:
                lines.append(row.raw)
            else:
                cells = row.cells + [""] * (len(self.header) - len(row.cells))
                lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        return lines


Block = Annotated[Union[TextBlock, BulletsBlock, TableBlock], Field(discriminator="kind")]


class Section(BaseModel):
    """A `## Heading` and the blocks under it."""

    name: str = Field(description="Heading text.")
    heading_raw: str | None = Field(default=None, description="Original heading line.")
    blocks: list[Block] = Field(default_factory=list, description="Content in order.")

    def tables(self) -> list[TableBlock]:
        return [b for b in self.blocks if isinstance(b, TableBlock)]

    def bullets(self) -> list[BulletItem]:
        return [item for b in self.blocks if isinstance(b, BulletsBlock) for item in b.items]

    def render(self) -> list[str]:
        lines = [self.heading_raw if self.heading_raw is not None else f"## {self.name}"]
        for block in self.blocks:
            if isinstance(block, TextBlock):
                lines.extend(block.lines)
            elif isinstance(block, BulletsBlock):
                lines.extend(line for item in block.items for line in item.render())
            else:
                lines.extend(block.render())
        return lines

    def append_block(self, block: TextBlock | BulletsBlock | TableBlock) -> None:
        """Add a block at the end of the section's content, before its trailing blank lines."""
        trailing: list[str] = []
        if self.blocks and isinstance(self.blocks[-1], TextBlock):
            last = self.blocks[-1]
            while last.lines and not last.lines[-1].strip():
                trailing.insert(0, last.lines.pop())
            if not last.lines:
                self.blocks.pop()
        if self.render()[-1].strip():
            self.blocks.append(TextBlock(lines=[""]))
        self.blocks.append(block)
        self.blocks.append(TextBlock(lines=trailing or [""]))


def _parse_blocks(lines: list[str]) -> list[TextBlock | BulletsBlock | TableBlock]:
    blocks: list[TextBlock | BulletsBlock | TableBlock] = []
    i, in_fence = 0, False

    def text(line: str) -> None:
        if blocks and isinstance(blocks[-1], TextBlock):
            blocks[-1].lines.append(line)
        else:
            blocks.append(TextBlock(lines=[line]))

    while i < len(lines):
        line = lines[i]
        if _FENCE_RE.match(line):
            in_fence = not in_fence
            text(line)
            i += 1
            continue
        if in_fence:
            text(line)
            i += 1
            continue
        if line.lstrip().startswith("|") and i + 1 < len(lines) and _SEPARATOR_RE.match(lines[i + 1]):
            table = TableBlock(header=_split_cells(line), header_raw=line, separator_raw=lines[i + 1])
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                table.rows.append(TableRow(cells=_split_cells(lines[i]), raw=lines[i]))
                i += 1
            blocks.append(table)
            continue
        match = _BULLET_RE.match(line)
        if match:
            key = match.group(1)
            value = _unquote(match.group(2) or "") if key else match.group(3).strip()
            item = BulletItem(key=key.strip() if key else None, value=value, raw=[line])
            i += 1
            while i < len(lines) and lines[i].startswith((" ", "\t")) and lines[i].strip():
                item.raw.append(lines[i])  # continuation line of the bullet
                i += 1
            if blocks and isinstance(blocks[-1], BulletsBlock):
                blocks[-1].items.append(item)
            else:
                blocks.append(BulletsBlock(items=[item]))
            continue
        text(line)
        i += 1
    return blocks


class PortStatus(BaseModel):
    """PORT_STATUS.md: the lines before the first `##` heading, then the sections in file order."""

    model_config = ConfigDict(validate_assignment=True)

    preamble: list[str] = Field(default_factory=list, description="Lines before the first section (title, intro).")
    sections: list[Section] = Field(default_factory=list, description="Sections in file order.")

    # ---- reading and writing -------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> PortStatus:
        """Parse a PORT_STATUS.md text; refuses a file that holds a raw secret value."""
        lines = text.split("\n")
        for number, line in enumerate(lines, 1):
            if (message := find_secret(line)):
                raise PortStatusError(f"line {number} {message}")
        preamble: list[str] = []
        chunks: list[tuple[str, list[str]]] = []
        in_fence = False
        for line in lines:
            if _FENCE_RE.match(line):
                in_fence = not in_fence
            heading = None if in_fence else _HEADING_RE.match(line)
            if heading:
                chunks.append((line, []))
            elif chunks:
                chunks[-1][1].append(line)
            else:
                preamble.append(line)
        sections = [
            Section(name=_HEADING_RE.match(head).group(1), heading_raw=head, blocks=_parse_blocks(body))
            for head, body in chunks
        ]
        return cls(preamble=preamble, sections=sections)

    @classmethod
    def read(cls, path: str | Path) -> PortStatus:
        """Parse the file at `path`."""
        return cls.parse(Path(path).read_text(encoding="utf-8"))

    def write(self, path: str | Path) -> None:
        """Render to `path` (parents created)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.render(), encoding="utf-8")

    def render(self) -> str:
        """The markdown text; unchanged parts come out exactly as they were parsed."""
        lines = list(self.preamble)
        for section in self.sections:
            lines.extend(section.render())
        return "\n".join(lines)

    @classmethod
    def new(
        cls,
        model_family: str,
        *,
        workload_types: str = "unknown",
        official_ref: str = "unknown",
        official_ref_dir: str = "unknown",
        hf_weights_path: str = "unknown",
        local_weights_dir: str = "unknown",
        source_layout: str = "unknown",
        local_tests_readme: str | None = None,
        phase: str = "prep",
        status: str = "in_progress",
        owner: str = "orchestrator",
        last_updated: str | None = None,
    ) -> PortStatus:
        """A fresh file with every contract section, in contract order."""
        if not re.match(r"^[a-z][a-z0-9_]*$", model_family):
            raise PortStatusError(f"model_family must be snake_case, got {model_family!r}")
        title = " ".join(part.capitalize() for part in model_family.split("_"))
        summary = {
            "model_family": model_family, "workload_types": workload_types, "official_ref": official_ref,
            "official_ref_dir": official_ref_dir, "hf_weights_path": hf_weights_path,
            "local_weights_dir": local_weights_dir, "source_layout": source_layout,
            "local_tests_readme": local_tests_readme or f"tests/local_tests/{model_family}/README.md",
        }
        doc = cls(preamble=[f"# {title} Port Status", ""])
        for name, fields in SECTIONS.items():
            section = Section(name=name, blocks=[TextBlock(lines=[""])])
            if name in TABLE_SECTIONS:
                section.blocks.append(TableBlock(header=list(fields)))
            elif fields:
                values = summary if name == "Summary" else {}
                section.blocks.append(BulletsBlock(items=[BulletItem(key=f, value=values.get(f, "")) for f in fields]))
            section.blocks.append(TextBlock(lines=[""]))
            doc.sections.append(section)
        doc.set_phase(phase, status=status, owner=owner, last_updated=last_updated)
        doc._check_all()
        return doc

    # ---- lookups -------------------------------------------------------------------------

    @property
    def title(self) -> str:
        """The `# Title` line's text, or ''."""
        return next((line[2:].strip() for line in self.preamble if line.startswith("# ")), "")

    def section(self, name: str) -> Section | None:
        """The section with this heading (case-insensitive), or None."""
        wanted = _norm(name)
        return next((s for s in self.sections if _norm(s.name) == wanted), None)

    def missing_sections(self) -> list[str]:
        """Contract sections the file does not have."""
        return [name for name in SECTIONS if self.section(name) is None]

    def fields(self, section: str) -> dict[str, str]:
        """The `- key: value` bullets of a section (Summary, Current Phase, Conversion State)."""
        found = self.section(section)
        return {item.key: item.value for item in found.bullets() if item.key} if found else {}

    def rows(self, section: str) -> list[dict[str, str]]:
        """Rows of the first table in a section, as {column: cell}."""
        found = self.section(section)
        tables = found.tables() if found else []
        return tables[0].as_dicts() if tables else []

    def notes(self) -> list[str]:
        """The Handoff Notes bullets."""
        found = self.section("Handoff Notes")
        return [item.value if item.key is None else f"{item.key}: {item.value}" for item in found.bullets()] if found else []

    def ids(self, prefix: str) -> list[str]:
        """Every `<prefix>###` ID mentioned anywhere in the file, sorted."""
        found = {int(n) for n in re.findall(rf"\b{re.escape(prefix)}(\d{{3,}})\b", self.render())}
        return [f"{prefix}{n:03d}" for n in sorted(found)]

    def next_id(self, prefix: str) -> str:
        """One more than the highest `<prefix>###` mentioned anywhere: IDs are never reused."""
        numbers = [int(i[len(prefix):]) for i in self.ids(prefix)]
        return f"{prefix}{(max(numbers) if numbers else 0) + 1:03d}"

    # ---- edits ---------------------------------------------------------------------------

    def set_field(self, section: str, key: str, value: str) -> None:
        """Set a `- key: value` bullet in a section, adding the bullet (or section) if missing."""
        self._check(f"{section}.{key}", value)
        target = self._ensure_section(section)
        for item in target.bullets():
            if item.key == key:
                if item.value != value:
                    item.value, item.raw = value, None
                return
        blocks = [b for b in target.blocks if isinstance(b, BulletsBlock)]
        if blocks:
            blocks[0].items.append(BulletItem(key=key, value=value))
        else:
            target.append_block(BulletsBlock(items=[BulletItem(key=key, value=value)]))

    def set_phase(self, phase: str, status: str | None = None, owner: str | None = None, last_updated: str | None = None) -> None:
        """Update Current Phase; last_updated defaults to today (UTC)."""
        if status is not None and status not in PHASE_STATUSES:
            raise PortStatusError(f"status must be one of {', '.join(PHASE_STATUSES)}, got {status!r}")
        self.set_field("Current Phase", "phase", phase)
        if status is not None:
            self.set_field("Current Phase", "status", status)
        if owner is not None:
            self.set_field("Current Phase", "owner", owner)
        self.set_field("Current Phase", "last_updated", last_updated or _today())

    def add_question(self, question: str, owner: str = "orchestrator", needed_by_phase: str = "", status: str = "open") -> str:
        """Add an Open Questions row; returns its new ID (Q###)."""
        return self._add_id_row("Q", {"Question": question, "Owner": owner, "Needed By Phase": needed_by_phase, "Status": status, "Resolution": ""})

    def add_issue(self, issue: str, evidence: str, *, phase: str = "", component: str = "", severity: str = "medium",
                  owner: str = "orchestrator", status: str = "open") -> str:
        """Add an Issues And Blockers row; returns its new ID (I###)."""
        return self._add_id_row("I", {"Phase": phase, "Component": component, "Severity": severity, "Issue": issue,
                                      "Evidence": evidence, "Owner": owner, "Status": status, "Resolution": ""})

    def add_escape_hatch(self, question: str, recommended_option: str, decision_type: str, *, phase: str = "",
                         status: str = "open") -> str:
        """Add an Escape Hatches row; returns its new ID (E###)."""
        if decision_type not in DECISION_TYPES:
            raise PortStatusError(f"decision_type must be one of {', '.join(DECISION_TYPES)}, got {decision_type!r}")
        return self._add_id_row("E", {"Phase": phase, "Decision Type": decision_type, "Question": question,
                                      "Recommended Option": recommended_option, "Status": status, "Resolution": ""})

    def add_escape_hatch_for(self, hatch: object) -> str:
        """Add the row for an `EscapeHatch` model; returns its new ID (E###)."""
        from harness.contracts.escape_hatch import EscapeHatch

        if not isinstance(hatch, EscapeHatch):
            raise TypeError("expected an EscapeHatch")
        return self.add_escape_hatch(hatch.question, hatch.recommended_option, hatch.decision_type, phase=hatch.state_snapshot.phase)

    def resolve(self, row_id: str, resolution: str, status: str = "resolved") -> None:
        """Mark a Q/I/E row resolved, keeping the row and filling its Resolution."""
        section_name = ID_SECTIONS.get(row_id[:1].upper())
        if not resolution.strip():
            raise PortStatusError("a resolution is required")
        self._check_values({"Status": status, "Resolution": resolution})
        found = self.section(section_name) if section_name else None
        table, row = self._find_row(section_name, "ID", row_id) if found and found.tables() else (None, None)
        if table is None or row is None:
            raise PortStatusError(f"no row with ID {row_id} in PORT_STATUS.md")
        self._set_cells(table, row, {"Status": status, "Resolution": resolution})

    def upsert_component_row(self, component: str, **columns: str) -> None:
        """Create or update the Component Matrix row for `component`.

        Columns are given by snake_case name: type, reuse_port, official_definition,
        official_instantiation, fastvideo_target, prototype, conversion, parity, open_issues.
        Columns not given keep their current (possibly hand-written) cells.
        """
        self._upsert("Component Matrix", "Component", component, columns)

    def upsert_parity_command(self, scope: str, command: str | None, last_result: str | None,
                              notes: str | None = None) -> None:
        """Create or update the Parity Commands row for `scope`; a None value keeps its cell."""
        given = {"command": command, "last_result": last_result, "notes": notes}
        columns = {k: v for k, v in given.items() if v is not None}
        self._upsert("Parity Commands", "Scope", scope, columns)

    def add_decision(self, decision: str, rationale: str, impact: str, date: str | None = None) -> None:
        """Append a Decisions row (dated today by default)."""
        values = {"Date": date or _today(), "Decision": decision, "Rationale": rationale, "Impact": impact}
        self._check_values(values)
        table = self._table("Decisions")
        self._append_row(table, values)

    def add_handoff_note(self, note: str) -> None:
        """Append a bullet to Handoff Notes."""
        self._check("Handoff Notes", note)
        section = self._ensure_section("Handoff Notes")
        blocks = [b for b in section.blocks if isinstance(b, BulletsBlock)]
        item = BulletItem(value=" ".join(note.split()))
        if blocks:
            blocks[-1].items.append(item)
        else:
            section.append_block(BulletsBlock(items=[item]))

    # ---- helpers -------------------------------------------------------------------------

    def _check(self, where: str, value: str) -> None:
        message = find_secret(str(value))
        if message:
            raise PortStatusError(f"{where}: {message}")

    def _check_values(self, values: dict[str, str]) -> None:
        # Checked before any change, so a refused edit leaves the document untouched.
        for column, value in values.items():
            self._check(column, value)

    def _check_all(self) -> None:
        for number, line in enumerate(self.render().split("\n"), 1):
            if (message := find_secret(line)):
                raise PortStatusError(f"line {number} {message}")

    def _ensure_section(self, name: str) -> Section:
        found = self.section(name)
        if found:
            return found
        canonical = next((n for n in SECTIONS if _norm(n) == _norm(name)), name)
        section = Section(name=canonical, blocks=[TextBlock(lines=[""])])
        order = list(SECTIONS)
        index = len(self.sections)
        if canonical in order:
            later = set(order[order.index(canonical) + 1:])
            index = next((i for i, s in enumerate(self.sections) if s.name in later), len(self.sections))
        if index == len(self.sections) and self.sections:
            # At the end of the file: make sure the previous section ends with a blank line.
            last = self.sections[-1].render()
            if last[-1].strip():
                self.sections[-1].blocks.append(TextBlock(lines=[""]))
        elif index == len(self.sections) and self.preamble and self.preamble[-1].strip():
            self.preamble.append("")
        self.sections.insert(index, section)
        return section

    def _table(self, section_name: str) -> TableBlock:
        section = self._ensure_section(section_name)
        tables = section.tables()
        if tables:
            return tables[0]
        canonical = next((n for n in SECTIONS if _norm(n) == _norm(section_name)), section_name)
        table = TableBlock(header=list(SECTIONS.get(canonical, [])))
        section.append_block(table)
        return table

    def _find_row(self, section_name: str, key_column: str, key: str) -> tuple[TableBlock, TableRow | None]:
        table = self._table(section_name)
        index = table.ensure_column(key_column)
        for row in table.rows:
            if index < len(row.cells) and _unquote(row.cells[index]) == key:
                return table, row
        return table, None

    def _set_cells(self, table: TableBlock, row: TableRow, values: dict[str, str]) -> None:
        for column, value in values.items():
            self._check(column, value)
        for column, value in values.items():
            index = table.ensure_column(column)
            row.cells += [""] * (index + 1 - len(row.cells))
            if row.cells[index] != value:
                row.cells[index] = value
                row.raw = None

    def _append_row(self, table: TableBlock, values: dict[str, str]) -> TableRow:
        for column, value in values.items():
            self._check(column, value)
        indexes = {column: table.ensure_column(column) for column in values}
        cells = [""] * len(table.header)
        for column, value in values.items():
            cells[indexes[column]] = value
        row = TableRow(cells=cells)
        table.rows.append(row)
        return row

    def _add_id_row(self, prefix: str, values: dict[str, str]) -> str:
        self._check_values(values)
        row_id = self.next_id(prefix)
        table = self._table(ID_SECTIONS[prefix])
        self._append_row(table, {"ID": row_id, **values})
        return row_id

    def _upsert(self, section_name: str, key_column: str, key: str, columns: dict[str, str]) -> None:
        self._check_values({key_column: key, **columns})
        table, row = self._find_row(section_name, key_column, key)
        canonical = {_norm(c): c for c in SECTIONS[section_name]}
        values = {}
        for name, value in columns.items():
            column = canonical.get(_norm(name)) or next((h for h in table.header if _norm(h) == _norm(name)), None)
            if column is None:
                raise PortStatusError(f"{section_name} has no column {name!r} (columns: {', '.join(table.header)})")
            values[column] = value
        if row is None:
            self._append_row(table, {key_column: key, **values})
        else:
            self._set_cells(table, row, values)


def _today() -> str:
    return _dt.datetime.now(_dt.timezone.utc).date().isoformat()
