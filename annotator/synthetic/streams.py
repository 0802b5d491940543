"""The random generators one photo draws from, all seeded by (seed, photo index).

`main` draws in the fixed order the default world always has, so the default world's photos never change.
Each feature the default world lacks draws from a stream of its own, so a world may switch one of them
off (or change its range) without moving any other draw: the same face, lesions and camera with and
without confounders, for instance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The third word of a stream's seed. Never 0: numpy's SeedSequence pads short entropy with zeros, so
# (seed, index, 0) would be the main stream (seed, index) again.
_CLASSES, _POSE, _PIGMENT, _CONFOUNDERS, _OPTICS = 0xC1A5, 0x905E, 0x9160, 0xC0F0, 0x0B71


@dataclass(frozen=True)
class Streams:
    """One photo's generators: `main` (the default world's draws, in order) and one per added feature."""

    main: np.random.Generator
    classes: np.random.Generator  # lesion-free faces, melasma with Hori's nevus
    pose: np.random.Generator  # the head's yaw
    pigment: np.random.Generator  # shared colour and depth of confusable classes
    confounders: np.random.Generator  # moles, acne, post-inflammatory marks
    optics: np.random.Generator  # blur

    @classmethod
    def for_photo(cls, seed: int, index: int) -> Streams:
        """The streams of photo `index` of the data set drawn with `seed`."""

        def stream(word: int) -> np.random.Generator:
            return np.random.default_rng([seed, index, word])

        return cls(
            main=np.random.default_rng([seed, index]),
            classes=stream(_CLASSES),
            pose=stream(_POSE),
            pigment=stream(_PIGMENT),
            confounders=stream(_CONFOUNDERS),
            optics=stream(_OPTICS),
        )
