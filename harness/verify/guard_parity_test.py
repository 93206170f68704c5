"""Static reading of a parity test with `ast`, to tell whether an edit weakened it.

The harness only trusts a PASS of a test that still checks what it checked before: the
same assertions, tolerances no looser, no unconditional skip, no dead code hiding the
checks, tensors compared (not just their shapes).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

# Calls that compare tensor values, by their last attribute name.
TENSOR_COMPARES = frozenset(
    {"assert_close", "assert_allclose", "allclose", "isclose", "equal", "assert_equal",
     "assert_array_equal", "assert_array_almost_equal", "assert_almost_equal", "array_equal"}
)
TOLERANCE_NAMES = ("atol", "rtol", "tolerance", "tol", "threshold")
BOUND = "assert_bound"  # `assert diff < 1e-4`: the right-hand constant is a tolerance too
COVERAGE_SCOPES = ("production_loader", "implementation_subcomponent", "both")


def _call_name(node: ast.AST) -> str:
    """`torch.testing.assert_close(...)` -> "assert_close"; "" when not a named call."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def dotted_name(node: ast.AST) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _number(node: ast.AST) -> float | None:
    """A numeric constant, also `-x`, `1e-3 * 2` style simple arithmetic."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        try:
            value = eval(compile(ast.Expression(node), "<tol>", "eval"), {"__builtins__": {}}, {})  # noqa: S307
        except Exception:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _tolerance_key(name: str) -> str | None:
    low = name.lower()
    for key in TOLERANCE_NAMES:
        if low == key or low.endswith("_" + key) or low.startswith(key + "_"):
            return key
    return None


def _is_skip_marker(node: ast.AST) -> str | None:
    """A decorator / pytestmark value that always skips (or xfails) the test."""
    dotted = dotted_name(node.func if isinstance(node, ast.Call) else node)
    last = dotted.rsplit(".", 1)[-1]
    if last in ("skip", "xfail") and ("mark" in dotted or "unittest" in dotted or dotted == last):
        return f"@{dotted}"
    if last == "skipif" and isinstance(node, ast.Call):
        cond = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "condition"), None)
        if cond is None:
            return None
        try:
            if bool(ast.literal_eval(cond)):
                return f"@{dotted}({ast.unparse(cond)})"
        except (ValueError, SyntaxError):
            return None
    return None


def _always_false(test: ast.AST) -> bool:
    try:
        return not bool(ast.literal_eval(test))
    except (ValueError, SyntaxError):
        return False


@dataclass
class ParityTestFacts:
    test_functions: list[str] = field(default_factory=list)
    assertions: int = 0  # meaningful assert statements + assert_*/allclose calls
    tensor_compares: int = 0
    shape_compares: int = 0
    tolerances: dict[str, list[float]] = field(default_factory=dict)
    unconditional_skips: list[str] = field(default_factory=list)
    dead_code: list[str] = field(default_factory=list)
    has_coverage_scope: bool = False
    shadowed: list[str] = field(default_factory=list)  # comparison functions redefined or patched
    syntax_error: str | None = None


class _Reader(ast.NodeVisitor):
    def __init__(self, facts: ParityTestFacts) -> None:
        self.facts = facts

    def visit_Assert(self, node: ast.Assert) -> None:
        if not isinstance(node.test, ast.Constant):  # `assert True` checks nothing
            self.facts.assertions += 1
        test = node.test
        if isinstance(test, ast.Compare) and len(test.ops) == 1:
            op, right = test.ops[0], test.comparators[0]
            bound = _number(right) if isinstance(op, (ast.Lt, ast.LtE)) else (
                _number(test.left) if isinstance(op, (ast.Gt, ast.GtE)) else None)
            if bound is not None:
                self.facts.tolerances.setdefault(BOUND, []).append(bound)
        self.generic_visit(node)

    def _shadow(self, node: ast.AST, what: str) -> None:
        self.facts.shadowed.append(f"line {getattr(node, 'lineno', '?')}: {what}")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if node.name in TENSOR_COMPARES:
            self._shadow(node, f"defines its own `{node.name}`")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        root = (node.module or "").split(".")[0]
        for alias in node.names:
            if alias.asname in TENSOR_COMPARES and root not in ("torch", "numpy"):
                self._shadow(node, f"imports `{alias.name}` from {node.module} as `{alias.asname}`")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _call_name(node)
        if name in TENSOR_COMPARES:
            self.facts.tensor_compares += 1
        if name.startswith("assert") or name in ("allclose", "isclose"):
            self.facts.assertions += 1
        for kw in node.keywords:
            key = _tolerance_key(kw.arg or "") or (kw.arg if name == "approx" and kw.arg in ("abs", "rel") else None)
            value = _number(kw.value)
            if key and value is not None:
                self.facts.tolerances.setdefault(key, []).append(value)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        value = _number(node.value)
        for target in node.targets:
            if (isinstance(target, ast.Name) and target.id in TENSOR_COMPARES) or (
                    isinstance(target, ast.Attribute) and target.attr in TENSOR_COMPARES):
                self._shadow(node, f"assigns to `{ast.unparse(target)}`")
            if isinstance(target, ast.Name):
                key = _tolerance_key(target.id)
                if key and value is not None:
                    self.facts.tolerances.setdefault(key, []).append(value)
                if target.id == "pytestmark":
                    markers = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
                    for m in markers:
                        if (why := _is_skip_marker(m)) is not None:
                            self.facts.unconditional_skips.append(f"pytestmark = {why[1:]}")
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        for k, v in zip(node.keys, node.values):
            if isinstance(k, ast.Constant) and isinstance(k.value, str):
                key, value = _tolerance_key(k.value), _number(v)
                if key and value is not None:
                    self.facts.tolerances.setdefault(key, []).append(value)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        sides = [node.left, *node.comparators]
        if any(
            (isinstance(s, ast.Attribute) and s.attr == "shape")
            or (isinstance(s, ast.Call) and _call_name(s) in ("size", "dim"))
            for s in sides
        ):
            self.facts.shape_compares += 1
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        if _always_false(node.test) and any(isinstance(n, (ast.Assert, ast.Call)) for b in node.body for n in ast.walk(b)):
            self.facts.dead_code.append(f"line {node.lineno}: `if {ast.unparse(node.test)}:` never runs its body")
        self.generic_visit(node)

    def visit_While(self, node: ast.While) -> None:
        if _always_false(node.test):
            self.facts.dead_code.append(f"line {node.lineno}: `while {ast.unparse(node.test)}:` never runs")
        self.generic_visit(node)


def _unconditional_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements that always run when the body runs: straight-line code, and the bodies
    of `with` and `try` blocks (not `if`/loops, whose bodies are conditional)."""
    out: list[ast.stmt] = []
    for stmt in body:
        out.append(stmt)
        if isinstance(stmt, (ast.With, ast.AsyncWith)):
            out.extend(_unconditional_statements(stmt.body))
        elif isinstance(stmt, ast.Try):
            out.extend(_unconditional_statements(stmt.body))
    return out


