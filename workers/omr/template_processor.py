"""``omr_template``: propose a template from one scan (or photo) of a blank answer card.

Params: ``questions`` (1..300), ``choices`` (2..10), optional ``id_digits`` (0..12, default
0), ``mode`` ("scan", the default, or "photo"), ``numbering`` ("columns", the default:
down each column of blocks, then left to right; or "rows": across the blocks side by
side, row by row) and ``name`` (the template's name, at most 80 characters).

The result's ``template`` is a project template (docs/omr.md) that ``omr_grading`` reads
with as it is, ``found`` says what was found (bubbles, blocks, alignment), and the
artifact ``proposal.png`` is the card as straightened with every bubble, question number
and ID digit drawn on it, for the teacher to confirm. A card whose counts do not match
is refused with ``BLANK_COUNTS_MISMATCH`` and what was found ("found 44 question rows of
5, expected 45"); a picture that is no bubble sheet with ``NOT_A_BUBBLE_SHEET``; a blank
that adds up only turned sideways, both ways round, with ``BLANK_ORIENTATION_UNKNOWN``.
A blank scanned sideways is turned (``found.turned``: 90 or 270).

Only light imports run when the registry loads this module; numpy and cv2 load on the
first ``run`` (workers/omr/blank.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from workers.base import Artifact, BadInput, JobInput, ProcessorResult
from workers.omr.errors import EMPTY_FILE, FILE_REQUIRED, INVALID_PAYLOAD

MODES: Final = frozenset({"scan", "photo"})
NUMBERINGS: Final = frozenset({"columns", "rows"})
#: (param, lowest, highest, default; None: required)
COUNTS: Final = (("questions", 1, 300, None), ("choices", 2, 10, None), ("id_digits", 0, 12, 0))


class OmrTemplateProcessor:
    job_type: ClassVar[str] = "omr_template"
    input_key: ClassVar[str | None] = "image_path"
    extensions: ClassVar[frozenset[str]] = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"})
    wants_gpu: ClassVar[bool] = False
    quality_gate: ClassVar[bool] = False

    def validate(self, params: Mapping[str, Any]) -> None:
        self._params(params)

    def run(self, job: JobInput) -> ProcessorResult:
        counts, mode, numbering, name = self._params(job.params)
        if job.data is None:
            raise BadInput("a picture of the blank answer card is required", code=FILE_REQUIRED)
        if not job.data:
            raise BadInput("the file is empty", code=EMPTY_FILE)
        from workers.omr.blank import proposal_picture, propose_template

        job.progress("find", 10)
        proposal = propose_template(
            job.data,
            questions=counts["questions"],
            choices=counts["choices"],
            id_digits=counts["id_digits"],
            photo=mode == "photo",
            name=name,
            numbering=numbering,
        )
        job.progress("picture", 80)
        png = proposal_picture(proposal)
        job.progress("done", 100)
        return ProcessorResult(
            data={"template": proposal.template, "found": proposal.found, "numbering": numbering, "mode": mode},
            confidence=1.0,
            # A person confirms every proposal before an exam reads with it.
            review=True,
            artifacts=(Artifact("proposal.png", png, "image/png"),),
        )

    @staticmethod
    def _params(params: Mapping[str, Any]) -> tuple[dict[str, int], str, str, str]:
        counts: dict[str, int] = {}
        for key, lo, hi, default in COUNTS:
            value = params.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise BadInput(f"{key} must be a whole number from {lo} to {hi}", code=INVALID_PAYLOAD)
            counts[key] = value
        mode = params.get("mode", "scan")
        if mode not in MODES:
            raise BadInput(f"mode must be one of {sorted(MODES)}", code=INVALID_PAYLOAD)
        numbering = params.get("numbering", "columns")
        if numbering not in NUMBERINGS:
            raise BadInput(f"numbering must be one of {sorted(NUMBERINGS)}", code=INVALID_PAYLOAD)
        name = params.get("name", "card")
        if not isinstance(name, str) or not 0 < len(name) <= 80:
            raise BadInput("name must be a string of 1 to 80 characters", code=INVALID_PAYLOAD)
        return counts, str(mode), str(numbering), name
