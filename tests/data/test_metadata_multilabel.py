"""Multi-label metadata: several classes per image, boxes with their class, the refusals, and the
single-label reading of the same files left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from camloc.data.metadata import MetadataError, Sample, read_dataset


def split(root: Path, labels: str, boxes: str) -> Path:
    (root / "image_ids.txt").write_text("a.png\nb.png\n")
    (root / "class_labels.txt").write_text(labels)
    (root / "image_sizes.txt").write_text("a.png,100,80\nb.png,50,50\n")
    (root / "localization.txt").write_text(boxes)
    return root


def message(root: Path, **kw) -> str:
    with pytest.raises(MetadataError) as info:
        read_dataset(root, **kw)
    text = str(info.value)
    assert "\n" not in text
    return text.replace(str(root), "META")


def test_several_classes_per_image_and_boxes_with_and_without_a_class(tmp_path):
    root = split(tmp_path, "a.png,3\nb.png,1\na.png,7\n", "a.png,10,5,60,40,7\na.png,0,0,9,9\nb.png,1,2,3,4,1\n")
    a, b = read_dataset(root, multilabel=True)
    assert (a.label, a.classes, a.box_classes) == (3, (3, 7), (7, None))
    assert a.boxes == ((10.0, 5.0, 60.0, 40.0), (0.0, 0.0, 9.0, 9.0))
    assert a.boxes_of(3) == ((0.0, 0.0, 9.0, 9.0),)
    assert a.boxes_of(7) == a.boxes  # its own box and the box of every class
    assert (b.label, b.classes, b.box_classes, b.boxes_of(1)) == (1, (1,), (1,), ((1.0, 2.0, 3.0, 4.0),))


def test_a_single_label_split_reads_the_same_either_way_but_for_the_box_classes(tmp_path):
    root = split(tmp_path, "a.png,3\nb.png,1\n", "a.png,10,5,60,40\nb.png,1,2,3,4\n")
    single, multi = read_dataset(root), read_dataset(root, multilabel=True)
    assert [s.classes for s in single] == [(3,), (1,)] and [s.box_classes for s in single] == [(), ()]
    assert [s.box_classes for s in multi] == [(None,), (None,)]
    assert [Sample(s.image_id, s.label, s.width, s.height, s.boxes) for s in multi] == single


def test_the_single_label_reading_still_refuses_a_second_label_and_a_sixth_field(tmp_path):
    root = split(tmp_path, "a.png,3\nb.png,1\na.png,7\n", "a.png,10,5,60,40\nb.png,1,2,3,4\n")
    assert message(root) == ("META/class_labels.txt:3: a second line for a.png (the first is line 1); give each "
                             "image one line")
    split(tmp_path, "a.png,3\nb.png,1\n", "a.png,10,5,60,40,3\nb.png,1,2,3,4\n")
    assert message(root).startswith("META/localization.txt:1: expected 5 or 3 comma-separated fields, got 6;")


@pytest.mark.parametrize("labels, boxes, expected", [
    ("a.png,3\nb.png,1\na.png,3\n", "a.png,1,1,2,2\nb.png,1,1,2,2\n",
     "META/class_labels.txt:3: class 3 of a.png is given again (first on line 1); give each class of an image once"),
    ("a.png,3\nb.png,1\n", "a.png,1,1,2,2,5\nb.png,1,1,2,2\n",
     "META/localization.txt:1: the box's class 5 is not a class of a.png in class_labels.txt (its classes: 3); "
     "give a class of the image, or add a line a.png,5 to class_labels.txt"),
    ("a.png,3\nb.png,1\n", "a.png,1,1,2,2,x\nb.png,1,1,2,2\n",
     "META/localization.txt:1: the box's class 'x' is not a number; write each line as "
     "IMAGE_ID,X0,Y0,X1,Y1,CLASS (the box's corners in pixels, X0 <= X1 and Y0 <= Y1, inside the image; CLASS: "
     "the box's class, one of the image's classes)"),
    ("a.png,3\nb.png,1\n", "a.png,1,1,2,2,3,4\nb.png,1,1,2,2\n",
     "META/localization.txt:1: expected 5 or 6 or 3 comma-separated fields, got 7; write each line as "
     "IMAGE_ID,X0,Y0,X1,Y1 (the box's corners in pixels, X0 <= X1 and Y0 <= Y1, inside the image) or "
     "IMAGE_ID,X0,Y0,X1,Y1,CLASS (the box's corners in pixels, X0 <= X1 and Y0 <= Y1, inside the image; CLASS: "
     "the box's class, one of the image's classes) or IMAGE_ID,MASK,IGNORE (mask image paths relative to the mask "
     "root, IGNORE possibly empty)"),
    ("a.png,3\nb.png,-2\n", "a.png,1,1,2,2\nb.png,1,1,2,2\n",
     "META/class_labels.txt:2: the class -2 is negative; write each line as IMAGE_ID,CLASS (CLASS: the class "
     "index, 0 or more)"),
    ("a.png,3\n", "a.png,1,1,2,2\nb.png,1,1,2,2\n",
     "META/class_labels.txt: no label for b.png (image_ids.txt line 2); add a line b.png,CLASS"),
])
def test_malformed_multilabel_lines_are_one_line_naming_file_line_and_fix(tmp_path, labels, boxes, expected):
    assert message(split(tmp_path, labels, boxes), multilabel=True) == expected


def test_a_class_without_a_box_in_a_split_with_boxes_is_refused(tmp_path):
    root = split(tmp_path, "a.png,3\nb.png,1\na.png,7\n", "a.png,10,5,60,40,7\nb.png,1,2,3,4\n")
    assert message(root, multilabel=True) == (
        "META/localization.txt: no box for class 3 of a.png (class_labels.txt line 1 lists it); add a line "
        "a.png,X0,Y0,X1,Y1,3, or a box without a class")
    (root / "localization.txt").unlink()  # a training split: no boxes at all
    assert [s.classes for s in read_dataset(root, multilabel=True)] == [(3, 7), (1,)]
