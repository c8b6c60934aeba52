"""Validate the Kubernetes manifests that deploy/kustomization.yaml lists, offline, with kubernetes-validate.

Strict mode (unknown fields are errors), against the oldest supported Kubernetes release (1.30: the preStop
`sleep` action) and the newest one kubernetes-validate ships. Unlike its CLI, which only warns, an unknown
kind or apiVersion is an error here, and so is a manifest in deploy/ that the kustomization does not list.

Usage: python deploy/validate_manifests.py [deploy/kustomization.yaml]   (exits 1 on errors)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError, latest_version

__all__ = ("OLDEST_KUBERNETES", "main", "validate")

OLDEST_KUBERNETES = "1.30.0"


def validate(kustomization: Path) -> tuple[list[str], list[str]]:
    """Validate every resource of a kustomization.

    Args:
        kustomization: The kustomization.yaml.

    Returns:
        One line per valid resource, and one line per error.
    """
    root = kustomization.parent
    spec: dict[str, Any] = yaml.safe_load(kustomization.read_text(encoding="utf-8"))
    listed = [root / name for name in spec.get("resources", [])]
    errors = [f"{path}: listed in {kustomization.name} but missing" for path in listed if not path.is_file()]
    errors += [
        f"{path}: not listed in {kustomization.name}"
        for path in sorted(root.glob("*.yaml"))
        if path != kustomization and path not in listed
    ]
    passed: list[str] = []
    for path in (path for path in listed if path.is_file()):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document is None:
                continue
            name = f"{path}: {document.get('kind')}/{document.get('metadata', {}).get('name')}"
            try:
                for version in (OLDEST_KUBERNETES, latest_version()):
                    kubernetes_validate.validate(document, version, strict=True)
            except ValidationError as exc:
                errors.append(f"{name}: {'.'.join(map(str, exc.path))}: {exc.message}")
            except SchemaNotFoundError:
                errors.append(f"{name}: no schema for kind {document.get('kind')!r} in {document.get('apiVersion')!r}")
            else:
                passed.append(f"{name}: valid (strict, Kubernetes {OLDEST_KUBERNETES} and {latest_version()})")
    return passed, errors


def main(argv: list[str]) -> int:
    """Validate the kustomization named in `argv` (default `deploy/kustomization.yaml`); return the exit status."""
    passed, errors = validate(Path(argv[0] if argv else "deploy/kustomization.yaml"))
    for line in passed:
        print(line)
    for line in errors:
        print(line, file=sys.stderr)
    return 1 if errors or not passed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
