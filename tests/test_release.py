"""The release artifacts: what scripts/wheels.sh builds is what a user can install.

The wheels are built once per session, with the quick profile (the same code without fat LTO,
so the build takes seconds once the target directories are warm). Every Rust target installed
on this machine must give a wheel; each wheel must meet its platform policy; the x86_64
manylinux wheel must install and work in a fresh virtualenv of every CPython >= 3.10 here.
"""

from __future__ import annotations

import email
import glob
import importlib.resources
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from packaging.version import Version
from prometheus_client.parser import text_string_to_metric_families
from trove_classifiers import classifiers as known_classifiers

from conftest import METRIC, ROOT

pytestmark = pytest.mark.timeout(1200)

#: Rust target → (wheel platform tag, auditwheel policy), as scripts/wheels.sh builds them.
TARGETS = {
    "x86_64-unknown-linux-gnu": ("manylinux2014_x86_64", "manylinux_2_17"),
    "aarch64-unknown-linux-gnu": ("manylinux2014_aarch64", "manylinux_2_17"),
    "x86_64-unknown-linux-musl": ("musllinux_1_2_x86_64", "musllinux_1_2"),
    "aarch64-unknown-linux-musl": ("musllinux_1_2_aarch64", "musllinux_1_2"),
}
DYNAMIC_LOADER = re.compile(r"ld-linux.*|ld64\.so\.[12]")
ELF_MACHINE = {"x86_64": "EM_X86_64", "aarch64": "EM_AARCH64"}
CARGO_TOML = (ROOT / "Cargo.toml").read_text()
VERSION = re.search(r'^version = "([^"]+)"', CARGO_TOML, re.MULTILINE)[1]
MINIMUM_RUST = re.search(r'^rust-version = "([^"]+)"', CARGO_TOML, re.MULTILINE)[1]
#: The old pure-Python package of the same name on the public index.
PREVIOUS_RELEASE = "0.2.1"


