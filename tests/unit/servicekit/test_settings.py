from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import FrozenInstanceError, dataclass

import pytest

from identity.settings import IdentitySettings
from servicekit.settings import ServiceSettings, SettingsError, load, secret


@dataclass(frozen=True, kw_only=True)
class Example(ServiceSettings):
    service_name: str = "example"
    database_url: str = secret()
    peers: tuple[str, ...] = ()
    verbose: bool = False


def test_every_missing_key_is_named_in_one_error() -> None:
    with pytest.raises(SettingsError) as raised:
        load(IdentitySettings, {})
    assert "DATABASE_URL" in str(raised.value)
    assert "REDIS_URL" in str(raised.value)


def test_malformed_values_are_named_with_the_reason() -> None:
    with pytest.raises(SettingsError, match=r"GRPC_PORT .*invalid literal.*VERBOSE \(expected one of"):
        load(Example, {"DATABASE_URL": "postgresql://x/y", "GRPC_PORT": "http", "VERBOSE": "maybe"})


def test_values_are_parsed_and_frozen() -> None:
    settings = load(
        Example,
        {
            "DATABASE_URL": "postgresql://u:pw@h/db",
            "GRPC_PORT": "7000",
            "PEERS": "a:1, b:2,",
            "VERBOSE": "yes",
            "UNRELATED": "x",
        },
    )
    assert (settings.grpc_port, settings.peers, settings.verbose) == (7000, ("a:1", "b:2"), True)
    with pytest.raises(FrozenInstanceError):
        settings.grpc_port = 1  # type: ignore[misc]


def test_secrets_stay_out_of_the_repr() -> None:
    settings = load(Example, {"DATABASE_URL": "postgresql://u:hunter2@h/db"})
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize("package", ["identity", "billing", "jobs", "drive_sync", "gateway"])
def test_a_service_without_its_settings_refuses_to_start(package: str) -> None:
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "PYTHONPATH")}
    done = subprocess.run(
        [sys.executable, "-m", package, "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "missing required settings" in done.stderr
    assert "Traceback" not in done.stderr
