r"""Datasets in the wsolevaluation metadata layout (docs/protocols.md, "Metadata files").

A metadata folder holds comma-separated UTF-8 text files, one record per line, image paths relative
to the image root: ``image_ids.txt`` (``IMAGE_ID``), ``class_labels.txt`` (``IMAGE_ID,CLASS``),
``image_sizes.txt`` (``IMAGE_ID,WIDTH,HEIGHT``) and ``localization.txt`` (boxes
``IMAGE_ID,X0,Y0,X1,Y1`` or masks ``IMAGE_ID,MASK,IGNORE``, several lines per image allowed), and
optionally ``mask_localization.txt`` (more masks).

Tolerated, and read as if absent: blank lines, spaces and tabs around a line or a field, Windows line
ends, a UTF-8 byte-order mark, a missing final newline, lines of the other files for images that
``image_ids.txt`` does not list (so a subset of a split is its ``image_ids.txt`` cut down).
Everything else that is off is refused with one line naming the file, the line and what that line
should hold (:class:`MetadataError`): bytes that are not UTF-8, control characters, a wrong number of
fields, a label that is not a whole number 0 or more, a size that is not a whole number 1 or more, a
box coordinate that is not a finite number, an inverted box or one outside its image, an image listed
twice or given two labels or sizes, an image without a label, and sizes, boxes or masks given for
some images of ``image_ids.txt`` but not all (each is for every image, or for none).

Multi-label splits (``read_dataset(path, multilabel=True)``, opt-in): an image may have several classes,
one ``IMAGE_ID,CLASS`` line of ``class_labels.txt`` each (the first line's class is its ``label``), and a
box line may end with a sixth field, the class the box belongs to (``IMAGE_ID,X0,Y0,X1,Y1,CLASS``); a
box without it belongs to every class of its image. Refused besides: a class given twice for an image,
and a box class that is not one of its image's classes. Without ``multilabel`` a second label or a
sixth box field is refused as above.

``image_sizes.txt`` may be empty or absent, as wsolevaluation's OpenImages metadata ships it: a sample's
size is then ``None`` (unknown) until its image is read (:func:`image_size`), as the reference evaluator
reads every image and mask at its own size. A file that lists some images but not all is refused. An
absent ``localization.txt`` is a split without boxes or masks (a training split, as OpenImages' train).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from camloc.data.metadata import MetadataError, read_dataset
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "image_ids.txt").write_text("a.png\n\n")          # a blank line is fine
    >>> _ = (root / "class_labels.txt").write_text("a.png, 3\r\n")     # so are spaces and CRLF
    >>> _ = (root / "image_sizes.txt").write_text("a.png,100,80")
    >>> _ = (root / "localization.txt").write_text("a.png,10,5,60,40\n")
    >>> read_dataset(root)[0].boxes
    ((10.0, 5.0, 60.0, 40.0),)
    >>> _ = (root / "class_labels.txt").write_text("a.png,3\na.png,7\n")             # two classes
    >>> _ = (root / "localization.txt").write_text("a.png,10,5,60,40,7\na.png,0,0,9,9\n")
    >>> s = read_dataset(root, multilabel=True)[0]
    >>> s.label, s.classes, s.box_classes, s.boxes_of(3)
    (3, (3, 7), (7, None), ((0.0, 0.0, 9.0, 9.0),))
    >>> _ = (root / "class_labels.txt").write_text("a.png,-1\n")
    >>> try:
    ...     read_dataset(root)
    ... except MetadataError as exc:
    ...     print(*str(exc).replace(str(root), "META").split("; "), sep="\n")
    META/class_labels.txt:1: the class -1 is negative
    write each line as IMAGE_ID,CLASS (CLASS: the class index, 0 or more)
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..utils.errors import CamlocError, ImageError


class MetadataError(CamlocError):
    """A metadata file is missing or has a malformed line."""


@dataclass(frozen=True)
class Sample:
    """One image of a dataset: its id (a path relative to the image root) and annotations.

    ``width`` and ``height`` are the original image size in pixels, or ``None`` when the split's
    ``image_sizes.txt`` is empty (the size then comes from the image itself). ``classes`` are every class
    of the image, ``label`` first (``(label,)`` where not given: a single-label image); ``box_classes``,
    from a multi-label reading, the class of each box, ``None`` for a box of every class of the image
    (empty: every box is of every class).
    """

    image_id: str
    label: int
    width: int | None
    height: int | None
    boxes: tuple[tuple[float, float, float, float], ...] = field(default_factory=tuple)
    masks: tuple[str, ...] = field(default_factory=tuple)
    ignore: tuple[str, ...] = field(default_factory=tuple)
    classes: tuple[int, ...] = ()
    box_classes: tuple[int | None, ...] = ()

    def __post_init__(self) -> None:
        if not self.classes:
            object.__setattr__(self, "classes", (self.label,))

    def boxes_of(self, cls: int) -> tuple[tuple[float, float, float, float], ...]:
        """The boxes of class ``cls``: those given that class, and those given none."""
        if not self.box_classes:
            return self.boxes
        return tuple(b for b, c in zip(self.boxes, self.box_classes, strict=True) if c is None or c == cls)


#: The files of a metadata folder that must be there.
REQUIRED = ("image_ids.txt", "class_labels.txt")
#: Files a split may lack: read as empty (no sizes: each image's own; no boxes or masks: a training split).
OPTIONAL = ("image_sizes.txt", "localization.txt", "mask_localization.txt")
#: The largest whole number a label or a size may be (what an int64 tensor holds).
LARGEST = 2**63 - 1
_WHITESPACE = " \t\r\f\v"
#: What a line meant to be comma-separated may be separated by instead, and its name in a message.
_SEPARATORS = (("\t", "tabs"), (";", "semicolons"), ("|", "bars"), (" ", "spaces"))
#: Control characters (C0 but the tab, DEL, C1), which no line of a text file holds.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_WHOLE = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NOT_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


def _shown(text: str, quoted: bool = True) -> str:
    """A field as a message shows it: quoted (with escapes), at most 30 characters of it."""
    short = text if len(text) <= 30 else text[:27] + "..."
    return repr(short) if quoted else short


@dataclass(frozen=True)
class _Form:
    """What a line of one kind holds: its fields' names and, in words, what they must be."""

    fields: tuple[str, ...]
    rule: str

    def expected(self) -> str:
        """``IMAGE_ID,CLASS (CLASS: ...)``: the line as it should be written."""
        return f"{','.join(self.fields)} ({self.rule})"


