"""Inputs of a batch run: files, folders walked recursively by extension, and @list files."""

from __future__ import annotations

from pathlib import Path

from camloc.data.inputs import expand_inputs

from ..helpers import messy_folder


def test_expand_inputs(tmp_path):
    messy = messy_folder(tmp_path / "photos")
    found = expand_inputs([str(messy)])
    assert [Path(p).name for p in found] == ["a_cat.jpg", "d_gray.png", "e_corrupt.jpg", "f_truncated.jpg",
                                              "g_tiny.png", "h_bomb.png", "b_coffee.jpg", "c_rocket_cmyk.jpg",
                                              "i_palette.png"]
    listing = tmp_path / "list.txt"
    listing.write_text(f"{messy / 'a_cat.jpg'}\n# a comment\n\n{messy / 'missing.jpg'}\n")
    assert expand_inputs([f"@{listing}", str(messy / "d_gray.png")]) == [
        str(messy / "a_cat.jpg"), str(messy / "missing.jpg"), str(messy / "d_gray.png")]
