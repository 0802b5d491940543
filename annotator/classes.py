"""The six benign pigmented-lesion classes: names, aliases, colours and hotkeys, defined once.

Aliases map what people type in labelImg (`Mel`, `melasma`, `Hori's nevus`) to the canonical
short names. A workspace can add aliases, or replace the class list, in annotator.toml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class LesionClass:
    name: str
    full_name: str
    colour: str  # Label Studio region colour
    hotkey: str


PSL_CLASSES: tuple[LesionClass, ...] = (
    LesionClass("sl", "Solar lentigines", "#8c564b", "1"),
    LesionClass("fre", "Freckles", "#ff7f0e", "2"),
    LesionClass("mel", "Melasma", "#d62728", "3"),
    LesionClass("caf", "Cafe-au-lait spot", "#e7ba52", "4"),
    LesionClass("ota", "Nevus of Ota", "#1f77b4", "5"),
    LesionClass("hori", "Hori's nevus", "#9467bd", "6"),
)

CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in PSL_CLASSES)

DEFAULT_ALIASES: dict[str, str] = {
    "solar lentigines": "sl",
    "solar lentigo": "sl",
    "lentigo": "sl",
    "lentigines": "sl",
    "freckle": "fre",
    "freckles": "fre",
    "ephelides": "fre",
    "melasma": "mel",
    "chloasma": "mel",
    "cafe-au-lait": "caf",
    "cafe au lait": "caf",
    "café-au-lait": "caf",
    "cafe-au-lait spot": "caf",
    "cals": "caf",
    "nevus of ota": "ota",
    "naevus of ota": "ota",
    "hori": "hori",
    "hori's nevus": "hori",
    "horis nevus": "hori",
    "abnom": "hori",
}

_FALLBACK_COLOURS = ("#17becf", "#bcbd22", "#7f7f7f", "#e377c2", "#2ca02c", "#aec7e8", "#ffbb78")


def _key(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower().replace("_", " "))


class ClassTable:
    """Normalises label names to the workspace's classes; `None` means unknown."""

    def __init__(self, names: tuple[str, ...] = CLASS_NAMES, aliases: dict[str, str] | None = None) -> None:
        if len(set(names)) != len(names) or not names:
            raise ValueError("class names must be unique and non-empty")
        self.names = tuple(names)
        self._lookup: dict[str, str] = {_key(n): n for n in names}
        for alias, target in {**DEFAULT_ALIASES, **(aliases or {})}.items():
            if target in self.names:
                self._lookup[_key(alias)] = target

    def normalise(self, raw: str) -> str | None:
        return self._lookup.get(_key(raw))

    def index(self, name: str) -> int:
        return self.names.index(name)

    def describe(self, name: str) -> LesionClass:
        for lesion in PSL_CLASSES:
            if lesion.name == name:
                return lesion
        i = self.index(name)
        return LesionClass(name, name, _FALLBACK_COLOURS[i % len(_FALLBACK_COLOURS)], str(i + 1) if i < 9 else "")
