"""The training package's tunables, each named once with why it has its value. Import them; never retype the literal.

Two score floors, for two jobs: what a prediction keeps for the people and scores downstream (PREDICT_FLOOR), and
what an mAP evaluation keeps (EVAL_CONF, lower, so the precision-recall curve runs to its end).
"""

from __future__ import annotations

# Predictions keep boxes down to this score: pre-annotation's uncertainty score reads the near-threshold boxes, and the
# val split's per-class thresholds are chosen among them (training.thresholds), so both see the same boxes.
PREDICT_FLOOR = 0.01

# The score floor for mAP (COCO's convention: keep nearly every box, so the whole precision-recall curve is measured).
# Used by the benchmark, the round's test split and the torchvision detector's own validation alike.
EVAL_CONF = 0.001

# A predicted box matches a truth box of its class at IoU >= this (the study's rule, and COCO's mAP50).
MATCH_IOU = 0.5

# Percentile bootstrap intervals over photos: how many resamples, and the interval's level.
BOOTSTRAP_RESAMPLES = 1000
INTERVAL_LEVEL = 0.95

# The label audit (training.label_quality): a box whose cleanlab per-box score (overlooked, swapped class, badly
# located) is below this is reported as that issue. 0.5 is halfway on cleanlab's [0, 1] scale: for a badly located
# box, about IoU 0.5 with the model's confident box of its class (the match rule above).
LABEL_ISSUE_BOX_SCORE = 0.5

# The model's suggestion shown beside a flagged label (report, Label Studio prediction): its boxes from this score.
SUGGESTION_SCORE = 0.25

# A detector trained under the benchmark's protocol whose best validation mAP50 stayed below this did not learn in its
# budget: the report says so instead of ranking it. A model that learnt nothing scores about 0 (its boxes rarely meet
# a small lesion at IoU 0.5); 0.05 is far above that and far below any model worth a row of Table 1.
LEARNED_VAL_MAP50 = 0.05
