"""The images for real: built from their Dockerfiles (offline where this machine can), then
a Flask app and MariaDB run from them; the docker route on a local stand-in for its public
base, and its one-line advice when no registry answers.

Also, without Docker: recipe hashes, the advice about --offline, finding the apt mirror,
counting debootstrap's progress, and the advice given when no engine answers.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import docker.errors
import pymysql
import pytest
import requests

from mwkit.errors import InvalidInput
from mwkit.procs import wait_for_http
from mwkit.wizard import database, image, images
from mwkit.wizard.database import mariadb_container, parse_database_url
from mwkit.wizard.engine import DockerUnavailable, docker_client

FLASK_APP = textwrap.dedent("""
    from flask import Flask
    app = Flask(__name__)

    @app.get("/")
    def hello():
        return "hello from a bind-mounted folder"

    app.run(host="0.0.0.0", port=8000)
""")

# CI (Linux, root, debootstrap, no registry) takes the offline route, and so builds the
# Dockerfiles on debootstrap's bases; a machine that cannot takes the docker route.
OFFLINE = not image.offline_missing()


@pytest.fixture(scope="module")
def client():
    client = docker_client()
    yield client
    client.close()


@pytest.fixture(scope="module")
def built(client):
    """Both images, built now if their recipe changed (about a minute each), else reused."""
    return image.build(offline=OFFLINE, client=client)


@pytest.fixture
def network(client):
    network = client.networks.create(f"mwkit-test-{uuid.uuid4().hex[:8]}")
    yield network.name
    network.remove()


@pytest.fixture
def test_name(client):
    """A throwaway image name; its images are removed afterwards."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    yield name
    for found in client.images.list(filters={"label": f"{image.LABEL_IMAGE}={name}"}):
        client.images.remove(found.id, force=True)


def dockerfile_default_base(recipe: image.Recipe) -> str:
    """The ``ARG BASE=...`` default of the recipe's Dockerfile."""
    text = (recipe.context / "Dockerfile").read_text()
    return re.search(r"^ARG BASE=(\S+)$", text, re.MULTILINE).group(1)


@pytest.mark.docker
@pytest.mark.timeout(900)  # the first one may build both images
def test_builds_both_images_with_recipe_tags_and_labels(client, built):
    for reference, (name, recipe) in zip(built, image.RECIPES.items(), strict=True):
        assert reference in (recipe.reference(OFFLINE), recipe.reference(not OFFLINE))
        found = client.images.get(f"mwkit/{name}:latest")
        assert reference in found.tags
        assert found.labels == {"mwkit.image": name,
                                "mwkit.recipe": reference.rpartition(":")[2]}
        assert "LANG=C.UTF-8" in found.attrs["Config"]["Env"]
    rows = image.list_images(client)
    assert [(row["image"], row["built"]) for row in rows] == [
        ("mwkit/base", True), ("mwkit/mariadb", True)]
    assert [f"{row['image']}:{row['recipe']}" for row in rows] == built


@pytest.mark.docker
@pytest.mark.timeout(900)  # the first one may build both images
def test_second_build_reuses_the_image_at_once_on_either_route(client, built):
    for offline in (True, False):
        lines = []
        started = time.monotonic()
        assert image.build("base", offline=offline, client=client,
                           progress=lines.append) == [built[0]]
        assert time.monotonic() - started < 5
        assert len(lines) == 1 and "reused" in lines[0]


@pytest.mark.docker
@pytest.mark.timeout(900)  # the first one may build both images
def test_offline_base_is_reused_when_only_the_dockerfile_changes(
    client, built, tmp_path, test_name
):
    recipe = image.Recipe(name=test_name, base="python:3.11-slim",
                          packages=image.RECIPES["base"].packages, folder=tmp_path)
    if image.find_image(client, recipe.offline_base.reference) is None:
        pytest.skip("no offline base here (the images were built by the docker route)")
    (tmp_path / "Dockerfile").write_text(
        "ARG BASE=python:3.11-slim\nFROM ${BASE}\nRUN python3 -c 'import flask'\n")
    lines = []
    started = time.monotonic()
    reference = image.build_image(recipe, offline=True, client=client, progress=lines.append)
    assert time.monotonic() - started < 60
    assert any(f"offline base {recipe.offline_base.reference}" in line and "reused" in line
               for line in lines)
    assert not any("debootstrap" in line for line in lines)
    assert any("Step 3/" in line and "import flask" in line for line in lines)
    assert f"built {reference} (" in lines[-1]
    assert client.images.get(f"mwkit/{test_name}:latest").labels == recipe.labels(True)

    lines.clear()
    started = time.monotonic()
    assert image.build_image(recipe, offline=True, client=client,
                             progress=lines.append) == reference
    assert time.monotonic() - started < 5
    assert len(lines) == 1 and "reused" in lines[0]


