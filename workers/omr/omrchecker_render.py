"""Draw a blank sheet for a template converted from OMRChecker (markers from its picture).

render.py draws this project's solid squares; a converted OMRChecker template instead
shows its marker picture in all four corners, centred on the corners of the
pageDimensions frame. Bubbles are drawn as render.py draws them, so a printed test sheet
and a reading of it agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workers.omr.render import OUTLINE, render_sheet
from workers.omr.template import Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def render_marker_sheet(template: Template) -> npt.NDArray[np.uint8]:
    """The blank sheet, template.width x template.height, grey 0..255."""
    import cv2
    import numpy as np

    info = template.marker_image
    if info is None:
        return render_sheet(template)
    page = np.full((template.height, template.width), 255, np.uint8)
    picture = cv2.imdecode(np.frombuffer(info.data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if picture is None:
        raise ValueError("the template's marker image cannot be decoded")
    w, h = max(1, round(info.width)), max(1, round(info.height))
    marker = cv2.resize(picture, (w, h), interpolation=cv2.INTER_AREA)
    for cx, cy in template.marker_centres:
        x0, y0 = round(cx - w / 2), round(cy - h / 2)
        page[y0 : y0 + h, x0 : x0 + w] = marker
    r = template.bubble_radius
    thick = max(1, round(r / 9))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for f in template.fields:
        for value, (x, y) in zip(f.values, f.centres, strict=True):
            cv2.circle(page, (round(x), round(y)), round(r), OUTLINE, thick, cv2.LINE_AA)
            (tw, th), _ = cv2.getTextSize(value, font, r * 0.03, 1)
            cv2.putText(page, value, (round(x - tw / 2), round(y + th / 2)), font, r * 0.03, 175, 1, cv2.LINE_AA)
    return page


def marker_sheet_png(template: Template) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", render_marker_sheet(template))
    if not ok:  # pragma: no cover - encoding a valid uint8 image does not fail
        raise RuntimeError("PNG encoding failed")
    return bytes(buf)
