"""Make FIFREEZE block for real, the way fapolicyd does in the field: `python -m harness.writeblocker FILE`.

A thread calls write(2) on FILE with a source buffer registered with userfaultfd and never populated:
the kernel takes the filesystem's freeze protection (sb_start_write), then faults on the buffer and
waits for a userfaultfd answer that never comes. A FIFREEZE of that filesystem now waits for the
write to finish, i.e. blocks. Closing the userfaultfd (on a line or end-of-file on stdin) resolves
the fault with a zero page, the write completes and the blocked FIFREEZE returns.

Prints "blocked" once the write is stuck, "released" when it has completed. x86-64 and aarch64 only;
exits 3 with a message when userfaultfd is unavailable.
"""

import ctypes
import fcntl
import mmap
import os
import platform
import struct
import sys
import threading
import time

SYS_USERFAULTFD = {"x86_64": 323, "aarch64": 282}
UFFDIO_API = 0xC018AA3F
UFFDIO_REGISTER = 0xC020AA00
UFFDIO_REGISTER_MODE_MISSING = 1
UFFD_API = 0xAA
PAGE = mmap.PAGESIZE


def open_userfaultfd():
    nr = SYS_USERFAULTFD.get(platform.machine())
    if nr is None:
        raise OSError("userfaultfd: unsupported architecture %s" % platform.machine())
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(nr, os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "userfaultfd: %s" % os.strerror(ctypes.get_errno()))
    fcntl.ioctl(fd, UFFDIO_API, bytearray(struct.pack("QQQ", UFFD_API, 0, 0)))
    return fd


def main(argv):
    try:
        uffd = open_userfaultfd()
    except OSError as e:
        sys.stdout.write("unavailable %s\n" % e)
        return 3
    buf = mmap.mmap(-1, PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    fcntl.ioctl(uffd, UFFDIO_REGISTER, bytearray(struct.pack("QQQQ", addr, PAGE, UFFDIO_REGISTER_MODE_MISSING, 0)))
    fd = os.open(argv[0], os.O_WRONLY | os.O_CREAT, 0o600)
    done = threading.Event()

    def stuck_write():
        os.write(fd, memoryview(buf))
        done.set()

    threading.Thread(target=stuck_write, daemon=True).start()
    time.sleep(0.1)
    if done.is_set():
        sys.stdout.write("unavailable: the write did not block\n")
        return 3
    sys.stdout.write("blocked\n")
    sys.stdout.flush()
    sys.stdin.readline()
    os.close(uffd)
    done.wait(10)
    sys.stdout.write("released\n" if done.is_set() else "still-blocked\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
