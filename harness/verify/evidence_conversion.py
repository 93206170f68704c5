"""Recognise parity failures that point at the checkpoint conversion (keys, shapes, prefixes).

Component work never fixes those itself; it hands a `conversion_retry_request` with the
failing keys, the shapes and a suspected fix back to the conversion skill.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.contracts import ConversionRetryRequest

_MISSING = re.compile(r"Missing key\(s\) in state_dict:\s*(.+?)(?:\.\s*$|\.\s*\n|\n\s*Unexpected|$)", re.MULTILINE | re.DOTALL)
_UNEXPECTED = re.compile(r"Unexpected key\(s\) in state_dict:\s*(.+?)(?:\.\s*$|\.\s*\n|\n\s*size mismatch|$)", re.MULTILINE | re.DOTALL)
_SIZE = re.compile(
    r"size mismatch for ([\w.]+): copying a param with shape (?:torch\.Size\()?\[?([\d, ]*)\]?\)? from checkpoint, "
    r"the shape in current model is (?:torch\.Size\()?\[?([\d, ]*)\]?\)?"
)
_KEYERROR = re.compile(r"KeyError: ['\"]([\w]+(?:\.[\w]+)+)['\"]")
_QUOTED = re.compile(r"['\"]([^'\"]+)['\"]")
_EXCERPT_CHARS = 600


@dataclass
class _Parsed:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    sizes: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)  # key, checkpoint, model
    keyerrors: list[str] = field(default_factory=list)
    excerpt: str = ""


def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text))


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _failure_text(run: Any) -> str:
    parts = [str(getattr(run, "first_failure", "") or "")]
    log_path = getattr(run, "log_path", None)
    if log_path and Path(log_path).is_file():
        parts.append(Path(log_path).read_text(encoding="utf-8", errors="replace")[-200_000:])
    return "\n".join(parts)


def _parse(text: str) -> _Parsed:
    p = _Parsed()
    for m in _MISSING.finditer(text):
        p.missing += _QUOTED.findall(m.group(1))
    for m in _UNEXPECTED.finditer(text):
        p.unexpected += _QUOTED.findall(m.group(1))
    for m in _SIZE.finditer(text):
        p.sizes.append((m.group(1), _shape(m.group(2)), _shape(m.group(3))))
    p.keyerrors = _unique(_KEYERROR.findall(text))
    p.missing, p.unexpected = _unique(p.missing), _unique(p.unexpected)
    first = min((m.start() for rx in (_MISSING, _UNEXPECTED, _SIZE, _KEYERROR) for m in [rx.search(text)] if m), default=None)
    if first is not None:
        p.excerpt = " ".join(text[first:first + _EXCERPT_CHARS].split())
    return p


def _leaf(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def suspected_fix(p: _Parsed) -> str:
    """A first guess from the shape of the failure; the conversion skill confirms it."""
    for _key, ckpt, model in p.sizes:
        if ckpt and model and len(ckpt) == len(model) and ckpt[1:] == model[1:] and model[0]:
            if ckpt[0] > model[0] and ckpt[0] % model[0] == 0:
                return "split"  # a fused tensor (e.g. qkv) where the model wants parts
            if model[0] > ckpt[0] and ckpt[0] and model[0] % ckpt[0] == 0:
                return "fuse"
        if ckpt and model:
            return "config"  # same key, different architecture numbers
    if p.missing and p.unexpected:
        if len(p.missing) < len(p.unexpected) and len(p.unexpected) % max(len(p.missing), 1) == 0:
            return "fuse"
        if len(p.missing) > len(p.unexpected) and len(p.missing) % max(len(p.unexpected), 1) == 0 and len(p.unexpected) < len(p.missing):
            return "split"
        return "rename"
    if p.unexpected and not p.missing:
        return "skip"
    if p.keyerrors:
        return "rename"
    return "unknown"


def _common_prefix(keys: list[str]) -> str:
    if not keys:
        return ""
    split = [k.split(".") for k in keys]
    prefix: list[str] = []
    for parts in zip(*split):
        if len(set(parts)) != 1:
            break
        prefix.append(parts[0])
    return ".".join(prefix[:-1] if len(prefix) == len(split[0]) else prefix)


def classify_conversion_failure(parity_run: Any, packet: Any) -> ConversionRetryRequest | None:
    """A retry request when the parity failure is a state-dict mapping problem, else None."""
    if parity_run is None or getattr(parity_run, "status", None) in ("non_skip_pass",):
        return None
    p = _parse(_failure_text(parity_run))
    keys = _unique(p.missing + p.unexpected + [k for k, _, _ in p.sizes] + p.keyerrors)
    if not keys:
        return None
    shown = keys[:20] + ([f"... {len(keys) - 20} more"] if len(keys) > 20 else [])
    shapes = [f"{k}: model {list(m)} vs checkpoint {list(c)}" for k, c, m in p.sizes] or ["not reported"]
    prefix = _common_prefix(keys) or str(getattr(packet.conversion, "converted_component_dir", "") or "") or "unknown"
    labels = []
    if p.missing:
        labels.append(f"missing {len(p.missing)}")
    if p.unexpected:
        labels.append(f"unexpected {len(p.unexpected)}")
    if p.sizes:
        labels.append(f"size mismatch {len(p.sizes)}")
    if p.keyerrors:
        labels.append(f"KeyError {len(p.keyerrors)}")
    return ConversionRetryRequest(
        component=packet.component,
        parity_test=packet.parity_test,
        failing_keys=shown,
        expected_actual_shapes=shapes,
        source_prefix_or_path=prefix,
        evidence=f"{', '.join(labels)}: {p.excerpt}",
        suspected_fix=suspected_fix(p),
    )
