"""One line per settings error, naming the environment variable at fault (for the CLI).

Beside ``streams.settings``: turns a pydantic ``ValidationError`` raised while reading the
environment into ``NAME: what is wrong``, never echoing the value.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings

from streams.secret_files import env_name
from streams.settings import Settings

__all__ = ["describe_settings_error"]

_SECTIONS: dict[str, type[BaseSettings]] = {}


def describe_settings_error(exc: Exception) -> str:
    """One line naming the environment variable(s) a settings ``ValidationError`` is about."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    if not _SECTIONS:
        sections: list[type[BaseSettings]] = [Settings, *Settings._sections()]
        _SECTIONS.update({cls.__name__: cls for cls in sections})
    section = _SECTIONS.get(exc.title)
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(x) for x in error.get("loc", ()) if not isinstance(x, int)]
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if not loc:  # a model validator: its message names the variables itself
            parts.append(message)
            continue
        known = section is not None and loc[0] in section.model_fields
        name = env_name(section, loc[0]) if section is not None and known else loc[0].upper()
        parts.append(f"{name}: {message}")
    return "; ".join(parts)
