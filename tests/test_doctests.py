"""The examples in the pure modules' docstrings run, as ``--doctest-modules`` would run them, but
on the installed package (pytest importing ``python/`` would shadow it without the native core).
"""

from __future__ import annotations

import doctest
import importlib

import pytest

PURE_MODULES = (
    "dattavani.config",
    "dattavani.writers",
    "dattavani.windows",
    "dattavani.models.specs",
    "dattavani.convert.formats",
    "dattavani.options",
    "dattavani.languages",
    "dattavani.word_errors",
    "dattavani.testing",
    "dattavani.vad",
    "dattavani.pieces",
    "dattavani.batched",
    "dattavani.cli._common",
    "dattavani.models.model_cache",
)


@pytest.mark.parametrize("name", PURE_MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert tried > 0, f"{name} has no examples"
    assert failures == 0
