"""Every package folder of the four parts is installed: an editable install would hide one
missing from `pyproject.toml`, and a wheel would silently drop it."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_part_package_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            name = ".".join((package, *relative))
            assert name in listed, f"{name} ({init.parent}) is missing from [tool.setuptools]"


def test_every_entry_point_names_a_listed_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(project["tool"]["setuptools"]["packages"])
    for group in project["project"]["entry-points"].values():
        for target in group.values():
            module = target.split(":")[0]
            assert module in listed or module.rsplit(".", 1)[0] in listed, target


def test_every_non_python_file_a_package_reads_is_package_data() -> None:
    """The status page's templates and assets go into the wheel (and so into the image)."""
    import fnmatch

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    data = config["package-data"]["ebbflow.web"]
    folder = ROOT / "ebbflow" / "web"
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*")
             if p.is_file() and p.suffix not in (".py", ".pyc")]  # fmt: skip
    assert files
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in data), name
