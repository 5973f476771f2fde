"""Command line: ``python -m workers.omr read|render|template`` (a stable interface, see docs/omr.md).

``read`` prints (or writes with ``--out``) one JSON object keyed by input name; a file
that cannot be read gets ``{"error": {"code", "message"}}`` and the batch goes on.
``--mode photo`` (or its alias ``--photo``) reads phone photos; ``--mode scan`` is the default.
``--jobs N`` reads N files at once, each in a process of its own (0: one per core, the
default of ``python -m workers.omr``; 1, the default of ``main()`` called from Python:
forking a process that holds other libraries' connections, a broker's or a database's,
hands the children those connections, and Celery's kombu closes its own in every forked
child over the parent's socket); the JSON is the same whatever N is.
Exit status: 0 all read, 1 some inputs had errors, 2 bad arguments or template.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from workers.base import BadInput
from workers.omr.errors import FILE_NOT_FOUND, OmrError
from workers.omr.omrchecker import is_omrchecker_template, join_custom_labels, load_omrchecker_template
from workers.omr.template import Template, load_template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

IMAGE_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
PDF_SUFFIX: Final = ".pdf"


def main(argv: Sequence[str] | None = None, *, default_jobs: int = 1) -> int:
    """The command line. ``default_jobs``: ``read --jobs`` when not given (``__main__``
    passes 0, one process per core; see the module's docstring for why not always)."""
    parser = argparse.ArgumentParser(prog="python -m workers.omr", description="OMR answer-sheet reader")
    sub = parser.add_subparsers(dest="command", required=True)
    read = sub.add_parser("read", help="read scanned sheets (images, folders, PDFs)")
    read.add_argument("--template", required=True, type=Path, help="project template or OMRChecker template.json")
    read.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    read.add_argument(
        "--mode", choices=("scan", "photo"), default="scan", help="scans (default) or phone photos of the sheets"
    )
    read.add_argument(
        "--photo", dest="mode", action="store_const", const="photo", help="the same as --mode photo (kept as an alias)"
    )
    read.add_argument(
        "--jobs",
        type=_jobs,
        default=default_jobs,
        metavar="N",
        help=f"files read at once, each in a process of its own (0: one per core; default {default_jobs})",
    )
    read.add_argument("inputs", nargs="+", type=Path)
    render = sub.add_parser("render", help="draw a blank sheet")
    render.add_argument("--template", required=True, type=Path)
    render.add_argument("--out", required=True, type=Path, help="a .pdf or .png path")
    _template_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "template":
        return _template(args)
    try:
        template, finish, pictures = _load(args.template)
    except BadInput as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    if args.command == "render":
        return _render(template, args.out)
    return _read(template, args.inputs, args.out, args.mode == "photo", finish, skip=pictures, jobs=args.jobs)


def _jobs(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number of processes (0: one per core), not {text!r}")
    return int(text)


def _cores() -> int:
    """The cores this process may run on (its affinity where the system tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


Finish = Callable[[dict[str, Any]], dict[str, Any]]


def _load(path: Path) -> tuple[Template, Finish, frozenset[Path]]:
    """The template (either format, told apart by its keys), what shapes each reading, and
    the template's own pictures (an OMRChecker marker or reference picture, kept in the
    folder of sheets as OMRChecker has it): a folder read is never read for them."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OmrError(FILE_NOT_FOUND, f"cannot read {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise OmrError("TEMPLATE_INVALID", f"{path} is not JSON: {exc}") from exc
    if is_omrchecker_template(raw):
        # Its marker picture and config.json are found relative to the template's folder;
        # custom labels (other than the roll number) become joined columns, as in OMRChecker.
        sheet = load_omrchecker_template(path)
        pictures = frozenset(p.resolve() for p in sheet.pictures)
        return sheet.template, lambda entry: join_custom_labels(entry, sheet), pictures
    return load_template(raw), lambda entry: entry, frozenset()


def _render(template: Template, out: Path) -> int:
    from workers.omr.omrchecker_render import marker_sheet_png, render_marker_sheet
    from workers.omr.pdf import image_to_pdf
    from workers.omr.render import sheet_pdf, sheet_png

    suffix = out.suffix.lower()
    if suffix not in (".pdf", ".png"):
        print("error: --out must end in .pdf or .png", file=sys.stderr)
        return 2
    if template.marker_image is not None:  # an OMRChecker sheet: its marker picture in the corners
        pdf = suffix == ".pdf"
        out.write_bytes(
            image_to_pdf(render_marker_sheet(template), template.dpi) if pdf else marker_sheet_png(template)
        )
        return 0
    out.write_bytes(sheet_pdf(template) if suffix == ".pdf" else sheet_png(template))
    return 0


def _read(
    template: Template,
    inputs: Sequence[Path],
    out: Path | None,
    photo: bool,
    finish: Finish,
    *,
    skip: frozenset[Path],
    jobs: int,
) -> int:
    files = _keyed(_files(inputs, skip=skip))
    processes = min(jobs or _cores(), len(files))
    if processes > 1 and "fork" in multiprocessing.get_all_start_methods():
        entries = _read_in_processes(files, template, photo, finish, processes)
    else:
        if photo:
            # Alone on the machine, the photo classifier may use every core, as OpenCV
            # does (a worker's prefork child keeps one). No onnxruntime is imported here.
            from workers.omr.learned.model import set_threads

            set_threads(_cores())
        entries = _read_all(template, files, photo, finish)
    results: dict[str, Any] = {}
    failed = False
    for key, entry in entries:
        if key in results:
            raise AssertionError(f"duplicate key {key}")  # _keys() prevents this
        results[key] = entry
        failed = failed or "error" in entry
    text = json.dumps(results, ensure_ascii=False, indent=2)
    if out is None:
        print(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
    return 1 if failed else 0


def _keyed(paths: Iterator[Path]) -> list[tuple[str, Path]]:
    """Each file with its key in the JSON: its name, or its whole path where an earlier
    file has the same name."""
    used: set[str] = set()
    out: list[tuple[str, Path]] = []
    for path in paths:
        key = path.name if path.name not in used else str(path)
        used.add(key)
        out.append((key, path))
    return out


def _files(inputs: Sequence[Path], *, skip: frozenset[Path]) -> Iterator[Path]:
    """Each input, and each picture or PDF in an input folder but those in ``skip``
    (resolved paths); a file named on the command line is always read."""
    for path in inputs:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                suffix = child.suffix.lower()
                if child.is_file() and suffix in IMAGE_SUFFIXES | {PDF_SUFFIX} and child.resolve() not in skip:
                    yield child
        else:
            yield path


#: what the decode-ahead thread hands the reading loop for one file: its picture decoded
#: for the template (with the template to read it by), a PDF's bytes, or the error to report.
_Decoded = tuple["npt.NDArray[np.uint8]", Template] | bytes | BadInput


def _read_all(
    template: Template, files: Sequence[tuple[str, Path]], photo: bool, finish: Finish
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every file read in this process, the next one decoded while this one is read."""
    ahead = _decoded_ahead((path for _, path in files), template, photo)
    for (key, _), (_, decoded) in zip(files, ahead, strict=True):
        yield from _entries(key, decoded, template, photo, finish)


def _entries(
    key: str, decoded: _Decoded, template: Template, photo: bool, finish: Finish
) -> Iterator[tuple[str, dict[str, Any]]]:
    """One file's readings: the picture's under ``key``, each PDF page's under
    ``key#n``, or the error that stopped it."""
    from workers.omr.decode import check_gray
    from workers.omr.reader import read_gray

    if isinstance(decoded, BadInput):
        yield key, _error(decoded)
        return
    if not isinstance(decoded, bytes):
        image, by = decoded
        try:
            yield key, finish(read_gray(image, by, photo=photo).to_dict())
        except BadInput as exc:
            yield key, _error(exc)
        return
    from workers.omr.pdf import pdf_pages  # only a PDF needs it

    pages = pdf_pages(decoded)
    number = 0
    while True:
        try:
            gray = next(pages)
        except StopIteration:
            break
        except BadInput as exc:  # the whole PDF is bad (no pages, too many, broken)
            yield key, _error(exc)
            break
        number += 1
        page_key = f"{key}#{number}"
        try:
            yield page_key, finish(read_gray(check_gray(gray), template, photo=photo).to_dict())
        except BadInput as exc:
            yield page_key, _error(exc)


def _read_in_processes(
    files: Sequence[tuple[str, Path]], template: Template, photo: bool, finish: Finish, processes: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The files read by ``processes`` forked copies of this one, each file whole in one
    of them, the readings handed back in the files' order.

    Reading a sheet is mostly Python holding its lock (a second thread gains nothing),
    so a folder is spread over processes. They are forked: each starts with the imports
    and the template already loaded, in a few milliseconds, and the template, which
    holds closures, never has to be pickled. Only paths go out and JSON-ready readings
    come back. Each child gives the photo classifier its share of the cores; OpenCV's
    own threads stay as they are (measured: setting them to one changed nothing).
    """
    context = multiprocessing.get_context("fork")
    threads = max(1, _cores() // processes)
    with context.Pool(processes, initializer=_start_child, initargs=(template, photo, finish, threads)) as pool:
        # One file a task: sheets differ in cost (a PDF holds many), and a task's
        # round trip costs far less than reading one.
        for entries in pool.imap(_read_in_child, files, chunksize=1):
            yield from entries


#: what a forked reader was started with (``_start_child``): the template, photo mode,
#: what shapes each reading. Set once in each child, before it reads anything.
_child: tuple[Template, bool, Finish] | None = None


def _start_child(template: Template, photo: bool, finish: Finish, threads: int) -> None:
    global _child
    _child = (template, photo, finish)
    if photo:
        from workers.omr.learned.model import set_threads

        set_threads(threads)


def _read_in_child(item: tuple[str, Path]) -> list[tuple[str, dict[str, Any]]]:
    if _child is None:
        raise RuntimeError("a reader process was not started by _read_in_processes")
    template, photo, finish = _child
    key, path = item
    return list(_entries(key, _decode(path, template, photo), template, photo, finish))


def _decoded_ahead(paths: Iterator[Path], template: Template, photo: bool) -> Iterator[tuple[Path, _Decoded]]:
    """Each path with its file decoded (``_decode``), in order, the next file's read and
    decode running on a thread of its own while the reader works on this one.

    OpenCV lets go of Python's lock while it decodes, so on a machine with a core to spare
    the decode of a folder of sheets costs next to no time of its own: the reading loop
    mostly holds the lock, the decoder mostly does not. One file ahead is enough for that
    and holds one more picture in memory, never more.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="omr-decode") as pool:
        ahead: tuple[Path, Future[_Decoded]] | None = None
        for path in paths:
            coming = (path, pool.submit(_decode, path, template, photo))
            if ahead is not None:
                yield ahead[0], ahead[1].result()
            ahead = coming
        if ahead is not None:
            yield ahead[0], ahead[1].result()


def _decode(path: Path, template: Template, photo: bool) -> _Decoded:
    """A picture decoded for reading with ``template`` (``decode.decode_for``), a PDF's
    bytes (its pages are drawn one at a time as they are read), or the error to report."""
    from workers.omr.decode import decode_for, sniff

    try:
        data = path.read_bytes()
    except OSError as exc:
        return OmrError(FILE_NOT_FOUND, f"cannot read {path}: {exc.strerror}")
    if sniff(data) == "pdf":
        return data
    try:
        return decode_for(data, template, photo=photo)
    except BadInput as exc:
        return exc


def _template_parser(sub: Any) -> None:
    tpl = sub.add_parser("template", help="build a template from a blank card (workers/omr/blank.py)")
    tpl.add_argument("--from-blank", required=True, type=Path, dest="blank", help="a scan or photo of the blank card")
    tpl.add_argument("--questions", required=True, type=int)
    tpl.add_argument("--choices", required=True, type=int)
    tpl.add_argument("--id-digits", type=int, default=0)
    tpl.add_argument("--mode", choices=("scan", "photo"), default="scan")
    tpl.add_argument("--numbering", choices=("columns", "rows"), default="columns")
    tpl.add_argument("--format", choices=("project", "omrchecker"), default="project")
    tpl.add_argument("--name", default="card", help="the template's name")
    tpl.add_argument("--picture", type=Path, help="also write a PNG of the card with what was found drawn on it")
    tpl.add_argument("--out", required=True, type=Path, help="the template JSON (omrchecker: marker picture beside it)")


def _template(args: argparse.Namespace) -> int:
    """Exit status: 0 written, 1 the blank was refused (code and what was found on stderr)."""
    from workers.omr.blank import omrchecker_files, proposal_picture, propose_template

    try:
        data = args.blank.read_bytes()
    except OSError as exc:
        print(f"error: {FILE_NOT_FOUND}: cannot read {args.blank}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        proposal = propose_template(
            data,
            questions=args.questions,
            choices=args.choices,
            id_digits=args.id_digits,
            photo=args.mode == "photo",
            name=args.name,
            numbering=args.numbering,
        )
    except BadInput as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    if args.format == "omrchecker":
        for name, content in omrchecker_files(proposal).items():
            (args.out if name == "template.json" else args.out.with_name(name)).write_bytes(content)
    else:
        args.out.write_text(json.dumps(proposal.template, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.picture is not None:
        args.picture.write_bytes(proposal_picture(proposal))
    return 0


def _error(exc: BadInput) -> dict[str, Any]:
    return {"error": {"code": exc.code, "message": exc.message}}
