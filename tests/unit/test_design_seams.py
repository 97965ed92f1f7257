"""The kit's seams: one error tree, one settings object, one runtime contract, the CLI."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import mwkit
from mwkit import errors
from mwkit.cli import main
from mwkit.errors import MwkitError
from mwkit.settings import KIT_ROOT, Settings, default_workdir
from mwkit.wizard.runtimes import RUNTIMES, choose_runtime, runtime_class
from mwkit.wizard.runtimes.base import Runtime

OPTIONAL = {"mwkit.wizard.image", "mwkit.wizard.engine", "mwkit.wizard.runtimes.docker"}


def kit_modules():
    """Every module of the package (those needing the Docker SDK too: it is installed)."""
    for info in pkgutil.walk_packages(mwkit.__path__, "mwkit."):
        if info.name.endswith("__main__") or info.name == "mwkit.wizard.supervisor":
            continue
        yield importlib.import_module(info.name)


def test_every_exception_class_of_the_kit_derives_from_mwkit_error():
    defined = {}
    for module in kit_modules():
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and \
                    value.__module__.startswith("mwkit"):
                defined[f"{value.__module__}.{name}"] = value
    assert len(defined) >= 15
    strays = [name for name, cls in defined.items() if not issubclass(cls, MwkitError)]
    assert strays == []
    assert {cls.__module__ for cls in defined.values()} == {"mwkit.errors"}  # one place


def test_the_tree_keeps_the_built_in_bases_callers_already_catch():
    import requests

    assert issubclass(errors.InvalidName, ValueError)
    assert issubclass(errors.SpecError, ValueError)
    assert issubclass(errors.NoInstances, requests.ConnectionError)
    assert issubclass(errors.DockerUnavailable, errors.WizardError)
    assert issubclass(errors.StartTimeout, TimeoutError)
    drawn = errors.__doc__
    for name, cls in vars(errors).items():
        if inspect.isclass(cls) and issubclass(cls, MwkitError) and cls is not MwkitError:
            assert name in drawn, f"{name} is missing from the tree in mwkit/errors.py"


def test_settings_come_from_defaults_then_the_environment_then_arguments(tmp_path):
    env = {"MWKIT_WORKDIR": str(tmp_path / "w"), "MWKIT_DB": "mariadb",
           "MWKIT_SHERLOCK_POLICY": "peak_ewma", "MWKIT_DEBUG": "1"}
    settings = Settings.from_env(env)
    assert (settings.workdir, settings.database, settings.policy, settings.debug) == (
        tmp_path / "w", "mariadb", "peak_ewma", True)
    assert settings.runtime == "auto"
    overridden = Settings.from_env(env, policy="random", database=None)
    assert (overridden.policy, overridden.database) == ("random", "mariadb")


def test_sherlocks_retries_and_ejection_come_from_the_environment_or_arguments():
    assert (Settings.from_env({}).retries, Settings.from_env({}).eject) == (1, True)
    env = {"MWKIT_SHERLOCK_RETRIES": "0", "MWKIT_SHERLOCK_EJECT": "off"}
    assert (Settings.from_env(env).retries, Settings.from_env(env).eject) == (0, False)
    assert Settings.from_env(env, retries=2, eject=True).replace(eject=None).eject is True
    with pytest.raises(errors.SettingsError, match="--retries"):
        Settings.from_env({}).replace(retries=-1)
    with pytest.raises(errors.SettingsError, match="--no-eject"):
        Settings.from_env({}, eject="no")  # only a bool: a string is a caller's mistake


@pytest.mark.parametrize("key, value, named", [
    ("MWKIT_DB", "postgres", "MWKIT_DB"),
    ("MWKIT_SHERLOCK_POLICY", "fastest", "MWKIT_SHERLOCK_POLICY"),
    ("MWKIT_SHERLOCK_RETRIES", "two", "MWKIT_SHERLOCK_RETRIES"),
    ("MWKIT_SHERLOCK_RETRIES", "-1", "MWKIT_SHERLOCK_RETRIES"),
    ("MWKIT_SHERLOCK_EJECT", "maybe", "MWKIT_SHERLOCK_EJECT"),
])
def test_a_wrong_setting_names_its_variable(key, value, named):
    with pytest.raises(errors.SettingsError, match=named):
        Settings.from_env({key: value})


def test_the_default_workdir_is_the_repositorys_wherever_one_stands_in_it(tmp_path):
    assert default_workdir(KIT_ROOT / "notebooks") == KIT_ROOT / ".mwkit"
    assert default_workdir(KIT_ROOT) == KIT_ROOT / ".mwkit"
    assert default_workdir(tmp_path) == tmp_path / ".mwkit"


def test_every_runtime_implements_the_whole_contract():
    wanted = {name for name, _ in inspect.getmembers(Runtime, inspect.isfunction)}
    wanted |= {"not_ready"}
    assert {"start", "stop", "start_directory", "database", "cleanup"} <= wanted
    for name in RUNTIMES:
        cls = runtime_class(name)
        missing = {method for method in wanted if not callable(getattr(cls, method, None))}
        assert missing == set(), f"the {name} runtime lacks {missing}"
        assert cls.name == name


def test_only_the_runtimes_package_names_a_runtime():
    """stack.py and wizard.py drive any runtime through the contract, never by its name."""
    for path in ("mwkit/stack.py", "mwkit/wizard/wizard.py"):
        text = (KIT_ROOT / path).read_text()
        for name in RUNTIMES:
            assert f'"{name}"' not in text, f"{path} names the {name} runtime"


def test_auto_says_which_runtime_it_chose_and_why(monkeypatch):
    from mwkit.wizard.runtimes.docker import DockerRuntime

    monkeypatch.setattr(DockerRuntime, "not_ready",
                        classmethod(lambda cls: "Docker answers but the images are not built"))
    runtime, reason = choose_runtime("auto")
    assert runtime.name == "process"
    assert reason == ("process: chosen automatically; not docker: Docker answers but the "
                      "images are not built")
    monkeypatch.setattr(DockerRuntime, "not_ready", classmethod(lambda cls: None))
    assert choose_runtime("auto")[0].name == "docker"
    runtime, reason = choose_runtime("process")
    assert (runtime.name, reason.split(":")[0]) == ("process", "process")


def test_an_unknown_runtime_is_a_one_line_error(capsys, tmp_path):
    assert main(["status", "--runtime", "kubernetes", "--workdir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "mwkit status: error: unknown runtime 'kubernetes' (from --runtime or MWKIT_RUNTIME); "
        "known runtimes: auto, docker, process, swarm"]


def test_mwkit_without_a_command_prints_its_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mwkit") and "svrun" in out and "--debug" in out


def test_a_bug_shows_its_traceback_and_a_kit_error_only_with_debug(monkeypatch, capsys,
                                                                  tmp_path):
    # A bug: through the real entry point, in a subprocess, the traceback is printed.
    result = subprocess.run([sys.executable, "-c", (
        "import sys, mwkit.wizard.commands as c\n"
        "def broken(args): raise KeyError('a bug')\n"
        "c._status = broken\n"
        "from mwkit.cli import main\n"
        f"sys.exit(main(['status', '--workdir', {str(tmp_path)!r}]))")],
        capture_output=True, text=True, timeout=60, cwd=KIT_ROOT)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "KeyError: 'a bug'" in result.stderr
    # A kit error: one line, unless --debug or MWKIT_DEBUG asks for the traceback.
    assert main(["status", "--runtime", "nope", "--workdir", str(tmp_path)]) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert main(["--debug", "status", "--runtime", "nope", "--workdir", str(tmp_path)]) == 1
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("MWKIT_DEBUG", "1")
    assert main(["status", "--runtime", "nope", "--workdir", str(tmp_path)]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_the_directory_says_it_listens_only_once_it_does():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "mwkit", "directory", "--port", str(port)],
            capture_output=True, text=True, timeout=30, cwd=Path(KIT_ROOT))
    assert result.returncode != 0
    assert "listening" not in result.stdout
    assert "address already in use" in result.stderr.lower()
