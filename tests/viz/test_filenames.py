"""How the files of each image are named (camloc.viz.filenames): by the image, unique, stable, short enough."""

from __future__ import annotations

import os

from camloc.viz.filenames import NAME_MAX, artifact_stems, input_stem, unique_stems


def test_a_stem_is_the_path_under_its_input_folder_or_the_file_name(tmp_path):
    photos = tmp_path / "photos"
    assert input_stem(str(photos / "cats" / "a.jpg"), [str(photos)]) == "cats/a"
    assert input_stem(str(photos / "a.jpg"), [str(photos)]) == "a"
    assert input_stem(str(photos / "cats" / "a.jpg")) == "a"  # a file given as such: its name
    assert input_stem(str(tmp_path / "other" / "a.jpg"), [str(photos)]) == "a"  # not under the folder
    assert input_stem(str(photos / "cats" / "a.jpg"), [str(photos / "cats"), str(photos)]) == "a"  # the first holds it
    assert input_stem("photos/cats/a.tar.gz", ["photos/"]) == "cats/a.tar"  # the last extension only
    assert input_stem("photos/.hidden.png", ["photos"]) == ".hidden"
    rel = os.path.relpath(photos / "x" / "b.png")  # relative and absolute spellings agree
    assert input_stem(rel, [str(photos)]) == "x/b"


def test_collisions_are_numbered_in_input_order_ignoring_case():
    stems = unique_stems([("1", "a"), ("2", "a"), ("3", "A"), ("4", "a~2"), ("1", "zzz")])
    assert stems == {"1": "a", "2": "a~2", "3": "A~3", "4": "a~2~2"}  # "4" asked for a~2, already given
    assert unique_stems([("3", "A"), ("2", "a"), ("1", "a")]) == {"3": "A", "2": "a~2", "1": "a~3"}


def test_stems_given_before_stay_theirs():
    taken = {"old.jpg": "a", "older.jpg": "a~3"}
    assert unique_stems([("new.jpg", "a"), ("old.jpg", "a"), ("newer.jpg", "a")], taken) == {
        "new.jpg": "a~2", "old.jpg": "a", "newer.jpg": "a~4"}


def test_paths_get_one_stem_per_file():
    stems = artifact_stems(["x/a.jpg", "y/a.jpg", "./x/a.jpg", "x/./a.jpg"])
    assert stems == {"x/a.jpg": "a", "y/a.jpg": "a~2", "./x/a.jpg": "a", "x/./a.jpg": "a"}
    assert artifact_stems(["x/a.jpg", "y/a.jpg"], taken={"y/a.jpg": "a"}) == {"x/a.jpg": "a~2", "y/a.jpg": "a"}


def test_a_name_too_long_for_the_file_system_keeps_its_start_and_a_digest():
    long, other = "ü" * 200 + ".jpg", "ü" * 199 + "v.jpg"
    a, b = input_stem(long), input_stem(other)
    assert a != b and a.startswith("ü" * 50) and "~" in a
    assert len((a + "~12.class999.png").encode()) <= NAME_MAX and len((b + ".class281.npy").encode()) <= NAME_MAX
    assert input_stem("f" * 200 + ".jpg") == "f" * 200  # short enough: kept whole
