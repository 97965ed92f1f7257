"""Property-based tests of the spec loaders (issue #10): any ``microwizard.yml`` or
``datawire.conf`` text gives a loaded spec or a short error that says what is wrong.

Hypothesis writes the files: random text, YAML dumped from random mappings (odd keys, huge
numbers and strings, NaN and infinity, deep nesting), and YAML-ish lines with anchors,
aliases and tags. Never another exception, never an error longer than ``MAX_MESSAGE``
characters (a message names the wrong value; it does not reprint the file).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mwkit.errors import SpecError, WatsonConfigError
from mwkit.names import check_service_name
from mwkit.watson.config import WatsonConfig
from mwkit.wizard.spec import TOP_KEYS, ServiceSpec, load_spec

MAX_MESSAGE = 500
#: Reproducible and bounded: the same examples on every run, no example database on disk.
PROPERTIES = settings(max_examples=300, deadline=2000, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.too_slow])

KEYS = st.sampled_from([*TOP_KEYS, "path", "period", "timeout", "rise", "fall", "PORT",
                        "service-name", "", "<<", "?"]) | st.text(max_size=30)
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**30)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40)
           | st.text(min_size=600, max_size=700, alphabet="ab\n\"'")
           | st.sampled_from(["popularity", "/health", "directory", "database", ".nan"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(KEYS | st.integers(), inner, max_size=4), max_leaves=20)
MAPPINGS = st.fixed_dictionaries(
    {}, optional={"service_name": VALUES, "service_port": VALUES, "service_links": VALUES,
                  "health_check": st.dictionaries(KEYS, VALUES, max_size=5) | VALUES,
                  "env": st.dictionaries(KEYS, VALUES, max_size=5) | VALUES},
) | st.dictionaries(KEYS | SCALARS, VALUES, max_size=6)
NEAR_VALUES = st.sampled_from([0.5, 1, 2, 3, "/health", "/", 0, -1, math.nan, math.inf, True,
                               "1", None, 10**30, "x" * 600])
NEAR_SPECS = st.fixed_dictionaries(  # a good spec with some keys changed: some still load
    {"service_name": st.just("popularity"), "service_port": st.just(5000)},
    optional={
        "health_check": st.dictionaries(st.sampled_from(["path", "period", "timeout", "rise",
                                                         "fall", "perod"]), NEAR_VALUES),
        "env": st.dictionaries(st.sampled_from(["A", "B_1", "PATH", "MWKIT_X", "PORT", "1A",
                                                "a b", "x" * 600]),
                               st.sampled_from(["x", 1, 1.5, True, None, [1], "", "é"])),
        "service_links": st.lists(st.sampled_from(["directory", "database", "redis", 1]),
                                  max_size=3),
    })
YAML_BITS = st.sampled_from([
    "service_name: popularity", "service_port: 5000", "service_links: [directory]",
    "health_check:", "  period: .nan", "  timeout: .inf", "  rise: 0", "env:", "  A: *x",
    "&x [1, 2]", "*x", "!!python/object:os.system", "!!binary aGk=", "? [a]", "- - -",
    "{", "]", "'", '"\\x', "%YAML 1.1", "---", "...", "<<: {a: 1}", "\t", "\x00", "\ufeff",
    "service_port: 0x1F", "service_port: 99999999999999999999999", "service_name: " + "a" * 300,
])
YAML_TEXTS = (
    st.text(max_size=300)
    | (MAPPINGS | NEAR_SPECS).map(lambda m: yaml.safe_dump(m, allow_unicode=True))
    | st.lists(YAML_BITS | st.text(max_size=20), max_size=12).map("\n".join)
)


def too_long(error: Exception) -> str:
    return f"{len(str(error))} characters: {str(error)[:200]}..."


@pytest.fixture(scope="module")
def service_folder():
    """A service folder with mw.sh and datawire.conf, so a good microwizard.yml loads."""
    with tempfile.TemporaryDirectory(prefix="spec-") as name:
        (Path(name) / "microwizard").mkdir()
        (Path(name) / "microwizard" / "mw.sh").write_text("#!/bin/sh\n")
        (Path(name) / "microwizard" / "datawire.conf").write_text("[Watson]\n")
        yield Path(name)


def test_a_good_spec_still_loads(service_folder):
    """The property below could pass by refusing everything: this one cannot."""
    (service_folder / "microwizard" / "microwizard.yml").write_text(
        "service_name: popularity\nservice_port: 5000\nhealth_check: {period: 0.5}\n")
    assert load_spec(service_folder).health_check.period == 0.5


@PROPERTIES
@given(text=YAML_TEXTS | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_any_microwizard_yml_loads_or_says_what_is_wrong(service_folder, text):
    (service_folder / "microwizard" / "microwizard.yml").write_bytes(
        text.encode("utf-8", "surrogatepass"))
    try:
        spec = load_spec(service_folder)
    except SpecError as error:
        event("refused")
        assert 0 < len(str(error)) <= MAX_MESSAGE, too_long(error)
        return
    event("loaded")
    assert isinstance(spec, ServiceSpec)  # and what it holds is usable as it is:
    assert check_service_name(spec.name) and 1 <= spec.port <= 65535
    assert all(0 < v < math.inf for v in (spec.health_check.period, spec.health_check.timeout))
    assert all(isinstance(v, str) for v in spec.env.values())


LONG = st.text(min_size=600, max_size=700, alphabet="ab%(")
INI_KEYS = st.sampled_from(["directory_host", "service_name", "service_url",
                            "health_check_url", "period", "timeout", "rise", "fall", "ttl",
                            "token", "instance_id", "drain"]) | st.text(max_size=30) | LONG
INI_VALUES = (st.sampled_from(["http://127.0.0.1:5353", "popularity", "nan", "inf", "-1",
                               "1e400", "0", "1_000", "%(x)s", "%(period)s", "100%", "p1"])
              | st.text(max_size=40) | st.integers().map(str) | st.floats().map(str) | LONG)
INI_LINES = (
    st.sampled_from(["[Watson]", "[Datawire]", "[DEFAULT]", "[watson]", "[]", "[Watson",
                     "directory_host = http://127.0.0.1:5353", "service_name = popularity",
                     "service_url = http://127.0.0.1:5000", "token = %",
                     "health_check_url = http://127.0.0.1:5000/health", "  continued",
                     "no equals sign", "= value", "; comment", "# comment", "\ufeff[Watson]"])
    | st.builds("{} = {}".format, INI_KEYS, INI_VALUES)
    | st.builds("{}: {}".format, INI_KEYS, INI_VALUES)
    | st.text(max_size=20)
)
GOOD_CONF = ("[Datawire]\ndirectory_host = http://127.0.0.1:5353\n[Watson]\n"
             "service_name = popularity\nservice_url = http://127.0.0.1:5000\n"
             "health_check_url = http://127.0.0.1:5000/health\n")
INI_TEXTS = st.text(max_size=300) | st.builds(
    "{}{}".format, st.sampled_from(["", "[Watson]\n", GOOD_CONF]),
    st.lists(INI_LINES, max_size=15).map("\n".join))


def test_a_good_datawire_conf_still_loads(tmp_path):
    """The property below could pass by refusing everything: this one cannot."""
    (tmp_path / "datawire.conf").write_text(GOOD_CONF + "period = 0.5\n")
    assert WatsonConfig.from_file(tmp_path / "datawire.conf").period == 0.5


@PROPERTIES
@given(text=INI_TEXTS)
def test_any_datawire_conf_loads_or_says_what_is_wrong(tmp_path_factory, text):
    path = tmp_path_factory.getbasetemp() / "datawire.conf"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        config = WatsonConfig.from_file(path)
    except WatsonConfigError as error:
        event("refused")
        assert 0 < len(str(error)) <= MAX_MESSAGE, too_long(error)
        return
    event("loaded")
    assert 0 < config.period < math.inf and 0 < config.timeout < math.inf
    assert check_service_name(config.service_name)
