"""The simulated reviewer against a real Label Studio: it takes tasks in the order the server's label
stream serves them (`/next`), and its lead times are the one time model's price of what pull sees."""

from __future__ import annotations

from dataclasses import replace

import pytest

from review_queue.effort import review_seconds
from review_queue.labelstudio.pull import pull
from review_queue.labelstudio.push import push
from review_queue.review_meta import ReviewMeta
from review_queue.reviewer import REALISTIC
from review_queue.simulate import simulate
from review_queue.status import review_status
from tests.review_queue.conftest import SCENARIO

pytestmark = pytest.mark.server

# Uncertainty grows with insertion order: the most doubtful photo is the last one pushed, so the
# server's uncertainty order is the reverse of the order tasks were created in.
REVERSED = tuple(replace(p, uncertainty=0.1 + 0.15 * i) for i, p in enumerate(SCENARIO))


def test_the_simulated_reviewer_takes_tasks_in_the_order_label_studio_serves_them(review_setup):
    s = review_setup(REVERSED)
    push(s.ws, s.client)
    tasks = s.ws.store.review.task_map()
    inserted = sorted(tasks.values())
    uncertainty_order = [tasks[p.name] for p in sorted(s.photos, key=lambda p: -p.uncertainty)]
    assert uncertainty_order == inserted[::-1]  # the set is built so insertion order cannot pass
    first = simulate(s.ws, s.client, count=2)
    assert first.task_ids == uncertainty_order[:2]
    rest = simulate(s.ws, s.client, count=len(s.photos))  # the stream continues where it stopped
    assert rest.task_ids == uncertainty_order[2:]


@pytest.mark.parametrize("profile", [None, REALISTIC], ids=["careful", "realistic"])
def test_simulated_lead_times_are_the_time_model_of_the_pulled_edits(review_setup, profile):
    s = review_setup()
    push(s.ws, s.client)
    # careful: the default, as every other test uses it; realistic: reads each photo to judge its lesions
    reviewer = {"profile": profile, "seed": 3} if profile else {}
    simulated = simulate(s.ws, s.client, count=len(s.photos), **reviewer)
    pull(s.ws, s.client)
    sizes = {p.name: (p.width, p.height) for p in s.photos}
    for photo in s.photos:
        version = s.ws.store.labels.current_label(photo.name)
        assert version.meta["lead_time"] == pytest.approx(
            review_seconds(ReviewMeta.from_dict(version.meta).operations or (), *sizes[photo.name]), abs=0.01
        ), photo.name
    effort = review_status(s.ws).corrections.effort
    assert effort.photos == len(s.photos)
    assert effort.reviewer_seconds == pytest.approx(simulated.lead_time_s, abs=0.05)


def test_a_photo_without_ground_truth_is_postponed_and_the_rest_is_reviewed(review_setup):
    s = review_setup(REVERSED)
    (s.folder / "truth" / "p5.xml").unlink()  # the most uncertain photo, served first
    push(s.ws, s.client)
    result = simulate(s.ws, s.client, count=len(s.photos))
    assert result.missing_truth == ["p5.jpg"] and result.annotated == len(s.photos) - 1
    pull(s.ws, s.client)
    status = review_status(s.ws)
    assert (status.reviewed, status.remaining) == (len(s.photos) - 1, 1)
