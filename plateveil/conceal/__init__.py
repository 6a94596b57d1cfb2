"""Concealment styles: one module per style, a base and a null one, and a registry.

``get_concealer(name, **options)`` returns a ready :class:`Concealer`; an unknown name raises
:class:`~plateveil.errors.UnknownStyleError` listing the valid ones. Styles: ``blur`` (default),
``pixelate``, ``solid``, ``overlay`` (branded plate), ``none`` (changes nothing). The names and the
default are defined once, in :mod:`plateveil.schema` (``STYLES``, ``DEFAULT_STYLE``, ``NULL_STYLE``).
To add a style: a module here with a :class:`Concealer` subclass, listed below, and its name in ``STYLES``.
"""

from __future__ import annotations

from typing import Any

from plateveil.conceal.base import Concealer
from plateveil.conceal.blur import BlurConcealer
from plateveil.conceal.none import NoConcealer
from plateveil.conceal.overlay import OverlayConcealer
from plateveil.conceal.pixelate import PixelateConcealer
from plateveil.conceal.solid import SolidConcealer
from plateveil.errors import UnknownStyleError
from plateveil.schema import DEFAULT_STYLE, NULL_STYLE, STYLES

_STYLES: dict[str, type[Concealer]] = {
    cls.name: cls for cls in (BlurConcealer, PixelateConcealer, SolidConcealer, OverlayConcealer, NoConcealer)
}
if set(_STYLES) != {*STYLES, NULL_STYLE}:  # a new style: its module here, its name in plateveil.schema.STYLES
    raise RuntimeError(f"concealers {sorted(_STYLES)} differ from plateveil.schema.STYLES {STYLES} + {NULL_STYLE!r}")


def style_names() -> list[str]:
    return sorted(_STYLES)


def check_style(name: str) -> None:
    """Raise :class:`UnknownStyleError` unless ``name`` is a registered style."""
    if name not in _STYLES:
        raise UnknownStyleError(f"unknown concealment style {name!r}; valid styles: {', '.join(style_names())}")


def get_concealer(name: str = DEFAULT_STYLE, **options: Any) -> Concealer:
    check_style(name)
    try:
        return _STYLES[name](**options)
    except TypeError as exc:
        raise ValueError(f"bad options for style {name!r}: {exc}") from None


__all__ = ["DEFAULT_STYLE", "Concealer", "check_style", "get_concealer", "style_names"]
