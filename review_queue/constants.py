"""The review queue's tunables, each named once with why it has its value: the two IoU rules every
module of the package (pull's diff, the simulated reviewer, double review) and the CLI read."""

from __future__ import annotations

# A kept predicted box this close to the reviewed one (same class) was accepted, not moved: about the
# agreement of two people boxing the same lesion. The one rule of "changed" (review_queue.edits.EditKind).
ACCEPT_IOU = 0.7

# Two boxes on the same lesion (mAP's match): pairs predicted with reviewed regions, the simulated
# reviewer's boxes with the truth, and two reviewers' boxes.
MATCH_IOU = 0.5

# ---- the simulated reviewer (review_queue.reviewer) ----

# How faint a lesion is (lesion_contrast): the skin is a ring around its box this share of the box's longer
# side wide (at least CONTRAST_RING_MIN_PX), the lesion the darkest CONTRAST_DARK_PERCENTILE% of its box (a
# freckle cluster's dots cover a small share of their box; a low percentile still lands on them).
CONTRAST_RING = 0.25
CONTRAST_RING_MIN_PX = 2
CONTRAST_DARK_PERCENTILE = 5.0
# Photos are decoded for contrast by JPEG DCT scaling down to no less than this long side: an 18 MP photo at
# half size (a quarter of the decode), where a 5-px freckle is still dots, not one blurred pixel.
CONTRAST_MAX_SIDE = 1600

# Seeded draws the edge SD is fitted on (review_queue.reviewer.edge_sd): the fitted median IoU is within
# about 0.002 of its target at this count.
EDGE_FIT_SAMPLES = 20_001
