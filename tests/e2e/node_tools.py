"""Running the project's Node scripts (unmodified JS clients) from tests."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = Path(__file__).resolve().parent / "js"
TUS_CLIENT = JS_DIR / "tus_upload.mjs"
NODE_TIMEOUT_S = 60


def run_tus_js_client(node: str, api, token: str, path: Path, **options) -> dict:
    """Runs tus_upload.mjs; returns the first event of each kind, all `rejected` ones, and a transcript."""
    command = [node, str(TUS_CLIENT), "--endpoint", f"{api.url}/files/", "--token", token, "--file", str(path)]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    done = subprocess.run(command, cwd=JS_DIR, capture_output=True, text=True, timeout=NODE_TIMEOUT_S)
    transcript = f"tus_upload.mjs exited {done.returncode}\nstdout:\n{done.stdout}stderr:\n{done.stderr}"
    assert done.returncode == 0, transcript
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    events: dict = {"transcript": transcript, "rejected": [line for line in lines if line["event"] == "rejected"]}
    for line in lines:
        events.setdefault(line["event"], line)
    return events
