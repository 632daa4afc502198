"""The VM guests' boot image: Debian's cloud kernel and a busybox initramfs.

Everything comes from Debian packages through apt (``apt-get download``), is
unpacked with ``dpkg-deb`` and cached: nothing is fetched from anywhere else,
and nothing is installed on this machine. The initramfs holds busybox-static,
the virtio network modules of the kernel package (loaded in dependency order
by ``init``), ``init`` and ``udhcpc.script`` of this directory.

    python3 tests/lab/guest/build.py [--cache DIR]   # download (once) and build; prints the paths

The lab calls :func:`image` (no download: it needs the cached packages).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get("KVMB_GUEST_CACHE", "/var/cache/kvmb-guest")
KERNEL_META = "linux-image-cloud-amd64"
BUSYBOX = "busybox-static"
# Loaded in this order by init: each needs the ones before it.
MODULES = ("virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci", "failover", "net_failover", "virtio_net")
FORMAT = "2"  # bump when the layout of the initramfs changes


class GuestImageError(RuntimeError):
    """The guest image cannot be built."""


def _run(argv, cwd=None):
    proc = subprocess.run(argv, cwd=cwd, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise GuestImageError("command failed (%d): %s\n%s" % (proc.returncode, " ".join(argv), proc.stdout))
    return proc.stdout


@contextlib.contextmanager
def _locked(cache):
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _debs(cache):
    debs = os.path.join(cache, "debs")
    kernel = sorted(glob.glob(os.path.join(debs, "linux-image-*-cloud-amd64_*.deb")))
    busybox = sorted(glob.glob(os.path.join(debs, BUSYBOX + "_*.deb")))
    return (kernel[-1] if kernel else None), (busybox[-1] if busybox else None)


def download(cache=CACHE):
    """Fetch the kernel and busybox-static packages into the cache, unless there."""
    with _locked(cache):
        kernel, busybox = _debs(cache)
        if kernel and busybox:
            return kernel, busybox
        depends = _run(["apt-cache", "depends", KERNEL_META])
        names = [line.split(":", 1)[1].strip() for line in depends.splitlines() if line.strip().startswith("Depends:") and "linux-image-" in line]
        if not names:
            raise GuestImageError("apt-cache knows no kernel package behind %s:\n%s" % (KERNEL_META, depends))
        debs = os.path.join(cache, "debs")
        os.makedirs(debs, exist_ok=True)
        _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", names[0], BUSYBOX], cwd=debs)
        kernel, busybox = _debs(cache)
        if not (kernel and busybox):
            raise GuestImageError("apt-get download left no packages in %s" % debs)
        return kernel, busybox


class _Cpio:
    """A writer of the newc cpio format, the one the kernel unpacks as initramfs."""

    def __init__(self):
        self.out = io.BytesIO()
        self.ino = 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        encoded = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        self.ino += 1
        self.out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + encoded)
        self.out.write(b"\0" * (-(110 + len(encoded)) % 4))
        self.out.write(data)
        self.out.write(b"\0" * (-len(data) % 4))

    def directory(self, name):
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name, data, mode=0o644):
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor):
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return self.out.getvalue()


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def _initramfs(kernel_root, busybox_root, kernel_version):
    moddir = os.path.join(kernel_root, "lib", "modules", kernel_version, "kernel")
    found = {}
    for path in glob.glob(os.path.join(moddir, "**", "*.ko"), recursive=True):
        found.setdefault(os.path.basename(path)[:-3], path)
    missing = [m for m in MODULES if m not in found]
    if missing:
        raise GuestImageError("kernel %s has no module(s) %s" % (kernel_version, ", ".join(missing)))
    cpio = _Cpio()
    for name in ("bin", "dev", "etc", "lib", "lib/modules", "proc", "run", "sys", "tmp"):
        cpio.directory(name)
    cpio.chardev("dev/console", 5, 1)
    cpio.file("bin/busybox", _read(os.path.join(busybox_root, "bin", "busybox")), 0o755)
    # init and the udhcpc script start with #!/bin/sh: busybox is that shell.
    cpio.symlink("bin/sh", "busybox")
    cpio.file("init", _read(os.path.join(HERE, "init")), 0o755)
    cpio.file("etc/udhcpc.script", _read(os.path.join(HERE, "udhcpc.script")), 0o755)
    for name in MODULES:
        cpio.file("lib/modules/%s.ko" % name, _read(found[name]))
    return gzip.compress(cpio.finish(), 6, mtime=0)


def _key(kernel_deb, busybox_deb):
    digest = hashlib.sha256()
    for part in (FORMAT, os.path.basename(kernel_deb), os.path.basename(busybox_deb)):
        digest.update(part.encode() + b"\0")
    for name in ("init", "udhcpc.script", "build.py"):
        digest.update(_read(os.path.join(HERE, name)))
    return digest.hexdigest()[:16]


def image(cache=CACHE):
    """The guest image: {"kernel", "initrd", "kernel_version"}, built from the cached packages when needed."""
    kernel_deb, busybox_deb = _debs(cache)
    if not (kernel_deb and busybox_deb):
        raise GuestImageError("no guest packages in %s: run scripts/setup.sh (or python3 %s)" % (cache, __file__))
    target = os.path.join(cache, "images", _key(kernel_deb, busybox_deb))
    meta_path = os.path.join(target, "image.json")
    with _locked(cache):
        if not os.path.exists(meta_path):
            work = tempfile.mkdtemp(prefix="build-", dir=cache)
            try:
                kroot, broot = os.path.join(work, "k"), os.path.join(work, "b")
                _run(["dpkg-deb", "-x", kernel_deb, kroot])
                _run(["dpkg-deb", "-x", busybox_deb, broot])
                vmlinuz = sorted(glob.glob(os.path.join(kroot, "boot", "vmlinuz-*")))
                if not vmlinuz:
                    raise GuestImageError("%s has no /boot/vmlinuz-*" % kernel_deb)
                version = os.path.basename(vmlinuz[-1])[len("vmlinuz-") :]
                out = os.path.join(work, "out")
                os.makedirs(out)
                shutil.copyfile(vmlinuz[-1], os.path.join(out, "vmlinuz"))
                with open(os.path.join(out, "initrd.gz"), "wb") as handle:
                    handle.write(_initramfs(kroot, broot, version))
                meta = {"kernel": os.path.join(target, "vmlinuz"), "initrd": os.path.join(target, "initrd.gz"), "kernel_version": version}
                with open(os.path.join(out, "image.json"), "w") as handle:
                    json.dump(meta, handle)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                for path in (out, *(os.path.join(out, f) for f in os.listdir(out))):
                    os.chmod(path, 0o755 if os.path.isdir(path) else 0o644)
                os.rename(out, target)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    with open(meta_path) as handle:
        return json.load(handle)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cache", default=CACHE)
    args = parser.parse_args(argv)
    try:
        download(args.cache)
        print(json.dumps(image(args.cache), indent=1))
    except GuestImageError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
