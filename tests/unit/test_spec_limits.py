"""microwizard.yml's ``limits:`` (what each container of a service may use), on real files."""

from __future__ import annotations

import pytest

from mwkit.wizard.spec import DEFAULT_MEMORY, DEFAULT_PIDS, Limits, SpecError, load_spec
from tests.unit.test_spec import MINIMAL, make_service


def test_limits_default_to_a_bounded_read_only_container(tmp_path):
    make_service(tmp_path, MINIMAL)
    assert load_spec(tmp_path).limits == Limits(memory=DEFAULT_MEMORY, pids=DEFAULT_PIDS,
                                                read_only_root=True)
    assert DEFAULT_MEMORY == 256 * 2**20 and DEFAULT_PIDS == 256


@pytest.mark.parametrize("memory, size", [
    ("512m", 512 * 2**20), ("1g", 2**30), ("65536K", 64 * 2**20), (2**26, 2**26),
    ("32m", 32 * 2**20),
])
def test_memory_takes_sizes_with_units(tmp_path, memory, size):
    make_service(tmp_path, MINIMAL + f"limits: {{memory: {memory}, pids: 64, "
                                      "read_only_root: false}\n")
    assert load_spec(tmp_path).limits == Limits(memory=size, pids=64, read_only_root=False)


@pytest.mark.parametrize("limits, expected", [
    ("[256m]", "key 'limits' must be a mapping (memory, pids, read_only_root), got ['256m']"),
    ("{memroy: 256m}", "unknown key 'limits.memroy' (did you mean 'memory'?)"),
    ("{memory: 256}", "key 'limits.memory' must be a size such as 256m or 1g (k, m or g; "
                      "from 32m to 1024g), got 256"),
    ("{memory: 31m}", "key 'limits.memory' must be a size such as 256m"),
    ("{memory: 2000g}", "key 'limits.memory' must be a size such as 256m"),
    ("{memory: 256mb}", "got '256mb'"),
    ("{memory: '٢٥٦m'}", "key 'limits.memory' must be a size"),  # not ASCII digits
    ("{memory: -1g}", "key 'limits.memory' must be a size"),
    ("{memory: true}", "key 'limits.memory' must be a size"),
    ("{memory: 0.5g}", "key 'limits.memory' must be a size"),
    ("{pids: 8}", "key 'limits.pids' must be a whole number from 32 to 65536, got 8"),
    ("{pids: 100000}", "key 'limits.pids' must be a whole number from 32 to 65536"),
    ("{pids: yes}", "key 'limits.pids' must be a whole number"),
    ("{pids: '128'}", "key 'limits.pids' must be a whole number"),
    ("{read_only_root: 'no'}", "key 'limits.read_only_root' must be true or false, got 'no'"),
])
def test_bad_limits_name_the_file_the_key_and_what_was_expected(tmp_path, limits, expected):
    where = make_service(tmp_path, MINIMAL + f"limits: {limits}\n")
    with pytest.raises(SpecError) as error:
        load_spec(tmp_path)
    assert str(error.value).startswith(f"{where}: ")
    assert expected in str(error.value)


@pytest.mark.parametrize("line, policy", [
    ("", "no"), ("restart: 'no'\n", "no"), ("restart: unless-stopped\n", "unless-stopped"),
])
def test_restart_says_whether_the_engine_starts_an_instance_again(tmp_path, line, policy):
    make_service(tmp_path, MINIMAL + line)
    assert load_spec(tmp_path).restart == policy


@pytest.mark.parametrize("value", ["no", "always", "true", "[unless-stopped]"])
def test_a_bad_restart_names_the_key_and_the_choices(tmp_path, value):
    where = make_service(tmp_path, MINIMAL + f"restart: {value}\n")  # a bare no is False
    with pytest.raises(SpecError) as error:
        load_spec(tmp_path)
    assert str(error.value).startswith(f"{where}: key 'restart' must be one of 'no', "
                                       f"'unless-stopped' (quote 'no')")
