"""The effort model fitted to measured review times recovers the times that made them, says how sure it is,
and leaves simulated reviews (whose times are the model's own) out."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.types import Box, LabelVersion, Source
from bootstrap.measured_effort import fit_effort, measured_by_group, timed_reviews
from review_queue.edits import EditKind, EditOp
from review_queue.review_meta import ReviewMeta

TRUE_SECONDS = {"look": 4.0, "verify": 1.5, "adjust": 9.0, "relabel": 4.0, "delete": 2.5, "draw": 20.0}


def _review(i: int, counts: dict[EditKind, int], seconds: float, simulated: bool = False) -> LabelVersion:
    ops = tuple(
        EditOp(
            kind, f"r{i}-{kind.value}-{n}", None if kind is EditKind.ADDED else "mel", "mel", None, False, None, None
        )
        for kind, count in counts.items()
        for n in range(count)
    )
    meta = ReviewMeta(lead_time=seconds, operations=ops, simulated=simulated)
    return LabelVersion(f"p{i}.jpg", Source.REVIEWED, (Box("mel", 0, 0, 10, 10),), meta=meta.to_dict())


def _workload(n: int, seed: int = 0, simulated: bool = False) -> list[LabelVersion]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        counts = {k: int(rng.poisson(1.2)) for k in EditKind}
        seconds = TRUE_SECONDS["look"] + sum(TRUE_SECONDS[k.action] * c for k, c in counts.items())
        out.append(_review(i, counts, seconds + float(rng.normal(0, 1.5)), simulated))
    return out


def test_the_fit_recovers_the_per_action_times_within_its_intervals():
    fit = fit_effort(timed_reviews(_workload(300)), resamples=200)
    assert fit is not None and fit.reviews == 300
    for action in fit.actions:
        assert action.seconds == pytest.approx(TRUE_SECONDS[action.action], abs=1.0), action
        lo, hi = action.interval
        assert lo <= TRUE_SECONDS[action.action] + 0.5 and hi >= TRUE_SECONDS[action.action] - 0.5, action
    assert any("model: 7-35 by size" in line for line in fit.lines())


def test_simulated_reviews_are_left_out_and_too_few_reviews_give_no_fit():
    versions = _workload(40, simulated=True)
    assert timed_reviews(versions) == []
    assert len(timed_reviews(versions, include_simulated=True)) == 40
    assert fit_effort(timed_reviews(_workload(10))) is None


def test_measured_seconds_are_grouped_by_what_the_reviewer_did():
    versions = [
        _review(0, {EditKind.ACCEPTED: 2}, 8.0),
        _review(1, {EditKind.ACCEPTED: 1}, 6.0),
        _review(2, {EditKind.MOVED: 1}, 15.0),
        _review(3, {EditKind.ADDED: 1, EditKind.ACCEPTED: 1}, 30.0),
    ]
    groups = {g.group: (g.photos, g.mean_seconds) for g in measured_by_group(timed_reviews(versions))}
    assert groups == {"verified only": (2, 7.0), "changed predicted boxes": (1, 15.0), "drew a missed box": (1, 30.0)}


def _timed(i: int, boxes: int, seconds: float, *, control: bool, round_no: int = 0) -> LabelVersion:
    ops = () if control else (EditOp(EditKind.ACCEPTED, f"r{i}", "mel", "mel", None, False, None, None),)
    meta = ReviewMeta(lead_time=seconds, operations=None if control else ops, arm="control" if control else None)
    box = Box("mel", 0, 0, 10, 10)
    return LabelVersion(f"p{i}.jpg", Source.REVIEWED, (box,) * boxes, round=round_no, meta=meta.to_dict())


def test_the_arms_are_compared_on_photos_with_the_same_box_count():
    from bootstrap.measured_effort import compare_arms

    # reviewing costs half of drawing in every stratum, but the control arm drew mostly 3-box photos:
    # a plain mean would say 0.27, the stratified ratio says 0.5
    versions = [_timed(i, 1, 10.0, control=False) for i in range(30)]
    versions += [_timed(100 + i, 1, 20.0, control=True) for i in range(3)]
    versions += [_timed(200 + i, 3, 60.0, control=True) for i in range(27)]
    versions += [_timed(300 + i, 3, 30.0, control=False) for i in range(2)]
    result = compare_arms(versions, resamples=200)
    assert result.ratio == pytest.approx(0.5) and result.interval == pytest.approx((0.5, 0.5))
    assert (result.reviewed_photos, result.control_photos) == (32, 30)
    assert "ratio 0.50" in result.line()
    assert compare_arms(versions[:30]).line().endswith("none (no stratum has photos of both arms yet)")


def test_each_arms_reviews_are_compared_with_the_settled_label_and_two_reviewers_give_the_baseline(tmp_path):
    from annotator.config import Config
    from annotator.store import Workspace
    from annotator.types import ImageRecord
    from bootstrap.measured_effort import arm_agreement, reviewer_disagreement
    from review_queue.review_meta import Settled, SettleKind

    (tmp_path / "images").mkdir()
    ws = Workspace.create(tmp_path / "ws", Config(images=tmp_path / "images"))
    lesion, other = Box("mel", 10, 10, 40, 40), Box("hori", 60, 60, 90, 90)
    for i, (arm, a_boxes, b_boxes) in enumerate(
        [(None, (lesion,), (lesion, other)), ("control", (lesion, other), (lesion, other))]
    ):
        photo = f"p{i}.jpg"
        ws.store.labels.add_image(ImageRecord(path=photo, sha256=str(i), width=100, height=100))
        ids = []
        for who, boxes in (("a@x", a_boxes), ("b@x", b_boxes)):
            meta = ReviewMeta(project_id=None, annotation_id=10 * i + len(ids), arm=arm, operations=None if arm else ())
            version = LabelVersion(photo, Source.REVIEWED, boxes, reviewer=who, meta=meta.to_dict())
            ids.append(ws.store.labels.add_label_version(version))
        settled = ReviewMeta(settled=Settled(SettleKind.ADJUDICATED, tuple(ids), ("a@x", "b@x"), 0.5))
        ws.store.labels.add_label_version(
            LabelVersion(photo, Source.REVIEWED, (lesion, other), reviewer="adj@x", meta=settled.to_dict())
        )
    agreement = arm_agreement(ws)
    assert (agreement.reviewed.photos, agreement.reviewed.fn) == (2, 1), "reviewer a missed one lesion"
    assert (agreement.control.photos, agreement.control.f1) == (2, 1.0)
    assert reviewer_disagreement(ws) == (1, 2)
    ws.close()
