"""The Dockerfiles of mwkit's images, one folder each, and the contract their containers keep.

- ``base/``: Python 3 with the libraries the services, Watson and the Directory import
  (flask, requests, PyYAML, PyMySQL, aiohttp, psutil). mwkit's source and the service's
  folder are bind-mounted at run time, never copied in.
- ``mariadb/``: MariaDB, started by ``mwkit-mariadb``: at every start it runs the SQL
  found in the variable named by :data:`CONTAINER_INIT_SQL_ENV` (the database and its
  user), then serves on port 3306.

Each Dockerfile starts ``ARG BASE=<public image>`` / ``FROM ${BASE}`` and installs only
what its base lacks, so the same file builds on the public image (``mwkit image build``)
and on a local base made by debootstrap that already holds everything
(``mwkit image build --offline``); see :mod:`mwkit.wizard.image`.
"""

from pathlib import Path

IMAGES_DIR = Path(__file__).resolve().parent

# The MariaDB image's start script reads the SQL to run at start from this variable.
CONTAINER_INIT_SQL_ENV = "MWKIT_MARIADB_INIT_SQL"
