"""A small client of Airflow's REST API (v2), signed in as the configured admin user.

The password is the one Airflow's simple auth manager generated on first start and keeps in
``<home>/airflow/simple_auth_manager_passwords.json``; a token comes from ``POST /auth/token``.
"""
from __future__ import annotations

import json
import time
from typing import Optional

import requests

from reelhouse.ops import airflow_config as config
from reelhouse.settings import Settings

TERMINAL_RUN_STATES = {"success", "failed"}


class AirflowError(RuntimeError):
    pass


class AirflowClient:
    def __init__(self, base_url: str, username: str, password: str, timeout_s: float = 10.0):
        self.base_url, self.username, self.password, self.timeout_s = base_url.rstrip("/"), username, password, timeout_s
        self._token: Optional[str] = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "AirflowClient":
        return cls(config.api_url(settings), settings.airflow_admin_user, admin_password(settings))

    def token(self) -> str:
        if self._token is None:
            answer = requests.post(f"{self.base_url}/auth/token", json={"username": self.username,
                                                                         "password": self.password},
                                   timeout=self.timeout_s)
            if answer.status_code not in (200, 201):
                raise AirflowError(f"Airflow refused to sign in {self.username}: {answer.status_code} {answer.text[:200]}")
            self._token = answer.json()["access_token"]
        return self._token

    def call(self, method: str, path: str, **kwargs) -> dict:
        answer = requests.request(method, f"{self.base_url}/api/v2{path}", timeout=self.timeout_s,
                                  headers={"Authorization": f"Bearer {self.token()}"}, **kwargs)
        if not answer.ok:
            raise AirflowError(f"{method} {path}: {answer.status_code} {answer.text[:500]}")
        return answer.json() if answer.content else {}

    def version(self) -> str:
        return self.call("GET", "/version")["version"]

    def trigger(self, dag_id: str, conf: Optional[dict] = None) -> str:
        run = self.call("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 500})["task_instances"]

    def task_result(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1):
        """What a task returned (its ``return_value`` XCom), as JSON."""
        entry = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
                          params={"map_index": map_index})
        return entry["value"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float = 600) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            run = self.dag_run(dag_id, run_id)
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            time.sleep(1.0)
        raise AirflowError(f"DAG run {dag_id}/{run_id} did not finish within {timeout_s:.0f} s")


def admin_password(settings: Settings) -> str:
    path = config.passwords_file(settings)
    try:
        return json.loads(path.read_text())[settings.airflow_admin_user]
    except (FileNotFoundError, KeyError, json.JSONDecodeError) as exc:
        raise AirflowError(f"no password for {settings.airflow_admin_user} in {path} yet: Airflow's API server "
                           "writes it on first start (`reelhouse up`)") from exc
