#!/usr/bin/env python3
"""Lints and renders the Helm chart deploy/helm/vidq, and compares it with the kustomize overlays.

    scripts/helm_render.py [ROOT]     # prints each variant's rendering as YAML

Variants rendered (release "vidq", namespace "vidq"): the default values, each documented
values file under the chart's ci/ alone, and the two settings that match an overlay:
  ci/secrets-from-values.yaml                 == deploy/k8s/overlays/keda
  ci/secrets-from-values.yaml + ci/hpa.yaml   == deploy/k8s/overlays/hpa
"Same objects" ignores only what one tool adds by design: the overlay's Namespace object
(`helm install --create-namespace` makes it), the labels Helm puts on every object's metadata
(HELM_LABELS) and the config checksum on the pod templates (which rolls pods on a change).
"""

import copy
import difflib
import subprocess
import sys
from pathlib import Path

import yaml

RELEASE = "vidq"
NAMESPACE = "vidq"
HELM_LABELS = (
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
)
CHECKSUM = "checksum/config"
# (helm values files, relative to the chart) -> the overlay that must render the same objects.
MATCHING = [
    (["ci/secrets-from-values.yaml"], "deploy/k8s/overlays/keda"),
    (["ci/secrets-from-values.yaml", "ci/hpa.yaml"], "deploy/k8s/overlays/hpa"),
]


class HelmError(Exception):
    pass


def chart_dir(root):
    return Path(root) / "deploy" / "helm" / "vidq"


def variants(chart):
    """Names and values files of every variant CI renders."""
    found = [("default values", [])]
    for path in sorted((chart / "ci").glob("*.yaml")):
        found.append((f"-f ci/{path.name}", [f"ci/{path.name}"]))
    for files, _ in MATCHING:
        if len(files) > 1:
            found.append((" ".join(f"-f {f}" for f in files), files))
    return found


def lint(helm, chart):
    proc = subprocess.run([helm, "lint", "--strict", str(chart)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise HelmError(f"helm lint --strict:\n{(proc.stdout + proc.stderr).strip()}")


def template(helm, chart, files, extra=()):
    args = [helm, "template", RELEASE, str(chart), "--namespace", NAMESPACE]
    for f in files:
        args += ["-f", str(chart / f)]
    proc = subprocess.run([*args, *extra], capture_output=True, text=True)
    if proc.returncode != 0:
        raise HelmError(f"helm template:\n{proc.stderr.strip()}")
    try:
        return [d for d in yaml.safe_load_all(proc.stdout) if d is not None]
    except yaml.YAMLError as err:
        raise HelmError(f"helm template printed YAML that does not parse: {err}") from err


def key(obj):
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')} {meta.get('namespace', '-')}/{meta.get('name')}"


def normalise_helm(objects):
    out = []
    for obj in copy.deepcopy(objects):
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        for label in HELM_LABELS:
            labels.pop(label, None)
        if "labels" in meta and not labels:
            del meta["labels"]
        template_meta = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
        annotations = template_meta.get("annotations") or {}
        annotations.pop(CHECKSUM, None)
        if "annotations" in template_meta and not annotations:
            del template_meta["annotations"]
        out.append(obj)
    return out


def compare(helm_objects, kustomize_objects, what):
    """Returns the differences, one string per object that differs."""
    ours = {key(o): o for o in normalise_helm(helm_objects)}
    theirs = {key(o): o for o in kustomize_objects if o.get("kind") != "Namespace"}
    errors = []
    for k in sorted(set(ours) | set(theirs)):
        if k not in ours:
            errors.append(f"{what}: only kustomize renders {k}")
        elif k not in theirs:
            errors.append(f"{what}: only Helm renders {k}")
        elif ours[k] != theirs[k]:
            a = yaml.safe_dump(theirs[k], sort_keys=True).splitlines()
            b = yaml.safe_dump(ours[k], sort_keys=True).splitlines()
            diff = "\n".join(difflib.unified_diff(a, b, "kustomize", "helm", lineterm="", n=1))
            errors.append(f"{what}: {k} differs:\n{diff}")
    return errors


def main(argv):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import ecosystem_tools

    root = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parent.parent)
    helm = ecosystem_tools.helm()
    chart = chart_dir(root)
    try:
        lint(helm, chart)
        for name, files in variants(chart):
            print(f"# {name}")
            yaml.safe_dump_all(template(helm, chart, files), sys.stdout, sort_keys=False)
    except HelmError as err:
        print(f"helm_render: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
