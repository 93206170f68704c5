"""Read a skill's text from a FastVideo checkout, or from the harness's built-in cards.

A checkout keeps its skills under `.agents/skills/<skill>/SKILL.md`; a SKILL.md names the
shared rules, contracts and templates it relies on with relative paths such as
`../add-model/shared/common_rules.md` or `../../add-model-02-parity/templates/component_parity_test.py`,
and repository files with checkout-root paths such as `fastvideo/layers/AGENTS.md`. Agents need
those too, so the loader follows the references (breadth first, each file once) and appends
them: markdown as it is, a template from the skills folder as a code block. A size budget
bounds the text; whatever is named but left out (budget, not found) is listed in a closing note.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

SKILLS_DIR = Path(".agents") / "skills"
MAX_TOTAL_CHARS = 60_000
MAX_INCLUDED_FILES = 16

# A relative reference to a markdown file or a Python template: `../x/y.md`, `shared/z.md`,
# `fastvideo/layers/AGENTS.md`, `templates/component_parity_test.py`.
_REF = re.compile(r"(?<![\w/.])((?:\.\./|\./)*[\w.-]+(?:/[\w.-]+)*\.(?:md|py))\b")


@dataclass(frozen=True)
class SkillText:
    text: str
    source: str  # "checkout" | "builtin"
    paths: tuple[str, ...]  # relative to the checkout (or to the package for built-ins)
    left_out: tuple[str, ...] = ()  # named files that are not in the text, each with the reason


def _references(text: str) -> list[str]:
    return [m.group(1) for m in _REF.finditer(text)]


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


class _Resolver:
    """Where a reference points. Relative references stay inside the skills folder; a path
    without `..` may also name a file from the checkout root (`fastvideo/layers/AGENTS.md`) or
    the one file of the skills folder it ends (`parity_status.md`)."""


    def __init__(self, checkout: Path, skills_root: Path) -> None:
        self.checkout = checkout
        self.root = skills_root

    def resolve(self, origin: Path, ref: str) -> Path | None:
        climbs = ".." in PurePosixPath(ref).parts
        # Beside the file that names it, else in a folder above it (`contracts/x.md` named from
        # `add-model/shared/` means `add-model/contracts/x.md`), never above the skills folder.
        folder = origin.parent
        while _inside(folder, self.root):
            candidate = (folder / ref).resolve()
            if candidate.is_file() and _inside(candidate, self.root):
                return candidate
            if climbs or folder == self.root:
                break
            folder = folder.parent
        if climbs:
            return None
        for base in (self.checkout, self.root):
            candidate = (base / ref).resolve()
            if candidate.is_file() and _inside(candidate, self.checkout) and ".git" not in candidate.relative_to(self.checkout).parts:
                return candidate
        # The one file of the skills folder whose path ends with the reference (`parity_status.md`,
        # `contracts/parity_status.md` named from another skill's folder).
        matches = {p.resolve() for p in self.root.rglob(PurePosixPath(ref).name) if p.is_file()}
        matches = {p for p in matches if _inside(p, self.root) and p.as_posix().endswith("/" + ref.lstrip("./"))}
        return matches.pop() if len(matches) == 1 else None

    def includable(self, path: Path) -> bool:
        """Other skills' SKILL.md are separate phases the agent must not run; Python files are
        included only as templates of the skills folder (code elsewhere is read with tools)."""
        if path.name == "SKILL.md":
            return False
        return path.suffix == ".md" or _inside(path, self.root)


def _block(rel: str, body: str) -> str:
    if rel.endswith(".py"):
        return f"\n\n---\n<!-- included: {rel} (template) -->\n\n```python\n{body.rstrip()}\n```\n"
    return f"\n\n---\n<!-- included: {rel} -->\n\n{body}"


def read_checkout_skill(checkout: Path, skill: str) -> SkillText | None:
    """The skill text assembled from the checkout, or None when the checkout lacks it."""
    checkout = checkout.resolve()
    root = (checkout / SKILLS_DIR).resolve()
    main = (root / skill / "SKILL.md").resolve()
    if not main.is_file() or not main.is_relative_to(root):
        return None  # absent, or a symlink leading out of the skills folder
    resolver = _Resolver(checkout, root)
    parts = [main.read_text(encoding="utf-8", errors="replace")]
    paths = [str(main.relative_to(checkout))]
    left_out: list[str] = []
    seen = {main}
    missing: set[str] = set()
    queue = deque((main, ref) for ref in _references(parts[0]))
    total = len(parts[0])
    while queue:
        origin, ref = queue.popleft()
        target = resolver.resolve(origin, ref)
        if target is None:
            # Bare names (`PORT_STATUS.md`) are often files the skill tells the agent to write.
            named = (ref.endswith(".md") and "/" in ref) or "templates/" in ref
            if named and ref not in missing and PurePosixPath(ref).name != "SKILL.md":
                missing.add(ref)
                left_out.append(f"{ref} (named, not found in the checkout)")
            continue
        if target in seen or not resolver.includable(target):
            continue
        seen.add(target)
        rel = str(target.relative_to(checkout))
        body = target.read_text(encoding="utf-8", errors="replace")
        block = _block(rel, body)
        if len(paths) >= MAX_INCLUDED_FILES or total + len(block) > MAX_TOTAL_CHARS:
            left_out.append(f"{rel} ({len(body)} chars, over the {MAX_TOTAL_CHARS}-char / {MAX_INCLUDED_FILES}-file budget)")
            continue
        parts.append(block)
        paths.append(rel)
        total += len(block)
        queue.extend((target, r) for r in _references(body))  # a template may name its contract
    if left_out:
        lines = "\n".join(f"- {item}" for item in left_out)
        parts.append(f"\n\n---\n<!-- not included; read these with the file tools when needed -->\n\n"
                     f"Named by the skill but not included above:\n{lines}\n")
    return SkillText("".join(parts), "checkout", tuple(paths), tuple(left_out))


_INCLUDED = re.compile(r"\n\n---\n<!-- included: (?P<rel>[^\n]*?)(?P<template> \(template\))? -->\n")
# What the agents never write themselves: the handoff is built by the harness from evidence.
HARNESS_WRITTEN = ("component_skill_handoff.md",)


def text_for_agents(text: str, *, parity_test_exists: bool) -> str:
    """The skill text as the agents get it: each included file once, except the handoff contract
    (the harness writes the handoff from its evidence; agents end with `finish`) and, when the
    parity test already exists, the parity test template (nothing to scaffold). Each file left
    out is named in one line, so an agent can still read it."""
    marks = list(_INCLUDED.finditer(text))
    if not marks:
        return text
    parts, notes = [text[: marks[0].start()]], []
    for mark, nxt in zip(marks, [*marks[1:], None]):
        block = text[mark.start(): nxt.start() if nxt else len(text)]
        rel = mark.group("rel")
        if rel.rsplit("/", 1)[-1] in HARNESS_WRITTEN:
            notes.append(f"- {rel}: the handoff; the harness builds it from its own evidence, you end with finish")
        elif mark.group("template") and parity_test_exists:
            notes.append(f"- {rel}: the parity test template; the parity test exists, so there is nothing to scaffold")
        else:
            parts.append(block)
    if notes:
        parts.append("\n\n---\n<!-- left out for this run; read with read_file if you need one -->\n\n"
                     + "\n".join(notes) + "\n")
    return "".join(parts)


def read_builtin_skill(skill: str) -> SkillText:
    """The harness's own short card for the skill (package data)."""
    card = resources.files("harness.skills") / "cards" / f"{skill}.md"
    return SkillText(card.read_text(encoding="utf-8"), "builtin", (f"harness/skills/cards/{skill}.md",))
