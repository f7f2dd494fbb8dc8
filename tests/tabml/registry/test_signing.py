"""Optional authenticity: with a signing key configured, a package must carry a valid HMAC-SHA256 of its MANIFEST."""

import json
from pathlib import Path

import pytest

from tabml.core.files import sha256_file
from tabml.core.params import load_params
from tabml.registry.index import RegistryError
from tabml.registry.package import SIGNATURE_FILE, signing_key
from tabml.registry.store import load_package, publish
from tests.tabml.registry.test_store import NAME, sources
from tests.workspace import EXAMPLE_PARAMS

KEY = b"0123456789abcdef-registry-key"


def signed(reg: Path, src: Path, key: bytes | None = KEY) -> Path:
    entry, _, _ = publish(reg, NAME, sources(src), lambda v: {}, {}, stage="production", lock_timeout=5, key=key)
    return reg / NAME / entry.path


def forge(package: Path, reg: Path) -> None:
    """What an attacker with write access can do: new weights, a matching MANIFEST and index entry."""
    (package / "model.safetensors").write_bytes(b"someone else's weights")
    manifest = json.loads((package / "MANIFEST.json").read_text())
    manifest["sha256"]["model.safetensors"] = sha256_file(package / "model.safetensors")
    (package / "MANIFEST.json").write_text(json.dumps(manifest))
    index = json.loads((reg / NAME / "index.json").read_text())
    index["versions"][-1]["manifest_sha256"] = sha256_file(package / "MANIFEST.json")
    (reg / NAME / "index.json").write_text(json.dumps(index))


def test_a_signed_package_loads_and_a_forged_one_is_refused(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    package = signed(reg, tmp_path / "src")
    assert json.loads((package / SIGNATURE_FILE).read_text())["hmac_sha256"]
    assert load_package(reg, NAME, key=KEY).entry.version == 1
    with pytest.raises(RegistryError, match="signature does not match the signing key"):
        load_package(reg, NAME, key=b"another key")
    forge(package, reg)
    assert load_package(reg, NAME).entry.version == 1  # integrity alone cannot tell
    with pytest.raises(RegistryError, match="signature does not match") as info:
        load_package(reg, NAME, key=KEY)
    assert "do not use this package" in str(info.value)


def test_with_a_key_configured_an_unsigned_package_is_refused(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    signed(reg, tmp_path / "src", key=None)
    assert load_package(reg, NAME).entry.version == 1
    with pytest.raises(RegistryError, match="the package is not signed, and a signing key is configured"):
        load_package(reg, NAME, key=KEY)


def test_the_key_comes_from_the_named_env_var_and_is_required_once_named(monkeypatch: pytest.MonkeyPatch) -> None:
    p = load_params(EXAMPLE_PARAMS).register_
    assert p.signing_key_env is None and signing_key(p) is None  # off by default
    named = p.model_copy(update={"signing_key_env": "TABML_TEST_SIGNING_KEY"})
    monkeypatch.delenv("TABML_TEST_SIGNING_KEY", raising=False)
    with pytest.raises(RegistryError, match="names TABML_TEST_SIGNING_KEY, which is not set") as info:
        signing_key(named)
    assert "export TABML_TEST_SIGNING_KEY=" in str(info.value)
    monkeypatch.setenv("TABML_TEST_SIGNING_KEY", KEY.decode())
    assert signing_key(named) == KEY
