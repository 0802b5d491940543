"""The detector families: one `DetectorFamily` record per family, registered by the family's own file.

A family file (e.g. training/detectors/torchvision.py) calls `register_family` with the model names it builds, how
to build one, how to load a saved checkpoint and how to recognise one. Everything that names or builds models reads
this registry: `make_detector` and `load_detector`, the benchmark's model list and `annotator benchmark --help`.
Adding a family is one file: a module of `training.detectors` is found on its own (`families` imports them all on
first use); a family registered by any other module counts once that module is imported.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from training.detectors.base import Detector


class BuildDetector(Protocol):
    def __call__(self, model: str, classes: Sequence[str], *, verbose: bool = False, **options: Any) -> Detector:
        """A new detector for `classes`: `model` is one of the family's names, or a spec it `builds`."""
        ...


class LoadDetector(Protocol):
    def __call__(self, path: Path, classes: Sequence[str], *, verbose: bool = False) -> Detector:
        """The detector saved at `path` (a file the family `recognises`)."""
        ...


@dataclass(frozen=True)
class DetectorFamily:
    """A detector family: the names it answers to, and how it builds, loads and recognises its models."""

    name: str  # what its detectors report as `Detector.family`, e.g. "torchvision"
    models: tuple[str, ...]  # the model names it builds: the benchmark's list, `--models`, `make_detector(name)`
    build: BuildDetector
    load: LoadDetector
    recognises: Callable[[Path], bool]  # True for a checkpoint of this family (read without executing anything)
    checkpoint: str  # what its checkpoints are, for the error naming every family: "an Ultralytics checkpoint"
    # other model specs it builds (a YAML, a path to start from); the first family in `families` order that takes
    # a spec builds it
    builds: Callable[[str], bool] | None = None
    order: int = 100  # its place in lists and help texts: lower first, then in registration order


_FAMILIES: dict[str, DetectorFamily] = {}
_discovered = False


def register_family(family: DetectorFamily) -> DetectorFamily:
    """Add a family (a module imported again replaces its own record). A model name is one family's only."""
    for other in _FAMILIES.values():
        taken = set(other.models) & set(family.models)
        if other.name != family.name and taken:
            raise ValueError(f"family {family.name!r}: model names {sorted(taken)} belong to {other.name!r}")
    _FAMILIES[family.name] = family
    return family


def _discover() -> None:
    """Import every module of `training.detectors` once, so each family file has registered itself."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    import training.detectors as package

    for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)


def families() -> list[DetectorFamily]:
    """Every registered family, in list order (`DetectorFamily.order`, then registration)."""
    _discover()
    ranked = sorted(enumerate(_FAMILIES.values()), key=lambda item: (item[1].order, item[0]))
    return [family for _, family in ranked]


def model_names() -> tuple[str, ...]:
    """Every model name a family builds, family by family: the benchmark's list and the CLI's help."""
    return tuple(name for family in families() for name in family.models)


def family_of_model(name: str) -> DetectorFamily | None:
    """The family that builds the model called `name` (one of its `models`), or None."""
    return next((f for f in families() if name in f.models), None)


def family_building(spec: str) -> DetectorFamily | None:
    """The first family that builds a model spec outside every family's names (a YAML, a path), or None."""
    return next((f for f in families() if f.builds is not None and f.builds(spec)), None)


def family_of_checkpoint(path: Path) -> DetectorFamily | None:
    """The family whose checkpoint `path` is, or None."""
    return next((f for f in families() if f.recognises(path)), None)
