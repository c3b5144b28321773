"""Runs the Dockerfile's builder stage without Docker, to check its build steps.

No Docker engine runs on the development and CI machines, so the image cannot be built
there. This replays the builder stage on the host instead: a fresh directory stands in
for WORKDIR, COPY copies from the build context filtered by .dockerignore and keeps the
files' modification times (as Docker does), and each RUN runs with /bin/sh -c. The host's
toolchain must be the builder image's Rust version. It then checks that the binary left
in target/release is the real program, not the dependency layer's stub: the stub trap
is Cargo taking stub builds for up to date when the copied sources are older.

Slow (two release builds from scratch, about 6 to 10 minutes on 2 cores); run by
`scripts/test-deploy --build`, not by default.

    python3 tests/deploy/emulate_build.py [--keep]
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import support


def context_files() -> list[str]:
    patterns = support.dockerignore_patterns()
    files = []
    for path in sorted(support.REPO.rglob("*")):
        relative = path.relative_to(support.REPO).as_posix()
        if path.is_file() and not support.dockerignore_excludes(relative, patterns):
            files.append(relative)
    return files


def copy(arguments: str, workdir: Path, files: list[str]) -> None:
    """COPY from the build context: a file lands in the destination folder under its
    name, a folder's contents (or the whole context for `.`) keep their layout."""
    parts = shlex.split(arguments)
    assert not any(p.startswith("--") for p in parts), f"unsupported COPY flags: {arguments}"
    *sources, destination = parts
    target = workdir / destination
    for source in sources:
        source = source.rstrip("/") or "."
        if source == ".":
            chosen = [(f, f) for f in files]
        elif source in files:
            chosen = [(source, Path(source).name)]
        else:
            chosen = [(f, f[len(source) + 1 :]) for f in files if f.startswith(source + "/")]
        assert chosen, f"COPY {source}: not in the build context"
        for relative, placed in chosen:
            to = target / placed
            to.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(support.REPO / relative, to)  # keeps the modification time


def main(argv: list[str]) -> int:
    builder = [i for i in support.dockerfile_instructions() if i.stage == 0]
    image = builder[0].arguments.split()[0]
    version = re.match(r"rust:(\d+\.\d+)", image).group(1)
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True, check=True)
    assert f"rustc {version}." in rustc.stdout, f"host {rustc.stdout.strip()} is not {image}'s"

    files = context_files()
    root = Path(tempfile.mkdtemp(prefix="alis-import-docker-build-"))
    workdir = root
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARGO_TARGET_DIR")}
    started = time.monotonic()
    try:
        for instruction in builder[1:]:
            print(f"==> {instruction.keyword} {instruction.arguments}", flush=True)
            if instruction.keyword == "WORKDIR":
                workdir = root / instruction.arguments.lstrip("/")
                workdir.mkdir(parents=True, exist_ok=True)
            elif instruction.keyword == "COPY":
                copy(instruction.arguments, workdir, files)
            elif instruction.keyword == "RUN":
                subprocess.run(["/bin/sh", "-c", instruction.arguments], cwd=workdir, env=env, check=True)
            elif instruction.keyword not in ("ENV", "ARG"):
                raise SystemExit(f"unsupported instruction {instruction.keyword}")
        binary = workdir / "target" / "release" / "alis-import"
        result = subprocess.run([binary, "--help"], capture_output=True, text=True, check=False)
        assert result.returncode == 0 and "alis-import" in result.stdout.lower() and "import" in result.stdout, (
            f"target/release/alis-import is not the real program (the stub?):\n{result.stdout}{result.stderr}"
        )
        print(f"emulated builder stage OK in {time.monotonic() - started:.0f}s: {binary} runs")
        return 0
    finally:
        if "--keep" in argv:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
