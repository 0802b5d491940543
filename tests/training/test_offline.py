"""Loading Ultralytics must not change how the rest of the tool reads photos, nor reach the network."""

from __future__ import annotations

import io

import pytest
from PIL import Image, UnidentifiedImageError

from training.offline import prepare_ultralytics


def test_after_ultralytics_is_loaded_an_unreadable_photo_is_refused_by_pil_itself(monkeypatch):
    prepare_ultralytics()
    import ultralytics.utils.checks as checks
    import ultralytics.utils.patches  # noqa: F401  (the module that patches PIL on import)

    monkeypatch.setattr(
        checks, "check_requirements", lambda *a, **k: pytest.fail(f"Ultralytics tried to install {a}: a network access")
    )
    assert Image.open.__module__ == "PIL.Image", "Ultralytics' PIL.Image.open wrapper is still in place"
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(b"not a photo at all" * 10))
