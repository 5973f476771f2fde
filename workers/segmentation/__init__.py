"""``question_segmentation``: cut a scanned worksheet page into one region per question.

- :mod:`.model`: what a page is cut into (segments, rows, sections, questions, the layout);
- :mod:`.layout`: the steps, from ink to question regions (:func:`segment`);
- :mod:`.processor`: the processor (decode, parameters, crops and the layout PNG).
"""

from workers.segmentation.layout import confidence, segment
from workers.segmentation.model import Layout, Question
from workers.segmentation.processor import (
    QuestionSegmentationProcessor,
    decode,
    layout_image,
    png_bytes,
    question_dicts,
)

__all__ = [
    "Layout",
    "Question",
    "QuestionSegmentationProcessor",
    "confidence",
    "decode",
    "layout_image",
    "png_bytes",
    "question_dicts",
    "segment",
]
