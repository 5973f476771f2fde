"""The learned mark classifier of the photo (premium) reader: ``marks-v2``.

The threshold reader (``workers.omr.classify``) judges a bubble by one number, how dark
its middle is against the sheet's levels. Light pencil, erasures and shadows put some
bubbles near its midpoint, and those answers go to a person. This classifier looks at
the whole bubble (``crops``: a 24 x 24 crop of it, cut from the photo through the
alignment) and the sheet's context, and gives P(marked). ``classify.combine_field``
joins the two readings so that the classifier can clear a doubt both agree on, and a
disagreement always goes to a person.

- ``crops.py``: the crops and the context, shared by inference and training;
- ``model.py``: the onnxruntime session, one per process, GPU when the process has one;
- ``train.py``: how ``marks.onnx`` was made (needs the ``train`` extra: torch, onnx);
- ``README.md``: the training command, seed, data and validation figures.

Runtime needs numpy, cv2 and onnxruntime only. With no onnxruntime or no model file the
photo reader reads threshold-only and the log says so once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from workers.omr.classify import FieldReading, Levels, classifier_fits, combine_field
from workers.omr.learned.model import MODEL_NAME, scorer
from workers.omr.template import Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from workers.omr.align import Alignment
    from workers.omr.sample import Samples

__all__ = ["MODEL_NAME", "refine", "scorer"]

logger = logging.getLogger(__name__)


def refine(
    gray: npt.NDArray[np.uint8],
    template: Template,
    alignment: Alignment,
    samples: Samples,
    levels: Levels,
    fields: Sequence[FieldReading],
    *,
    fill: npt.NDArray[np.float64],
) -> tuple[list[FieldReading], str | None]:
    """Score every bubble of the sheet in one batch and join it to the threshold reading.

    ``fill``: the fills the thresholds read by (``classify.without_print``), from which
    ``levels`` were taken; the context is built from the same pair at training.
    Returns the fields and the classifier's name, or the fields unchanged and None when
    the classifier cannot run in this process. A classifier that contradicts the sheet's
    clear fields (``classify.classifier_fits``) is set aside: the fields keep the
    thresholds' reading, marked "off", and the name is None.
    """
    score = scorer()
    if score is None:
        return list(fields), None
    from workers.omr.learned.crops import context, crops

    try:
        p = score(crops(gray, template, alignment), context(fill, samples.index, levels))
    except Exception:  # a runtime fault must not lose the sheet: the thresholds still read it
        logger.exception("OMR mark classifier failed on a sheet; read threshold-only")
        return list(fields), None
    probs = [p[list(idx)].tolist() for idx in samples.index]
    if not classifier_fits(template.fields, fields, probs):
        logger.info("OMR mark classifier %s set aside on a sheet it reads unlike its clear fields", score.name)
        return [replace(r, classifier="off") for r in fields], None
    n_id = len(template.id_fields)
    joined = [
        combine_field(f, r, q, single=k < n_id)
        for k, (f, r, q) in enumerate(zip(template.fields, fields, probs, strict=True))
    ]
    return joined, score.name
