"""Configuration keys declared once, on the settings dataclass that uses them.

A component's frozen settings class declares each key with :func:`setting`: its default as it is
written in TOML, its range or choices, and its documentation. ``firmware.config`` derives the
schema from those fields (:func:`keys_of`) and validates TOML into the same class, so there is no
second copy of a default, range or doc to drift. The dataclass default is the TOML default passed
through the key's ``convert`` (``""`` -> ``None``, ``-1`` -> ``None``, ``str`` -> ``Path``).

This module sits in ``drivers`` because every other layer may import ``drivers``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_META = "vigil.key"


@dataclass(frozen=True)
class Key:
    """One configuration key: its TOML type, default, allowed values and meaning.

    ``convert`` maps the validated TOML value to what the settings class holds (``None`` = as
    is).
    """

    type: type | tuple[type, ...]
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    required: bool = False
    nonempty: bool = False
    secret: bool = False
    nullable: bool = False
    doc: str = ""
    convert: Callable[[Any], Any] | None = None

    def to_value(self, toml_value: Any) -> Any:
        """The settings-class value of a validated TOML value."""
        return self.convert(toml_value) if self.convert is not None else toml_value

    def problem(self, value: Any) -> str | None:
        """Why a value of the right type is not allowed for this key, or ``None``.

        The one value rule, shared by the config validator and :func:`out_of_range`: choices,
        range, finite numbers (NaN passes every ``<``/``>`` test, so a range alone would let
        ``stall_s = nan`` through), no NUL in text (it cannot be a path, and C APIs cut at it),
        and non-empty text where required.
        """
        texts = [v for v in (value if isinstance(value, tuple | list) else (value,))
                 if isinstance(v, str)]
        if any("\0" in t for t in texts):
            return "must not contain a NUL character"
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            return f"must be one of {allowed}, got {value!r}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if numeric and ((self.min is not None and value < self.min)
                        or (self.max is not None and value > self.max)):
            return f"must be between {self.min} and {self.max}, got {value!r}"
        if isinstance(value, str) and self.nonempty and not value.strip():
            return "must not be empty"
        return None


def _infer_type(default: Any) -> type:
    for t in (bool, int, float, str, tuple):
        if isinstance(default, t):
            return t
    raise TypeError(f"cannot infer a config type from default {default!r}; pass type=")


def setting(
    default: Any,
    *,
    type: type | tuple[type, ...] | None = None,  # mirrors Key.type
    min: float | None = None,  # mirrors Key.min
    max: float | None = None,  # mirrors Key.max
    choices: tuple[Any, ...] | None = None,
    nonempty: bool = False,
    secret: bool = False,
    nullable: bool = False,
    doc: str = "",
    convert: Callable[[Any], Any] | None = None,
) -> Any:
    """A dataclass field that is also a configuration key (declared once).

    ``default`` is the TOML default; the field's Python default is ``convert(default)``.
    """
    key = Key(type or _infer_type(default), default, min=min, max=max, choices=choices,
              nonempty=nonempty, secret=secret, nullable=nullable, doc=doc, convert=convert)
    for bound in (min, max):
        if bound is not None and not math.isfinite(bound):
            raise ValueError(f"a config key's range must be finite, got {bound!r}")
    return dataclasses.field(default=key.to_value(default), repr=not secret,
                             metadata={_META: key})


def keys_of(cls: type) -> dict[str, Key]:
    """The configuration keys a settings dataclass declares, in field order."""
    return {f.name: f.metadata[_META] for f in dataclasses.fields(cls) if _META in f.metadata}


def out_of_range(obj: Any) -> list[str]:
    """Fields of a settings object outside their declared range or choices (for classes that
    also guard direct construction, e.g. the store's policy maximum)."""
    problems: list[str] = []
    for name, key in keys_of(type(obj)).items():
        value = getattr(obj, name)
        if key.choices is not None or isinstance(value, int | float):
            problem = key.problem(value)
            if problem is not None and "empty" not in problem:
                problems.append(f"{name}={value!r}: {problem}")
    return problems


@dataclass(frozen=True)
class Section:
    """One configuration section: what builds its settings, its keys, and its cross-field rule.

    ``settings_type`` is the class ``target`` builds (``target`` itself when it is that class);
    the schema test compares its field defaults with the keys' defaults.
    """

    target: Callable[..., Any]
    keys: Mapping[str, Key]
    doc: str = ""
    check: Callable[[Any], str | None] | None = None  # cross-field rule: message or None
    settings_type: type | None = None

    @classmethod
    def of(
        cls,
        settings_type: type,
        *,
        doc: str,
        check: Callable[[Any], str | None] | None = None,
        build: Callable[..., Any] | None = None,
    ) -> Section:
        """The section whose keys ``settings_type`` declares with :func:`setting`."""
        return cls(build or settings_type, keys_of(settings_type), doc, check, settings_type)

    @property
    def settings_class(self) -> type | None:
        if self.settings_type is not None:
            return self.settings_type
        return self.target if isinstance(self.target, type) else None
