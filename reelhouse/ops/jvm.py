"""The JVM engines' shared plumbing: which Java runs them, and their jars from Maven.

Each engine is a module of the Maven project ``infra/pom.xml`` (``infra/<engine>/pom.xml``)
that lists its published artifacts at pinned versions. ``ensure_jars`` copies an engine's
jars, with their runtime dependencies, into ``infra/jars/<engine>/`` (git-ignored; ``~/.m2``
caches the downloads), and only when that folder is missing or older than the module's pom.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from reelhouse.ops.service import ServiceError
from reelhouse.settings import Settings

INFRA = Path(__file__).resolve().parents[2] / "infra"
JARS = INFRA / "jars"
DEFAULT_JAVA_HOME = Path("/usr/lib/jvm/java-17-openjdk-amd64")
# Written last by ensure_jars: a folder without it holds an interrupted copy.
COMPLETE_MARKER = ".complete"
RESOLVE_TIMEOUT_S = 900


def java_home(settings: Settings) -> Path:
    home = settings.java_home or DEFAULT_JAVA_HOME
    if not (home / "bin" / "java").exists():
        raise ServiceError(
            f"no Java at {home}/bin/java: install a JDK 17 (apt-get install openjdk-17-jdk-headless) "
            "or point REELHOUSE_JAVA_HOME at one"
        )
    return home


def java_binary(settings: Settings) -> str:
    return str(java_home(settings) / "bin" / "java")


def java_feature_version(settings: Settings) -> int:
    """The JDK's feature release (17 for 17.0.15), read from its ``release`` file."""
    release = java_home(settings) / "release"
    for line in release.read_text().splitlines() if release.exists() else []:
        if line.startswith("JAVA_VERSION="):
            return int(line.split("=", 1)[1].strip('"').split(".")[0])
    raise ServiceError(f"cannot tell the Java version of {java_home(settings)} (no JAVA_VERSION in {release})")


def jars_dir(engine: str) -> Path:
    return JARS / engine


def _up_to_date(engine: str) -> bool:
    marker = jars_dir(engine) / COMPLETE_MARKER
    pom = INFRA / engine / "pom.xml"
    return marker.exists() and marker.stat().st_mtime >= pom.stat().st_mtime


def ensure_jars(settings: Settings, engine: str) -> Path:
    """The folder of ``engine``'s jars, resolved with Maven first when missing or older than its pom."""
    pom = INFRA / engine / "pom.xml"
    if not pom.exists():
        raise ServiceError(f"no Maven module for {engine!r}: {pom} is missing")
    target = jars_dir(engine)
    if _up_to_date(engine):
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError("Maven is not installed: run `make deps` (or apt-get install maven)")
    # Copy into a fresh folder, then swap it in: a folder never mixes two versions' jars.
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    command = [
        mvn, "-q", "-B", "-f", str(INFRA / "pom.xml"), "-pl", engine,
        "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={partial}",
    ]
    began = time.monotonic()
    try:
        answer = subprocess.run(
            command, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT_S,
            env={**os.environ, "JAVA_HOME": str(java_home(settings))},
        )
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"resolving {engine}'s jars took over {RESOLVE_TIMEOUT_S} s: `{' '.join(command)}`") from exc
    if answer.returncode != 0:
        raise ServiceError(
            f"Maven could not resolve {engine}'s jars (`{' '.join(command)}` exited {answer.returncode}):\n"
            f"{(answer.stdout + answer.stderr)[-3000:]}"
        )
    (partial / COMPLETE_MARKER).write_text(f"resolved in {time.monotonic() - began:.1f} s\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.replace(target)
    return target


def classpath(folder: Path, *first: Path) -> str:
    """``first`` (config folders), then every jar of ``folder`` in name order: a stable classpath."""
    return os.pathsep.join([*map(str, first), *(str(jar) for jar in sorted(folder.glob("*.jar")))])
