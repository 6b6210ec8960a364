"""Route table validation: every kind of mistake, each named with file and path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.config.schema import ConfigError, ModelType, load, parse
from tests.harness import table_dict

ROOT = Path(__file__).resolve().parents[2]


def errors_of(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(data, "routes.yaml")
    return caught.value.errors


def test_the_default_table_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_API_KEY", "sk-x")
    table = load(ROOT / "routes.yaml")
    for model_id in ("Llama-3.1-70B-Instruct", "Mistral-Nemo-Instruct-2407", "Mixtral-8x7B-Instruct-v0.1",
                     "DeepSeek-Coder-V2-Lite-Instruct", "Llama-3.1-405B-Instruct-US", "Mistral-Large-2407"):
        assert table.models[model_id].completions
    for model_id in ("jina-embeddings-v2-base-de", "text-embedding-bge-m3", "text-embedding-ada-002"):
        assert table.models[model_id].type is ModelType.EMBEDDING
        assert table.models[model_id].meta_data.hidden_size > 0
    for model_id in ("gpt-35-turbo", "gpt-4o", "gpt-4-turbo-128k-france", "claude-3-5-sonnet",
                     "claude-3-5-sonnet-v2-US", "gemini-1.5-pro", "gemini-1.5-flash"):
        assert table.models[model_id].type is ModelType.CHAT and not table.models[model_id].completions
        assert table.models[model_id].meta_data.hidden_size == 0
    assert table.models["whisper-large-v3"].type is ModelType.TRANSCRIPTION
    assert table.models["llava-v1.6-34b"].endpoints == ("/vision",)
    assert table.models["llava-v1.6-vicuna-13b"].endpoints == ("/vision",)
    assert table.providers["claude-vertex-us" if "claude-vertex-us" in table.providers
                           else "vertex-claude-us"].kind == "anthropic-vertex"


def test_environment_substitution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", "sk-from-env")
    monkeypatch.setenv("PORT_FROM_ENV", "9099")
    data = table_dict(server={"port": "${PORT_FROM_ENV}", "host": "${HOST_UNSET:-0.0.0.0}"})
    data["providers"]["openai"]["api_key"] = "${UPSTREAM_KEY}"
    table = parse(data)
    assert table.server.port == 9099 and table.server.host == "0.0.0.0"
    assert table.providers["openai"].settings.api_key is not None
    assert table.providers["openai"].settings.api_key.get() == "sk-from-env"
    assert "sk-from-env" not in repr(table)


def test_missing_environment_variable_is_named() -> None:
    data = table_dict()
    data["providers"]["openai"]["api_key"] = "${SURELY_NOT_SET_ANYWHERE}"
    assert errors_of(data) == [
        "routes.yaml: providers.openai.api_key: environment variable SURELY_NOT_SET_ANYWHERE is not set"]


def test_unknown_provider_in_a_target() -> None:
    data = table_dict()
    data["models"]["gpt-4o"]["targets"][0]["provider"] = "azure-typo"
    assert errors_of(data) == ["routes.yaml: models.gpt-4o.targets[0].provider: unknown provider 'azure-typo'"]


def test_unknown_kind() -> None:
    data = table_dict()
    data["providers"]["openai"]["kind"] = "openia"
    [error] = errors_of(data)
    assert error.startswith("routes.yaml: providers.openai.kind: unknown kind 'openia'")


def test_duplicate_model_id(tmp_path: Path) -> None:
    file = tmp_path / "routes.yaml"
    text = yaml.safe_dump(table_dict(), sort_keys=False)
    text = text.replace("models:\n", "models:\n  gpt-4o:\n    targets: [{provider: openai, model: x}]\n", 1)
    file.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load(file)
    assert "duplicate key 'gpt-4o'" in caught.value.errors[0]
    assert str(file) in caught.value.errors[0]


def test_key_listing_a_model_that_does_not_exist() -> None:
    data = table_dict()
    data["keys"][1]["models"] = ["Llama-3.1-70B-Instruct", "gpt-5"]
    assert errors_of(data) == ["routes.yaml: keys[1].models[1]: unknown model 'gpt-5'"]


def test_missing_required_fields() -> None:
    data = table_dict()
    del data["providers"]["azure"]["api_version"]
    del data["models"]["gpt-4o"]["targets"][0]["model"]
    del data["keys"][0]["key"]
    assert sorted(errors_of(data)) == sorted([
        "routes.yaml: providers.azure.api_version: required for kind 'azure'",
        "routes.yaml: models.gpt-4o.targets[0].model: required field is missing",
        "routes.yaml: keys[0].key: required field is missing (key or key_sha256)",
    ])


def test_wrong_types() -> None:
    data = table_dict(server={"port": "eighty"})
    data["models"]["gpt-4o"]["meta_data"]["max_sequence_length"] = "128k"
    data["models"]["gpt-4o"]["completions"] = "yes"
    data["models"]["gpt-4o"]["targets"][0]["weight"] = 1.5
    assert sorted(errors_of(data)) == sorted([
        "routes.yaml: server.port: expected an integer, got a string",
        "routes.yaml: models.gpt-4o.meta_data.max_sequence_length: expected an integer, got a string",
        "routes.yaml: models.gpt-4o.completions: expected true or false, got a string",
        "routes.yaml: models.gpt-4o.targets[0].weight: expected an integer, got a number",
    ])


def test_unknown_fields_are_errors_with_a_hint() -> None:
    data = table_dict()
    data["models"]["gpt-4o"]["fallback"] = ["claude-3-5-sonnet"]
    data["providers"]["openai"]["apikey"] = "x"
    errors = errors_of(data)
    assert "routes.yaml: models.gpt-4o.fallback: unknown field (did you mean 'fallbacks'?)" in errors
    assert "routes.yaml: providers.openai.apikey: unknown field (did you mean 'api_key'?)" in errors


def test_every_mistake_is_reported_at_once() -> None:
    data = table_dict()
    data["providers"]["openai"]["kind"] = "nope"
    data["models"]["gpt-4o"]["fallbacks"] = ["no-such-model"]
    data["keys"][0]["models"] = ["ghost"]
    assert len(errors_of(data)) == 3  # the bad kind, the fallback, the key


def test_fallback_to_itself_and_duplicate_keys() -> None:
    data = table_dict()
    data["models"]["gpt-4o"]["fallbacks"] = ["gpt-4o"]
    data["keys"][1]["key"] = data["keys"][0]["key"]
    errors = errors_of(data)
    assert "routes.yaml: models.gpt-4o.fallbacks[0]: a model cannot fall back to itself" in errors
    assert "routes.yaml: keys[1].key: the same key is already given to 'team-a'" in errors


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("models: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load(file)
    assert caught.value.errors[0].startswith(f"{file}: invalid YAML")


def test_check_command(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(table_dict()))
    bad = tmp_path / "bad.yaml"
    data = table_dict()
    data["models"]["gpt-4o"]["targets"][0]["provider"] = "nowhere"
    bad.write_text(yaml.safe_dump(data))
    ok = subprocess.run([sys.executable, "-m", "router.cli", "check", str(good)], capture_output=True, text=True,
                        cwd=ROOT)
    assert ok.returncode == 0 and "ok" in ok.stdout
    failed = subprocess.run([sys.executable, "-m", "router.cli", "check", str(bad)], capture_output=True,
                            text=True, cwd=ROOT)
    assert failed.returncode == 1
    assert f"{bad}: models.gpt-4o.targets[0].provider: unknown provider 'nowhere'" in failed.stdout
