"""Secrets from files: ``NAME_FILE`` beside every secret setting ``NAME``.

The Docker and Kubernetes secrets convention: a variable names a file whose content is the
value, so the secret never sits in the environment (``/proc/<pid>/environ``, ``docker
inspect``). ``streams.settings`` sections derive from ``SecretFiles``; a field is a secret when
it is a ``SecretStr`` or marked ``json_schema_extra={"secret": True}`` (a URL with a password).
Leaf module: imports nothing of ours but errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, get_args

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from streams.errors import ConfigError

__all__ = ["SecretFiles", "env_name", "mask_url"]


def env_name(section: type[BaseSettings], field: str) -> str:
    """The environment variable that sets ``field`` of ``section`` (its alias, or prefix + name)."""
    info = section.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices) and alias.choices and isinstance(alias.choices[0], str):
        return alias.choices[0]
    if isinstance(alias, str):
        return alias
    prefix = str(section.model_config.get("env_prefix", ""))
    return f"{prefix}{field}".upper()


def _is_secret(info: FieldInfo) -> bool:
    """A ``SecretStr`` field, or one marked ``secret`` (a URL that carries a password)."""
    extra = info.json_schema_extra
    marked = isinstance(extra, dict) and bool(extra.get("secret"))
    return marked or info.annotation is SecretStr or SecretStr in get_args(info.annotation)


class _SecretFileSource(PydanticBaseSettingsSource):
    """``NAME_FILE`` for each secret ``NAME``: the file's content, trailing newline dropped."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        section = self.settings_cls
        out: dict[str, Any] = {}
        for name, info in section.model_fields.items():
            if not _is_secret(info):
                continue
            var = env_name(section, name)
            path = os.environ.get(f"{var}_FILE")
            if not path:
                continue
            if os.environ.get(var):
                raise ConfigError(f"set {var} or {var}_FILE, not both")
            try:
                value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                raise ConfigError(f"{var}_FILE: cannot read {path}: {reason}") from None
            alias = info.validation_alias
            key = alias.choices[0] if isinstance(alias, AliasChoices) else name
            out[str(key)] = value
        return out


class SecretFiles(BaseSettings):
    """A section whose secrets may also come from ``NAME_FILE`` (after the variable itself).

    Validation errors never echo the input (it may hold a secret).
    """

    model_config = SettingsConfigDict(hide_input_in_errors=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files = _SecretFileSource(settings_cls)
        return init_settings, env_settings, files, dotenv_settings, file_secret_settings


def mask_url(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
