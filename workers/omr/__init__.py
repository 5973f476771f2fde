"""OMR answer-sheet reader: templates, blank-sheet rendering, reading scans.

Pure: no Django, no Celery. numpy/cv2 are imported inside the functions that need
them, so importing this package (or the processor) stays cheap. See docs/omr.md.
"""
