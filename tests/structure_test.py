"""The package's shape: no two modules of kws/ import each other, directly or in a ring."""

import ast
import subprocess
import sys
from pathlib import Path

import tensorflow as tf

PACKAGE = Path(__file__).resolve().parents[1] / "kws"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(tree: ast.AST, package: str, modules: set[str]) -> set[str]:
    """The ``modules`` imported anywhere in ``tree`` (in functions too, where an import is
    as much a dependency as at the top), except under ``if TYPE_CHECKING:``; ``package``
    resolves relative imports."""
    found = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:  # a module by name, or a name from a module
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules
                          else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found & modules


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = runtime_imports(ast.parse(path.read_text()), package, set(paths)) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import ring, each as the path that closes it."""
    found, state = [], {}

    def walk(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                walk(target, path + [target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    return found


class ImportCycleTest(tf.test.TestCase):
    def test_no_module_of_kws_imports_itself_through_others(self):
        graph = import_graph()
        self.assertIn("kws.run", graph["kws.export"])  # the graph sees function-level imports
        self.assertEqual(cycles(graph), [])

    def test_a_ring_is_found(self):
        self.assertEqual(cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}),
                         [["a", "b", "c", "a"]])
        tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import kws.x\n"
                         "def f():\n    from . import y\n    from kws.z import Z\n")
        self.assertEqual(runtime_imports(tree, "kws", {"kws", "kws.x", "kws.y", "kws.z"}),
                         {"kws.y", "kws.z"})


class LightImportsTest(tf.test.TestCase):
    def test_synthesis_processes_do_not_load_tensorflow(self):
        # Each synthesis process imports kws.data.synthetic afresh: with TensorFlow and
        # Keras behind it that cost 5 s a process, three times over for make train's words.
        script = ("import sys, kws.data.synthetic\n"
                  "print(sorted({'tensorflow', 'keras'} & set(sys.modules)))")
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                timeout=60, cwd=PACKAGE.parent)
        self.assertEqual(result.stdout.strip(), "[]", result.stderr[-2000:])


if __name__ == "__main__":
    tf.test.main()