def _is_skip_call(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        dotted = dotted_name(stmt.value.func)
        return dotted in ("pytest.skip", "skip", "pytest.xfail", "unittest.skip") or dotted.endswith(".skipTest")
    if isinstance(stmt, ast.Raise) and stmt.exc is not None:
        return _call_name(stmt.exc) in ("Skipped", "SkipTest")
    return False


def _contains_check(stmts: list[ast.stmt]) -> bool:
    for stmt in stmts:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Assert) or (
                isinstance(node, ast.Call) and (_call_name(node).startswith("assert") or _call_name(node) in TENSOR_COMPARES)
            ):
                return True
    return False


def _read_function(fn: ast.FunctionDef | ast.AsyncFunctionDef, facts: ParityTestFacts) -> None:
    for deco in fn.decorator_list:
        if (why := _is_skip_marker(deco)) is not None:
            facts.unconditional_skips.append(f"{why} on {fn.name}")
    for stmt in _unconditional_statements(fn.body):
        if _is_skip_call(stmt):
            facts.unconditional_skips.append(f"line {stmt.lineno}: unconditional skip in {fn.name}")
    body = fn.body
    for i, stmt in enumerate(body):
        if isinstance(stmt, ast.Return) and _contains_check(body[i + 1 :]):
            facts.dead_code.append(f"line {stmt.lineno}: `return` in {fn.name} before its assertions")
            break