IDS = _Form(("IMAGE_ID",), "one image path relative to the image root per line, no comma in it")
LABEL = _Form(("IMAGE_ID", "CLASS"), "CLASS: the class index, 0 or more")
SIZE = _Form(("IMAGE_ID", "WIDTH", "HEIGHT"), "the image's width and height in whole pixels, 1 or more")
BOX = _Form(("IMAGE_ID", "X0", "Y0", "X1", "Y1"),
            "the box's corners in pixels, X0 <= X1 and Y0 <= Y1, inside the image")
CLASS_BOX = _Form(BOX.fields + ("CLASS",), BOX.rule + "; CLASS: the box's class, one of the image's classes")
MASK = _Form(("IMAGE_ID", "MASK", "IGNORE"), "mask image paths relative to the mask root, IGNORE possibly empty")


def text_lines(path: str | os.PathLike, error: Callable[[str], Exception] = MetadataError
               ) -> list[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 text file's non-blank lines, stripped of surrounding whitespace.

    A byte-order mark, Windows line ends and a missing final newline are fine.

    Raises:
        MetadataError: (or what ``error`` makes of the message) for a file that is missing or cannot
            be read, a line that is not UTF-8 text, or a line with a control character, naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {'is a folder, not a file' if path.is_dir() else 'no such file'}; check the path")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc}); check its permissions") from exc
    data = data.removeprefix(b"\xef\xbb\xbf")
    lines = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8").strip(_WHITESPACE)
        except UnicodeDecodeError as exc:
            raise error(f"{path}:{number}: byte 0x{raw[exc.start]:02x} (column {exc.start + 1}) is not UTF-8 "
                        "text; save the file as UTF-8") from None
        bad = _CONTROL.search(line)
        if bad:
            raise error(f"{path}:{number}: control character U+{ord(bad.group()):04X} (column {bad.start() + 1}); "
                        "remove it: the file must be plain text, one record per line")
        if line:
            lines.append((number, line))
    return lines


