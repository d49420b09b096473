"""nginx in front of the API: one port for everything, and the cache of the media origin.

The config is rendered from ``infra/nginx/reelhouse.conf.template`` into
``<home>/nginx/nginx.conf``; nginx runs with ``-p <home>/nginx/`` and every temp,
cache, log and PID path set explicitly, so it writes nothing outside the home
(a packaged nginx would otherwise use /var/lib/nginx and /var/log/nginx).
Players are given media URLs on this port (``Settings.cdn_url``).
"""
from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Optional

from reelhouse.ops import processes
from reelhouse.ops.service import Service, ServiceError, data_dir, log_file, pid_file
from reelhouse.templates import render_template
from reelhouse.settings import Settings

NAME = "nginx"
TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "nginx" / "reelhouse.conf.template"
_VERSION = re.compile(r"nginx/(\S+)")
# Each of nginx's temp paths defaults to a system folder (/var/lib/nginx/...) unless set.
TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def prefix_dir(settings: Settings) -> Path:
    return data_dir(settings, NAME)


def config_path(settings: Settings) -> Path:
    return prefix_dir(settings) / "nginx.conf"


def cache_dir(settings: Settings) -> Path:
    return prefix_dir(settings) / "cache"


def access_log(settings: Settings) -> Path:
    return log_file(settings, NAME).with_name(f"{NAME}-access.log")


def binary() -> str:
    # /usr/sbin is not on a normal user's PATH, and Debian installs nginx there.
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise ServiceError("nginx is not installed: run `make deps` (or apt-get install nginx-light)")
    return found


def _quoted(value) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _user_directive(settings: Settings) -> str:
    """Started as root, nginx would run its workers as `nobody`, who cannot enter a home such as
    pytest's 0700 temp folders; they run as the home's owner instead. Otherwise nginx ignores
    the directive (with a warning), so none is written."""
    if os.geteuid() != 0:
        return "# (not started as root: the workers run as the user who started nginx)"
    owner = settings.home_dir.stat()
    return f"user {pwd.getpwuid(owner.st_uid).pw_name} {grp.getgrgid(owner.st_gid).gr_name};"


def render_config(settings: Settings) -> str:
    values = {
        "user_directive": _user_directive(settings),
        "pid_file": _quoted(pid_file(settings, NAME)),
        **{f"{kind}_temp": _quoted(prefix_dir(settings) / "temp" / kind) for kind in TEMP_KINDS},
        "access_log": _quoted(access_log(settings)),
        "cache_dir": _quoted(cache_dir(settings)),
        "cache_max_size_mb": str(settings.nginx_cache_max_size_mb),
        "api_address": f"{settings.api_host}:{settings.api_port}",
        "listen_address": f"{settings.nginx_host}:{settings.nginx_port}",
    }
    return render_template(TEMPLATE.read_text(), values, TEMPLATE, ServiceError)


def prepare(settings: Settings) -> None:
    home = prefix_dir(settings)
    for folder in (home, home / "temp", cache_dir(settings), pid_file(settings, NAME).parent,
                   log_file(settings, NAME).parent):
        folder.mkdir(parents=True, exist_ok=True)
    config_path(settings).write_text(render_config(settings))


def command(settings: Settings) -> list[str]:
    return [
        binary(),
        "-p", f"{prefix_dir(settings)}/",
        "-c", str(config_path(settings)),
        "-e", str(log_file(settings, NAME)),  # before the config is read, errors would go to /var/log/nginx
        "-g", "daemon off;",  # the supervisor detaches it and tracks its PID
    ]


def _healthz(settings: Settings) -> dict:
    with urllib.request.urlopen(f"{settings.nginx_url}/healthz", timeout=2.0) as response:
        return json.load(response)


def is_ready(settings: Settings) -> bool:
    """Ready when a request goes through it to the API and back."""
    return "version" in _healthz(settings)


def version(settings: Settings) -> Optional[str]:
    """What ``nginx -v`` says for the binary the running master was started from."""
    pid = processes.read_pid(pid_file(settings, NAME))
    if pid is None or not processes.is_alive(pid):
        return None
    try:
        executable = os.readlink(f"/proc/{pid}/exe")
        answer = subprocess.run([executable, "-v"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = _VERSION.search(answer.stderr + answer.stdout)
    return found.group(1) if found else None


SERVICE = Service(
    name=NAME,
    program="nginx",
    describe_engine=lambda settings: (
        f"nginx reverse proxy to the API, caching /media/ (up to {settings.nginx_cache_max_size_mb} MiB)"
    ),
    port=lambda settings: settings.nginx_port,
    url=lambda settings: settings.nginx_url,
    command=command,
    is_ready=is_ready,
    version=version,
    prepare=prepare,
    # What render_config fills in besides paths under the home.
    settings_used=("nginx_host", "nginx_port", "nginx_cache_max_size_mb", "api_host", "api_port"),
    start_timeout_s=10.0,
)
