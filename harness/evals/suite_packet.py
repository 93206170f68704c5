"""A mined task's packet (component_context), derived from what the repository says: the
family from the test's folder, the component from its module, the official reference from the
folder or package the test reads, the official files and symbols from the test's imports, the
weights from what the test downloads or loads (or none: the test initialises both models)."""

from __future__ import annotations

import ast
from pathlib import PurePosixPath
from typing import Any

from harness.evals.mining import Component, TestInfo, imports_in

LIBRARIES = ("diffusers", "transformers", "open_clip", "timm")


def _official_files(test: TestInfo) -> list[dict[str, str]]:
    """The official modules the test imports, as paths relative to the official reference."""
    out = []
    src = "src/" if test.official and (test.official.path / "src").is_dir() else ""
    for module, names in sorted(test.official_symbols.items()):
        symbols = ", ".join(dict.fromkeys(n for n in names if n != "*")) or module.rsplit(".", 1)[-1]
        out.append({"path": src + module.replace(".", "/") + ".py", "symbols": symbols})
    return out


def _library_files(test: TestInfo) -> tuple[str | None, list[dict[str, str]]]:
    """When the official side is a library (diffusers, transformers): its name and the modules
    the test imports from it."""
    tree = ast.parse(test.source)
    found: dict[str, list[str]] = {}
    for module, names in imports_in(tree, test.path):
        top = module.split(".")[0]
        if top in LIBRARIES and "." in module:
            found.setdefault(module, []).extend(names)
    if not found:
        return None, []
    library = next(iter(found)).split(".")[0]
    files = [{"path": "/".join(m.split(".")[1:]) + ".py", "symbols": ", ".join(dict.fromkeys(n))}
             for m, n in sorted(found.items()) if m.split(".")[0] == library]
    return library, files


def build_packet(component: Component, test: TestInfo, parity_test: str, family: str, checkout_name: str,
                 commit: str, kept: list[str], targets: list[str]) -> dict[str, Any]:
    """The packet of one mined task (the contract's `component_context`)."""
    concerns = [f"mined from {checkout_name} at {commit[:12]}; {component.module} was added in "
                f"{(component.added_in or 'an unknown commit')[:12]} ({component.added_subject or 'no subject'})"]
    concerns += [f"kept at the base: {k}" for k in kept]
    unset = [v for v in test.official_env if v not in ("OFFICIAL_REF_DIR", f"{family.upper()}_OFFICIAL_REF_DIR")]
    if unset:  # the harness sets OFFICIAL_REF_DIR and <FAMILY>_OFFICIAL_REF_DIR, not these
        concerns.append(f"{test.path} reads the official reference from {', '.join(unset)}, which the harness does "
                        "not set: the test's default location applies")
    files = _official_files(test)
    ref = test.official.name if test.official else None
    if not files:
        library, files = _library_files(test)
        ref = ref or library
    if ref is None:
        ref = test.needs.official or "unknown"
        concerns.append(f"official_ref_dir: searched {test.path} for the folder or package it reads the official "
                        "reference from; not found")
    if not files:
        files = [{"path": "unknown", "symbols": "unknown"}]
        concerns.append(f"official_definition_files, official_instantiation_files: searched the imports of "
                        f"{test.path}; none names an official module")
    stem = component.stem
    weights = test.needs.weights
    source = ("random initialisation in the parity test (no weight files)" if test.needs.synthetic_weights
              else ", ".join(weights))
    notes = f"what {PurePosixPath(test.path).name} imports and compares against the port"
    return {"component_context": {
        "model_family": family,
        "component": stem,
        "component_type": component.component_type,
        "mode": "parity-debug",
        "official_ref_dir": ref,
        "official_definition_files": [{**f, "notes": notes} for f in files],
        "official_instantiation_files": [{"path": f["path"], "symbols": f["symbols"],
                                          "args": f"as {parity_test} builds it"} for f in files],
        "official_weight_source": source,
        "fastvideo_target_files": targets,
        "local_tests_readme": f"tests/local_tests/{family}/README.md",
        "port_state_file": f"tests/local_tests/{family}/PORT_STATUS.md",
        "parity_test": parity_test,
        "prototype_key_dumps": {"official": f"converted_weights/{family}/_mapping/{stem}_official_keys.json",
                                "fastvideo": f"converted_weights/{family}/_mapping/{stem}_fastvideo_keys.json"},
        "conversion": {"script": "not_needed", "converted_component_dir": "not_needed",
                       "model_index_library": "diffusers" if component.component_type == "vae" else "transformers",
                       "config_file": "config.json",
                       "mapping_notes": ("not needed: the parity test builds both models and copies the weights"
                                         if test.needs.synthetic_weights else "the parity test loads the weights itself"),
                       "production_loader_strictness": "strict", "strict_load": "not_run"},
        "concerns_or_unknowns": concerns,
    }}


def packet_problems(packet: dict[str, Any]) -> list[str]:
    """What the contract says is wrong with a derived packet (empty when it validates)."""
    from pydantic import ValidationError

    from harness.contracts.packet import ComponentContext

    try:
        ComponentContext.model_validate(packet["component_context"])
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return []
