"""Synthetic clinical face photos of the six pigmented-lesion classes, with ground-truth VOC boxes
(SIMULATED data, for the demo, the tests and the benchmarks).

Output layout (`generate(out, ...)`):
    out/images/synth_000000.jpg   the photos (EXIF Make/Model; some phone photos stored rotated, orientation 6)
    out/labels/synth_000000.xml   labelImg VOC for the labelled fraction only (the "seed set")
    out/truth/synth_000000.xml    labelImg VOC for every photo (the ground truth)
VOC boxes and <size> always refer to the photo as displayed (EXIF orientation applied).

By what each module draws (drawing is vectorised numpy at a reduced resolution; PIL upscales, adds
grain and encodes):
    dataset.py      the data set on disk: labelled photos, workers, one photo's steps, the files written
    world.py        what the photos vary over (devices, cards, class mix, skin types, pose, light, blur,
                    JPEG quality, confounders) and the named worlds, `PRESETS` ("default", "hard")
    streams.py      the random generators of one photo (the default world's, and one per added feature)
    camera.py       device and size, colour cast, blur, upscale, sensor grain, EXIF, JPEG
    scene.py        face placement and pose, backdrop, exposure, the case-number card
    face.py         face, neck and hair; eyes, brows, nostrils, mouth; skin, lighting
    lesions.py      the six lesion classes and the rule that boxes them
    confounders.py  marks that are not targets and are never boxed: moles, acne, post-inflammatory marks
    canvas.py       the shared primitives: face frame, lesion layers, ellipses, dots, smooth noise
The worlds and their ranges: docs/synthetic-worlds.md.
"""

from annotator.synthetic.camera import CAMERAS, PHONE_SIZES, PHONES, SIZES
from annotator.synthetic.dataset import SynthSummary, generate
from annotator.synthetic.world import (
    DEFAULT_WORLD,
    FITZPATRICK_TONES,
    HARD_WORLD,
    PRESETS,
    Confounders,
    Lighting,
    Optics,
    Pose,
    World,
    preset_world,
)

__all__ = [
    "CAMERAS",
    "DEFAULT_WORLD",
    "FITZPATRICK_TONES",
    "HARD_WORLD",
    "PHONES",
    "PHONE_SIZES",
    "PRESETS",
    "SIZES",
    "Confounders",
    "Lighting",
    "Optics",
    "Pose",
    "SynthSummary",
    "World",
    "generate",
    "preset_world",
]
