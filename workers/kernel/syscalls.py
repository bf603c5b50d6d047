"""The few Linux system calls Python 3.11's `os` lacks (setns, unshare, mount, prctl and
the new mount API's fsopen/fsconfig/fsmount), through libc, raising OSError like the `os`
functions do."""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SHARED = 1 << 20
MNT_DETACH = 2

PR_SET_CHILD_SUBREAPER = 36

# The new mount API: the same numbers on every architecture but alpha.
SYS_FSOPEN = 430
SYS_FSCONFIG = 431
SYS_FSMOUNT = 432
FSOPEN_CLOEXEC = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 1

SYS_MOUNT_SETATTR = 442
AT_EMPTY_PATH = 0x1000
MOUNT_ATTR_IDMAP = 0x00100000


class _MountAttr(ctypes.Structure):  # struct mount_attr of linux/mount.h
    _fields_ = [(name, ctypes.c_uint64) for name in ("set", "clr", "propagation", "userns")]


# The process's own symbols, libc's among them: ctypes.util.find_library would run
# `ldconfig -p` in a child process on every start of every command.
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str, target: str = "") -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", target or None)


def setns(fd: int, nstype: int = 0) -> None:
    """Move the calling thread into the namespace `fd` refers to."""
    _check(_libc.setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    """Give the calling thread new namespaces of the kinds in `flags`."""
    _check(_libc.unshare(flags), "unshare")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        "mount",
        target,
    )


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(target.encode(), flags), "umount", target)


def set_child_subreaper() -> None:
    """Orphaned descendants (node inits) are re-parented to this process, which reaps them
    at once instead of leaving that to the machine's PID 1."""
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl")


def fsmount(fstype: str) -> int:
    """A new instance of the filesystem `fstype`, attached nowhere: an fd of its root,
    usable with `dir_fd=`, gone once the fd is closed."""
    fs = _libc.syscall(SYS_FSOPEN, fstype.encode(), FSOPEN_CLOEXEC)
    if fs < 0:
        _check(-1, "fsopen", fstype)
    try:
        _check(_libc.syscall(SYS_FSCONFIG, fs, FSCONFIG_CMD_CREATE, None, None, 0), "fsconfig")
        mnt = _libc.syscall(SYS_FSMOUNT, fs, FSMOUNT_CLOEXEC, 0)
        if mnt < 0:
            _check(-1, "fsmount", fstype)
        return int(mnt)
    finally:
        os.close(fs)


def idmap_mount(mount_fd: int, userns_fd: int) -> None:
    """Idmap the detached mount `mount_fd` with the user namespace `userns_fd`."""
    attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    result = _libc.syscall(
        SYS_MOUNT_SETATTR, mount_fd, b"", AT_EMPTY_PATH, ctypes.byref(attr), ctypes.sizeof(attr)
    )
    _check(0 if result == 0 else -1, "mount_setattr")
