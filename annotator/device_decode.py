"""Photos decoded on the device that runs the model: nvJPEG through torchvision on a GPU, batched, resized there.

On a GPU machine the CPU decode is the limit of pre-annotation (PIL's reduced decode manages tens of 18 MP photos a
second per core, the model thousands), so JPEGs are decoded in batches by `torchvision.io.decode_jpeg` on the
GPU, shrunk there to the model's input size and turned to the displayed frame (EXIF orientation, read from the file
as `annotator.images` reads it). Whatever the device should not take (not a JPEG, CMYK, progressive, over the pixel
limit, a decode error) goes to the CPU decoder, `annotator.images.decode_displayed`, so every photo decodes as before.
The same code runs with device "cpu" (torchvision's libjpeg-turbo), which is how the tests check it without a GPU.
Every result is what `decode_displayed` returns: (RGB uint8 (H, W, 3), sx, sy), photo pixels per decoded pixel.
torchvision 0.29 marks its image decoders deprecated in favour of TorchCodec; they are what is pinned and measured.
"""

from __future__ import annotations

import io
import queue
import threading
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from annotator.config import PREDICT_DECODERS
from annotator.errors import ConfigError
from annotator.images import MAX_PIXELS, _base_format, _exif, decode_displayed, displayed_size  # the CPU path's own

if TYPE_CHECKING:
    import torch

Decoded = tuple[np.ndarray, float, float]  # (RGB uint8 (H, W, 3), sx, sy), as `decode_displayed` returns
DEVICE, PIL_DECODER = "device", "pil"  # the two decoders, as counted in `decode_stream`'s counts


def decode_device(setting: str, device: str | None) -> str | None:
    """The torch device that decodes a pipeline's photos, or None for the CPU decoder (PIL).

    setting: `[predict] decode` ("auto": on the device when the pipeline runs on a GPU, PIL on the CPU, where PIL's
    reduced decode is several times cheaper than a full decode; "pil"; "device": the pipeline's own device, the CPU
    included). device: the pipeline's ("cpu", "0", "cuda:1", None for the first GPU if any)."""
    if setting not in PREDICT_DECODERS:
        raise ConfigError(f"[predict] decode = {setting!r} is unknown; choose one of {', '.join(PREDICT_DECODERS)}")
    if setting == "pil":
        return None
    import torch

    cuda = torch.cuda.is_available()
    if device is None:
        target = "cuda:0" if cuda else "cpu"
    elif device.isdigit():
        target = f"cuda:{device}" if cuda else "cpu"
    elif device == "cpu" or device.startswith("cuda"):
        target = device if cuda or device == "cpu" else "cpu"
    else:  # mps and others: torchvision decodes JPEGs on the CPU and CUDA only
        return None
    if setting == "auto" and not target.startswith("cuda"):
        return None
    return target


