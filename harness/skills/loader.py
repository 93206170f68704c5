"""Read a skill's text from a FastVideo checkout, or from the harness's built-in cards.

A checkout keeps its skills under `.agents/skills/<skill>/SKILL.md`; a SKILL.md names the
shared rules and contracts it relies on with relative paths such as
`../add-model/shared/common_rules.md`. Agents need those too, so the loader follows the
references (breadth first, each file once) and appends them, within a size cap.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

SKILLS_DIR = Path(".agents") / "skills"
MAX_TOTAL_CHARS = 60_000
MAX_INCLUDED_FILES = 12

# A relative markdown reference: `../x/y.md`, `../../x/SKILL.md`, `shared/z.md`.
_REF = re.compile(r"(?<![\w/.])((?:\.\./|\./)*[\w.-]+(?:/[\w.-]+)*\.md)\b")


@dataclass(frozen=True)
class SkillText:
    text: str
    source: str  # "checkout" | "builtin"
    paths: tuple[str, ...]  # relative to the checkout (or to the package for built-ins)


def _references(text: str) -> list[str]:
    return [m.group(1) for m in _REF.finditer(text)]


def _included(ref_file: Path, root: Path) -> bool:
    """Shared rules and contracts are included; other skills' SKILL.md are not (they are
    separate phases the agent must not run)."""
    try:
        ref_file.relative_to(root)
    except ValueError:
        return False
    return ref_file.name != "SKILL.md" and ref_file.is_file()


def read_checkout_skill(checkout: Path, skill: str) -> SkillText | None:
    """The skill text assembled from the checkout, or None when the checkout lacks it."""
    root = (checkout / SKILLS_DIR).resolve()
    main = (root / skill / "SKILL.md").resolve()
    if not main.is_file() or not main.is_relative_to(root):
        return None  # absent, or a symlink leading out of the skills folder
    parts = [main.read_text(encoding="utf-8", errors="replace")]
    paths = [str(main.relative_to(checkout.resolve()))]
    seen = {main}
    queue = deque((main, ref) for ref in _references(parts[0]))
    total = len(parts[0])
    while queue and len(paths) <= MAX_INCLUDED_FILES:
        origin, ref = queue.popleft()
        target = (origin.parent / ref).resolve()
        if target in seen or not _included(target, root):
            continue
        seen.add(target)
        body = target.read_text(encoding="utf-8", errors="replace")
        rel = str(target.relative_to(root))
        block = f"\n\n---\n<!-- included: {rel} -->\n\n{body}"
        if total + len(block) > MAX_TOTAL_CHARS:
            parts.append(f"\n\n---\n<!-- not included (size cap): {rel} -->\n")
            continue
        parts.append(block)
        paths.append(str(target.relative_to(checkout.resolve())))
        total += len(block)
        queue.extend((target, r) for r in _references(body))
    return SkillText("".join(parts), "checkout", tuple(paths))


def read_builtin_skill(skill: str) -> SkillText:
    """The harness's own short card for the skill (package data)."""
    card = resources.files("harness.skills") / "cards" / f"{skill}.md"
    return SkillText(card.read_text(encoding="utf-8"), "builtin", (f"harness/skills/cards/{skill}.md",))
