"""Synthetic answer sheets with ground truth, for the accuracy tests and benchmarks.

Sheets are rendered from a template, then filled the way students fill them (solid
marks, scribbles, partial fills, light pencil, erasures with a new mark, double marks,
blanks, stray pencil on the page) and degraded the way scanners degrade them (a few
degrees of rotation, scale, shift, blur, noise, JPEG down to quality 30, low contrast,
upside down). Everything comes from one seeded ``random.Random`` so a failure can be
replayed from its seed.

Pencil is modelled as multiplying the page by (1 - darkness * coverage), with a grainy
coverage mask; an erasure leaves a small fraction of a mark's darkness, smeared.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from workers.omr.render import render_sheet
from workers.omr.template import Template

Page = npt.NDArray[np.float32]

SINGLE_STYLES = (("solid", 0.68), ("scribble", 0.15), ("partial", 0.11), ("light", 0.06))
#: (kind, weight) of what a student does on one question.
QUESTION_KINDS = (
    ("single", 0.85),
    ("blank", 0.035),
    ("double", 0.03),
    ("erased_remark", 0.07),
    ("erased_blank", 0.015),
)


@dataclass
class Truth:
    student_id: str
    answers: dict[str, tuple[str, ...]]
    kinds: dict[str, str] = field(default_factory=dict)
    upside_down: bool = False


@dataclass
class Sheet:
    name: str
    data: bytes
    truth: Truth


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


def _mark_mask(rng: random.Random, r: float, style: str) -> npt.NDArray[np.float32]:
    """Coverage (0..1) of one pencil mark on a (2R+1)^2 patch centred on the bubble."""
    size = math.ceil(r * 1.5)
    n = 2 * size + 1
    canvas = np.zeros((n, n), np.uint8)
    c = (size + rng.uniform(-0.1, 0.1) * r, size + rng.uniform(-0.1, 0.1) * r)
    shift = 4  # draw with 1/16 px precision

    def pt(x: float, y: float) -> tuple[int, int]:
        return (round(x * 16), round(y * 16))

    if style in ("solid", "light"):
        cv2.circle(canvas, pt(*c), round(r * rng.uniform(0.85, 1.05) * 16), 255, -1, cv2.LINE_AA, shift)
    elif style == "scribble":
        x, y = c[0] - r * 0.8, c[1] - r * 0.8
        for i in range(rng.randint(9, 14)):
            # Back and forth across the bubble, working down it.
            side = 1 if i % 2 == 0 else -1
            nx = c[0] + side * rng.uniform(0.5, 0.95) * r
            ny = y + rng.uniform(0.12, 0.3) * r
            cv2.line(canvas, pt(x, y), pt(nx, ny), 255, max(2, round(r / 3)), cv2.LINE_AA, shift)
            x, y = nx, ny
            if y > c[1] + 0.8 * r:
                y = c[1] - 0.8 * r
    elif style == "partial":
        if rng.random() < 0.5:  # the middle only
            cv2.circle(canvas, pt(*c), round(r * rng.uniform(0.72, 0.85) * 16), 255, -1, cv2.LINE_AA, shift)
        else:  # most of it, a side left white
            cv2.circle(canvas, pt(*c), round(r * 0.95 * 16), 255, -1, cv2.LINE_AA, shift)
            ang = rng.uniform(0, 2 * math.pi)
            d = r * rng.uniform(0.35, 0.55)
            cx, cy = c[0] + d * math.cos(ang), c[1] + d * math.sin(ang)
            cut = np.zeros_like(canvas)
            cv2.circle(
                cut, pt(cx + r * math.cos(ang), cy + r * math.sin(ang)), round(r * 16), 255, -1, cv2.LINE_AA, shift
            )
            canvas = np.asarray(cv2.subtract(canvas, cut), np.uint8)
    mask = canvas.astype(np.float32) / 255
    grain = np.asarray(np.random.default_rng(rng.getrandbits(32)).uniform(0.75, 1.0, mask.shape), np.float32)
    return np.asarray(cv2.GaussianBlur(mask * grain, (3, 3), 0.7), np.float32)


def _apply(page: Page, x: float, y: float, mask: npt.NDArray[np.float32], darkness: float) -> None:
    size = mask.shape[0] // 2
    xi, yi = round(x), round(y)
    region = page[yi - size : yi + size + 1, xi - size : xi + size + 1]
    region *= 1 - darkness * mask[: region.shape[0], : region.shape[1]]


def fill_sheet(template: Template, rng: random.Random, *, blank: bool = False) -> tuple[Page, Truth]:
    page = np.asarray(render_sheet(template).astype(np.float32) / 255, np.float32)
    r = template.bubble_radius
    # One pencil per student: most are dark, some students press lightly all along.
    base = rng.uniform(0.5, 0.65) if rng.random() < 0.12 else rng.uniform(0.78, 0.93)

    def mark(x: float, y: float, style: str, strength: float = 1.0) -> None:
        dark = base * rng.uniform(0.9, 1.05) * strength
        if style == "light":
            dark *= rng.uniform(0.6, 0.75)
        _apply(page, x, y, _mark_mask(rng, r, style), min(dark, 0.97))

    def erase(x: float, y: float) -> None:
        mask = _mark_mask(rng, r, rng.choice(("solid", "scribble")))
        smeared = np.asarray(cv2.GaussianBlur(mask, (0, 0), r / 5), np.float32)
        _apply(page, x, y, smeared, base * rng.uniform(0.05, 0.25))

    student_id = "".join(rng.choice("0123456789") for _ in template.id_fields)
    answers: dict[str, tuple[str, ...]] = {}
    kinds: dict[str, str] = {}
    if not blank:
        for f, digit in zip(template.id_fields, student_id, strict=True):
            mark(*f.centres[int(digit)], rng.choice(("solid", "solid", "scribble")))
    else:
        student_id = ""
    for q in template.questions:
        kind = "blank" if blank else _pick(rng, QUESTION_KINDS)
        choices = list(range(len(q.values)))
        picked: list[int] = []
        if kind == "single":
            style = _pick(rng, SINGLE_STYLES)
            kind = style
            picked = [rng.choice(choices)]
            mark(*q.centres[picked[0]], style)
        elif kind == "double":
            picked = rng.sample(choices, 2)
            for p in picked:
                mark(*q.centres[p], "solid")
        elif kind in ("erased_remark", "erased_blank"):
            gone = rng.choice(choices)
            erase(*q.centres[gone])
            if kind == "erased_remark":
                picked = [rng.choice([c for c in choices if c != gone])]
                mark(*q.centres[picked[0]], rng.choice(("solid", "solid", "scribble")))
        answers[q.label] = tuple(q.values[p] for p in sorted(picked))
        kinds[q.label] = kind
    if not blank:
        _stray_marks(page, template, rng, base)
    return page, Truth(student_id, answers, kinds)


def _stray_marks(page: Page, template: Template, rng: random.Random, base: float) -> None:
    """Pencil on the page away from the bubbles: ticks, underlines, dots."""
    centres = np.array([c for f in template.fields for c in f.centres])
    r = template.bubble_radius
    for _ in range(rng.randint(0, 6)):
        for _try in range(20):
            x = rng.uniform(template.width * 0.1, template.width * 0.9)
            y = rng.uniform(template.height * 0.1, template.height * 0.9)
            if np.min(np.hypot(centres[:, 0] - x, centres[:, 1] - y)) > 2.6 * r:
                break
        else:
            continue
        stroke = np.zeros(page.shape, np.uint8)
        length = rng.uniform(10, 60)
        ang = rng.uniform(0, math.pi)
        p1 = (round(x), round(y))
        p2 = (round(x + length * math.cos(ang)), round(y + length * math.sin(ang)))
        cv2.line(stroke, p1, p2, 255, rng.randint(2, 4), cv2.LINE_AA)
        page *= 1 - base * (stroke.astype(np.float32) / 255)


def degrade(
    page: Page, rng: random.Random, *, upside_down: bool | None = None, bed: float | None = None
) -> tuple[bytes, bool]:
    """Scan the page: returns JPEG bytes and whether the page went in upside down.

    A colour page (h, w, 3 BGR) gives a colour scan. ``bed`` sets the scanner bed's grey
    (0..1) around the paper; by default it is nearly white, as under a scanner's lid.
    """
    h, w = page.shape[:2]
    scale = rng.uniform(0.93, 1.07) if rng.random() < 0.8 else rng.uniform(1.35, 1.55)
    angle = rng.uniform(-3, 3)
    flip = rng.random() < 0.2 if upside_down is None else upside_down
    if flip:
        angle += 180
    # The scanner's frame is a little bigger than the paper, as on a real flatbed/ADF.
    out_w, out_h = round((w + rng.uniform(100, 200)) * scale), round((h + rng.uniform(100, 200)) * scale)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[0, 2] += (out_w - w) / 2 + rng.uniform(-25, 25) * scale
    m[1, 2] += (out_h - h) / 2 + rng.uniform(-25, 25) * scale
    drawn_bed = rng.uniform(0.85, 1.0)  # drawn always, so that a seed gives the same scan
    grey = drawn_bed if bed is None else bed
    border = grey if page.ndim == 2 else (grey, grey, grey)
    img = cv2.warpAffine(page, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=border)
    sigma = rng.uniform(0, 1.3) * scale
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    lo, hi = (
        (rng.uniform(0.1, 0.3), rng.uniform(0.7, 0.85))
        if rng.random() < 0.25
        else (rng.uniform(0, 0.08), rng.uniform(0.92, 1.0))
    )
    img = lo + img * (hi - lo)
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(0, 6) / 255, img.shape)
    out = np.clip((img + noise) * 255, 0, 255).astype(np.uint8)
    quality = rng.choice((30, rng.randint(30, 95), rng.randint(60, 95)))
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return bytes(buf), flip


def clean(page: Page) -> bytes:
    ok, buf = cv2.imencode(".png", np.clip(page * 255, 0, 255).astype(np.uint8))
    assert ok
    return bytes(buf)


def make_corpus(
    template: Template, count: int, seed: int, *, scanned: bool = True, profile: str = "scan"
) -> list[Sheet]:
    """``profile="photo"`` photographs each sheet with a phone (``photograph``) instead of
    scanning it; ``scanned=False`` gives clean renders. The default is unchanged."""
    if profile not in ("scan", "photo"):
        raise ValueError(f"unknown profile {profile!r}")
    sheets = []
    for i in range(count):
        rng = random.Random(f"{seed}:{i}")
        page, truth = fill_sheet(template, rng)
        if profile == "photo":
            data = photograph(page, rng)
        elif scanned:
            data, truth.upside_down = degrade(page, rng)
        else:
            data = clean(page)
        sheets.append(Sheet(f"sheet{seed}_{i:04d}", data, truth))
    return sheets


#: phone camera frames (width, height), portrait; a photo is one of these, often scaled.
PHONE_FRAMES = ((3000, 4000), (2250, 3000))


def photo_geometry(
    page_size: tuple[int, int], frame: tuple[int, int], rng: random.Random, *, max_tilt: float = 25.0
) -> npt.NDArray[np.float64]:
    """A homography from page pixels into the photo frame: a camera tilted up to ``max_tilt``.

    The page is turned in 3-D about a random axis in its plane, turned a little in its
    own plane (the phone is not held square), projected through a pinhole of a phone's
    field of view, then scaled to fill 55-85 % of the frame and placed at random in it.
    """
    w, h = page_size
    fw, fh = frame
    tilt = math.radians(rng.uniform(0, max_tilt))
    axis_angle = rng.uniform(0, 2 * math.pi)
    axis = np.array([math.cos(axis_angle), math.sin(axis_angle), 0.0]) * tilt
    rot, _ = cv2.Rodrigues(axis)
    roll = math.radians(rng.uniform(-8, 8))
    rz = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1]])
    rot = rz @ rot
    focal = 1.1 * max(w, h)  # about a 70 degree diagonal field of view at this distance
    distance = 1.3 * max(w, h)
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    centred = np.column_stack([corners - (w / 2, h / 2), np.zeros(4)])
    cam = centred @ rot.T + (0, 0, distance)
    projected = focal * cam[:, :2] / cam[:, 2:3]
    lo, hi = projected.min(axis=0), projected.max(axis=0)
    fill = rng.uniform(0.55, 0.85)
    k = fill * min(fw / (hi[0] - lo[0]), fh / (hi[1] - lo[1]))
    size = (hi - lo) * k
    offset = np.array([rng.uniform(0, fw - size[0]), rng.uniform(0, fh - size[1])])
    dst = (projected - lo) * k + offset
    return np.asarray(cv2.getPerspectiveTransform(corners.astype(np.float32), dst.astype(np.float32)), np.float64)


def _desk(rng: random.Random, fw: int, fh: int) -> npt.NDArray[np.float32]:
    """A wood-grain desk (BGR, 0..1) with a hand-coloured blob at one edge of the frame."""
    nprng = np.random.default_rng(rng.getrandbits(32))
    sw, sh = fw // 8, fh // 8  # built small, then scaled up: it is smooth anyway
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    warp = cv2.resize(nprng.normal(0, 1, (8, 6)).astype(np.float32), (sw, sh), interpolation=cv2.INTER_CUBIC)
    ang = rng.uniform(0, math.pi)
    along = xx * math.cos(ang) + yy * math.sin(ang)
    grain = np.sin(along * rng.uniform(0.15, 0.35) + warp * rng.uniform(2, 5))
    fine = cv2.GaussianBlur(nprng.normal(0, 1, (sh, sw)).astype(np.float32), (0, 0), 1.5)
    tone = 0.5 + 0.18 * grain + 0.12 * fine  # 0..1 around a mid wood tone
    base = np.array([rng.uniform(0.15, 0.35), rng.uniform(0.3, 0.45), rng.uniform(0.45, 0.65)], np.float32)
    small = np.clip(tone[..., None] * base * 1.6, 0, 1).astype(np.float32)
    desk = cv2.resize(small, (fw, fh), interpolation=cv2.INTER_LINEAR)
    # A hand or a sleeve poking in from one edge of the frame.
    blob = np.zeros((fh, fw), np.float32)
    edge = rng.randrange(4)
    t = rng.uniform(0.2, 0.8)
    centre = [(t * fw, 0.0), (fw, t * fh), (t * fw, fh), (0.0, t * fh)][edge]
    axes = (round(fw * rng.uniform(0.08, 0.16)), round(fh * rng.uniform(0.06, 0.12)))
    cv2.ellipse(blob, (round(centre[0]), round(centre[1])), axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
    soft = np.asarray(cv2.GaussianBlur(blob, (0, 0), max(axes) / 8), np.float32)[..., None]
    skin = np.array([rng.uniform(0.5, 0.65), rng.uniform(0.6, 0.75), rng.uniform(0.8, 0.95)], np.float32)
    return np.asarray(desk * (1 - soft) + skin * soft, np.float32)


def photograph(
    page: Page,
    rng: random.Random,
    *,
    max_tilt: float = 25.0,
    frame: tuple[int, int] | None = None,
) -> bytes:
    """Photograph the page (grey, or BGR colour) with a phone: returns a 3-channel (BGR) JPEG."""
    return photograph_with_corners(page, rng, max_tilt=max_tilt, frame=frame)[0]


def photograph_with_corners(
    page: Page,
    rng: random.Random,
    *,
    max_tilt: float = 25.0,
    frame: tuple[int, int] | None = None,
) -> tuple[bytes, npt.NDArray[np.float64]]:
    """``photograph``, plus where the page's corners (TL, TR, BR, BL) landed in the photo.

    The sheet lies on a desk with a hand at one edge, seen at up to ``max_tilt`` degrees,
    lit unevenly (a smooth gradient and a soft shadow band across it), with a colour cast,
    a little motion blur and sensor noise, JPEG quality 60-90. ``frame`` is the photo's
    (width, height); by default a phone's 3000x4000 or 2250x3000, sometimes scaled down.
    """
    h, w = page.shape[:2]
    if frame is None:
        fw, fh = rng.choice(PHONE_FRAMES)
        if rng.random() < 0.3:
            s = rng.uniform(0.6, 0.9)
            fw, fh = round(fw * s), round(fh * s)
        frame = (fw, fh)
    fw, fh = frame
    hom = photo_geometry((w, h), frame, rng, max_tilt=max_tilt)
    paper_tint = np.array([rng.uniform(0.9, 0.97), rng.uniform(0.94, 0.99), 1.0], np.float32)
    sheet = cv2.warpPerspective(page, hom, frame, flags=cv2.INTER_LINEAR, borderValue=0)
    ones = np.ones(page.shape[:2], page.dtype)
    cover = cv2.warpPerspective(ones, hom, frame, flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
    paper = sheet[..., None] if sheet.ndim == 2 else sheet  # a colour page keeps its colours
    img = _desk(rng, fw, fh) * (1 - cover) + (paper * paper_tint) * cover
    # Uneven light: a smooth gradient across the frame and a soft shadow band (a phone or
    # an arm between the lamp and the desk).
    yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    xx /= max(fw, fh)
    yy /= max(fw, fh)
    ang = rng.uniform(0, 2 * math.pi)
    ramp = xx * math.cos(ang) + yy * math.sin(ang)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    light = 1 - rng.uniform(0.15, 0.45) * ramp
    ang = rng.uniform(0, math.pi)
    across = xx * math.cos(ang) + yy * math.sin(ang)
    pos = rng.uniform(float(across.min()), float(across.max()))
    width = rng.uniform(0.05, 0.15)
    light *= 1 - rng.uniform(0.15, 0.4) * np.exp(-((across - pos) ** 2) / (2 * width * width))
    gains = np.array([rng.uniform(0.75, 1.0), rng.uniform(0.88, 1.02), rng.uniform(0.95, 1.1)], np.float32)
    img = img * light[..., None] * gains * rng.uniform(0.85, 1.0)
    # A little hand shake: a short line kernel at a random angle.
    length = rng.uniform(1, 6) * max(fw, fh) / 4000
    if length >= 1.5:
        n = math.ceil(length) | 1
        kernel = np.zeros((n, n), np.float32)
        ang = rng.uniform(0, math.pi)
        c = n // 2
        dx, dy = length / 2 * math.cos(ang), length / 2 * math.sin(ang)
        cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
        img = cv2.filter2D(img, -1, kernel / kernel.sum())
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(1, 4) / 255, img.shape)
    out = np.clip((img + noise.astype(np.float32)) * 255, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(60, 90)])
    assert ok
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    landed = cv2.perspectiveTransform(corners[None], hom)[0]
    return bytes(buf), np.asarray(landed, np.float64)