@pytest.mark.docker
@pytest.mark.timeout(900)  # the first one may build both images
def test_docker_route_builds_the_dockerfile_on_its_public_base(
    client, built, test_name
):
    # The public bases are the Dockerfiles' defaults, passed as the BASE build argument.
    for name, base in (("base", "python:3.11-slim"), ("mariadb", "debian:bookworm-slim")):
        recipe = image.RECIPES[name]
        assert recipe.base == base == dockerfile_default_base(recipe)
        assert recipe.build_args(offline=False) == {"BASE": base}
        assert recipe.build_args(offline=True) == {"BASE": recipe.offline_base.reference}
    # No registry answers here, so a local image stands in for the public one: the engine
    # has it already, so nothing is pulled and the real Dockerfile builds on it.
    stand_in = f"mwkit-test-public-{uuid.uuid4().hex[:8]}:slim"
    client.images.get("mwkit/base:latest").tag(*stand_in.split(":"))
    recipe = dataclasses.replace(image.RECIPES["base"], name=test_name, base=stand_in,
                                 folder=image.RECIPES["base"].context)
    try:
        lines = []
        reference = image.build_image(recipe, client=client, progress=lines.append)
        assert reference == recipe.reference(offline=False)
        assert f"{stand_in} is here already" in lines[0]
        assert f"with BASE={stand_in}" in lines[1]
        found = client.images.get(reference)
        assert found.labels == recipe.labels(offline=False)
        parent_layers = client.images.get(stand_in).attrs["RootFS"]["Layers"]
        assert found.attrs["RootFS"]["Layers"][:len(parent_layers)] == parent_layers
    finally:
        client.images.remove(stand_in)


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_docker_route_says_use_offline_in_one_line_when_no_registry_answers(
    client, test_name
):
    recipe = dataclasses.replace(image.RECIPES["base"], name=test_name,
                                 folder=image.RECIPES["base"].context)
    if image.find_image(client, recipe.base) is not None:
        pytest.skip(f"{recipe.base} is here already: nothing would be pulled")
    lines = []
    started = time.monotonic()
    try:
        reference = image.build_image(recipe, client=client, progress=lines.append)
    except image.ImageBuildError as error:
        message = str(error)
    else:  # a registry answers here: the image was built on the public base for real
        assert client.images.get(reference).labels == recipe.labels(offline=False)
        client.images.remove(recipe.base)
        pytest.skip("a registry answers here: the docker route built the image")
    assert time.monotonic() - started < 30
    assert lines[0].endswith(f"pulling {recipe.base}")
    assert "\n" not in message
    assert message.startswith(f"cannot pull {recipe.base}, the image mwkit/{test_name} builds on")
    assert "`mwkit image build --offline`" in message
    assert image.OFFLINE_NEEDS in message  # Linux, root, debootstrap and a Debian apt mirror
    assert not client.images.list(filters={"label": f"mwkit.image={test_name}"})


