"""Airflow 3's public REST API over HTTP, as an operator or a CI job uses it: a JWT from
``POST /auth/token`` (SimpleAuthManager here), then ``/api/v2/...`` with it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

TERMINAL_RUN_STATES = {"success", "failed"}


class ClusterError(RuntimeError):
    """The deployment did not come up or did not do what was asked in time."""


def wait_until(
    what: str, probe: Callable[[], Any], *, timeout: float, interval: float = 1.0
) -> Any:
    """Call ``probe`` until it returns something truthy; raise ClusterError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


class AirflowApi:
    """Airflow 3's public REST API over HTTP, with a JWT from ``POST /auth/token``."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.username, self.password = username, password
        self.http = httpx.Client(base_url=self.base_url, timeout=30.0)
        self._token: str | None = None

    def close(self) -> None:
        self.http.close()

    def login(self) -> str:
        res = self.http.post(
            "/auth/token", json={"username": self.username, "password": self.password}
        )
        if res.status_code not in (200, 201):
            raise ClusterError(f"POST /auth/token: {res.status_code} {res.text[:300]}")
        self._token = str(res.json()["access_token"])
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._token is None:
            self.login()
        for attempt in range(2):
            headers = {"Authorization": f"Bearer {self._token}"}
            res = self.http.request(method, "/api/v2" + path, headers=headers, **kwargs)
            if res.status_code == 401 and attempt == 0:
                self.login()
                continue
            if res.status_code >= 400:
                raise ClusterError(f"{method} {path}: {res.status_code} {res.text[:500]}")
            return res.json() if res.content else None
        raise AssertionError("unreachable")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def paged(self, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paginated collection (the API caps a page at 100)."""
        items: list[dict[str, Any]] = []
        while True:
            page = self.get(path, limit=100, offset=len(items), **params)
            items += page[key]
            if not page[key] or len(items) >= page["total_entries"]:
                return items

    def health(self) -> dict[str, Any]:
        res = self.http.get("/api/v2/monitor/health")
        res.raise_for_status()
        return dict(res.json())

    def dag_ids(self) -> set[str]:
        return {d["dag_id"] for d in self.paged("/dags", "dags")}

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        run = self.request(
            "POST",
            f"/dags/{dag_id}/dagRuns",
            json={"logical_date": None, "conf": dict(conf or {})},
        )
        return str(run["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/dags/{dag_id}/dagRuns/{run_id}"))

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.paged(f"/dags/{dag_id}/dagRuns", "dag_runs", order_by="run_after")

    def wait_for_run(
        self, dag_id: str, run_id: str, *, timeout: float, interval: float = 2.0
    ) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            run = self.run(dag_id, run_id)
            return run if run["state"] in TERMINAL_RUN_STATES else None

        return dict(wait_until(f"{dag_id} run {run_id}", done, timeout=timeout, interval=interval))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.paged(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances")

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[dict[str, Any]]:
        return self.paged(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/tries",
            "task_instances",
        )

    def upstream_asset_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        page = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents")
        return list(page["asset_events"])

    def asset_events(self, asset_name: str) -> list[dict[str, Any]]:
        assets = self.get("/assets", name_pattern=asset_name)["assets"]
        ids = [a["id"] for a in assets if a["name"] == asset_name]
        if not ids:
            return []
        return self.paged("/assets/events", "asset_events", asset_id=ids[0])