def installed_targets() -> list[str]:
    sysroot = subprocess.run(
        ["rustc", "--print", "sysroot"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return [t for t in TARGETS if Path(sysroot, "lib", "rustlib", t, "lib").is_dir()]


def cpythons() -> list[tuple[str, str]]:
    """(version, path) of every CPython >= 3.10 with venv on this machine, one per install:
    Debian's, /usr/local's, pyenv's, and any python3.N on PATH."""
    candidates = sorted(glob.glob("/usr/bin/python3.*")) + sorted(
        glob.glob("/usr/local/bin/python3.*")
    )
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/python3")))
    candidates += [
        found for minor in range(10, 20) if (found := shutil.which(f"python3.{minor}")) is not None
    ]
    found: dict[str, tuple[str, str]] = {}
    for path in candidates:
        if not re.fullmatch(r"python3(\.\d+)?", Path(path).name) or not os.access(path, os.X_OK):
            continue
        probe = subprocess.run(
            [
                path,
                "-c",
                "import os, sys, ensurepip, venv; print(sys.implementation.name, "
                "'%d.%d.%d' % sys.version_info[:3], os.path.realpath(sys.executable))",
            ],
            capture_output=True,
            text=True,
        )
        if probe.returncode != 0:
            continue
        implementation, version, executable = probe.stdout.split()
        if implementation == "cpython" and Version(version) >= Version("3.10"):
            found.setdefault(executable, (version, executable))
    return sorted(found.values(), key=lambda found: Version(found[0]))


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "DIST": str(out), "PROFILE": "quick", "PYTHON": sys.executable}
    build = subprocess.run(
        ["bash", str(ROOT / "scripts" / "wheels.sh")], env=env, capture_output=True, text=True
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return out


def wheels(dist: Path) -> list[Path]:
    return sorted(dist.glob("last9-*.whl"))


def sdist(dist: Path) -> Path:
    (found,) = dist.glob("last9-*.tar.gz")
    return found


def wheel_for(dist: Path, target: str) -> Path:
    tag, _ = TARGETS[target]
    (found,) = [w for w in wheels(dist) if tag in w.name]
    return found


def test_every_installed_target_gives_an_abi3_wheel_and_there_is_one_sdist(dist):
    targets = installed_targets()
    assert "x86_64-unknown-linux-gnu" in targets
    assert len(wheels(dist)) == len(targets)
    for target in targets:
        name = wheel_for(dist, target).name
        assert name.startswith(f"last9-{VERSION}-cp310-abi3-"), name
    assert sdist(dist).name == f"last9-{VERSION}.tar.gz"


def test_the_version_sorts_above_the_old_package_and_is_the_cargo_version(dist):
    import last9

    assert Version(VERSION) > Version(PREVIOUS_RELEASE)
    assert last9.__version__ == VERSION
    for artifact in [*wheels(dist), sdist(dist)]:
        assert metadata(artifact)["Version"] == VERSION


def elf_files(wheel: Path, into: Path) -> list[Path]:
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.endswith(".so")]
        archive.extractall(into, members=names)
    assert names, f"{wheel.name} has no extension module"
    return [into / name for name in names]


def needed_and_glibc_versions(path: Path) -> tuple[set[str], set[str], str]:
    with path.open("rb") as f:
        elf = ELFFile(f)
        needed = {
            tag.needed
            for section in elf.iter_sections()
            if isinstance(section, DynamicSection)
            for tag in section.iter_tags()
            if tag.entry.d_tag == "DT_NEEDED"
        }
        versions = set()
        section = elf.get_section_by_name(".gnu.version_r")
        if section is not None:
            for _, auxiliaries in section.iter_versions():
                versions |= {aux.name for aux in auxiliaries if aux.name.startswith("GLIBC_")}
        return needed, versions, elf["e_machine"]


def policy(name: str) -> dict:
    family = "manylinux" if name.startswith("manylinux") else "musllinux"
    policies = importlib.resources.files("auditwheel.policy").joinpath(f"{family}-policy.json")
    (found,) = [p for p in json.loads(policies.read_text()) if p["name"] == name]
    return found


# Targets whose Rust standard library is missing are not built (wheels.sh names them).
@pytest.mark.parametrize("target", installed_targets())
def test_each_wheel_links_only_what_its_policy_allows(dist, tmp_path, target):
    wheel = wheel_for(dist, target)
    _, policy_name = TARGETS[target]
    arch = target.split("-")[0]
    allowed = policy(policy_name)
    for library in elf_files(wheel, tmp_path):
        needed, glibc_versions, machine = needed_and_glibc_versions(library)
        assert machine == ELF_MACHINE[arch], (library.name, machine)
        # The dynamic loader is part of the C library, as auditwheel counts it.
        needed = {lib for lib in needed if not DYNAMIC_LOADER.fullmatch(lib)}
        assert needed <= set(allowed["lib_whitelist"]), needed - set(allowed["lib_whitelist"])
        if policy_name.startswith("manylinux"):
            newest = max(Version(v.removeprefix("GLIBC_")) for v in glibc_versions)
            assert newest <= Version("2.17"), glibc_versions
        else:
            assert not glibc_versions, glibc_versions


# `auditwheel show` cannot read musl wheels on a glibc machine (it stumbles on glibc's libc.so
# linker script): the musl wheels are checked by the policy test above.
@pytest.mark.parametrize("target", [t for t in installed_targets() if t.endswith("-gnu")])
def test_auditwheel_gives_each_manylinux_wheel_its_tag(dist, target):
    wheel = wheel_for(dist, target)
    shown = subprocess.run(
        ["auditwheel", "show", str(wheel)], capture_output=True, text=True, check=True
    ).stdout
    shown = " ".join(shown.split())
    arch = target.split("-")[0]
    assert f'consistent with the following platform tag: "manylinux_2_17_{arch}"' in shown, shown
    assert "external shared libraries are required" not in shown, shown


def test_twine_accepts_every_artifact(dist):
    artifacts = [str(p) for p in [*wheels(dist), sdist(dist)]]
    check = subprocess.run(
        ["twine", "check", "--strict", *artifacts], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("PASSED") == len(artifacts)


def metadata(artifact: Path) -> email.message.Message:
    if artifact.suffix == ".whl":
        with zipfile.ZipFile(artifact) as archive:
            (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            return email.message_from_bytes(archive.read(name))
    with tarfile.open(artifact) as archive:
        member = archive.extractfile(f"{artifact.name.removesuffix('.tar.gz')}/PKG-INFO")
        assert member is not None
        return email.message_from_bytes(member.read())


def test_metadata_a_package_index_shows(dist):
    wheel = wheel_for(dist, "x86_64-unknown-linux-gnu")
    meta = metadata(wheel)
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Requires-Python"] == ">=3.10"
    assert meta["Description-Content-Type"].startswith("text/markdown")
    assert meta.get_payload().startswith("# last9")  # the README is the long description
    classifiers = meta.get_all("Classifier")
    assert set(classifiers) <= known_classifiers, set(classifiers) - known_classifiers
    frameworks = {c.split(" :: ")[1] for c in classifiers if c.startswith("Framework ::")}
    assert {"Django", "Flask", "FastAPI", "Pyramid", "Bottle"} <= frameworks
    assert "Typing :: Typed" in classifiers
    keywords = meta["Keywords"].split(",")
    for framework in ["starlette", "tornado", "falcon"]:  # no trove classifier exists for them
        assert framework in keywords
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL"))
    assert urls["Homepage"] == "https://github.com/last9/last9-python"


def test_the_license_is_in_every_artifact(dist):
    license_text = (ROOT / "LICENSE").read_bytes()
    assert b"Apache License" in license_text and b"Version 2.0, January 2004" in license_text
    for wheel in wheels(dist):
        with zipfile.ZipFile(wheel) as archive:
            assert archive.read(f"last9-{VERSION}.dist-info/licenses/LICENSE") == license_text
    with tarfile.open(sdist(dist)) as archive:
        member = archive.extractfile(f"last9-{VERSION}/LICENSE")
        assert member is not None and member.read() == license_text


SMOKE = Path(__file__).with_name("release_smoke.py")


@pytest.mark.parametrize(("version", "python"), cpythons(), ids=lambda v: str(v))
def test_the_manylinux_wheel_works_in_a_fresh_virtualenv(dist, tmp_path, version, python):
    wheel = wheel_for(dist, "x86_64-unknown-linux-gnu")
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-index", str(wheel)],
        check=True,
    )
    run = subprocess.run(
        [venv / "bin" / "python", str(SMOKE)],
        cwd=tmp_path,  # not the repository, whose python/ must not be imported
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith(("LAST9_", "PYTHON"))},
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["version"] == VERSION
    assert result["file"].startswith(str(venv))
    counts = {}
    for family in text_string_to_metric_families(result["metrics"]):
        for sample in family.samples:
            if sample.name == f"{METRIC}_count":
                labels = sample.labels
                key = (labels["program"], labels["method"], labels["per"], labels["status"])
                counts[key] = sample.value
    assert counts == {
        ("smoke-wsgi", "GET", "/hello", "200"): 3,
        ("smoke-wsgi", "GET", "/missing", "404"): 1,
        ("smoke-asgi", "POST", "/items", "201"): 2,
    }


AARCH64_PYTHON = ROOT / "target" / "aarch64-python" / "root" / "usr" / "bin" / "python3.11"


@pytest.mark.parametrize(
    "target", [t for t in installed_targets() if t == "aarch64-unknown-linux-gnu"]
)
def test_the_aarch64_manylinux_wheel_works_on_an_aarch64_python(dist, target):
    assert shutil.which("qemu-aarch64-static"), "qemu-user-static is installed by scripts/test.sh"
    assert AARCH64_PYTHON.exists(), "scripts/test.sh fetches it (smoke-aarch64.sh --fetch-only)"
    run = subprocess.run(
        ["bash", str(ROOT / "scripts" / "smoke-aarch64.sh")],
        env={**os.environ, "DIST": str(dist)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"on CPython 3\.\d+\.\d+ aarch64$", run.stdout, re.MULTILINE), run.stdout
    assert f"last9 {VERSION} from" in run.stdout
    assert "exact counts in /metrics: ok" in run.stdout


def test_every_python_from_3_10_is_tried():
    versions = [Version(version) for version, _ in cpythons()]
    assert versions and min(versions) >= Version("3.10")
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in {
        f"{v.major}.{v.minor}" for v in versions
    }


def test_the_sdist_builds_offline_with_the_local_rust(dist, tmp_path):
    env = {
        **os.environ,
        "CARGO_NET_OFFLINE": "true",
        "MATURIN_PEP517_ARGS": "--profile quick",
        # Its own target directory: sharing the checkout's would rebuild that one afterwards.
        "CARGO_TARGET_DIR": str(ROOT / "target" / "sdist-check"),
    }
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-index",
            "--no-build-isolation",
            "--no-deps",
            "--wheel-dir",
            str(tmp_path),
            str(sdist(dist)),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = tmp_path.glob(f"last9-{VERSION}-cp310-abi3-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert "last9/_core.abi3.so" in archive.namelist()


def without_cargo() -> dict[str, str]:
    path = [
        entry
        for entry in os.environ["PATH"].split(os.pathsep)
        if entry and not os.path.exists(os.path.join(entry, "cargo"))
    ]
    return {**os.environ, "PATH": os.pathsep.join(path)}


def test_without_cargo_a_source_build_stops_and_downloads_nothing(dist):
    env = without_cargo()
    # maturin's own backend would fetch Rust: it asks for puccinialin, which downloads it.
    plain = subprocess.run(
        [sys.executable, "-c", "import maturin; print(maturin.get_requires_for_build_wheel())"],
        env={k: v for k, v in env.items() if k != "MATURIN_NO_INSTALL_RUST"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "puccinialin" in plain.stdout
    # last9's build, from the sdist as pip gets it, stops with what to install.
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-build-isolation",
            "--no-deps",
            "--dry-run",
            str(sdist(dist)),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    output = build.stdout + build.stderr
    assert build.returncode != 0, output
    assert f"needs Rust {MINIMUM_RUST} or newer" in output, output
    assert "No toolchain is downloaded" in output
    assert "puccinialin" not in output and "Rust not found, installing" not in output