def read_parity_test(source: str) -> ParityTestFacts:
    facts = ParityTestFacts()
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        facts.syntax_error = f"line {exc.lineno}: {exc.msg}"
        return facts
    _Reader(facts).visit(tree)
    for stmt in _unconditional_statements(tree.body):
        if _is_skip_call(stmt):
            facts.unconditional_skips.append(f"line {stmt.lineno}: module-level skip")
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            facts.test_functions.append(node.name)
            _read_function(node, facts)
        if isinstance(node, ast.ClassDef):
            for deco in node.decorator_list:
                if (why := _is_skip_marker(deco)) is not None:
                    facts.unconditional_skips.append(f"{why} on class {node.name}")
    facts.has_coverage_scope = any(scope in source for scope in COVERAGE_SCOPES) and "scope" in source.lower()
    return facts


@dataclass(frozen=True)
class Weakening:
    kind: str  # assertions_removed | tolerance_loosened | skip_added | dead_code | shape_only | ...
    detail: str


def _loosened(base: dict[str, list[float]], now: dict[str, list[float]]) -> list[str]:
    out: list[str] = []
    for key, before in base.items():
        after = now.get(key, [])
        pairs = list(zip(before, after))
        raised = [(b, a) for b, a in pairs if a > b]
        if after and max(after) > max(before) and not raised:
            raised = [(max(before), max(after))]
        out.extend(f"{key} {b:g} -> {a:g}" for b, a in raised)
        if len(after) < len(before):
            out.append(f"{key}: {len(before) - len(after)} explicit value(s) removed (defaults may be looser)")
    return out


def compare_parity_tests(base_src: str, now_src: str) -> list[Weakening]:
    """What the edit from `base_src` to `now_src` did to the test's strength."""
    base, now = read_parity_test(base_src), read_parity_test(now_src)
    if now.syntax_error:
        return [Weakening("unparseable", f"the test no longer parses ({now.syntax_error})")]
    found: list[Weakening] = []
    lost = [t for t in base.test_functions if t not in now.test_functions]
    if lost:
        found.append(Weakening("tests_removed", f"test function(s) removed or renamed: {', '.join(lost)}"))
    if now.assertions < base.assertions:
        found.append(Weakening("assertions_removed", f"assertions {base.assertions} -> {now.assertions}"))
    for change in _loosened(base.tolerances, now.tolerances):
        found.append(Weakening("tolerance_loosened", change))
    new_skips = now.unconditional_skips[len(base.unconditional_skips):] if len(now.unconditional_skips) > len(base.unconditional_skips) else []
    for skip in new_skips:
        found.append(Weakening("skip_added", skip))
    for shadow in now.shadowed[len(base.shadowed):]:
        found.append(Weakening("comparison_shadowed", shadow))
    if len(now.dead_code) > len(base.dead_code):
        for dead in now.dead_code[len(base.dead_code):]:
            found.append(Weakening("dead_code", dead))
    if now.tensor_compares < base.tensor_compares:
        if now.shape_compares > base.shape_compares or now.tensor_compares == 0:
            found.append(Weakening("shape_only", f"tensor comparisons {base.tensor_compares} -> {now.tensor_compares}, shape comparisons {base.shape_compares} -> {now.shape_compares}"))
        else:
            found.append(Weakening("comparison_replaced", f"tensor comparisons {base.tensor_compares} -> {now.tensor_compares}"))
    return found


def check_new_parity_test(source: str) -> list[Weakening]:
    """A parity test the agent created itself must still be a real parity test."""
    facts = read_parity_test(source)
    if facts.syntax_error:
        return [Weakening("unparseable", f"the test does not parse ({facts.syntax_error})")]
    found: list[Weakening] = []
    if not facts.test_functions:
        found.append(Weakening("no_tests", "no test function"))
    if facts.tensor_compares == 0:
        found.append(Weakening("shape_only", "no tensor value comparison (assert_close / allclose)"))
    for skip in facts.unconditional_skips:
        found.append(Weakening("skip_added", skip))
    for dead in facts.dead_code:
        found.append(Weakening("dead_code", dead))
    for shadow in facts.shadowed:
        found.append(Weakening("comparison_shadowed", shadow))
    if not facts.has_coverage_scope:
        found.append(Weakening("no_coverage_scope", "no coverage scope (production_loader / implementation_subcomponent / both)"))
    return found
