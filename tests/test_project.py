"""The project's own promises: README's commands, CI's command, lint and types."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pyinit import cli
from tests.conftest import BIN, ROOT

README = (ROOT / "README.md").read_text()


def _quick_start() -> list[str]:
    block = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [line for line in block.strip().splitlines() if line.strip()]


def test_quick_start_is_install_run_test() -> None:
    install, demo, test = _quick_start()
    assert install == "tools/install.sh"
    assert demo == ".venv/bin/pyinit sandbox -- sh -c 'ps; mount'"
    assert test == ".venv/bin/python -m pytest"


def _init_demo() -> str:
    block = README.split("As an init, in an image or on its own:", 1)[1]
    return block.split("```sh", 1)[1].split("```", 1)[0].strip()


@pytest.mark.root
def test_quick_start_sandbox_does_what_readme_says() -> None:
    demo = _quick_start()[1].replace(".venv/bin/pyinit", str(BIN / "pyinit"), 1)
    res = subprocess.run(["sh", "-c", demo], capture_output=True, text=True, timeout=60,
                         check=False, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    assert re.search(r"^\s*1 .*pyinit", res.stdout, re.M), res.stdout  # ps: PID 1
    mounts = {line.split()[2]: line.split()[4] for line in res.stdout.splitlines()
              if line.split()[1:2] == ["on"]}
    assert mounts["/"] == "tmpfs" and mounts["/proc"] == "proc", res.stdout


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in ci.splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert commands[-1] == _quick_start()[2]
    assert "tools/install.sh" in commands


def test_init_demo_does_what_readme_says() -> None:
    demo = _init_demo().replace(".venv/bin/pyinit", str(BIN / "pyinit"), 1)
    res = subprocess.run(["sh", "-c", demo], capture_output=True, timeout=60, check=False)
    assert res.returncode == 3
    err = res.stderr.decode()
    for needle in ("signal.forwarded", "shutdown.grace_started", "pyinit.exit"):
        assert needle in err
    assert b"workload: got SIGTERM" in res.stdout


def test_every_option_is_documented() -> None:
    options = set(re.findall(r"(--[a-z][a-z-]+)", cli.HELP))
    assert options, "no options found in the help"
    missing = [opt for opt in sorted(options) if f"`{opt}" not in README and opt not in README]
    assert not missing, f"options missing from README.md: {missing}"


def test_ruff_is_clean() -> None:
    res = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "pyinit", "tests", "bench"],
                         cwd=ROOT, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_is_clean(tmp_path: Path) -> None:
    # A checkout the user cannot write (tests run as another user) needs a
    # cache elsewhere, or mypy crashes.
    cache = ROOT / ".mypy_cache" if os.access(ROOT, os.W_OK) else tmp_path
    res = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache)], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_skip_fails_the_run_only_under_ci_as_root(pytester: pytest.Pytester,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   ci: str) -> None:
    """The skip policy of tests/conftest.py, in a throw-away session."""
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    root: needs root\n")
    pytester.makepyfile(test_inner="""
        import pytest

        @pytest.mark.root
        def test_needs_root():
            pass

        def test_skips():
            pytest.skip("not here")
    """)
    monkeypatch.setenv("CI", ci)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-ra")
    if os.geteuid() == 0:
        result.assert_outcomes(passed=1, skipped=1)
        if ci:
            assert result.ret == pytest.ExitCode.TESTS_FAILED
            result.stderr.fnmatch_lines(["*CI=true as root: 1 test(s) skipped*"])
        else:
            assert result.ret == pytest.ExitCode.OK
    else:
        # Not root: the root-only test skips with its reason, and that is fine.
        result.assert_outcomes(skipped=2)
        result.stdout.fnmatch_lines(["*needs root*"])
        assert result.ret == pytest.ExitCode.OK


@pytest.mark.parametrize("body, ret, lines", [
    # A known open problem: runs, fails as recorded, is listed, and is no skip.
    ("assert False", pytest.ExitCode.OK,
     ["*1 known open problem(s)*", "*test_attack: issue 9: open"]),
    # The fix landed: the strict xfail now fails the run until the marker goes.
    ("assert True", pytest.ExitCode.TESTS_FAILED, ["*XPASS(strict)*"]),
])
def test_an_xfail_is_a_recorded_failure_not_a_skip(pytester: pytest.Pytester,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   body: str, ret: pytest.ExitCode,
                                                   lines: list[str]) -> None:
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makeini("[pytest]\nxfail_strict = true\nmarkers =\n    root: needs root\n")
    pytester.makepyfile(test_inner=f"""
        import pytest
        @pytest.mark.xfail(reason="issue 9: open")
        def test_attack():
            {body}
    """)
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-ra")
    assert result.ret == ret
    (result.stderr if ret == pytest.ExitCode.OK else result.stdout).fnmatch_lines(lines)


def test_an_xfail_must_name_its_issue(pytester: pytest.Pytester) -> None:
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    root: needs root\n")
    pytester.makepyfile(test_inner="""
        import pytest
        @pytest.mark.xfail(reason="flaky")
        def test_x():
            assert False
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*an xfail must be strict and its reason must name the open"
                                 " issue (got 'flaky')*"])