@pytest.mark.docker
@pytest.mark.timeout(900)  # the first one may build both images
def test_base_image_serves_flask_from_a_bind_mounted_folder(client, built, tmp_path):
    (tmp_path / "app.py").write_text(FLASK_APP)
    container = client.containers.run(
        "mwkit/base", ["python3", "/app/app.py"], detach=True,
        volumes={str(tmp_path): {"bind": "/app", "mode": "ro"}},
        ports={"8000/tcp": ("127.0.0.1", None)}, labels={"mwkit.test": "1"},
    )
    try:
        container.reload()
        (published,) = container.ports["8000/tcp"]
        assert published["HostIp"] == "127.0.0.1"
        url = f"http://127.0.0.1:{published['HostPort']}/"
        wait_for_http(url, timeout=20)
        response = requests.get(url, timeout=2)
        assert response.status_code == 200
        assert response.text == "hello from a bind-mounted folder"
    finally:
        container.remove(force=True)
    assert not client.containers.list(all=True, filters={"id": container.id})


@pytest.mark.docker
@pytest.mark.timeout(900)  # the first one may build both images
def test_mariadb_container_serves_the_host_and_the_network(client, built, network):
    name = f"mwkit-test-db-{uuid.uuid4().hex[:8]}"
    with mariadb_container(client, network, name) as urls:
        parts = parse_database_url(urls.host)
        assert parts.host == "127.0.0.1"
        network_parts = parse_database_url(urls.network)
        assert (network_parts.host, network_parts.port) == (name, 3306)
        connection = pymysql.connect(**parts.pymysql_args())
        with connection, connection.cursor() as cursor:
            cursor.execute("CREATE TABLE users (username VARCHAR(50), karma INT)")
            cursor.execute("INSERT INTO users VALUES ('alice', 512)")
            connection.commit()
        # a container on the same network reaches it by name, with the same user
        probe = textwrap.dedent("""
            import sys, pymysql
            connection = pymysql.connect(host=sys.argv[1], user=sys.argv[2],
                                         password=sys.argv[3], database=sys.argv[4])
            with connection.cursor() as cursor:
                cursor.execute("SELECT karma FROM users WHERE username = 'alice'")
                print(cursor.fetchone()[0])
        """)
        output = client.containers.run(
            "mwkit/base",
            ["python3", "-c", probe, network_parts.host, network_parts.user,
             network_parts.password, network_parts.database],
            network=network, remove=True,
        )
        assert output.strip() == b"512"
        container = client.containers.get(name)
        assert container.labels["mwkit.service"] == "mariadb"
        assert container.labels["mwkit.stack"] == "1"
    assert not client.containers.list(all=True, filters={"name": name})


@pytest.mark.docker
@pytest.mark.timeout(900)  # the first one may build both images
def test_failed_build_leaves_no_rootfs_and_no_image(client, monkeypatch, test_name):
    if not OFFLINE:
        pytest.skip(f"the offline route needs {image.OFFLINE_NEEDS}")
    # a mirror on a closed loopback port: debootstrap fails at once
    monkeypatch.setenv("MWKIT_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")
    recipe = image.Recipe(name=test_name, base="python:3.11-slim",
                          packages=("python3", test_name), folder=image.RECIPES["base"].context)
    before = set(Path(tempfile.gettempdir()).glob("mwkit-rootfs-*"))
    with pytest.raises(image.ImageBuildError,
                       match=f"debootstrap of {recipe.offline_base.reference} failed"):
        image.build_image(recipe, offline=True, progress=lambda line: None, client=client)
    assert set(Path(tempfile.gettempdir()).glob("mwkit-rootfs-*")) == before
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(recipe.offline_base.reference)
    assert not client.images.list(filters={"label": f"mwkit.image={test_name}"})


def test_unknown_image_is_invalid_input():
    with pytest.raises(InvalidInput, match="unknown image 'nope': choose one of base, mariadb"):
        image.build("nope")


