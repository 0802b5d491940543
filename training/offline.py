"""Make Ultralytics run with no network, ever (see shared notes: every access and its switch).

Must run before the first `import ultralytics`: `prepare_ultralytics(cache_dir)` sets the
environment, places the fonts it would otherwise download, turns off sync and every
integration, replaces the AMP self-check (which downloads a model) with a no-op, and undoes
Ultralytics' patch of PIL.Image.open (which would pip-install a HEIF plugin on an unreadable photo).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

_prepared: Path | None = None
_INTEGRATIONS = ("clearml", "comet", "dvc", "hub", "mlflow", "neptune", "raytune", "tensorboard", "wandb")


def default_cache_dir() -> Path:
    return Path(os.environ.get("ANNOTATOR_CACHE", Path.home() / ".cache" / "annotator"))


def prepare_ultralytics(cache_dir: Path | None = None) -> Path:
    """Idempotent. Returns the Ultralytics config dir in use."""
    global _prepared
    if _prepared is not None:
        return _prepared
    cache_dir = (cache_dir or default_cache_dir()).resolve()
    config_dir = cache_dir / "ultralytics"
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("YOLO_VERBOSE", "false")
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ.setdefault("MPLCONFIGDIR", str(cache_dir / "matplotlib"))
    fonts = config_dir / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (fonts / name).exists():
            shutil.copyfile(dejavu, fonts / name)

    from PIL import Image
    from ultralytics.utils import SETTINGS, patches

    # Importing Ultralytics replaces PIL.Image.open with a wrapper that, on the first photo PIL cannot
    # identify, pip-installs pi-heif (a network access) and changes how every later photo is read:
    # ingest would then misreport a corrupt photo, or a HEIC one, differently once a model was loaded.
    # Put PIL's own back; a photo PIL cannot read is reported by ingest, never fetched a plugin for.
    Image.open = getattr(patches, "_image_open", Image.open)  # the original Ultralytics saved before patching

    SETTINGS.update({"sync": False, **{k: False for k in _INTEGRATIONS if k in SETTINGS}})
    import ultralytics.engine.trainer as trainer

    trainer.check_amp = lambda *args, **kwargs: True  # the real check downloads yolo26n.pt
    _prepared = config_dir
    return config_dir
