"""The image filters an OMRChecker template may ask for: Levels, GaussianBlur, MedianBlur.

OMRChecker runs them, in the template's order, on the picture scaled to the processing
width of config.json (``dimensions.processing_width``, 666 px by default). This reader
works on the picture at its own size, so a blur's kernel is scaled by picture width /
processing width (kept odd) and means the same amount of blur on the sheet. Levels maps
grey levels and does not depend on size:

- ``Levels`` {low, high, gamma}: grey below low x 255 becomes black, above high x 255
  white, between them ((v - low) / (high - low)) ** (1 / gamma) x 255;
- ``GaussianBlur`` {kSize: [w, h], sigmaX} (defaults [3, 3], 0);
- ``MedianBlur`` {kSize} (default 5).

A filter is kept as a small frozen record (:class:`Filter`) so a Template can carry them
and be compared and cached.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from workers.omr.errors import TEMPLATE_INVALID, OmrError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from workers.omr.template import Template

NAMES: Final = ("Levels", "GaussianBlur", "MedianBlur")
DEFAULT_PROCESSING_WIDTH: Final = 666


@dataclass(frozen=True)
class Filter:
    name: str  # one of NAMES
    #: Levels: (low, high, gamma); GaussianBlur: (kw, kh, sigmaX); MedianBlur: (k,).
    params: tuple[float, ...]


def parse_filter(name: str, options: object, where: str) -> Filter:
    """One preprocessor entry as a Filter; TEMPLATE_INVALID naming the setting when it is
    not usable."""
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise _invalid(f"{where}.options: must be an object")
    if name == "Levels":
        low = _num(options, "low", 0.0, 0.0, 1.0, where)
        high = _num(options, "high", 1.0, 0.0, 1.0, where)
        gamma = _num(options, "gamma", 1.0, 0.01, 100.0, where)
        if int(255 * high) <= int(255 * low):
            raise _invalid(f"{where}.options: high ({high:g}) must be above low ({low:g})")
        return Filter(name, (low, high, gamma))
    if name == "GaussianBlur":
        size = options.get("kSize", [3, 3])
        if not isinstance(size, list) or len(size) != 2:
            raise _invalid(f"{where}.options.kSize: must be [width, height]")
        kw = _odd_size(size[0], f"{where}.options.kSize[0]", allow_zero=True)
        kh = _odd_size(size[1], f"{where}.options.kSize[1]", allow_zero=True)
        sigma = _num(options, "sigmaX", 0.0, 0.0, 100.0, where)
        if kw == 0 and kh == 0 and sigma == 0:
            raise _invalid(f"{where}.options: kSize 0 needs a sigmaX above 0")
        return Filter(name, (float(kw), float(kh), sigma))
    if name == "MedianBlur":
        return Filter(name, (float(_odd_size(options.get("kSize", 5), f"{where}.options.kSize")),))
    raise _invalid(f"{where}: {name!r} is not a filter")


def apply_filters(
    gray: npt.NDArray[np.uint8], filters: Sequence[Filter], *, processing_width: int = DEFAULT_PROCESSING_WIDTH
) -> npt.NDArray[np.uint8]:
    """``gray`` run through ``filters`` in order, at this picture's size (see above)."""
    import cv2
    import numpy as np

    if not filters:
        return gray
    zoom = max(1.0, gray.shape[1] / max(processing_width, 1))
    out = gray
    for f in filters:
        if f.name == "Levels":
            out = np.asarray(cv2.LUT(out, levels_table(*f.params)), np.uint8)
        elif f.name == "GaussianBlur":
            kw, kh, sigma = f.params
            size = (_scaled(kw, zoom), _scaled(kh, zoom))
            out = np.asarray(cv2.GaussianBlur(out, size, sigma * zoom), np.uint8)
        elif f.name == "MedianBlur":
            out = np.asarray(cv2.medianBlur(out, _scaled(f.params[0], zoom)), np.uint8)
    return np.asarray(out, np.uint8)


def levels_table(low: float, high: float, gamma: float) -> npt.NDArray[np.uint8]:
    """The 256-entry grey map of Levels (black point, white point, gamma)."""
    import numpy as np

    lo, hi = int(255 * low), int(255 * high)
    v = np.arange(256, dtype=np.float64)
    mid = np.clip((v - lo) / max(hi - lo, 1), 0, 1) ** (1.0 / gamma) * 255
    table = np.where(v <= lo, 0.0, np.where(v >= hi, 255.0, mid))
    return np.asarray(table, np.uint8)


def _scaled(k: float, zoom: float) -> int:
    if k == 0:
        return 0  # derived from sigma by OpenCV
    n = max(1, round(k * zoom))
    return n if n % 2 else n + 1


def _num(options: Mapping[str, Any], key: str, default: float, lo: float, hi: float, where: str) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _invalid(f"{where}.options.{key}: must be a number")
    if not lo <= value <= hi:
        raise _invalid(f"{where}.options.{key}: must be between {lo:g} and {hi:g}")
    return float(value)


def _odd_size(value: object, where: str, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise _invalid(f"{where}: must be a whole number")
    n = int(value)
    if allow_zero and n == 0:
        return 0
    if not 1 <= n <= 99 or n % 2 == 0:
        raise _invalid(f"{where}: must be an odd number from 1 to 99")
    return n


def _invalid(message: str) -> OmrError:
    return OmrError(TEMPLATE_INVALID, message)


def template_filters(gray: npt.NDArray[np.uint8], template: Template) -> npt.NDArray[np.uint8]:
    """``gray`` through the filters a template carries in ``alignment.options["filters"]``
    (an imported OMRChecker template), at the processing width it names."""
    options = template.alignment.options
    filters = options.get("filters") or ()
    width = int(options.get("processing_width", DEFAULT_PROCESSING_WIDTH))
    return apply_filters(gray, filters, processing_width=width)