def reduced_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) shrunk so the long side is max_side; unchanged when already no longer (or max_side None)."""
    long_side = max(width, height)
    if not max_side or long_side <= max_side:
        return width, height
    scale = max_side / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))


def orient(pixels: torch.Tensor, orientation: int) -> torch.Tensor:
    """The EXIF orientation transform on a (C, H, W) tensor: the stored pixels as displayed.

    Mirrors `annotator.images.apply_orientation` (PIL's transposes): 2 mirror, 3 turn 180, 4 flip, 5 transpose,
    6 turn 90 clockwise, 7 transverse, 8 turn 90 anticlockwise."""
    import torch

    h_axis, w_axis = pixels.dim() - 2, pixels.dim() - 1
    if orientation == 2:
        return pixels.flip(w_axis)
    if orientation == 3:
        return pixels.flip(h_axis, w_axis)
    if orientation == 4:
        return pixels.flip(h_axis)
    if orientation == 5:
        return pixels.transpose(h_axis, w_axis)
    if orientation == 6:
        return torch.rot90(pixels, -1, (h_axis, w_axis))
    if orientation == 7:
        return pixels.transpose(h_axis, w_axis).flip(h_axis, w_axis)
    if orientation == 8:
        return torch.rot90(pixels, 1, (h_axis, w_axis))
    return pixels


@dataclass(frozen=True)
class JpegFile:
    """A photo read into memory that the device can decode: its bytes and what the header says."""

    path: Path
    data: bytearray
    width: int  # stored
    height: int  # stored
    orientation: int


def device_refusal(data: bytes | bytearray) -> str | None:
    """Why the device decoder leaves a file to the CPU decoder (None: it takes it). Reads the header only."""
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as img:
            return _refusal(img)
    except Exception as exc:  # not a photo PIL knows, or a broken header: the CPU decoder says which
        return f"unreadable header ({type(exc).__name__})"


def _refusal(img: Image.Image) -> str | None:
    fmt = _base_format(img.format)
    if fmt != "JPEG":
        return f"{fmt} is not a JPEG"
    if img.mode not in ("RGB", "L"):  # four-channel CMYK/YCCK: PIL converts them as ingest saw them
        return f"{img.mode} JPEG"
    if img.info.get("progressive") or img.info.get("progression"):
        return "progressive JPEG"
    if getattr(img, "bits", 8) != 8:
        return f"{img.bits}-bit JPEG"
    if img.width * img.height > MAX_PIXELS:
        return "over the pixel limit"
    return None


def read_for_device(path: Path) -> JpegFile | None:
    """The file's bytes and header when the device can decode it, else None (the CPU decoder takes it)."""
    data = bytearray(path.read_bytes())  # writable, so torch.frombuffer shares it without a warning
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as img:
            if _refusal(img) is not None:
                return None
            orientation = _exif(img)[0]  # the CPU decoder's own reading of the tag, so both paths agree
            return JpegFile(path, data, img.width, img.height, orientation)
    except Exception:  # a header PIL cannot read: the CPU decoder raises the error the engine reports
        return None


def decode_on_device(files: Sequence[JpegFile], *, device: str, max_side: int | None) -> list[Decoded | None]:
    """Decode a batch on `device`, shrink each to long side max_side there, orient it, bring it to the host.

    One result per file; None where the device could not decode it (the caller hands those to the CPU decoder).
    A batch that fails as a whole (one broken file spoils nvJPEG's batch) is retried file by file."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    if not files:
        return []
    buffers = [torch.frombuffer(f.data, dtype=torch.uint8) for f in files]
    with torch.inference_mode():
        try:
            images: list[torch.Tensor | None] = list(decode_jpeg(buffers, mode=ImageReadMode.RGB, device=device))
        except RuntimeError:
            images = [_decode_one(b, device) for b in buffers]
        out: list[Decoded | None] = []
        for f, img in zip(files, images, strict=True):
            if img is None or tuple(img.shape) != (3, f.height, f.width):
                out.append(None)
                continue
            shown = orient(_shrink(img, f.width, f.height, max_side), f.orientation).permute(1, 2, 0)  # (H, W, 3)
            array = shown.contiguous().cpu().numpy()  # made contiguous where it is cheap (on a GPU, there)
            full_w, full_h = displayed_size(f.width, f.height, f.orientation)
            out.append((array, full_w / array.shape[1], full_h / array.shape[0]))
    return out


def _decode_one(buffer: torch.Tensor, device: str) -> torch.Tensor | None:
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return decode_jpeg(buffer, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        return None


def _shrink(pixels: torch.Tensor, width: int, height: int, max_side: int | None) -> torch.Tensor:
    """(3, H, W) uint8 -> (3, h, w) uint8 with the long side max_side, antialiased bilinear (as PIL's reduced decode
    averages blocks, nothing aliases); the scale is exactly photo size / array size on each axis.

    One photo at a time, in the layout the decoder gave: the CPU decoder's pixels are interleaved (channels last),
    which torch shrinks ~10x faster than planes, and stacking a batch would copy every full-size photo."""
    from torchvision.transforms.v2.functional import resize

    new_w, new_h = reduced_size(width, height, max_side)
    if (new_w, new_h) == (width, height):
        return pixels
    return resize(pixels.unsqueeze(0), [new_h, new_w], antialias=True)[0]


def decode_stream(
    paths: Sequence[Path],
    *,
    device: str,
    max_side: int | None,
    batch: int = 32,
    workers: int = 4,
    counts: Counter[str] | None = None,
) -> Iterator[Decoded | Exception]:
    """Decode every photo, in order, one result each: the decoded photo, or the exception the CPU decoder raised.

    Reader threads (`workers`) read files and headers ahead and decode what the device refuses with PIL; a producer
    thread decodes the rest in batches of `batch` on `device`, one batch ahead of the consumer, so decoding overlaps
    whatever the consumer does with the previous batch (the model). counts: adds how many photos each decoder
    ("device", "pil") decoded."""
    done = object()
    ready: queue.Queue = queue.Queue(maxsize=2)  # decoded batches waiting for the consumer
    stop = threading.Event()
    tally: Counter[str] = Counter()

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                for chunk in _read_ahead(pool, paths, max_side, batch, max(2 * batch, 4 * workers)):
                    if stop.is_set():
                        return
                    put(_finish_chunk(chunk, device=device, max_side=max_side, tally=tally))
        except BaseException as exc:  # re-raised in the consumer's thread
            put(exc)
        finally:
            put(done)

    producer = threading.Thread(target=produce, name="device-decode", daemon=True)
    producer.start()
    try:
        while (item := ready.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield from item
    finally:
        stop.set()
        producer.join()
        if counts is not None:
            counts.update(tally)


def _cpu_decode(path: Path, max_side: int | None) -> Decoded | Exception:
    try:
        return decode_displayed(path, max_side)
    except Exception as exc:  # reported per photo by the consumer, as the PIL path does
        return exc


def _prepare(path: Path, max_side: int | None) -> JpegFile | Decoded | Exception:
    """Runs in a reader thread: the file for the device, or the CPU decoder's result for a file the device refuses."""
    try:
        read = read_for_device(path)
    except OSError:
        read = None  # unreadable now: the CPU decoder raises the error the engine reports
    return read if read is not None else _cpu_decode(path, max_side)


def _read_ahead(
    pool: ThreadPoolExecutor, paths: Sequence[Path], max_side: int | None, batch: int, window: int
) -> Iterator[list[JpegFile | Decoded | Exception]]:
    """Chunks of `batch` prepared files, in order, with at most `window` files read ahead (memory stays flat)."""
    pending: deque[Future] = deque()
    it = iter(paths)
    for path in it:
        pending.append(pool.submit(_prepare, path, max_side))
        if len(pending) >= window:
            break
    chunk: list[JpegFile | Decoded | Exception] = []
    while pending:
        chunk.append(pending.popleft().result())
        nxt = next(it, None)
        if nxt is not None:
            pending.append(pool.submit(_prepare, nxt, max_side))
        if len(chunk) >= batch:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _finish_chunk(
    chunk: list[JpegFile | Decoded | Exception], *, device: str, max_side: int | None, tally: Counter[str]
) -> list[Decoded | Exception]:
    """Decode a chunk's device files in one batch; what the device could not decode goes to the CPU decoder."""
    files = {i: item for i, item in enumerate(chunk) if isinstance(item, JpegFile)}
    on_device = dict(zip(files, decode_on_device(list(files.values()), device=device, max_side=max_side), strict=True))
    out: list[Decoded | Exception] = []
    for i, item in enumerate(chunk):
        result: Decoded | Exception
        if not isinstance(item, JpegFile):  # decoded by PIL in a reader thread, or its error
            decoder, result = PIL_DECODER, item
        elif (decoded := on_device[i]) is not None:
            decoder, result = DEVICE, decoded
        else:
            decoder, result = PIL_DECODER, _cpu_decode(item.path, max_side)
        if not isinstance(result, Exception):
            tally[decoder] += 1
        out.append(result)
    return out