def test_recipe_hash_follows_the_dockerfile_folder_and_the_base(tmp_path):
    (tmp_path / "Dockerfile").write_text("ARG BASE=python:3.11-slim\nFROM ${BASE}\n")
    recipe = image.Recipe(name="hashtest", base="python:3.11-slim", packages=("python3",),
                          folder=tmp_path)
    online, offline = recipe.recipe_hash(offline=False), recipe.recipe_hash(offline=True)
    assert online != offline and len(online) == 12
    assert recipe.reference(offline=True) == f"mwkit/hashtest:{offline}"
    assert recipe.offline_base.reference.startswith("mwkit/offline-base:")

    (tmp_path / "start.sh").write_text("#!/bin/sh\n")
    assert recipe.recipe_hash(offline=False) != online
    assert dataclasses.replace(recipe, base="python:3.12-slim").recipe_hash(False) not in (
        online, recipe.recipe_hash(offline=False))
    # the offline base depends on its packages only
    other = dataclasses.replace(recipe, name="other", folder=image.RECIPES["base"].context)
    assert other.offline_base == recipe.offline_base
    assert dataclasses.replace(recipe, packages=("python3", "bash")).offline_base.recipe_hash \
        != recipe.offline_base.recipe_hash

    (tmp_path / "Dockerfile").unlink()
    with pytest.raises(image.ImageBuildError, match="no Dockerfile in"):
        recipe.recipe_hash(offline=False)


def test_mariadb_start_script_keeps_the_contract_with_database():
    assert database.CONTAINER_INIT_SQL_ENV is images.CONTAINER_INIT_SQL_ENV
    folder = image.RECIPES["mariadb"].context
    script = (folder / "mwkit-mariadb").read_text()
    assert f'"${{{images.CONTAINER_INIT_SQL_ENV}:-}}"' in script
    assert "--bind-address=0.0.0.0 --port=3306" in script
    dockerfile = (folder / "Dockerfile").read_text()
    assert 'CMD ["/bin/sh", "/usr/local/bin/mwkit-mariadb"]' in dockerfile
    assert "EXPOSE 3306" in dockerfile


def test_offline_advice_says_what_this_machine_lacks(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(image.os, "geteuid", lambda: 0, raising=False)
    monkeypatch.setattr(image.shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setenv("MWKIT_DEBIAN_MIRROR", "http://mirror.invalid/debian")
    assert image.offline_missing(check_mirror=True) == []
    assert "this machine has them" in image.offline_advice()

    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(image.os, "geteuid", lambda: 501, raising=False)
    monkeypatch.setattr(image.shutil, "which", lambda name: None)
    advice = image.offline_advice()
    assert "`mwkit image build --offline`" in advice and image.OFFLINE_NEEDS in advice
    assert advice.endswith("(missing here: Linux, root, debootstrap)")


def test_apt_mirror_reads_deb822_then_one_line_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("MWKIT_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(textwrap.dedent("""
        Types: deb
        URIs: http://mirror.invalid/debian-security
        Suites: bookworm-security
        Components: main

        Types: deb deb-src
        # a comment
        URIs: http://mirror.invalid/debian
        Suites: bookworm bookworm-updates
        Components: main
    """))
    assert image.apt_mirror(tmp_path) == "http://mirror.invalid/debian"

    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text(
        "# deb http://old.invalid/debian bookworm main\n"
        "deb [signed-by=/usr/share/keyrings/x.gpg] http://other.invalid/debian bookworm main\n"
    )
    assert image.apt_mirror(tmp_path) == "http://other.invalid/debian"

    (tmp_path / "sources.list").unlink()
    with pytest.raises(image.ImageBuildError, match="MWKIT_DEBIAN_MIRROR"):
        image.apt_mirror(tmp_path)


def test_debootstrap_progress_counts_packages_per_phase():
    lines = []
    progress = image.DebootstrapProgress(lines.append)
    progress.EVERY = 2
    for line in ["I: Retrieving InRelease", "I: Retrieving adduser 3.134",
                 "I: Validating adduser 3.134", "I: Retrieving libc6 2.36-9+deb12u10",
                 "I: Retrieving zlib1g 1:1.2.13", "I: Unpacking required packages...",
                 "I: Unpacking adduser...", "I: Unpacking the base system..."]:
        progress.feed(line)
    progress.flush()
    assert lines == ["debootstrap: 2 packages retrieved", "debootstrap: 3 packages retrieved",
                     "debootstrap: Unpacking required packages...",
                     "debootstrap: 1 packages unpacked",
                     "debootstrap: Unpacking the base system..."]


def test_no_engine_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(DockerUnavailable) as error:
        docker_client(timeout=1)
    message = str(error.value)
    assert f"{tmp_path}/no-engine.sock" in message
    assert "MWKIT_RUNTIME=process" in message
