"""The wsolevaluation metadata reader: boxes, masks, and one clear error per bad line."""

from __future__ import annotations

import pytest

from camloc.data.metadata import MetadataError, read_dataset

from ..helpers import write_split


def test_metadata_edge_cases(tmp_path):
    write_split(tmp_path / "m", [("a.png", 0, 100, 80), ("b.png", 1, 60, 60)],
                ["a.png,1,2,30,40", "a.png,50,10,99,79", "b.png,0,0,59,59"])
    samples = read_dataset(tmp_path / "m")
    assert [s.image_id for s in samples] == ["a.png", "b.png"] and [s.label for s in samples] == [0, 1]
    assert [(s.width, s.height) for s in samples] == [(100, 80), (60, 60)]
    assert samples[0].boxes == ((1, 2, 30, 40), (50, 10, 99, 79)) and samples[1].boxes == ((0, 0, 59, 59),)
    write_split(tmp_path / "bad", [("a.png", 0, 100, 80)], ["a.png,1,2,30"])
    with pytest.raises(MetadataError, match="localization.txt:1"):
        read_dataset(tmp_path / "bad")
    write_split(tmp_path / "out", [("a.png", 0, 100, 80)], ["a.png,1,2,130,40"])
    with pytest.raises(MetadataError, match="outside its 100x80 image"):
        read_dataset(tmp_path / "out")
    write_split(tmp_path / "masks", [("a.png", 0, 100, 80)], ["a.png,m/a1.png,", "a.png,m/a2.png,ig/a.png"], True)
    (s,) = read_dataset(tmp_path / "masks")
    assert s.masks == ("m/a1.png", "m/a2.png") and s.ignore == ("ig/a.png",) and not s.boxes
