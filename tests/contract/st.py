"""Runs schemathesis's command line (tests/contract/run calls this instead of `schemathesis`).

One patch, for a bug outside Redress: on CPython 3.11.7 (this machine's pyenv Python), Hypothesis's
pretty-printing of a filter's lambda can hit "SystemError: AST constructor recursion depth mismatch"
(CPython gh-106905, fixed in later releases) while schemathesis builds negative test values, and
schemathesis then reports an error for the whole operation although nothing was sent. The
description is only a label for a strategy's repr, so it falls back to a plain one.
"""
import sys

from hypothesis.internal import lambda_sources

_describe = lambda_sources.lambda_description


def _lambda_description(f):
    try:
        return _describe(f)
    except SystemError:
        return "lambda"


# hypothesis.internal.reflection calls it through the module, so replacing the attribute suffices.
lambda_sources.lambda_description = _lambda_description

from schemathesis.cli import schemathesis  # noqa: E402

sys.exit(schemathesis())
