"""Draw a blank printable sheet from a template (PNG or PDF).

The drawing is deliberately plain: solid black corner markers (the top-left one hollow,
so the reader can tell which way up a scan is), grey bubble outlines with their value
printed lightly inside, and black question numbers well clear of the bubbles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workers.omr.pdf import image_to_pdf
from workers.omr.template import Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# Grey levels on a 0..255 page. The outline is dark enough to find on a poor scan;
# the value inside is light, as on printed sheets, so it barely darkens an empty bubble.
OUTLINE = 90
INSIDE_TEXT = 175
FONT_SCALE_PER_RADIUS = 0.030


def hole_size(template: Template) -> int:
    """Side of the white square punched in the top-left marker."""
    return max(3, round(template.marker_size * 0.44))


def render_sheet(template: Template) -> npt.NDArray[np.uint8]:
    """The blank sheet as a greyscale image, template.width x template.height."""
    import cv2
    import numpy as np

    page = np.full((template.height, template.width), 255, np.uint8)
    s = template.marker_size
    for i, (cx, cy) in enumerate(template.marker_centres):
        x0, y0 = round(cx - s / 2), round(cy - s / 2)
        cv2.rectangle(page, (x0, y0), (x0 + s - 1, y0 + s - 1), 0, -1)
        if i == 0:
            h = hole_size(template)
            hx, hy = round(cx - h / 2), round(cy - h / 2)
            cv2.rectangle(page, (hx, hy), (hx + h - 1, hy + h - 1), 255, -1)
    r = template.bubble_radius
    if template.title:
        _text(page, template.title, (template.width / 2, template.marker_centres[0][1]), 1.1, 0, 2)
    thick = max(1, round(r / 9))
    for f in template.fields:
        for value, (x, y) in zip(f.values, f.centres, strict=True):
            cv2.circle(page, (round(x), round(y)), round(r), OUTLINE, thick, cv2.LINE_AA)
            _text(page, value, (x, y), r * FONT_SCALE_PER_RADIUS, INSIDE_TEXT, 1)
    for q in template.questions:
        x, y = q.centres[0]
        _text(page, q.label, (x - 2.6 * r, y), r * 0.04, 0, 2)
    if template.id_fields:
        first = template.id_fields[0].centres[0]
        last = template.id_fields[-1].centres[0]
        # Write-in boxes above the grid, then a caption above them.
        for f in template.id_fields:
            x, y = f.centres[0]
            cv2.rectangle(page, (round(x - r), round(y - 3.4 * r)), (round(x + r), round(y - 1.6 * r)), 0, 1)
        _text(page, "STUDENT ID", ((first[0] + last[0]) / 2, first[1] - 4.3 * r), r * 0.04, 0, 2)
    return page


def _text(
    page: npt.NDArray[np.uint8], text: str, centre: tuple[float, float], scale: float, grey: int, thick: int
) -> None:
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    (w, h), _ = cv2.getTextSize(text, font, scale, thick)
    org = (round(centre[0] - w / 2), round(centre[1] + h / 2))
    cv2.putText(page, text, org, font, scale, grey, thick, cv2.LINE_AA)


def sheet_png(template: Template) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", render_sheet(template))
    if not ok:  # pragma: no cover - encoding a valid uint8 image does not fail
        raise RuntimeError("PNG encoding failed")
    return bytes(buf)


def sheet_pdf(template: Template) -> bytes:
    """A one-page PDF whose page is the template's page at its reference DPI."""
    return image_to_pdf(render_sheet(template), template.dpi)


def filled_sheet_jpeg(template: Template, *, student_id: str, answers: dict[str, str], quality: int = 85) -> bytes:
    """A sheet marked with solid fills and saved as a scanner would: for demos and tests.

    ``answers`` maps a question label to one of its values; unlisted questions stay blank.
    """
    import cv2

    page = render_sheet(template)
    radius = round(template.bubble_radius * 0.8)

    def fill(centre: tuple[float, float]) -> None:
        cv2.circle(page, (round(centre[0]), round(centre[1])), radius, 30, thickness=-1)

    for digit_field, digit in zip(template.id_fields, student_id, strict=True):
        fill(digit_field.centres[digit_field.values.index(digit)])
    for question in template.questions:
        if question.label in answers:
            fill(question.centres[question.values.index(answers[question.label])])
    ok, jpeg = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - encoding a valid uint8 image does not fail
        raise RuntimeError("JPEG encoding failed")
    return bytes(jpeg)
