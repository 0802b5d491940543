"""The review queue's tunables, each named once with why it has its value: the two IoU rules every
module of the package (pull's diff, the simulated reviewer, double review) and the CLI read."""

from __future__ import annotations

# A kept predicted box this close to the reviewed one (same class) was accepted, not moved: about the
# agreement of two people boxing the same lesion. The one rule of "changed" (review_queue.edits.EditKind).
ACCEPT_IOU = 0.7

# Two boxes on the same lesion (mAP's match): pairs predicted with reviewed regions, the simulated
# reviewer's boxes with the truth, and two reviewers' boxes.
MATCH_IOU = 0.5
