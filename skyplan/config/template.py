"""Templated links.yaml: jinja2 with strict undefined variables, rendered before YAML parsing.

A file is a template when its name ends in `.j2` or when variables are given (`--var`,
`--var-file`). Hook templates inside a templated file go in `{% raw %}…{% endraw %}`. The
sandbox matters: CI renders files from pull requests, and a template must not reach Python,
nor run for ever, fill memory or recurse without end (skyplan.sandbox holds the limits).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from skyplan.config.diagnostics import Diagnostic
from skyplan.config.source import MAX_FILE_BYTES, SURROGATE
from skyplan.errors import ConfigError
from skyplan.sandbox import Limits

ENV_PREFIX = "SKYPLAN_VAR_"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# A rendered file may be as long as a plain one; the rest are skyplan.sandbox's defaults.
LIMITS = Limits(output_chars=MAX_FILE_BYTES)


def is_template(path: Path, variables: dict[str, Any] | None) -> bool:
    return path.name.endswith(".j2") or variables is not None


def parse_var(text: str) -> tuple[str, str]:
    """`--var KEY=VALUE`; raise ValueError with the reason."""
    key, sep, value = text.partition("=")
    if not sep or not _NAME.match(key):
        raise ValueError(f"'{text}' is not KEY=VALUE with KEY a name of letters, digits and '_'")
    return key, value


def load_var_file(path: Path) -> dict[str, Any]:
    """A YAML mapping of variables, with located errors like any configuration."""
    from skyplan.config import source

    display = str(path)
    src = source.parse(source.read_text(path, display), path, display)
    values: dict[str, Any] = {}
    for document in src.documents:
        if document.data is None:
            continue
        if not isinstance(document.data, dict):
            raise ConfigError([Diagnostic("a variables file must be a mapping of names to values").located(display, document.position)])
        for key, value in document.data.items():
            if not _NAME.match(key):
                where = source.locate_in_tree(document.tree, (key,), at_key=True)
                raise ConfigError([Diagnostic(f"'{key}' is not a variable name").located(display, where)])
            values[key] = value
    return values


def variables_from_environment() -> dict[str, str]:
    return {k[len(ENV_PREFIX):]: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX) and _NAME.match(k[len(ENV_PREFIX):])}


def render(text: str, display: str, variables: dict[str, Any]) -> str:
    from jinja2 import FunctionLoader, StrictUndefined

    from skyplan.sandbox import TemplateFailure
    from skyplan.sandbox.environment import LimitedEnvironment, compile_template
    from skyplan.sandbox.environment import render as render_limited

    env = LimitedEnvironment(
        LIMITS,
        # Naming the template after the file puts that name in the frames errors come from.
        loader=FunctionLoader(lambda name: (text, display, lambda: True)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    try:
        rendered = render_limited(compile_template(env, text, display), {**variables_from_environment(), **variables})
    except TemplateFailure as exc:
        message = f"template: {exc.reason}"
        if exc.kind == "undefined":
            message += f" (pass it with --var, --var-file or {ENV_PREFIX}NAME)"
        raise ConfigError([Diagnostic(message, file=display, line=exc.line, column=1)]) from None
    _refuse_surrogates(rendered, f"{display} (rendered)")
    return rendered


def _refuse_surrogates(rendered: str, display: str) -> None:
    """A lone surrogate from a variable (a non-UTF-8 argument or file name, say): located, refused.

    It is no character: hashing, parsing and writing the text would fail on it.
    """
    found = SURROGATE.search(rendered)
    if found is None:
        return
    start = found.start()
    line = rendered.count("\n", 0, start) + 1
    column = start - rendered.rfind("\n", 0, start)
    message = (
        f"the rendered text holds a lone surrogate (\\u{ord(found.group()):04x}), which is not a character; "
        "it comes from a variable or a template string: give the text itself, in UTF-8"
    )
    raise ConfigError([Diagnostic(message, file=display, line=line, column=column)])
