"""A real Airflow 3 deployment on this machine, built from the project's own files.

PostgreSQL holds Airflow's metadata (a fresh, uniquely named database, migrated with
``airflow db migrate``) and the sanitizer's ledger (a second database, reached
through the Airflow connection ``sanitizer_ledger``); Redis is the Celery broker (a
database number and key prefix of its own); the API server, the scheduler, the DAG
processor and N Celery workers run as separate processes, each in its own process
group, with its log in ``<base>/logs/<name>.log``.

    cluster = Cluster(base, config_dir=..., storage_root=...)
    try:
        cluster.start()                       # databases, migrate, processes, health
        run_id = cluster.api.trigger("sanitize_fleet")
        cluster.api.wait_for_run("sanitize_fleet", run_id, timeout=600)
        cluster.kill_worker("worker-b")        # SIGKILL of the worker's whole tree
    finally:
        cluster.stop()                         # processes, databases, the Redis database

:meth:`Cluster.airflow_env` is the whole configuration every component shares
(docs/deploy.md shows the same settings); the REST client is in rest_api.py. Used by
tests/integration and benchmarks/workers.py.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rest_api import AirflowApi, ClusterError, wait_until

__all__ = ["AirflowApi", "Cluster", "ClusterError", "Component", "unavailable_reason", "wait_until"]

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
PG_ADMIN_DB = "test"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
ADMIN_USER = "admin"


def unavailable_reason() -> str | None:
    """Why a deployment cannot be brought up here (None: it can)."""
    try:
        import airflow.providers.celery  # noqa: F401
        import redis
    except ImportError as exc:
        return f"the celery extra is not installed ({exc.name}); pip install -e '.[celery]'"
    for what, host, port in (
        ("PostgreSQL", PG_HOST, PG_PORT),
        ("Redis", REDIS_HOST, REDIS_PORT),
    ):
        try:
            with socket.create_connection((host, port), timeout=1):
                pass
        except OSError:
            return f"{what} is not reachable on {host}:{port}"
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(_pg_url(PG_ADMIN_DB))
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at {PG_HOST}:{PG_PORT} refused user {PG_USER}: {_first_line(exc)}"
    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=2).ping()
    except Exception as exc:
        return f"Redis at {REDIS_HOST}:{REDIS_PORT} did not answer PING: {_first_line(exc)}"
    return None


def _pg_url(database: str, driver: str = "postgresql+psycopg2") -> str:
    return f"{driver}://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- processes ------------------------------------------------------------------------


@dataclass
class Component:
    """One long-running Airflow process, the leader of its own process group."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def group_alive(self) -> bool:
        """Is any process left in this component's process group?"""
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def tree(self) -> list[int]:
        """The process and every descendant (task runners start groups of their own)."""
        import psutil

        try:
            proc = psutil.Process(self.pid)
            return [self.pid, *(p.pid for p in proc.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def signal_tree(self, sig: int) -> None:
        """Send ``sig`` to the group and to every descendant (e.g. SIGSTOP to freeze the
        worker and its running task at one instant)."""
        pids = self.tree()
        with contextlib.suppress(*_GONE):
            os.killpg(self.pid, sig)
        for pid in pids:
            with contextlib.suppress(*_GONE):
                os.kill(pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole tree at once, as if the machine had died."""
        pids = self.tree()
        with contextlib.suppress(*_GONE):
            os.killpg(self.pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(*_GONE):
                os.kill(pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the group, then SIGKILL whatever is left of the tree."""
        pids = self.tree()
        if self.alive():
            with contextlib.suppress(*_GONE):
                os.killpg(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
        with contextlib.suppress(*_GONE):
            os.killpg(self.pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(*_GONE):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


_GONE = (ProcessLookupError, PermissionError)


# -- the deployment -------------------------------------------------------------------


@dataclass
class Cluster:
    """An Airflow 3 deployment with the CeleryExecutor; see the module docstring."""

    base: Path
    config_dir: Path
    storage_root: Path
    workers: Sequence[str] = ("worker-a", "worker-b")
    concurrency: int = 1
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base = Path(self.base)
        self.name = f"sanitizer_it_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.metadata_db = self.name
        self.ledger_db = f"{self.name}_ledger"
        self.home = self.base / "airflow-home"
        self.logs = self.base / "logs"
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.redis_db: int | None = None
        self.redis_prefix = f"{self.name}:"
        self.components: dict[str, Component] = {}
        self._databases: list[str] = []
        self._secrets = {
            "fernet": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "jwt": secrets.token_urlsafe(32),
            "api": secrets.token_urlsafe(32),
        }
        self.api = AirflowApi(f"http://127.0.0.1:{self.port}", ADMIN_USER, self.password)

    # -- configuration ------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ledger_url(self) -> str:
        return _pg_url(self.ledger_db, driver="postgresql")

    def airflow_env(self) -> dict[str, str]:
        """The settings every component shares (same database, broker, keys, URLs)."""
        if self.redis_db is None:
            raise ClusterError("no Redis database chosen yet; call start()")
        metadata = _pg_url(self.metadata_db)
        env = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.redis_db}",
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": self.redis_prefix,
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "3600",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.concurrency),
            "AIRFLOW__CORE__FERNET_KEY": self._secrets["fernet"],
            "AIRFLOW__API_AUTH__JWT_SECRET": self._secrets["jwt"],
            "AIRFLOW__API__SECRET_KEY": self._secrets["api"],
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            # a killed worker's task is failed (and retried) within ~half a minute
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            # a task supervisor waits up to this long to notice its task has exited
            # (5 s by default: most of a short task's time)
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_hostname.hostname",
            # the project's deployment overrides: where the zones are, where the ledger is
            "SANITIZER_CONFIG_DIR": str(self.config_dir),
            "AIRFLOW_VAR_SANITIZER_STORAGE_ROOT": str(self.storage_root),
            "AIRFLOW_CONN_SANITIZER_LEDGER": self.ledger_url,
            "GX_ANALYTICS_ENABLED": "false",
        }
        env.update(self.extra_env)
        return env

    def _process_env(self, **extra: str) -> dict[str, str]:
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "SANITIZER_", "PYTEST_"))
        }
        path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p)
        return {**inherited, **self.airflow_env(), "PYTHONPATH": path, **extra}

    # -- lifecycle ------------------------------------------------------------------

    def start(self, *, timeout: float = 240.0) -> None:
        """Databases, ``airflow db migrate``, then every process; returns once healthy."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({ADMIN_USER: self.password}))
        self._choose_redis_db()
        self._create_database(self.metadata_db)
        self._create_database(self.ledger_db)
        self.migrate()
        self._spawn("api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.port))
        self._spawn("scheduler", "scheduler")
        self._spawn("dag-processor", "dag-processor")
        for worker in self.workers:
            self.start_worker(worker)
        self.wait_healthy(timeout=timeout)

    def migrate(self) -> None:
        log = self.logs / "db-migrate.log"
        with log.open("wb") as out:
            res = subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                env=self._process_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=600,
                check=False,
            )
        if res.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            raise ClusterError(f"airflow db migrate failed ({res.returncode}):\n{tail}")

    def start_worker(self, name: str) -> Component:
        return self._spawn(
            name,
            "celery",
            "worker",
            "--celery-hostname",
            f"{name}@%h",
            "--concurrency",
            str(self.concurrency),
            "--skip-serve-logs",  # two workers on one host cannot share the log port
            "--without-mingle",
            "--without-gossip",
            env={"SANITIZER_IT_HOSTNAME": name},
        )

    def _spawn(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> Component:
        log_path = self.logs / f"{name}.log"
        with log_path.open("ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env=self._process_env(**(env or {})),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.base,
                start_new_session=True,  # its own process group, killable as one
            )
        component = Component(name, popen, log_path)
        self.components[name] = component
        return component

    def wait_healthy(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        def api_up() -> bool:
            self._check_alive()
            try:
                health = self.api.health()
            except Exception:
                return False
            return all(
                health.get(part, {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "dag_processor")
            )

        wait_until("the API server, scheduler and DAG processor", api_up, timeout=left())
        for worker in self.workers:
            self.wait_worker_ready(worker, timeout=left())

    def wait_worker_ready(self, name: str, *, timeout: float) -> None:
        component = self.components[name]

        def ready() -> bool:
            self._check_alive()
            return f"{name}@" in component.tail(400) and " ready." in component.tail(400)

        wait_until(f"Celery worker {name}", ready, timeout=timeout)

    def wait_for_dags(self, dag_ids: Iterable[str], *, timeout: float = 180.0) -> None:
        wanted = set(dag_ids)
        wait_until(
            f"DAGs {sorted(wanted)} to be parsed",
            lambda: wanted <= self.api.dag_ids() or self._check_alive(),
            timeout=timeout,
            interval=2.0,
        )

    def _check_alive(self) -> bool:
        dead = [
            c.name
            for c in self.components.values()
            if not c.alive() and not getattr(c, "killed", False)
        ]
        if dead:
            raise ClusterError(f"{', '.join(dead)} exited; see the logs below")
        return False

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker and everything it started (its tasks too)."""
        component = self.components[name]
        component.killed = True  # type: ignore[attr-defined]
        component.kill()

    def stop(self) -> list[str]:
        """Stop everything this cluster started; returns the problems met (never raises)."""
        problems: list[str] = []
        core = ["scheduler", "dag-processor", "api-server"]
        order = [n for n in self.components if n not in core] + core  # workers first
        for name in order:
            component = self.components.get(name)
            if component is None:
                continue
            try:
                component.stop()
            except Exception as exc:
                problems.append(f"stopping {name}: {_first_line(exc)}")
        self.api.close()
        for database in reversed(self._databases):
            try:
                self._drop_database(database)
            except Exception as exc:
                problems.append(f"dropping database {database}: {_first_line(exc)}")
        try:
            self._clean_redis()
        except Exception as exc:
            problems.append(f"cleaning Redis db {self.redis_db}: {_first_line(exc)}")
        return problems

    def log_tails(self, lines: int = 60) -> str:
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            text = [line[:400] for line in path.read_text(errors="replace").splitlines()[-lines:]]
            parts.append(f"===== {path.name} (last {lines} lines) =====\n" + "\n".join(text))
        return "\n".join(parts)

    # -- PostgreSQL and Redis -------------------------------------------------------

    def _admin_sql(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        """Run one statement on the admin database (autocommit); its first row, if any."""
        import sqlalchemy as sa

        engine = sa.create_engine(_pg_url(PG_ADMIN_DB), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                result = conn.exec_driver_sql(sql, params) if params else conn.exec_driver_sql(sql)
                return result.first() if result.returns_rows else None
        finally:
            engine.dispose()

    def _create_database(self, name: str) -> None:
        self._admin_sql(f'CREATE DATABASE "{name}"')
        self._databases.append(name)

    def _drop_database(self, name: str) -> None:
        self._admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def database_exists(self, name: str) -> bool:
        found = self._admin_sql("SELECT 1 FROM pg_database WHERE datname = %(n)s", {"n": name})
        return found is not None

    def _redis(self, db: int) -> Any:
        import redis

        return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=5)

    def _choose_redis_db(self) -> None:
        """An empty Redis database (1..15; 0 is left to whoever uses the default)."""
        for db in range(15, 0, -1):
            client = self._redis(db)
            try:
                if client.dbsize() == 0:
                    client.set(f"{self.redis_prefix}owner", self.name)
                    self.redis_db = db
                    return
            finally:
                client.close()
        raise ClusterError("no empty Redis database among 1..15")

    def redis_keys(self) -> list[str]:
        if self.redis_db is None:
            return []
        client = self._redis(self.redis_db)
        try:
            return [k.decode() for k in client.scan_iter(match=f"{self.redis_prefix}*")]
        finally:
            client.close()

    def _clean_redis(self) -> None:
        """Flush the database: it was empty when this cluster claimed it (its marker key
        kept other clusters out), so everything in it is this cluster's."""
        if self.redis_db is None:
            return
        client = self._redis(self.redis_db)
        try:
            client.flushdb()
        finally:
            client.close()
