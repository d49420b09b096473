"""The one renderer of the project's templates (``infra/<engine>/…``: engine configs, the CQL schema):
``{{ name }}`` placeholders.

Deliberately tiny (no Jinja): the templates hold only values, never logic, so a reader sees the
engine's own config syntax. A placeholder nobody fills is an error naming it, never an empty value.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Type, Union

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def placeholders(text: str) -> list[str]:
    """The names ``text`` asks for, each once, in order of first appearance."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


def render_template(text: str, values: Mapping[str, str], source: Union[Path, str],
                    error: Type[Exception] = ValueError) -> str:
    """``text`` with every ``{{ name }}`` replaced by ``values[name]``.

    ``source`` (the template's path) is named in the error when a placeholder has no value,
    so whoever added it to the template knows which file and which name to fix. ``error`` is the
    caller's own error type (the supervisor's ``ServiceError``, the catalog's ``CatalogError``), so the
    message reaches the user the way that caller's other errors do.
    """
    unfilled = [name for name in placeholders(text) if name not in values]
    if unfilled:
        names = ", ".join("{{ %s }}" % name for name in unfilled)
        filled = ", ".join(sorted(values)) or "nothing"
        raise error(
            f"{source} names {names}, which reelhouse does not fill (it fills: {filled}); "
            "remove the placeholder from the template or give it a value where it is rendered"
        )
    return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text)
