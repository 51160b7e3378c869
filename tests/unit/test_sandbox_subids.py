"""``pyinit sandbox --map-subids``: reading /etc/subuid, and the map it makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyinit.oci.config import IDMap
from pyinit.sandbox import fill_map, subordinate_ranges


def test_the_callers_id_inside_and_the_ranges_around_it() -> None:
    assert fill_map(0, 1000, [(100000, 65536)]) == (
        IDMap(0, 1000, 1), IDMap(1, 100000, 65536))
    # --uid 1000: the range is split around it, so 0 to 65536 are all mapped.
    assert fill_map(1000, 1000, [(100000, 65536)]) == (
        IDMap(1000, 1000, 1), IDMap(0, 100000, 1000), IDMap(1001, 101000, 64536))
    # Two ranges follow each other inside.
    assert fill_map(5, 1000, [(100000, 3), (200000, 4)]) == (
        IDMap(5, 1000, 1), IDMap(0, 100000, 3), IDMap(3, 200000, 2), IDMap(6, 200002, 2))


def test_ranges_by_name_or_number(tmp_path: Path) -> None:
    path = tmp_path / "subuid"
    path.write_text("other:1:2\n0:300000:10\nroot:100000:65536\n# comment\nroot:bad:1\n"
                    "root:5:0\n")
    assert subordinate_ranges(str(path), 0) == [(300000, 10), (100000, 65536)]


def test_no_range_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "subuid"
    path.write_text("other:1:2\n")
    with pytest.raises(ValueError) as err:
        subordinate_ranges(str(path), 0)
    assert str(err.value) == f"--map-subids: {path} has no range for 0 or root"
    with pytest.raises(ValueError) as err:
        subordinate_ranges(str(tmp_path / "missing"), 0)
    assert str(err.value) == f"--map-subids: {tmp_path / 'missing'}: No such file or directory"
