"""Nothing deployed imports the local stack: its stand-ins (SES's mailbox simulator, the simulated
letter provider, the `/_local` routes) are chosen by `chalicelib.local` itself, so a packaged function has
no path into `chalicelib/local/`. The one exception is app.py's registration of the local routes, and
only under the local stage's gate."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "chalicelib" / "local"


def _imported(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    found: list[tuple[ast.AST, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node, node.module))
            found += [(node, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _is_local(module: str) -> bool:
    return module == "chalicelib.local" or module.startswith("chalicelib.local.")


def _deployed_modules() -> list[Path]:
    return [ROOT / "app.py"] + [
        path for path in sorted((ROOT / "chalicelib").rglob("*.py")) if LOCAL not in path.parents
    ]


def _local_stage_gates(tree: ast.Module) -> list[ast.If]:
    """`if os.environ.get("RELAIS_STAGE") == "local":` at the top of the module."""
    return [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and ast.unparse(node.test) == "os.environ.get('RELAIS_STAGE') == 'local'"
        and not node.orelse
    ]


def test_no_deployed_module_imports_the_local_stack() -> None:
    offenders = []
    for path in _deployed_modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        gated = (
            {id(node) for gate in _local_stage_gates(tree) for node in ast.walk(gate)}
            if path.name == "app.py"
            else set()
        )
        offenders += [
            f"{path.relative_to(ROOT)}:{node.lineno} imports {module}"  # type: ignore[attr-defined]
            for node, module in _imported(tree)
            if _is_local(module) and id(node) not in gated
        ]
    assert offenders == []


def test_app_registers_the_local_routes_only_under_the_local_stage_gate() -> None:
    tree = ast.parse((ROOT / "app.py").read_text())
    (gate,) = _local_stage_gates(tree)
    assert [module for _, module in _imported(gate) if _is_local(module)] == [
        "chalicelib.local.routes",
        "chalicelib.local.routes.local",
    ]
    assert "app.register_blueprint(local)" in ast.unparse(gate)


def test_the_walk_sees_an_import_of_the_local_stack() -> None:
    tree = ast.parse("from chalicelib.local.ses_simulator import MailboxSimulator\nimport chalicelib.local\n")
    assert [module for _, module in _imported(tree) if _is_local(module)] == [
        "chalicelib.local.ses_simulator",
        "chalicelib.local.ses_simulator.MailboxSimulator",
        "chalicelib.local",
    ]
