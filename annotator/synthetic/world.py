"""What a synthetic data set's photos vary over, as one frozen value: the device mix, the case-number
cards, which lesion classes a face shows (or none), the skin types, the head's pose, the light, the
optics (blur, JPEG quality) and the marks that are not targets.

The drawing code reads these fields and never retypes them, so another kind of data set is another `World`
value, not another code path. Named worlds live in `PRESETS` (`annotator synth --preset NAME`):
    default  `DEFAULT_WORLD`, the one the demo, the tests and the benchmarks draw: every face has a lesion,
             at most one face-wide class, Fitzpatrick III-IV, frontal faces in good light, sharp photos,
             no confounders, each class its own colour.
    hard     `HARD_WORLD`: lesion-free faces, melasma with Hori's nevus on one face, confounders (moles,
             acne, post-inflammatory marks), Fitzpatrick I-VI, rolled, turned and off-centre faces, side
             light of varied strength and colour, blur, low JPEG quality, and confusable classes that share
             their colour (docs/synthetic-worlds.md lists the ranges).
Every field's default is the default world's value. The default world's draws come from one generator in
their old order and what it lacks draws from streams of its own (streams.py), so its photos stay the same
byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from annotator.errors import ConfigError

RGB = tuple[float, float, float]
Range = tuple[float, float]

# Skin albedo (RGB, before light) of each Fitzpatrick type. III and IV are the default world's two ends;
# the others extend the scale from very fair (I) to deeply pigmented (VI).
FITZPATRICK_TONES: Mapping[int, RGB] = MappingProxyType(
    {
        1: (240, 208, 188),
        2: (230, 190, 160),
        3: (224, 172, 138),
        4: (170, 120, 85),
        5: (120, 80, 55),
        6: (75, 50, 36),
    }
)


@dataclass(frozen=True)
class Pose:
    """Where the face sits in the photo and how the head is turned (ranges as drawn: low, high-exclusive)."""

    centre_x: Range = (0.44, 0.56)  # face centre, as a fraction of the photo's width
    centre_y: Range = (0.50, 0.57)  # ... and of its height
    half_height: Range = (0.36, 0.43)  # the face's half-height, as a fraction of a landscape photo's height
    half_height_portrait: Range = (0.34, 0.40)  # ... and of a portrait photo's height (a little smaller)
    roll: Range = (-0.08, 0.08)  # head tilt in the image plane, radians
    # Head turned left or right (radians): the features and lesions slide across the face ellipse as on a
    # turning sphere, the far side foreshortened. Drawn from the pose stream; (0, 0) keeps the face frontal.
    yaw: Range = (0.0, 0.0)


@dataclass(frozen=True)
class Lighting:
    """The light on the face (a Lambert lamp plus ambient) and the whole photo's exposure and colour."""

    side: Range = (-0.6, 0.6)  # the light's horizontal direction (x of the light vector whose z is 1)
    above: Range = (-0.5, 0.0)  # its vertical direction (y; negative: from above)
    ambient: Range = (0.35, 0.5)  # light on the face's unlit side
    exposure: Range = (0.85, 1.10)  # the whole photo's brightness gain
    warmth: Range = (-0.06, 0.08)  # colour temperature: red gain 1 + warmth, blue gain 1 - warmth
    # How far the camera's exposure follows the face (centre-weighted metering): the gain is also multiplied
    # by (METERED_LUMA / the skin's luma) ** metering, so dark skin is not lost in shadow nor fair skin
    # blown out. 0: the gain ignores the skin (the default world, whose tones are all mid-tones).
    metering: float = 0.0


METERED_LUMA = 150.0  # the luma (0-255) metering aims the skin at: about the default world's mid-tone


@dataclass(frozen=True)
class Optics:
    """Blur: which photos are out of focus or shaken, and how much (drawn from the optics stream)."""

    defocus_fraction: float = 0.0  # photos out of focus: a Gaussian blur
    motion_fraction: float = 0.0  # photos shaken: a straight streak at a random angle
    defocus_sigma: Range = (0.0, 0.0)  # the Gaussian's sigma, as a fraction of the photo's short side
    motion_length: Range = (0.0, 0.0)  # the streak's length, as a fraction of the photo's short side


@dataclass(frozen=True)
class Confounders:
    """Marks on the skin that are not targets and are never boxed (drawn from the confounders stream)."""

    naevi: float = 0.0  # mean number (Poisson) of small dark round moles on a face
    acne_fraction: float = 0.0  # faces with acne ...
    acne: float = 0.0  # ... and the mean number of papules and pustules on such a face
    marks_fraction: float = 0.0  # faces with post-inflammatory marks (brown or red) ...
    marks: float = 0.0  # ... and their mean number on such a face


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
    lesion_free_fraction: float = 0.0  # faces with no target lesion at all (their truth holds no objects)
    mel_with_hori_fraction: float = 0.0  # of the faces showing melasma or Hori's nevus, those showing both
    # True: melasma and Hori's nevus draw their colour and depth from one shared distribution, and so do
    # freckles and solar lentigines, so only shape, size, count, place and texture tell each pair apart.
    shared_pigments: bool = False
    # Skin albedo is drawn uniformly along the tones of these Fitzpatrick types, in order (see
    # FITZPATRICK_TONES); a photo's type is the nearest of them. The default: between III and IV.
    skin_types: tuple[int, ...] = (3, 4)
    camera_jpeg_quality: tuple[int, int] = (88, 93)
    phone_jpeg_quality: tuple[int, int] = (60, 76)
    pose: Pose = field(default_factory=Pose)
    lighting: Lighting = field(default_factory=Lighting)
    optics: Optics = field(default_factory=Optics)
    confounders: Confounders = field(default_factory=Confounders)

    def __post_init__(self) -> None:
        if len(self.skin_types) < 2 or any(t not in FITZPATRICK_TONES for t in self.skin_types):
            raise ConfigError(f"skin_types needs two or more Fitzpatrick types (1-6), not {self.skin_types}")


DEFAULT_WORLD = World()

HARD_WORLD = World(
    phone_fraction=0.30,
    lesion_free_fraction=0.18,
    mel_with_hori_fraction=0.45,
    shared_pigments=True,
    skin_types=(1, 2, 3, 4, 5, 6),
    camera_jpeg_quality=(60, 95),
    phone_jpeg_quality=(35, 80),
    pose=Pose(
        centre_x=(0.32, 0.68),
        centre_y=(0.44, 0.62),
        half_height=(0.30, 0.45),
        half_height_portrait=(0.28, 0.40),
        roll=(-0.35, 0.35),
        yaw=(-0.30, 0.30),
    ),
    lighting=Lighting(
        side=(-1.2, 1.2),
        above=(-0.9, 0.3),
        ambient=(0.25, 0.50),
        exposure=(0.75, 1.10),
        warmth=(-0.10, 0.15),
        metering=0.5,
    ),
    optics=Optics(
        defocus_fraction=0.25, motion_fraction=0.15, defocus_sigma=(0.0015, 0.005), motion_length=(0.006, 0.02)
    ),
    confounders=Confounders(naevi=1.5, acne_fraction=0.35, acne=8.0, marks_fraction=0.35, marks=6.0),
)

PRESETS: Mapping[str, World] = MappingProxyType({"default": DEFAULT_WORLD, "hard": HARD_WORLD})


def preset_world(name: str) -> World:
    """The named world; an unknown name is refused with the names there are."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
