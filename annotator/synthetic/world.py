"""What a synthetic data set's photos vary over, as one frozen value: the device mix, the case-number
cards, how many lesion classes a face shows, the skin tones and the JPEG qualities.

The drawing code reads these fields and never retypes them, so another kind of data set is another `World`
value, not another code path. `DEFAULT_WORLD` is the one the demo, the tests and the benchmarks draw.
"""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class World:
    """The per-photo chances and ranges of one kind of data set (ranges as drawn: low, high-exclusive)."""

    phone_fraction: float = 0.20  # photos from a phone: smaller, a colour cast, chroma grain, lower JPEG quality
    rotated_fraction_of_phone: float = 1 / 3  # phone photos held upright: stored landscape with EXIF orientation 6
    card_fraction: float = 0.15  # photos with a case-number card (not labelled) in a corner
    # How many classes a face shows, as cumulative chances: one below the first, two below the second, else three.
    one_class_below: float = 0.70
    two_classes_below: float = 0.95
    # Which class a one-class photo shows. The weights compensate for the discrete classes' (sl, caf) extra
    # appearances in 2- and 3-class photos, so all six are balanced overall.
    single_class_weights: tuple[tuple[str, float], ...] = (
        ("fre", 3 / 14),
        ("mel", 3 / 14),
        ("hori", 3 / 14),
        ("ota", 3 / 14),
        ("sl", 1 / 14),
        ("caf", 1 / 14),
    )
    # Skin albedo is drawn uniformly between these two tones (RGB): Fitzpatrick III to IV.
    skin_tones: tuple[RGB, RGB] = ((224, 172, 138), (170, 120, 85))
    camera_jpeg_quality: tuple[int, int] = (88, 93)
    phone_jpeg_quality: tuple[int, int] = (60, 76)


DEFAULT_WORLD = World()
