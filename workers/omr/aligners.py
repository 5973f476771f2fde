"""The registry of aligners: how a sheet is found in a picture, by ``Template.alignment.kind``.

Contract of an aligner (one function per kind)::

    def align_xxx(gray, template, *, photo: bool) -> Alignment | Sequence[Alignment]

- ``gray``: the picture as a 2-D uint8 array in which the sheet's print shows (the
  reader passes greyscale; colour stays with the reader, which picks its own channels
  for reading marks);
- ``template``: the :class:`~workers.omr.template.Template`; kind-specific settings are in
  ``template.alignment.options`` (and ``template.marker_image`` for marker pictures);
- ``photo``: the picture is a phone photo (perspective, desk around the sheet, shadows);
- returns :class:`~workers.omr.align.Alignment`: ``homography`` maps template pixels to
  image pixels, ``rotation`` is how far the sheet is turned (clockwise degrees, a multiple
  of 90), ``scale`` image pixels per template pixel, ``ink`` / ``paper`` the grey of the
  darkest print and of the paper near it.
- When the sheet itself cannot tell which way up it lies (four identical markers, bare
  page edges), return every candidate turn that fits the template's aspect, most likely
  first; the reader keeps the one the template's bubble layout fits best
  (``workers.omr.layout.pick_orientation``). A single Alignment means "this is it".
- Raise ``OmrError`` (``NO_SHEET_FOUND``, ``TEMPLATE_MISMATCH``, ``RESOLUTION_TOO_LOW``...)
  when no sheet of this template is found; never return a guess.

The reader then finds each block's printed bubbles near where the alignment puts them
(``workers.omr.layout``), so an aligner needs to be right to about a third of a bubble,
not to the pixel.

Registering: decorate the function with ``@aligner_register("kind")`` in its module and
name that module in ``ALIGNER_MODULES`` (one line), which is imported on first use so
that importing the reader stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar

from workers.omr.errors import TEMPLATE_INVALID, OmrError

if TYPE_CHECKING:
    from workers.omr.align import Alignment

AlignerResult: TypeAlias = "Alignment | Sequence[Alignment]"
Aligner: TypeAlias = Callable[..., Any]
_F = TypeVar("_F", bound=Aligner)

#: kind -> module that registers its aligner when imported.
ALIGNER_MODULES: Final[dict[str, str]] = {
    "markers": "workers.omr.align",
    "page": "workers.omr.page_align",
    "none": "workers.omr.page_align",
    "reference": "workers.omr.feature_align",
    "timing": "workers.omr.timing_align",
    "zones": "workers.omr.zone_align",
}

_REGISTRY: dict[str, Aligner] = {}


def aligner_register(kind: str) -> Callable[[_F], _F]:
    """Decorator: ``fn`` aligns sheets whose template says ``alignment.kind == kind``."""

    def add(fn: _F) -> _F:
        _REGISTRY[kind] = fn
        return fn

    return add


def aligner_get(kind: str) -> Aligner:
    """The aligner for ``kind``; ``OmrError(TEMPLATE_INVALID)`` when there is none."""
    fn = _REGISTRY.get(kind)
    if fn is None and kind in ALIGNER_MODULES:
        importlib.import_module(ALIGNER_MODULES[kind])
        fn = _REGISTRY.get(kind)
    if fn is None:
        raise OmrError(TEMPLATE_INVALID, f"alignment.kind {kind!r}: this reader has no aligner for it")
    return fn
