"""Assemble the root filesystem of ebbflow's image from this machine's Python: no registry,
no base image. `scripts/ebbflow-image` installs ebbflow's wheel (with its dependencies) into
ROOTFS/opt/ebbflow first; this adds the interpreter, its standard library, the shared
libraries every ELF file needs (found with ldd) and a few files of /etc.

The interpreter keeps its own absolute path (a Debian /usr or a pyenv prefix alike), so it
finds its library as it does here; /usr/local/bin/python3 links to it.

Usage: python rootfs.py ROOTFS   (run with the Python the wheels were installed for)
"""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

# Parts of the standard library a headless service never imports.
STDLIB_SKIP = {
    "site-packages", "dist-packages", "test", "tests", "idlelib", "tkinter", "turtledemo",
    "ensurepip", "lib2to3", "pydoc_data", "__pycache__",
}  # fmt: skip
# Extension modules of those parts, which would pull in X11 and curses libraries.
DYNLOAD_SKIP = ("_tkinter", "_curses", "_test", "xxlimited", "_ctypes_test", "_xxtestfuzz")
LDD_LINE = re.compile(r"^\s*(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)$")


def copy_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src.resolve(), dst)  # the file itself under the name the loader asks for


def interpreter(rootfs: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    exe = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    copy_file(exe, rootfs / exe.relative_to("/"))
    stdlib = Path(sys.base_prefix) / "lib" / version
    shutil.copytree(
        stdlib,
        rootfs / stdlib.relative_to("/"),
        symlinks=False,
        ignore=lambda _dir, names: [
            n for n in names if n in STDLIB_SKIP or n.startswith(("config-", *DYNLOAD_SKIP))
        ],
        ignore_dangling_symlinks=True,
        dirs_exist_ok=True,
    )
    link = rootfs / "usr/local/bin/python3"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(exe)
    return exe


def is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def shared_libraries(rootfs: Path, exe: Path) -> set[Path]:
    """Every library outside ROOTFS that the interpreter or an extension module loads."""
    elves = [exe] + [p for p in rootfs.rglob("*.so*") if p.is_file() and is_elf(p)]
    needed: set[Path] = set()
    missing: list[str] = []
    for elf in elves:
        out = subprocess.run(["ldd", str(elf)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if "not found" in line:
                missing.append(f"{elf}: {line.strip()}")
            elif (m := LDD_LINE.match(line)) and not m.group(1).startswith(str(rootfs)):
                needed.add(Path(m.group(1)))
    if missing:
        raise SystemExit("libraries not found:\n  " + "\n  ".join(missing))
    return needed


def etc(rootfs: Path) -> None:
    (rootfs / "etc").mkdir(exist_ok=True)
    (rootfs / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n"
    )
    (rootfs / "etc/group").write_text("root:x:0:\nnobody:x:65534:\n")
    (rootfs / "etc/nsswitch.conf").write_text("hosts: files dns\n")
    certs = Path("/etc/ssl/certs/ca-certificates.crt")  # TLS to Kafka, InfluxDB, webhooks
    if certs.exists():
        copy_file(certs, rootfs / "etc/ssl/certs/ca-certificates.crt")
    config = rootfs / "etc/ebbflow/ebbflow.yaml"  # $EBBFLOW_CONFIG: mount yours over it
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "# ebbflow's defaults. Mount a config here (a Swarm config, a bind mount) or set\n"
        "# EBBFLOW_* variables: EBBFLOW_ROLE=agent, EBBFLOW_INPUTS__KAFKA__TOPIC=...\n"
    )
    for folder in ("tmp", "var/lib/ebbflow", "root"):
        (rootfs / folder).mkdir(parents=True, exist_ok=True)
    (rootfs / "tmp").chmod(stat.S_ISVTX | 0o777)


def prune(site: Path) -> None:
    """What pip put beside the packages that a service never runs: test suites, scripts
    whose first line names this machine's venv."""
    for tests in [p for p in site.glob("*/**/tests") if p.is_dir()]:
        shutil.rmtree(tests, ignore_errors=True)
    shutil.rmtree(site / "bin", ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    rootfs = Path(argv[0]).resolve()
    prune(rootfs / "opt/ebbflow")
    exe = interpreter(rootfs)
    for lib in sorted(shared_libraries(rootfs, exe)):
        copy_file(lib, rootfs / lib.relative_to("/"))
    etc(rootfs)
    size = sum(p.stat().st_size for p in rootfs.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"rootfs {rootfs}: {size / 1e6:.0f} MB, Python {sys.version.split()[0]} at {exe}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
