"""microwizard.yml checking and datawire.conf rendering, on real files in a temp folder."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

from mwkit.wizard.spec import HealthCheck, SpecError, load_spec, render_datawire_conf
from tests.helpers.wizard import CONF

KIT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = CONF  # the tiny test service's datawire.conf template
MINIMAL = "service_name: popularity\nservice_port: 5000\n"


def make_service(folder: Path, yml: str, *, template: str = TEMPLATE) -> Path:
    """A service folder with the three microwizard/ files; returns the microwizard.yml path."""
    microwizard = folder / "microwizard"
    microwizard.mkdir(parents=True)
    (microwizard / "microwizard.yml").write_text(yml)
    (microwizard / "mw.sh").write_text("#!/bin/bash\n")
    (microwizard / "datawire.conf").write_text(template)
    return microwizard / "microwizard.yml"


def test_full_spec_is_read(tmp_path):
    make_service(tmp_path, MINIMAL + """service_links: [directory, database, directory]
health_check: {path: /ready, period: 2, timeout: 0.25, rise: 3, fall: 4}
env: {GREETING: hello, RETRIES: 3, RATIO: 0.5}
""")
    spec = load_spec(tmp_path)
    assert spec.name == "popularity" and spec.port == 5000
    assert spec.links == ("directory", "database")
    assert spec.health_check == HealthCheck(path="/ready", period=2, timeout=0.25, rise=3, fall=4)
    assert spec.env == {"GREETING": "hello", "RETRIES": "3", "RATIO": "0.5"}
    assert spec.folder == tmp_path
    assert spec.mw_sh == tmp_path / "microwizard" / "mw.sh"
    assert spec.datawire_template == tmp_path / "microwizard" / "datawire.conf"


def test_optional_keys_have_the_documented_defaults(tmp_path):
    make_service(tmp_path, MINIMAL)
    spec = load_spec(tmp_path)
    assert spec.links == () and spec.env == {}
    assert spec.health_check == HealthCheck("/health", 1.0, 0.5, 1, 2)


@pytest.mark.parametrize("yml, expected", [
    ("service_name: [unclosed\n", ["not valid YAML"]),
    ("- service_name\n- service_port\n", ["must be a YAML mapping", "list"]),
    ("", ["must be a YAML mapping", "NoneType"]),
    (MINIMAL + "servce_links: [directory]\n",
     ["unknown key 'servce_links'", "did you mean 'service_links'"]),
    (MINIMAL + "health_check: {raise: 2}\n",
     ["unknown key 'health_check.raise'", "did you mean 'rise'"]),
    ("service_port: 5000\n", ["missing required key 'service_name'"]),
    ("service_name: popularity\n", ["missing required key 'service_port'"]),
    ("service_name: Popularity\nservice_port: 5000\n", ["'service_name'", "must match"]),
    ("service_name: 12\nservice_port: 5000\n", ["'service_name'", "non-empty string"]),
    ("service_name: popularity\nservice_port: abc\n",
     ["'service_port'", "a port number from 1 to 65535", "'abc'"]),
    ("service_name: popularity\nservice_port: 0\n", ["'service_port'", "1 to 65535"]),
    ("service_name: popularity\nservice_port: 65536\n", ["'service_port'", "1 to 65535"]),
    ("service_name: popularity\nservice_port: true\n", ["'service_port'", "1 to 65535"]),
    (MINIMAL + "health_check: {rise: 0}\n", ["'health_check.rise'", "a whole number >= 1"]),
    (MINIMAL + "health_check: {fall: 1.5}\n", ["'health_check.fall'", "a whole number >= 1"]),
    (MINIMAL + "health_check: {period: 0}\n", ["'health_check.period'", "a number > 0"]),
    (MINIMAL + "health_check: {period: -1}\n", ["'health_check.period'", "a number > 0"]),
    (MINIMAL + "health_check: {timeout: fast}\n", ["'health_check.timeout'", "a number > 0"]),
    (MINIMAL + "health_check: {period: .nan}\n", ["'health_check.period'", "a number > 0"]),
    (MINIMAL + "health_check: {timeout: .inf}\n", ["'health_check.timeout'", "a number > 0"]),
    ("service_name: \"svcnl\\n\"\nservice_port: 5000\n", ["'service_name'", "must match"]),
    (MINIMAL + "health_check: {path: health}\n", ["'health_check.path'", "starting with '/'"]),
    (MINIMAL + "health_check: [1]\n", ["'health_check'", "a mapping"]),
    (MINIMAL + "service_links: [directory, cache]\n",
     ["'service_links'", "directory, database", "'cache'"]),
    (MINIMAL + "service_links: directory\n", ["'service_links'", "a list"]),
    (MINIMAL + "env: [A]\n", ["'env'", "a mapping"]),
    (MINIMAL + "env: {GREETING: [a, b]}\n", ["'env.GREETING'", "a string or a number"]),
    (MINIMAL + "env: {DEBUG: yes}\n", ["'env.DEBUG'", "a string or a number"]),
    (MINIMAL + "env: {GREETING: }\n", ["'env.GREETING'", "a string or a number"]),
    (MINIMAL + "env: {1ST: a}\n", ["'env.1ST'", "shell variable"]),
    (MINIMAL + "env: {MY-VAR: a}\n", ["'env.MY-VAR'", "shell variable"]),
])
def test_mistakes_name_the_file_the_key_and_the_expectation(tmp_path, yml, expected):
    path = make_service(tmp_path, yml)
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path)
    message = str(caught.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_a_folder_without_microwizard_yml_is_refused(tmp_path):
    with pytest.raises(SpecError, match="microwizard.yml: not found"):
        load_spec(tmp_path)


@pytest.mark.parametrize("missing", ["mw.sh", "datawire.conf"])
def test_mw_sh_and_datawire_conf_must_exist(tmp_path, missing):
    make_service(tmp_path, MINIMAL)
    (tmp_path / "microwizard" / missing).unlink()
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path)
    assert str(tmp_path / "microwizard" / missing) in str(caught.value)


def test_datawire_conf_is_rendered_for_one_instance(tmp_path):
    make_service(tmp_path, MINIMAL + "health_check: {period: 2.0, timeout: 0.25, rise: 3}\n")
    text = render_datawire_conf(
        load_spec(tmp_path), directory_url="http://127.0.0.1:5353",
        service_url="http://127.0.0.1:5001", health_check_url="http://127.0.0.1:5001/health",
        instance_id="popularity-v1-1",
    )
    config = configparser.ConfigParser()
    config.read_string(text)
    assert config["Datawire"]["directory_host"] == "http://127.0.0.1:5353"
    assert dict(config["Watson"]) == {
        "service_name": "popularity", "service_url": "http://127.0.0.1:5001",
        "health_check_url": "http://127.0.0.1:5001/health", "instance_id": "popularity-v1-1",
        "period": "2", "timeout": "0.25", "rise": "3", "fall": "2", "drain": "0.5",
    }


def render(folder: Path) -> str:
    return render_datawire_conf(load_spec(folder), directory_url="http://127.0.0.1:5353",
                                service_url="http://127.0.0.1:5001",
                                health_check_url="http://127.0.0.1:5001/health",
                                instance_id="popularity-v1-1")


def test_an_unknown_placeholder_is_named(tmp_path):
    make_service(tmp_path, MINIMAL, template="directory_host = ${DIRECTORY_ADDRESS}\n")
    with pytest.raises(SpecError) as caught:
        render(tmp_path)
    assert str(tmp_path / "microwizard" / "datawire.conf") in str(caught.value)
    assert "unknown placeholder ${DIRECTORY_ADDRESS}" in str(caught.value)
    assert "${DIRECTORY_URL}" in str(caught.value)


def test_a_dollar_that_is_no_placeholder_stays(tmp_path):
    template = "; fills ${...} and $HOME; $$\n" + TEMPLATE
    make_service(tmp_path, MINIMAL, template=template)
    text = render(tmp_path)
    assert text.startswith("; fills ${...} and $HOME; $\n")
    assert "service_name = popularity\n" in text


@pytest.mark.parametrize("name", ["PATH", "PORT", "HOST", "PYTHON", "DATABASE_URL",
                                  "PYTHONPATH", "MWKIT_DIRECTORY_TOKEN", "MWKIT_INSTANCE_ID"])
def test_env_cannot_override_path_or_the_contract(tmp_path, name):
    """Issue #10, finding 9: a spec's env: must not replace what the kit gives instances."""
    path = make_service(tmp_path, MINIMAL + f"env: {{{name}: x, OTHER: y}}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path)
    assert str(path) in str(caught.value)
    assert f"'env.{name}'" in str(caught.value) and "cannot be overridden" in str(caught.value)


@pytest.mark.parametrize("line, replacement, key", [
    ("service_name = ${SERVICE_NAME}", "service_name = popularity2", "[Watson] service_name"),
    ("directory_host = ${DIRECTORY_URL}", "directory_host = garbage%%", "directory_host"),
    ("directory_host = ${DIRECTORY_URL}", "directory_host = http://127.0.0.1:1",
     "[Datawire] directory_host"),
    ("instance_id = ${INSTANCE_ID}", "instance_id = someone-else", "[Watson] instance_id"),
])
def test_a_datawire_conf_the_wizard_would_wait_on_in_vain_is_refused(tmp_path, line,
                                                                      replacement, key):
    """Issue #10, finding 7: Watson would register another name (or with another Directory);
    the wizard would say "never healthy" and deregister the wrong name. Refused at once."""
    assert line in TEMPLATE
    make_service(tmp_path, MINIMAL, template=TEMPLATE.replace(line, replacement))
    with pytest.raises(SpecError) as caught:
        render(tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "microwizard" / "datawire.conf") in message
    assert key in message and len(message) < 400


def test_the_kits_popularity_service_is_valid():
    spec = load_spec(KIT_ROOT / "services" / "popularity")
    assert spec.name == "popularity"
    assert "directory" in spec.links
    text = render_datawire_conf(spec, directory_url="http://127.0.0.1:5353",
                                service_url="http://127.0.0.1:5001",
                                health_check_url="http://127.0.0.1:5001/health",
                                instance_id="popularity-1")
    assert not re.search(r"\$\{[A-Z_]+\}", text) and "instance_id = popularity-1" in text


def test_a_yaml_alias_bomb_is_refused_in_a_few_bytes(tmp_path):
    """Nine nested aliases of nine expand to 9**9 strings; the error stays short."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 9)]
    path = make_service(tmp_path, MINIMAL + "env: {BOMB: *a8}\n" + "\n".join(lines) + "\n")
    with pytest.raises(SpecError, match="aliases") as caught:
        load_spec(tmp_path)
    assert str(path) in str(caught.value) and len(str(caught.value)) < 600


def test_a_long_wrong_value_is_named_briefly(tmp_path):
    make_service(tmp_path, MINIMAL + f"env: {{BIG: [{', '.join(['x'] * 5000)}]}}\n")
    with pytest.raises(SpecError, match="'env.BIG'") as caught:
        load_spec(tmp_path)
    assert len(str(caught.value)) < 600
