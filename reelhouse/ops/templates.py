"""The one renderer of the project's config templates (``infra/<engine>/…``): ``{{ name }}`` placeholders.

Deliberately tiny (no Jinja): the templates hold only values, never logic, so a reader sees the
engine's own config syntax. A placeholder nobody fills is an error naming it, never an empty value.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Union

from reelhouse.ops.service import ServiceError

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def placeholders(text: str) -> list[str]:
    """The names ``text`` asks for, each once, in order of first appearance."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


def render_template(text: str, values: Mapping[str, str], source: Union[Path, str]) -> str:
    """``text`` with every ``{{ name }}`` replaced by ``values[name]``.

    ``source`` (the template's path) is named in the error when a placeholder has no value,
    so whoever added it to the template knows which file and which name to fix.
    """
    unfilled = [name for name in placeholders(text) if name not in values]
    if unfilled:
        names = ", ".join("{{ %s }}" % name for name in unfilled)
        filled = ", ".join(sorted(values)) or "nothing"
        raise ServiceError(
            f"{source} names {names}, which reelhouse does not fill (it fills: {filled}); "
            "remove the placeholder from the template or give it a value in its service's module"
        )
    return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text)
