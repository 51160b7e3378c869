"""The OCI mount-option table, without mounting anything."""

from __future__ import annotations

import pytest

from pyinit.linux import flags as f


def test_plain_flags_and_clearing() -> None:
    o = f.parse_options(["nosuid", "nodev", "ro", "rw", "noexec", "exec", "noatime"])
    assert o.flags == f.MS_NOSUID | f.MS_NODEV | f.MS_NOATIME
    assert o.cleared == f.MS_RDONLY | f.MS_NOEXEC
    assert not o.is_bind and o.data == ()


def test_bind_propagation_recursive_and_data() -> None:
    o = f.parse_options(["rbind", "rslave", "private", "rro", "rnoatime", "mode=755", "size=1m"])
    assert o.is_bind and o.flags == f.MS_BIND | f.MS_REC
    assert o.propagation == (f.MS_SLAVE | f.MS_REC, f.MS_PRIVATE)
    assert o.rec_set == f.MOUNT_ATTR_RDONLY | f.MOUNT_ATTR_NOATIME
    assert o.rec_clr == f.MOUNT_ATTR__ATIME
    assert o.data == ("mode=755", "size=1m")


def test_every_option_of_the_spec_is_known() -> None:
    spec = ("async atime bind defaults dev diratime dirsync exec iversion lazytime loud noatime "
            "nodev nodiratime noexec noiversion nolazytime norelatime nostrictatime nosuid "
            "private rbind relatime remount ro rprivate rshared rslave runbindable rw shared "
            "silent slave strictatime suid sync unbindable nosymfollow symfollow ratime rdev "
            "rdiratime rexec rnoatime rnodiratime rnoexec rnorelatime rnostrictatime rnosuid "
            "rnosymfollow rrelatime rro rrw rstrictatime rsuid rsymfollow mand nomand").split()
    for opt in spec:
        assert f.parse_options([opt]).data == (), opt  # never passed on as fs data


def test_tmpcopyup_is_an_extension_flag() -> None:
    o = f.parse_options(["tmpcopyup", "mode=755"])
    assert o.tmpcopyup and o.data == ("mode=755",)


@pytest.mark.parametrize("opt", ["idmap", "ridmap"])
def test_unsupported_options_are_refused(opt: str) -> None:
    with pytest.raises(ValueError, match="not supported"):
        f.parse_options([opt])


def test_names_and_locked_flags() -> None:
    assert f.names(f.MS_NOSUID | f.MS_NODEV) == "MS_NOSUID|MS_NODEV"
    assert f.names(0) == "0"
    assert f.locked_flags(0x406) == f.MS_NOSUID | f.MS_NODEV | f.MS_NOATIME
    assert f.locked_flags(4096 | 1) == f.MS_RELATIME | f.MS_RDONLY
