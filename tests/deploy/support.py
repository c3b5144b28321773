"""Shared helpers of the deployment tests: rendering the chart with Helm's own code
(helm-python-sdk, Helm's Go SDK through a C library), validating manifests with
kubernetes-validate's bundled (offline) schemas, and reading the Dockerfile."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import helm_python as helm
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "alis-import"
PRODUCTION_VALUES = REPO / "helm" / "examples" / "values-production.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

RELEASE = "alis-import"
NAMESPACE = "erp"


def chart_metadata() -> dict[str, Any]:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


def chart_defaults() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def production_values() -> dict[str, Any]:
    return yaml.safe_load(PRODUCTION_VALUES.read_text())


def min_kube_version() -> str:
    """The oldest Kubernetes the chart declares (Chart.yaml kubeVersion ">=X.Y.Z-0")."""
    match = re.fullmatch(r">=\s*(\d+\.\d+)\.\d+(?:-0)?", chart_metadata()["kubeVersion"])
    assert match, "kubeVersion must read >=X.Y.Z-0"
    return match.group(1)


def kube_versions() -> list[str]:
    """The Kubernetes versions manifests are validated against: the chart's minimum and
    the newest kubernetes-validate bundles."""
    return sorted({min_kube_version(), kubernetes_validate.latest_version().rsplit(".", 1)[0]})


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass
class Rendered:
    """A rendered release: the manifests by template, and NOTES.txt."""

    documents: list[tuple[str, dict[str, Any]]]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for _, doc in self.documents if doc["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, found {len(found)}"
        return found[0]

    def kinds(self) -> list[str]:
        return sorted(doc["kind"] for _, doc in self.documents)

    def text(self) -> str:
        return "\n---\n".join(yaml.safe_dump(doc) for _, doc in self.documents)


def render(values: dict[str, Any] | None = None, *, release: str = RELEASE) -> Rendered:
    """Renders the chart as `helm template` would (offline; no cluster)."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=release, namespace=NAMESPACE, is_install=True)
    documents: list[tuple[str, dict[str, Any]]] = []
    notes = ""
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                documents.append((template, doc))
    return Rendered(documents, notes)


def lint(values: dict[str, Any] | None, kube_version: str) -> dict[str, Any]:
    return helm.lint(
        CHART, values, strict=True, namespace=NAMESPACE, kube_version=f"v{kube_version}.0"
    )


def validate(doc: dict[str, Any], kube_version: str) -> None:
    """Validates one manifest against the Kubernetes schema of that version, strictly
    (unknown fields are errors). A kind without a schema is an error too."""
    kubernetes_validate.validate(doc, kube_version, strict=True)


@dataclass
class PodSpec:
    """A pod template found in a rendered workload."""

    owner: str  # "Deployment/alis-import"
    metadata: dict[str, Any]
    spec: dict[str, Any]

    def containers(self) -> list[dict[str, Any]]:
        return self.spec.get("initContainers", []) + self.spec["containers"]


def pod_specs(rendered: Rendered) -> Iterator[PodSpec]:
    """Every pod template of every workload kind the chart could render."""
    for _, doc in rendered.documents:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            template = doc["spec"]["template"]
        elif kind == "CronJob":
            template = doc["spec"]["jobTemplate"]["spec"]["template"]
        elif kind == "Pod":
            template = doc
        else:
            continue
        yield PodSpec(f"{kind}/{name}", template.get("metadata", {}), template["spec"])


# --- Dockerfile -------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    arguments: str
    stage: int  # index of the FROM it belongs to


def dockerfile_instructions(text: str | None = None) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text() if text is None else text
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    instructions: list[Instruction] = []
    stage = -1
    for entry in logical:
        keyword, _, arguments = entry.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, arguments.strip(), stage))
    return instructions


def dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` (relative, '/'-separated) out of the build context.
    Covers the pattern forms .dockerignore uses here: names, globs, `dir/`, `**/x` and
    `!` exceptions, matched against the path and each of its parent directories."""
    import fnmatch

    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates.append(pattern[3:])
        for prefix in prefixes:
            names = [prefix] + ([prefix.split("/")[-1]] if pattern.startswith("**/") else [])
            if any(fnmatch.fnmatchcase(n, c) for n in names for c in candidates):
                excluded = not negate
                break
    return excluded
