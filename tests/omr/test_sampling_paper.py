"""Where the sampler finds a bubble's paper (workers/omr/sample.py): each bubble is measured
against the paper round it, so it holds under uneven light, and a mark that covers all of
that paper must not pass for the paper itself."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from workers.omr.align import Alignment
from workers.omr.render import render_sheet
from workers.omr.sample import sample
from workers.omr.template import DEFAULT_TEMPLATE, Field, load_template


def test_a_mark_covering_all_the_paper_round_a_bubble_measured_small_reads_as_a_mark() -> None:
    # Bubbles measured at a third of their printed size (a template drawn on a small
    # frame): the paper round each is looked for inside its printed outline, and a filled
    # mark covers all of it. Measured against that "paper", the mark read as blank paper.
    template = load_template(DEFAULT_TEMPLATE)
    r = template.bubble_radius

    def measured_small(f: Field) -> Field:
        return replace(f, size=(2 * r / 3, 2 * r / 3))

    small = replace(
        template,
        id_fields=tuple(map(measured_small, template.id_fields)),
        questions=tuple(map(measured_small, template.questions)),
    )
    page = render_sheet(template)
    x, y = template.questions[0].centres[2]
    cv2.circle(page, (round(x), round(y)), round(1.1 * r), 40, -1)
    samples = sample(page, small, Alignment(np.eye(3), 0, 1.0, 20.0, 245.0), spacing=template)
    row = [float(samples.fill[i]) for i in samples.index[len(template.id_fields)]]
    assert row[2] > 0.8
    assert max(row[:2] + row[3:]) < 0.2
