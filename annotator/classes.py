"""The six benign pigmented-lesion classes: names, aliases, colours and hotkeys, defined once.

Aliases map what people type in labelImg (`Mel`, `melasma`, `Hori's nevus`) to the canonical
short names. A workspace can add aliases, or replace the class list, in annotator.toml.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from annotator.errors import ConfigError


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


def parse_class_list(text: str) -> tuple[str, ...]:
    """`a,b,c` -> ("a", "b", "c"); empty or repeated names are a ConfigError naming the fix."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ConfigError(f"{text!r} names no class; give comma-separated names, e.g. sl,fre,mel")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{text!r} names {', '.join(repeated)} more than once; give each class once")
    return names


class ClassOrderError(ConfigError):
    """A class list that would drop or move a class the workspace's labels use; `keeps` is one that works."""

    def __init__(self, wanted: tuple[str, ...], changes: list[str], keeps: tuple[str, ...]) -> None:
        self.wanted, self.changes, self.keeps = wanted, changes, keeps
        super().__init__(self.phrased("the classes"))

    def phrased(self, option: str) -> str:
        """The refusal with each class list introduced by `option` (the CLI passes its flag)."""
        return (
            f"{option} {','.join(self.wanted)} would {'; '.join(self.changes)}; keep the workspace's classes "
            f"first and in their order and add new ones after them: {option} {','.join(self.keeps)}"
        )


def changed_classes(current: tuple[str, ...], wanted: tuple[str, ...], in_use: Mapping[str, int]) -> tuple[str, ...]:
    """The class list a workspace may switch to: `wanted`, when every class its labels use keeps its
    index (a class's index is its YOLO id and its place in trained models). Otherwise a ClassOrderError
    that names the class, how many boxes use it, and the list that would work."""
    moved = []
    for name, boxes in sorted(in_use.items()):
        if name not in current:
            continue  # a name from an older class list; nothing this change can break
        old = current.index(name)
        if name not in wanted:
            moved.append(f"drop {name!r} ({boxes} boxes use it)")
        elif wanted.index(name) != old:
            moved.append(f"move {name!r} from position {old + 1} to {wanted.index(name) + 1} ({boxes} boxes use it)")
    if moved:
        raise ClassOrderError(wanted, moved, current + tuple(n for n in wanted if n not in current))
    return wanted
