from __future__ import annotations

from gatekeeper.identity.secrets import exposed_secret_files
from gatekeeper.testing.fakes import fake_config


def test_a_secret_file_others_may_read_is_reported_with_its_yaml_path(tmp_path) -> None:
    secret = tmp_path / "broker-password"
    secret.write_text("s3cret")
    cfg = fake_config(upstream={"bootstrap_servers": ["127.0.0.1:9092"],
                                "sasl": {"mechanism": "PLAIN", "username": "gk", "password_file": str(secret)}})
    secret.chmod(0o644)
    (line,) = exposed_secret_files(cfg)
    assert line.startswith("upstream.sasl.password_file") and "0644" in line and "s3cret" not in line
    secret.chmod(0o600)
    assert exposed_secret_files(cfg) == []


def test_a_readable_masking_hash_key_file_is_reported(tmp_path) -> None:
    key = tmp_path / "hash.key"
    key.write_text("k" * 32)
    key.chmod(0o640)
    cfg = fake_config(masking={"hash_key_file": str(key)})
    (line,) = exposed_secret_files(cfg)
    assert line.startswith("masking.hash_key_file") and "0640" in line and "kkkk" not in line


def test_a_listeners_upstream_tls_key_is_checked(tmp_path) -> None:
    from gatekeeper.config import parse_config

    key = tmp_path / "client.key"
    key.write_text("k")
    key.chmod(0o644)
    cfg = parse_config({
        "listeners": [{"name": "p", "protocol": "pulsar", "bind": "127.0.0.1:16650", "broker_ports": "16651-16651",
                       "upstream": {"bootstrap_servers": ["127.0.0.1:6651"],
                                    "tls": {"ca_file": str(tmp_path / "ca.pem"), "cert_file": str(tmp_path / "c.pem"),
                                            "key_file": str(key)}}}],
        "upstream": {"bootstrap_servers": ["127.0.0.1:6650"]},
        "policy": {"engine": "allow-all"},
    })
    assert exposed_secret_files(cfg) == [f"listeners[0].upstream.tls.key_file {key} (mode 0644)"]
