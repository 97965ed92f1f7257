"""Offline images for real: build (or reuse) them, run a Flask app and MariaDB from them.

Also, without Docker: finding the apt mirror, counting debootstrap's progress, and the
advice given when no engine answers.
"""

from __future__ import annotations

import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pymysql
import pytest
import requests

from mwkit.procs import wait_for_http
from mwkit.wizard import image
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


@pytest.fixture(scope="module")
def client():
    client = docker_client()
    yield client
    client.close()


@pytest.fixture(scope="module")
def built(client):
    """Both images, built now if their recipe changed (about a minute each), else reused."""
    return image.build(client=client)


@pytest.fixture
def network(client):
    network = client.networks.create(f"mwkit-test-{uuid.uuid4().hex[:8]}")
    yield network.name
    network.remove()


@pytest.mark.docker
@pytest.mark.timeout(900)  # the first one may build both images
def test_builds_both_images_with_recipe_tags_and_labels(client, built):
    assert built == [image.RECIPES["base"].reference, image.RECIPES["mariadb"].reference]
    for name, recipe in image.RECIPES.items():
        found = client.images.get(f"mwkit/{name}:latest")
        assert recipe.reference in found.tags
        assert found.labels == {"mwkit.image": name, "mwkit.recipe": recipe.recipe_hash}
        assert "LANG=C.UTF-8" in found.attrs["Config"]["Env"]


@pytest.mark.docker
@pytest.mark.timeout(900)  # the first one may build both images
def test_second_build_reuses_the_image_at_once(client, built):
    lines = []
    started = time.monotonic()
    assert image.build("base", client=client, progress=lines.append) == [built[0]]
    assert time.monotonic() - started < 5
    assert len(lines) == 1 and "reused" in lines[0]


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
def test_failed_build_leaves_no_rootfs_and_no_image(client, monkeypatch):
    # a mirror on a closed loopback port: debootstrap fails at once
    monkeypatch.setenv("MWKIT_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")
    recipe = image.Recipe(name="brokentest", packages=("python3",))
    before = set(Path(tempfile.gettempdir()).glob("mwkit-rootfs-*"))
    with pytest.raises(image.ImageBuildError, match="debootstrap of brokentest failed"):
        image.build_image(recipe, force=False, progress=lambda line: None, client=client)
    assert set(Path(tempfile.gettempdir()).glob("mwkit-rootfs-*")) == before
    assert not client.images.list(filters={"label": "mwkit.image=brokentest"})


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