def test_every_log_event_is_documented() -> None:
    """docs/logging.md names every event the code emits, and every setup step."""
    doc = (ROOT / "docs" / "logging.md").read_text()
    source = "".join(p.read_text() for p in (ROOT / "pyinit").rglob("*.py"))
    names = set(re.findall(r'\.(?:debug|info|warning|error)\(\s*"([a-z_]+\.[a-z_]+)"', source))
    assert len(names) > 30, names
    missing = sorted(n for n in names if f"`{n}`" not in doc and n not in doc)
    assert not missing, f"events missing from docs/logging.md: {missing}"
    from pyinit.rootfs.plan import STEP_KINDS

    steps = set(STEP_KINDS)
    undocumented = sorted(s for s in steps if f"`{s}`" not in doc)
    assert not undocumented, f"steps missing from docs/logging.md: {undocumented}"


def test_troubleshooting_covers_every_failure_class() -> None:
    doc = (ROOT / "docs" / "troubleshooting.md").read_text()
    sections = re.findall(r"^## (.+)$", doc, re.M)
    assert len(sections) >= 11, sections
    tests = (ROOT / "tests" / "integration" / "test_run.py").read_text()
    assert len(re.findall(r"^def test_hint_", tests, re.M)) >= 11


def _imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """The pyinit modules ``path`` imports anywhere: at the top, in functions, under
    TYPE_CHECKING. ``from pkg import sub`` counts as an import of ``pkg.sub``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    return (found & modules) - {module}


def _import_graph() -> dict[str, set[str]]:
    files = {}
    for path in (ROOT / "pyinit").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return {name: _imports(path, name, set(files)) for name, path in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, each as the path that closes it (a depth-first search)."""
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            found.append([*path[path.index(name):], name])
            return
        if name in done:
            return
        for dep in sorted(graph[name]):
            visit(dep, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]


def test_no_import_cycle_counting_imports_inside_functions() -> None:
    graph = _import_graph()
    assert graph["pyinit.diagnose"] >= {"pyinit.rootfs.plan", "pyinit.oci.config"}  # in functions
    assert _cycles(graph) == []


def _literal_hints(path: Path) -> list[int]:
    """Lines where words are written straight into a hint (``hint="..."``,
    ``hint = f"..."``, ``.hint = ("..." ...)``); a key such as ``{"rootless": x}``
    or the separator ``"; "`` is no sentence."""
    def named_hint(target: ast.expr) -> bool:
        return (isinstance(target, ast.Name) and target.id == "hint") or (
            isinstance(target, ast.Attribute) and target.attr == "hint")

    def words(value: ast.expr) -> bool:
        return any(isinstance(n, ast.Constant) and isinstance(n.value, str)
                   and len(n.value.split()) > 1 for n in ast.walk(value))

    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        value = None
        if isinstance(node, ast.keyword) and node.arg == "hint":
            value = node.value
        if isinstance(node, ast.Assign) and any(map(named_hint, node.targets)):
            value = node.value
        if value is not None and words(value):
            lines.append(value.lineno)
    return lines


def test_hints_are_written_only_in_the_table() -> None:
    found = {str(p.relative_to(ROOT)): _literal_hints(p)
             for p in (ROOT / "pyinit").rglob("*.py") if p.name != "diagnose.py"}
    assert {path: lines for path, lines in found.items() if lines} == {}


def test_syscall_numbers_are_named_per_architecture_in_one_table() -> None:
    """Raw numbers (no glibc wrapper) live in linux/syscalls.py's table, one row per
    architecture; the rest asks it with syscalls.number(name)."""
    from pyinit.linux import syscalls

    number = re.compile(r'"aarch64": (\d|\{"\w+": \d)')  # "aarch64": 280, or a row of them
    tables = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pyinit").rglob("*.py")
                    if number.search(p.read_text()))
    assert tables == ["pyinit/linux/syscalls.py"]
    assert {machine: sorted(numbers) for machine, numbers in syscalls._NR.items()} == {
        machine: ["bpf", "fchmodat2", "openat2", "seccomp"] for machine in ("x86_64", "aarch64")}
