"""What the repository says about the checkpoint conversion of a component.

Read from files only (JSON and PORT_STATUS.md; nothing the checkout holds is run): the
converted component directory and its config, the official config the packet names, and the
component's Conversion cell in PORT_STATUS.md.

- `config_key_map` is the converted config's key names against the official ones (official ->
  native), matched by name and value, for the implementer and the debugger: the names live in
  the conversion script, which the agents may read but never run or change.
- `conversion_state` tells the handoff whether the conversion is done: converted weights
  present, and strict-loading as the harness's own parity run proved.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

MAX_MAP_LINES = 60
_JSON_PATH = re.compile(r"[\w./-]+\.json\b")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
# A Conversion cell that says the conversion is not finished: its weights are not final yet.
_NOT_DONE = re.compile(r"\b(not_started|not started|pending|todo|blocked|retry|in_progress|in progress|fail(ed)?)\b",
                       re.IGNORECASE)


def _in_checkout(workspace: Any, rel: str) -> Path | None:
    """A checkout path as the sandboxes see it: in the worktree, or in the user's checkout for
    the git-ignored folders mounted read-only (converted_weights/, official_weights/)."""
    for base in (getattr(workspace, "path", None), getattr(workspace, "repo", None)):
        if base is not None and (Path(base) / rel).exists():
            return Path(base) / rel
    return None


def _read_json(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _official_configs(workspace: Any, packet: Any) -> list[tuple[str, dict[str, Any]]]:
    """(name, data) of each official JSON config the packet names, read from the official reference."""
    official = getattr(workspace, "official_ref_dir", None)
    texts = [f"{f.path} {f.args}" for f in packet.official_instantiation_files]
    texts += [str(packet.official_weight_source)]
    found: list[tuple[str, dict[str, Any]]] = []
    for rel in dict.fromkeys(m.group(0) for text in texts for m in _JSON_PATH.finditer(text)):
        for base in (official, getattr(workspace, "path", None)):
            if base is None or ".." in PurePosixPath(rel).parts:
                continue
            data = _read_json(Path(base) / rel)
            if data is not None:
                found.append((rel, data))
                break
    return found


def _converted_config(workspace: Any, packet: Any) -> tuple[str, dict[str, Any]] | None:
    conv = packet.conversion
    folder, name = str(conv.converted_component_dir), str(conv.config_file or "config.json")
    if folder in ("unknown", "none", "") or name in ("unknown", "none"):
        return None
    rel = f"{folder.rstrip('/')}/{name}"
    data = _read_json(_in_checkout(workspace, rel))
    return (rel, data) if data is not None else None


def _script_pairs(workspace: Any, packet: Any, official: dict[str, Any], native: dict[str, Any]) -> dict[str, str]:
    """native -> official key pairs the conversion script states as plain literals: a
    module-level dict of official -> native names. The script is parsed from the base commit,
    never run, and only string literals are read."""
    import ast

    script = str(packet.conversion.script)
    reader = getattr(workspace, "file_at_base", None)
    text = reader(script) if callable(reader) and script not in ("unknown", "none") else None
    if not text:
        return {}
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    pairs: dict[str, str] = {}
    for node in tree.body:
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if not isinstance(value, ast.Dict):
            continue
        keys = [k.value for k in value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
        vals = [v.value for v in value.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
        if len(keys) == len(vals) == len(value.keys) and keys and set(keys) <= set(official) and set(vals) <= set(native):
            pairs.update(dict(zip(vals, keys)))
    return pairs


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def config_key_map(workspace: Any, packet: Any) -> str:
    """The converted config's keys against the official config's (official -> native), or ''
    when either config is missing. Keys match by name first, else by an equal value."""
    converted = _converted_config(workspace, packet)
    officials = _official_configs(workspace, packet)
    if converted is None or not officials:
        return ""
    conv_rel, native = converted
    off_rel, official = officials[0]
    lines = []
    mapped: set[str] = set()
    stated = _script_pairs(workspace, packet, official, native)
    for key, value in native.items():
        if key.startswith("_"):
            continue  # _class_name and other loader metadata
        if key in stated and stated[key] != key:
            source = stated[key]
            mapped.add(source)
            same = "" if official[source] == value else f": VALUES DIFFER (official {_show(official[source])})"
            lines.append(f"- {source} -> {key} (= {_show(value)}; named in the conversion script){same}")
            continue
        if key in official:
            mapped.add(key)
            if official[key] == value:
                lines.append(f"- {key} -> {key} (= {_show(value)})")
            else:
                lines.append(f"- {key} -> {key}: VALUES DIFFER (official {_show(official[key])}, converted {_show(value)})")
            continue
        same = [k for k, v in official.items() if v == value and k not in native]
        mapped.update(same)
        if len(same) == 1:
            lines.append(f"- {same[0]} -> {key} (= {_show(value)})")
        elif same:
            lines.append(f"- one of {', '.join(same)} -> {key} (= {_show(value)}; the values do not tell which)")
        else:
            lines.append(f"- (no official key with this value) -> {key} (= {_show(value)})")
    rest = [k for k in official if k not in mapped and not k.startswith("_")]
    if len(lines) > MAX_MAP_LINES:
        lines = lines[:MAX_MAP_LINES] + [f"- ... {len(lines) - MAX_MAP_LINES} more keys in {conv_rel}"]
    if rest:
        lines.append(f"- official keys the converted config does not carry: {', '.join(rest)}")
    return (f"Converted config key map (official -> native): {off_rel} (official) against {conv_rel} (what the "
            "production loader reads; the conversion wrote it), from the conversion script's name table, else by "
            "name, else by equal value. Your config "
            "class takes the native names:\n" + "\n".join(lines))


@dataclass(frozen=True)
class ConversionState:
    converted_present: bool      # the converted component dir holds a config and weights
    strict_loading: bool         # the harness's own current parity run loaded them strictly and passed
    port_status: str | None      # the component's Conversion cell in PORT_STATUS.md, if any

    @property
    def done(self) -> bool:
        """Conversion needs no (re)run: its weights are there and strict-load, as seen by the harness,
        and PORT_STATUS.md does not say the conversion is unfinished."""
        return self.converted_present and self.strict_loading and not _NOT_DONE.search(self.port_status or "")

    def describe(self) -> str:
        said = f"; PORT_STATUS.md Conversion: {self.port_status}" if self.port_status else ""
        present = "present" if self.converted_present else "missing"
        proved = "strict-load in the harness's parity run" if self.strict_loading else "strict load not proven in this run"
        return f"converted weights {present}, {proved}{said}"


def conversion_state(workspace: Any, packet: Any, strict_load: str) -> ConversionState:
    conv = packet.conversion
    folder = _in_checkout(workspace, str(conv.converted_component_dir))
    present = bool(folder and folder.is_dir() and (folder / str(conv.config_file or "config.json")).is_file()
                   and any(p.suffix in WEIGHT_SUFFIXES for p in folder.iterdir()))
    return ConversionState(present, strict_load in ("pass", "pass_with_documented_exclusions"),
                           _port_status_cell(workspace, packet))


def _port_status_cell(workspace: Any, packet: Any) -> str | None:
    from harness.contracts import PortStatus

    path = Path(workspace.path) / packet.port_state_file
    try:
        doc = PortStatus.read(path)
    except Exception:  # a missing or unreadable file says nothing
        return None
    for row in doc.rows("Component Matrix"):
        if row.get("Component", "").strip("`") == packet.component:
            return row.get("Conversion", "").strip("`") or None
    return None

