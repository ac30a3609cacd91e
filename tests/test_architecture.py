"""The layer rules of docs/ARCHITECTURE.md, checked on the source: what each layer may import and call."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Outbound network and HTTP clients: the domain gets a Transport injected; the HTTP layer only answers.
NETWORK = ("socket", "ssl", "http.client", "urllib.request", "urllib3", "requests")
WEB = ("flask", "werkzeug", "jinja2", "granian", "waitress")
STORAGE = ("sqlite3", "mock_server.sqlite_store", "mock_server.sqlite_journal")
# Reading the wall clock or sleeping on it: the domain's time comes from the injected Clock (domain/clock.py).
WALL_CLOCK = (
    "time.time",
    "time.time_ns",
    "time.sleep",
    "time.localtime",
    "time.gmtime",
    "time.ctime",
    "datetime.datetime.now",
    "datetime.datetime.utcnow",
    "datetime.datetime.today",
    "datetime.date.today",
)
FIRST_PARTY = ("mock_server", "dpa_client")


@dataclass(frozen=True)
class Rule:
    name: str
    files: str  # a folder ("…/") or a file, relative to the repository root
    forbidden_imports: tuple[str, ...] = ()
    allowed_first_party: tuple[str, ...] | None = None  # None: any mock_server module
    forbidden_calls: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()  # files (relative paths) the rule does not apply to, each with a reason below

    def applies_to(self, rel: str) -> bool:
        inside = rel.startswith(self.files) if self.files.endswith("/") else rel == self.files
        return inside and rel not in self.exempt

    def forbids_import(self, name: str) -> bool:
        if _under(name, self.forbidden_imports):
            return True
        first_party = _under(name, FIRST_PARTY) and name not in FIRST_PARTY  # a bare package name is no layer
        return first_party and self.allowed_first_party is not None and not _under(name, self.allowed_first_party)


RULES = (
    Rule(
        "the domain has no web framework, network, storage engine or wall clock",
        "mock_server/domain/",
        forbidden_imports=WEB + NETWORK + STORAGE + ("http", "urllib", "subprocess", "threading.Timer"),
        # Within the package the domain sees only itself and the settings' values.
        allowed_first_party=("mock_server.domain", "mock_server.settings"),
        forbidden_calls=WALL_CLOCK,
        exempt=("mock_server/domain/clock.py",),
    ),  # the one clock: RealClock reads wall time, nothing else does
    Rule(
        "the domain's wall-clock exemption is the clock alone",
        "mock_server/domain/clock.py",
        forbidden_imports=WEB + NETWORK + STORAGE,
        allowed_first_party=("mock_server.domain",),
    ),
    Rule(
        "the HTTP layer parses and renders; it stores nothing itself and calls nothing outside",
        "mock_server/http/",
        forbidden_imports=STORAGE + NETWORK,
    ),
    Rule(
        "the contract kit judges a server from outside: no emulator internals",
        "contract_tests/",
        forbidden_imports=(
            "mock_server.domain",
            "mock_server.http",
            "mock_server.sqlite_store",
            "mock_server.sqlite_journal",
        ),
    ),
    Rule("the Python client ships to integrators on its own", "dpa_client/", allowed_first_party=("dpa_client",)),
)


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted name it stands for (`import datetime as dt` -> dt: datetime)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _imports(tree: ast.AST, module: str) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing module's package
                base = module.split(".")[: -node.level]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # `from mock_server import app` imports mock_server.app
                yield node.lineno, f"{target}.{alias.name}"


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([aliases.get(node.id, node.id), *reversed(parts)])


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(source: str, rel: str) -> list[str]:
    """Every rule `source` (the file at `rel`, relative to the repository root) breaks, one line each."""
    tree = ast.parse(source, filename=rel)
    module = rel.removesuffix(".py").replace("/", ".")
    aliases = _aliases(tree)
    found = []
    for rule in RULES:
        if not rule.applies_to(rel):
            continue
        for line, name in _imports(tree, module):
            if rule.forbids_import(name):
                found.append(f"{rel}:{line}: imports {name} ({rule.name})")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                called = _dotted(node.func, aliases)
                if called is not None and called in rule.forbidden_calls:
                    found.append(f"{rel}:{node.lineno}: calls {called}() ({rule.name})")
    return found


def _sources() -> Iterator[Path]:
    for top in ("mock_server", "contract_tests", "dpa_client"):
        yield from sorted((ROOT / top).rglob("*.py"))


def test_every_module_keeps_its_layer_rules() -> None:
    found = [
        v
        for path in _sources()
        for v in violations(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())
    ]
    assert found == [], "layer rules broken (see docs/ARCHITECTURE.md):\n" + "\n".join(found)


def test_the_rules_look_at_real_files() -> None:
    # A glob that matches nothing would make every rule pass; each must apply to at least one file.
    rels = [p.relative_to(ROOT).as_posix() for p in _sources()]
    assert all(any(rule.applies_to(rel) for rel in rels) for rule in RULES)


@pytest.mark.parametrize(
    ("rel", "source", "expected"),
    [
        ("mock_server/domain/evil.py", "from flask import Flask\n", "imports flask"),
        ("mock_server/domain/evil.py", "import werkzeug.test\n", "imports werkzeug.test"),
        ("mock_server/domain/evil.py", "import urllib3\n", "imports urllib3"),
        ("mock_server/domain/evil.py", "import socket\n", "imports socket"),
        (
            "mock_server/domain/evil.py",
            "from mock_server.http.envelope import ok\n",
            "imports mock_server.http.envelope",
        ),
        ("mock_server/domain/evil.py", "from mock_server import sqlite_store\n", "imports mock_server.sqlite_store"),
        ("mock_server/domain/evil.py", "from .. import transport\n", "imports mock_server.transport"),
        ("mock_server/domain/evil.py", "import time\nx = time.time()\n", "calls time.time()"),
        ("mock_server/domain/evil.py", "from time import time as now\nx = now()\n", "calls time.time()"),
        (
            "mock_server/domain/evil.py",
            "import datetime as dt\nx = dt.datetime.now()\n",
            "calls datetime.datetime.now()",
        ),
        (
            "mock_server/domain/evil.py",
            "from datetime import datetime\nx = datetime.utcnow()\n",
            "calls datetime.datetime.utcnow()",
        ),
        ("mock_server/domain/evil.py", "import time\ntime.sleep(1)\n", "calls time.sleep()"),
        ("mock_server/http/evil.py", "import sqlite3\n", "imports sqlite3"),
        (
            "mock_server/http/evil.py",
            "from mock_server.sqlite_store import SqliteStore\n",
            "imports mock_server.sqlite_store",
        ),
        ("mock_server/http/evil.py", "import requests\n", "imports requests"),
        (
            "contract_tests/support/evil.py",
            "from mock_server.domain.runs import Run\n",
            "imports mock_server.domain.runs",
        ),
        ("dpa_client/evil.py", "from mock_server.domain.errors import NotFound\n", "imports mock_server.domain.errors"),
    ],
)
def test_a_broken_rule_is_reported(rel: str, source: str, expected: str) -> None:
    found = violations(source, rel)
    assert any(expected in v for v in found), found


@pytest.mark.parametrize(
    ("rel", "source"),
    [
        ("mock_server/domain/ok.py", "import time\nstart = time.monotonic()\n"),  # a wait's deadline, not a date
        ("mock_server/domain/ok.py", "import datetime as dt\nx = dt.datetime.fromtimestamp(0)\n"),
        ("mock_server/domain/ok.py", "from mock_server.settings import Settings\n"),
        ("mock_server/domain/clock.py", "import time\nx = time.time()\n"),
        ("mock_server/http/ok.py", "from flask import Flask\n"),
    ],
)
def test_what_the_rules_allow_is_not_reported(rel: str, source: str) -> None:
    assert violations(source, rel) == []
