"""The review picture: the sheet straightened into the template frame, marks drawn on.

Green rings are bubbles read as marked; an orange box surrounds each field that needs a
person (and its marked bubbles are drawn orange too, so a glance shows both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from workers.omr.reader import SheetReading
from workers.omr.template import Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

GREEN: Final = (40, 170, 40)  # BGR
ORANGE: Final = (0, 140, 255)
SCALE: Final = 0.5  # half the reference DPI keeps the PNG small and still legible


def overlay_png(gray: npt.NDArray[np.uint8], template: Template, reading: SheetReading, scale: float = SCALE) -> bytes:
    import cv2
    import numpy as np

    to_overlay = np.diag([scale, scale, 1.0])
    # overlay pixel -> template pixel -> image pixel
    m = reading.alignment.homography @ np.linalg.inv(to_overlay)
    size = (round(template.width * scale), round(template.height * scale))
    flat = cv2.warpPerspective(gray, m, size, flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP, borderValue=255)
    canvas = cv2.cvtColor(flat, cv2.COLOR_GRAY2BGR)
    r = template.bubble_radius * scale
    fields = {f.label: f for f in template.fields}
    for fr in reading.id_digits + reading.questions:
        f = fields[fr.label]
        colour = ORANGE if fr.review else GREEN
        for value, (x, y) in zip(f.values, f.centres, strict=True):
            if value in fr.values:
                cv2.circle(canvas, (round(x * scale), round(y * scale)), round(r + 2), colour, 2, cv2.LINE_AA)
        if fr.review:
            (x0, y0), (x1, y1) = f.centres[0], f.centres[-1]
            p0 = (round(x0 * scale - 1.5 * r), round(y0 * scale - 1.5 * r))
            p1 = (round(x1 * scale + 1.5 * r), round(y1 * scale + 1.5 * r))
            cv2.rectangle(canvas, p0, p1, ORANGE, 2)
    ok, buf = cv2.imencode(".png", canvas, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    return bytes(buf)
