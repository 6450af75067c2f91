#!/usr/bin/env python3
"""Static checks of what the package says about itself (run by .ci/run):

1. `rust-version` in Cargo.toml is at least the rust-version every locked dependency
   declares (no older toolchain is installed here, so this is how it is kept true).
2. compose.yaml has the structure docs/operations.md describes: Postgres with a health
   check, exsync built from this Dockerfile running `run` after Postgres is healthy, with
   the configuration and the credential key mounted where its environment points.
   No container engine runs on the build machines: the file is parsed (PyYAML), not run.
"""
import json
import pathlib
import re
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
problems = []


def version(text):
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def check_rust_version():
    manifest = (ROOT / "Cargo.toml").read_text()
    declared = re.search(r'^rust-version = "([0-9.]+)"', manifest, re.M)
    if not declared:
        problems.append("Cargo.toml declares no rust-version")
        return
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
    )
    resolved = {node["id"] for node in meta["resolve"]["nodes"]}
    needs = [
        (version(p["rust_version"]), p["name"], p["version"])
        for p in meta["packages"]
        if p["id"] in resolved and p.get("rust_version") and p["name"] != "exsync"
    ]
    highest = max(needs)
    if version(declared.group(1)) < highest[0]:
        problems.append(
            f"rust-version {declared.group(1)} is older than {highest[1]} {highest[2]} needs "
            f"({'.'.join(map(str, highest[0]))})"
        )
    print(f"rust-version {declared.group(1)}: highest locked need "
          f"{'.'.join(map(str, highest[0]))} ({highest[1]} {highest[2]})")


def check_compose():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    allowed = {"name", "services", "volumes", "secrets", "networks", "configs"}
    for key in compose:
        if key not in allowed:
            problems.append(f"compose.yaml: unknown top-level key {key!r}")
    services = compose.get("services") or {}
    for name in ("db", "exsync"):
        if name not in services:
            problems.append(f"compose.yaml: no service {name!r}")
            return
    for name, service in services.items():
        if "image" not in service and "build" not in service:
            problems.append(f"compose.yaml: service {name!r} has neither image nor build")
    db, app = services["db"], services["exsync"]
    if not str(db.get("image", "")).startswith("postgres:"):
        problems.append("compose.yaml: db is not a postgres image")
    if "test" not in (db.get("healthcheck") or {}):
        problems.append("compose.yaml: db has no health check")
    build = app.get("build")
    context = build if isinstance(build, str) else (build or {}).get("context")
    dockerfile = "Dockerfile" if isinstance(build, str) else (build or {}).get("dockerfile", "Dockerfile")
    if not context or not (ROOT / context / dockerfile).is_file():
        problems.append("compose.yaml: exsync is not built from this repository's Dockerfile")
    if app.get("command") != ["run"]:
        problems.append("compose.yaml: exsync does not run `run`")
    depends = app.get("depends_on") or {}
    if (depends.get("db") or {}).get("condition") != "service_healthy":
        problems.append("compose.yaml: exsync does not wait for a healthy db")
    env = app.get("environment") or {}
    mounts = {}
    for volume in app.get("volumes") or []:
        parts = volume.split(":")
        if len(parts) < 2:
            problems.append(f"compose.yaml: volume {volume!r} is not SOURCE:TARGET[:ro]")
            continue
        mounts[parts[1]] = (parts[0], parts[2:] == ["ro"])
    for variable in ("EXSYNC_CONFIG", "EXSYNC__SECURITY__CREDENTIAL_KEY_FILE"):
        target = env.get(variable)
        if target not in mounts:
            problems.append(f"compose.yaml: {variable} points at {target!r}, which is not mounted")
        elif not mounts[target][1]:
            problems.append(f"compose.yaml: {target} is not mounted read-only")
    url = str(env.get("DATABASE_URL", ""))
    if not re.match(r"postgres(ql)?://[^@]+@db:5432/", url):
        problems.append("compose.yaml: DATABASE_URL does not name the db service")
    named = set((compose.get("volumes") or {}).keys())
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if not source.startswith(("/", ".", "~")) and source not in named:
                problems.append(f"compose.yaml: {name} uses undeclared volume {source!r}")
    print(f"compose.yaml: services {sorted(services)}; exsync mounts {sorted(mounts)}")


check_rust_version()
check_compose()
if problems:
    for problem in problems:
        print(f"check-package: {problem}", file=sys.stderr)
    sys.exit(1)
print("check-package: OK")
