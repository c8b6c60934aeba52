"""Read what the deployment files say (the image's command and environment, the compose services, the manifests),
so the tests run the app the way they do instead of restating their values."""

from __future__ import annotations

import json
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
DEPLOY = ROOT / "deploy"

_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}")


def dockerfile_instructions(stage: str | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined; only the last stage by default."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for text in logical:
        instruction, _, arguments = text.partition(" ")
        if instruction.upper() == "FROM":
            current = stages.setdefault(arguments.split()[-1] if " AS " in arguments.upper() else arguments, [])
        current.append((instruction.upper(), arguments.strip()))
    return stages[stage] if stage is not None else current


def dockerfile_env() -> dict[str, str]:
    """The environment the final image sets with ENV (`PATH` left out: the tests keep their own)."""
    env: dict[str, str] = {}
    for instruction, arguments in dockerfile_instructions():
        if instruction == "ENV":
            for item in shlex.split(arguments):
                name, _, value = item.partition("=")
                env[name] = value
    env.pop("PATH", None)
    return env


def dockerfile_exec_form(instruction: str) -> list[str]:
    """The JSON (exec) form of CMD, ENTRYPOINT or `HEALTHCHECK ... CMD [...]` of the final image."""
    for name, arguments in dockerfile_instructions():
        if name == instruction:
            return json.loads(arguments[arguments.index("[") :])
    raise AssertionError(f"the Dockerfile has no {instruction}")


def interpolate(value: Any) -> str:
    """Compose's `${NAME:-default}` with nothing set in the environment: the documented local default."""
    return _INTERPOLATION.sub(lambda match: match.group("default") or "", str(value))


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def compose_environment(service: str) -> dict[str, str]:
    """A compose service's `environment`, interpolated with the defaults."""
    return {name: interpolate(value) for name, value in compose()["services"][service].get("environment", {}).items()}


@cache
def manifests() -> dict[str, dict[str, Any]]:
    """The Kubernetes resources of deploy/kustomization.yaml, by kind."""
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text(encoding="utf-8"))
    resources: dict[str, dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for document in yaml.safe_load_all((DEPLOY / name).read_text(encoding="utf-8")):
            assert document["kind"] not in resources, f"two {document['kind']} resources"
            resources[document["kind"]] = document
    return resources
