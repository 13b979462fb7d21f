"""Docstring and README examples run: an example a user copies must work."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import shelfwise

RUNTIME_MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(shelfwise.__path__, "shelfwise.")
    if not name.startswith(
        ("shelfwise.training", "shelfwise.export", "shelfwise.kiosk_demo", "shelfwise.upstream")
    )
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("module_name", ["shelfwise", *RUNTIME_MODULES])
def test_docstring_examples_run(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=FLAGS, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring examples failed in {module_name}"


def test_public_surface_is_sorted_and_importable() -> None:
    assert list(shelfwise.__all__) == sorted(shelfwise.__all__)
    for name in shelfwise.__all__:
        assert hasattr(shelfwise, name), name


def test_every_public_function_has_an_example_or_docstring() -> None:
    for name in shelfwise.__all__:
        obj = getattr(shelfwise, name)
        if callable(obj):
            assert (obj.__doc__ or "").strip(), f"shelfwise.{name} has no docstring"


def test_readme_python_examples_run() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```pycon\n(.*?)```", readme, flags=re.S)
    assert blocks, "the README shows at least one runnable Python example"
    for block in blocks:
        test = doctest.DocTestParser().get_doctest(block, {}, "README", "README.md", 0)
        runner = doctest.DocTestRunner(optionflags=FLAGS)
        runner.run(test)
        assert runner.failures == 0, f"README example failed:\n{block}"