class _File:
    """One metadata file being read: every message names it and the line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.name in OPTIONAL and not path.exists():
            self.lines: list[tuple[int, str]] = []
            return
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "is missing"
            raise MetadataError(f"{path}: {what}; a metadata folder holds {' and '.join(REQUIRED)} (and may hold "
                                f"{', '.join(OPTIONAL)})")
        self.lines = text_lines(path)

    def fail(self, number: int, problem: str, *forms: _Form) -> MetadataError:
        """The error for line ``number``: its problem, and what the line should hold."""
        hint = " or ".join(f.expected() for f in forms)
        return MetadataError(f"{self.path}:{number}: {problem}" + (f"; write each line as {hint}" if hint else ""))

    def fields(self, number: int, line: str, *forms: _Form) -> list[str]:
        """The comma-separated fields of a line, as many as one of ``forms`` has, the image id not empty."""
        parts = [p.strip(_WHITESPACE) for p in line.split(",")]
        counts = [len(f.fields) for f in forms]
        if len(parts) not in counts:
            if counts == [1]:
                problem = f"expected one field, got {len(parts)} comma-separated fields"
            else:
                problem = f"expected {' or '.join(str(c) for c in counts)} comma-separated fields, got {len(parts)}"
            separator = next((name for sep, name in _SEPARATORS if sep in line), None)
            if len(parts) < min(counts) and separator:
                problem += f" (the fields seem separated by {separator}: separate them by commas)"
            raise self.fail(number, problem, *forms)
        if not parts[0]:
            raise self.fail(number, "the image id (the first field) is empty", *forms)
        return parts

    def whole(self, number: int, text: str, what: str, lowest: int, form: _Form) -> int:
        """``text`` as a whole number from ``lowest`` to :data:`LARGEST`."""
        if not text:
            raise self.fail(number, f"the {what} is empty", form)
        if not _WHOLE.fullmatch(text):
            kind = "not a whole number" if _NUMBER.fullmatch(text) else "not a number"
            raise self.fail(number, f"the {what} {_shown(text)} is {kind}", form)
        digits = text.lstrip("+-").lstrip("0") or "0"
        value = int(digits) if len(digits) <= len(str(LARGEST)) else LARGEST + 1  # int() refuses 4,300 digits
        value = -value if text.startswith("-") else value
        if value < lowest:
            raise self.fail(number, f"the {what} {_shown(text, False)} is negative" if value < 0 else
                            f"the {what} is {value}", form)
        if value > LARGEST:
            raise self.fail(number, f"the {what} {_shown(text, False)} is too large (at most {LARGEST})", form)
        return value

    def number(self, number: int, text: str, what: str, form: _Form) -> float:
        """``text`` as a finite number."""
        if not text:
            raise self.fail(number, f"{what} is empty", form)
        if _NOT_FINITE.fullmatch(text):
            raise self.fail(number, f"{what} {_shown(text)} is not a finite number", form)
        if not _NUMBER.fullmatch(text):
            raise self.fail(number, f"{what} {_shown(text)} is not a number", form)
        value = float(text)
        if not math.isfinite(value):
            raise self.fail(number, f"{what} {_shown(text)} is too large to be a pixel position", form)
        return value

    def one_per_image(self, form: _Form, read: Callable[[int, list[str]], object]) -> dict[str, tuple[int, object]]:
        """``{image id: (line number, read(number, fields))}``, refusing a second line for an image."""
        out: dict[str, tuple[int, object]] = {}
        for number, line in self.lines:
            parts = self.fields(number, line, form)
            if parts[0] in out:
                raise self.fail(number, f"a second line for {parts[0]} (the first is line {out[parts[0]][0]}); give "
                                "each image one line")
            out[parts[0]] = (number, read(number, parts))
        return out


def _ids(root: Path) -> dict[str, int]:
    """``{image id: line number}`` of ``image_ids.txt``, in order."""
    ids_file = _File(root / "image_ids.txt")
    ids: dict[str, int] = {}
    for number, line in ids_file.lines:
        (image_id,) = ids_file.fields(number, line, IDS)
        if image_id in ids:
            raise ids_file.fail(number, f"image {image_id} is listed again (first on line {ids[image_id]}); list "
                                "each image once")
        ids[image_id] = number
    if not ids:
        raise MetadataError(f"{ids_file.path}: lists no image (the file is empty); put one image id per line, "
                            "a path relative to the image root")
    return ids


def _sizes(root: Path) -> dict[str, tuple[int, tuple[int, int]]]:
    """``{image id: (line number, (width, height))}`` of ``image_sizes.txt``."""
    sizes = _File(root / "image_sizes.txt")
    return sizes.one_per_image(SIZE, lambda n, p: (sizes.whole(n, p[1], "width", 1, SIZE),
                                                   sizes.whole(n, p[2], "height", 1, SIZE)))


class _Localization:
    """Boxes and masks per image, from ``localization.txt`` and ``mask_localization.txt``."""

    def __init__(self, sizes: dict[str, tuple[int, tuple[int, int]]], check_boxes: bool,
                 classes: dict[str, tuple[int, ...]] | None = None) -> None:
        self.sizes, self.check_boxes, self.classes = sizes, check_boxes, classes
        self.boxes: dict[str, list] = {}
        self.box_classes: dict[str, list] = {}
        self.masks: dict[str, list] = {}
        self.ignores: dict[str, list] = {}
        self.where = {"box": None, "mask": None}  # the file each kind came from first

    def read(self, loc: _File) -> None:
        """Every line of one file: a box (five fields) or a mask (three)."""
        forms = (BOX, CLASS_BOX, MASK) if self.classes is not None else (BOX, MASK)
        for number, line in loc.lines:
            parts = loc.fields(number, line, *forms)
            if len(parts) == 3:
                self._mask(loc, number, parts)
                continue
            self.boxes.setdefault(parts[0], []).append(self._box(loc, number, parts[:5]))
            self.where["box"] = self.where["box"] or loc.path
            if self.classes is not None:
                self.box_classes.setdefault(parts[0], []).append(self._box_class(loc, number, parts))

    def _box_class(self, loc: _File, number: int, parts: list[str]) -> int | None:
        """The class field of a multi-label box line (None: none given, the box is of every class)."""
        if len(parts) == 5:
            return None
        cls = loc.whole(number, parts[5], "box's class", 0, CLASS_BOX)
        own = self.classes.get(parts[0])
        if own is not None and cls not in own:
            raise loc.fail(number, f"the box's class {cls} is not a class of {parts[0]} in class_labels.txt (its "
                           f"classes: {', '.join(map(str, own))}); give a class of the image, or add a line "
                           f"{parts[0]},{cls} to class_labels.txt")
        return cls

    def _mask(self, loc: _File, number: int, parts: list[str]) -> None:
        image_id, mask, ignore = parts
        if not mask:
            raise loc.fail(number, "the mask path (the second field) is empty", MASK)
        if _NUMBER.fullmatch(mask):
            raise loc.fail(number, f"the mask path {_shown(mask)} is a number: a box line cut short?", BOX, MASK)
        self.masks.setdefault(image_id, []).append(mask)
        if ignore:
            self.ignores.setdefault(image_id, []).append(ignore)
        self.where["mask"] = self.where["mask"] or loc.path

    def _box(self, loc: _File, number: int, parts: list[str]) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = (loc.number(number, text, name, BOX) for text, name in zip(parts[1:], BOX.fields[1:],
                                                                                     strict=True))
        shown = f"({x0:g}, {y0:g}, {x1:g}, {y1:g})"
        for low, high, a, b in ((x0, x1, "X0", "X1"), (y0, y1, "Y0", "Y1")):
            if high < low:
                raise loc.fail(number, f"box {shown} is inverted: {b} {high:g} < {a} {low:g}", BOX)
        if min(x0, y0) < 0:
            raise loc.fail(number, f"box {shown} lies outside its image (a coordinate is negative)", BOX)
        if self.check_boxes and parts[0] in self.sizes:
            size_line, (w, h) = self.sizes[parts[0]]
            if x1 > w or y1 > h:
                raise loc.fail(number, f"box {shown} lies outside its {w}x{h} image (image_sizes.txt line "
                               f"{size_line}); fix the box or the image's size")
        return x0, y0, x1, y1

    def check_classes(self, ids: dict[str, int], labels: dict[str, tuple[int, int]],
                      classes: dict[str, tuple[int, ...]], where: Path) -> None:
        """Multi-label, in a split with boxes: refuse a class of an image with no box of its own or of every class."""
        for image_id in ids if self.boxes else ():
            number, own = labels[image_id][0], classes[image_id]
            given = self.box_classes.get(image_id, [None])
            unboxed = [c for c in own if None not in given and c not in given]
            if unboxed:
                raise MetadataError(f"{where}: no box for class {unboxed[0]} of {image_id} (class_labels.txt line "
                                    f"{number} lists it); add a line {image_id},X0,Y0,X1,Y1,{unboxed[0]}, or a box "
                                    "without a class")

    def check(self, ids: dict[str, int]) -> None:
        """Refuse boxes (or masks) for some images and not all: every image has one, or none has."""
        for kind, found, form in (("box", self.boxes, BOX), ("mask", self.masks, MASK)):
            missing = [(i, n) for i, n in ids.items() if i not in found]
            if found and missing:
                (image_id, number), having = missing[0], len(ids) - len(missing)
                others = (f"{having} of the {len(ids)} images have one" if having else
                          f"its {kind} lines are all for images that image_ids.txt does not list")
                raise MetadataError(f"{self.where[kind]}: no {kind} for {image_id} (image_ids.txt line {number}), "
                                    f"though {others}; add a line {image_id},{','.join(form.fields[1:])}")


def _labels(labels_file: _File, multilabel: bool
            ) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, ...]] | None]:
    """``({image id: (line number, label)}, {image id: classes} or None)`` of ``class_labels.txt``.

    Multi-label, the line number is the image's first line, its label that line's class, and its classes every
    class of its lines in order; single-label, one line per image and no classes.
    """
    if not multilabel:
        return labels_file.one_per_image(LABEL, lambda n, p: labels_file.whole(n, p[1], "class", 0, LABEL)), None
    classes = _classes(labels_file)
    return {i: (n, c[0]) for i, (n, c) in classes.items()}, {i: c for i, (_, c) in classes.items()}


def _classes(labels_file: _File) -> dict[str, tuple[int, tuple[int, ...]]]:
    """``{image id: (first line number, classes)}`` of a multi-label ``class_labels.txt``, in line order."""
    out: dict[str, tuple[int, list[int]]] = {}
    lines: dict[tuple[str, int], int] = {}
    for number, line in labels_file.lines:
        image_id, text = labels_file.fields(number, line, LABEL)
        cls = labels_file.whole(number, text, "class", 0, LABEL)
        if (image_id, cls) in lines:
            raise labels_file.fail(number, f"class {cls} of {image_id} is given again (first on line "
                                   f"{lines[image_id, cls]}); give each class of an image once")
        lines[image_id, cls] = number
        out.setdefault(image_id, (number, []))[1].append(cls)
    return {i: (n, tuple(c)) for i, (n, c) in out.items()}


def read_dataset(metadata: str | os.PathLike, check_boxes: bool = True, multilabel: bool = False) -> list[Sample]:
    """Read a split: one :class:`Sample` per line of ``image_ids.txt``, in order.

    ``localization.txt`` holds boxes (``id,x0,y0,x1,y1``) or masks (``id,mask.png,ignore.png``,
    the ignore path possibly empty); a separate ``mask_localization.txt`` adds masks to a box split.
    Several lines per image give several boxes or mask instances. What is tolerated and what is
    refused: see the module docstring.

    An empty or absent ``image_sizes.txt`` (wsolevaluation's OpenImages metadata) leaves every size ``None``:
    evaluation then takes each image's own size; an absent ``localization.txt`` gives no boxes or masks.

    Args:
        metadata: the metadata folder.
        check_boxes: refuse a box that reaches beyond its image's size (from ``image_sizes.txt``).
        multilabel: read a multi-label split: several ``IMAGE_ID,CLASS`` lines per image, box lines with an
            optional sixth field, the box's class (see the module docstring). Each sample's ``classes`` are
            then its classes in line order and ``box_classes`` its boxes' classes.

    Raises:
        MetadataError: one line naming the file and line of a malformed record and what it should
            hold; or an empty ``image_ids.txt``, an image listed twice, an image without a label, an
            ``image_sizes.txt`` that lists some images but not all, or images without boxes (or
            masks) in a split where others have them.
    """
    root = Path(metadata)
    if not root.is_dir():
        raise MetadataError(f"{root}: no such metadata folder; give the folder that holds {' and '.join(REQUIRED)}")
    ids = _ids(root)
    labels_file = _File(root / "class_labels.txt")
    labels, classes = _labels(labels_file, multilabel)
    sizes = _sizes(root)
    found = _Localization(sizes, check_boxes, classes)
    found.read(_File(root / "localization.txt"))
    found.read(_File(root / "mask_localization.txt"))
    for image_id, number in ids.items():
        if image_id not in labels:
            raise MetadataError(f"{labels_file.path}: no label for {image_id} (image_ids.txt line {number}); add a "
                                f"line {image_id},CLASS")
    if sizes:
        missing = [(image_id, number) for image_id, number in ids.items() if image_id not in sizes]
        if missing:
            raise MetadataError(
                f"{root / 'image_sizes.txt'}: sizes for {len(ids) - len(missing)} of {len(ids)} images (none for "
                f"{missing[0][0]}, image_ids.txt line {missing[0][1]}): give every image its size, or leave it "
                "empty to take sizes from the images"
            )
    found.check(ids)
    if classes is not None:
        found.check_classes(ids, labels, classes, root / "localization.txt")
    samples = []
    for image_id in ids:
        w, h = sizes[image_id][1] if image_id in sizes else (None, None)
        extra = {"classes": classes[image_id], "box_classes": tuple(found.box_classes.get(image_id, ()))
                 } if classes is not None else {}
        samples.append(Sample(image_id, labels[image_id][1], w, h, tuple(found.boxes.get(image_id, ())),
                              tuple(found.masks.get(image_id, ())),
                              tuple(dict.fromkeys(found.ignores.get(image_id, ()))), **extra))
    return samples


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header, without decoding the pixels.

    The size is the one after its EXIF orientation, as camloc's reader,
    :func:`camloc.data.imaging.load_image`, sees it.

    Raises:
        ImageError: the file is missing or not an image.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
    except FileNotFoundError as exc:
        raise ImageError(path, "no such file; check the image root (--images)") from exc
    except Exception as exc:  # noqa: BLE001 - PIL raises many types on broken data
        raise ImageError(path, f"cannot read its size ({type(exc).__name__}: {exc}); "
                               "re-encode or replace the file") from exc
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
