"""The deployment files agree with each other and with the app: settings parse, probes answer, names match.

(Their syntax is checked by `make lint-deploy`: hadolint, the Compose JSON schema, kubernetes-validate.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.config import Settings
from app.server import create_app
from tests.deploy.files import (
    compose,
    compose_environment,
    dockerfile_env,
    dockerfile_instructions,
    interpolate,
    manifests,
)


def container(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (app,) = resources["Deployment"]["spec"]["template"]["spec"]["containers"]
    return app


def kubernetes_env() -> dict[str, str]:
    """What a pod sees: the image's ENV, then envFrom (ConfigMap, Secret), then env."""
    resources = manifests()
    env = dockerfile_env()
    env |= resources["ConfigMap"]["data"]
    env |= resources["Secret"]["stringData"]
    env |= {item["name"]: item["value"] for item in container(resources).get("env", [])}
    return env


@pytest.mark.parametrize(
    ("name", "env"),
    [
        ("image", dockerfile_env),
        ("compose", lambda: dockerfile_env() | compose_environment("app")),
        ("kubernetes", kubernetes_env),
    ],
)
def test_every_environment_is_valid_settings(name: str, env: Any) -> None:
    settings = Settings.from_env(env(), env_file=None)
    assert settings.host == "0.0.0.0"  # a container listens on all its interfaces
    assert settings.port == 8000
    assert settings.log_format == "json"
    if name != "image":
        assert settings.redis_url is not None
        assert settings.database_url is not None
        assert settings.sqlite_path is None  # PostgreSQL


def test_compose_app_reaches_redis_and_postgres_with_their_credentials() -> None:
    services = compose()["services"]
    app_env = compose_environment("app")
    redis = urlsplit(app_env["REDIS_URL"])
    redis_command = [interpolate(part) for part in services["redis"]["command"]]
    assert redis.hostname == "redis"
    assert redis.password == redis_command[redis_command.index("--requirepass") + 1]
    assert redis.password == compose_environment("redis")["REDISCLI_AUTH"]  # used by the health check
    postgres = urlsplit(app_env["DATABASE_URL"])
    postgres_env = compose_environment("postgres")
    assert postgres.hostname == "postgres"
    assert (postgres.username, postgres.password, postgres.path) == (
        postgres_env["POSTGRES_USER"],
        postgres_env["POSTGRES_PASSWORD"],
        f"/{postgres_env['POSTGRES_DB']}",
    )
    for dependency, condition in services["app"]["depends_on"].items():
        assert condition == {"condition": "service_healthy"}
        assert services[dependency]["healthcheck"]["test"]
    assert services["postgres"]["volumes"][0].split(":")[0] in compose()["volumes"]


def test_kubernetes_objects_select_the_pods_and_use_the_image_user() -> None:
    resources = manifests()
    pod = resources["Deployment"]["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert resources["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert resources["Service"]["spec"]["selector"].items() <= labels.items()
    assert resources["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (port,) = container(resources)["ports"]
    assert resources["Service"]["spec"]["ports"][0]["targetPort"] == port["name"]
    assert port["containerPort"] == int(kubernetes_env()["PORT"])
    sources = {next(iter(ref.values()))["name"] for ref in container(resources)["envFrom"]}
    assert sources == {resources["ConfigMap"]["metadata"]["name"], resources["Secret"]["metadata"]["name"]}
    (user,) = [arguments for instruction, arguments in dockerfile_instructions() if instruction == "USER"]
    uid, _, gid = user.partition(":")
    security = pod["spec"]["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (int(uid), int(gid))
    assert security["runAsNonRoot"] is True
    assert container(resources)["securityContext"]["readOnlyRootFilesystem"] is True


async def test_kubernetes_probes_answer_on_the_app(tmp_path: Path) -> None:
    names = ("startupProbe", "livenessProbe", "readinessProbe")
    probes = {name: container(manifests())[name]["httpGet"]["path"] for name in names}
    assert probes == {
        "startupProbe": "/health/live",
        "livenessProbe": "/health/live",
        "readinessProbe": "/health/ready",
    }
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'users.db'}"))
    async with AsyncTestClient[Litestar](app) as client:
        for path in probes.values():
            assert (await client.get(path)).status_code == 200
