#!/usr/bin/env python3
"""Renders a kustomization offline, for CI machines without kustomize or kubectl.

    scripts/kustomize_render.py deploy/k8s/overlays/keda > rendered.yaml

Supported subset of kustomization.yaml (anything else is refused, never ignored):
  resources     YAML files (several documents each) and directories holding a
                kustomization.yaml, rendered recursively
  namespace     set on every namespaced object
  commonLabels  added to metadata.labels, workload selectors and pod templates
  labels        [{pairs, includeSelectors, includeTemplates}], as kustomize does
  images        [{name, newName, newTag, digest}] on (init)containers of pod templates
No generators, patches or name prefixes: the manifests under deploy/k8s use none, and
`kubectl kustomize` renders the same objects from the same files.
"""

import copy
import sys
from pathlib import Path

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "commonLabels", "labels", "images"}
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "APIService",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "IngressClass",
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class RenderError(Exception):
    pass


def render(directory):
    """Returns the list of objects the kustomization in `directory` produces."""
    directory = Path(directory)
    path = directory / "kustomization.yaml"
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise RenderError(f"{path}: {err}") from err
    unsupported = set(spec) - SUPPORTED
    if unsupported:
        raise RenderError(f"{path}: unsupported fields {sorted(unsupported)}")
    if spec.get("kind", "Kustomization") != "Kustomization":
        raise RenderError(f"{path}: kind must be Kustomization")

    objects = []
    for entry in spec.get("resources") or []:
        target = directory / entry
        if target.is_dir():
            objects.extend(render(target))
        else:
            objects.extend(load_documents(target))

    for obj in objects:
        if "namespace" in spec and obj.get("kind") not in CLUSTER_SCOPED:
            obj.setdefault("metadata", {})["namespace"] = spec["namespace"]
        if "commonLabels" in spec:
            add_labels(obj, spec["commonLabels"], selectors=True, templates=True)
        for group in spec.get("labels") or []:
            selectors = bool(group.get("includeSelectors", False))
            templates = selectors or bool(group.get("includeTemplates", False))
            add_labels(obj, group.get("pairs") or {}, selectors, templates)
        for image in spec.get("images") or []:
            set_image(obj, image)

    seen = set()
    for obj in objects:
        meta = obj.get("metadata") or {}
        key = (obj.get("apiVersion"), obj.get("kind"), meta.get("namespace"), meta.get("name"))
        if key in seen:
            raise RenderError(f"{path}: {key[1]} {key[3]!r} defined twice")
        seen.add(key)
    return objects


def load_documents(path):
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except (OSError, yaml.YAMLError) as err:
        raise RenderError(f"{path}: {err}") from err
    objects = [doc for doc in docs if doc is not None]
    for obj in objects:
        if not isinstance(obj, dict) or "kind" not in obj or "apiVersion" not in obj:
            raise RenderError(f"{path}: every document needs apiVersion and kind")
    return copy.deepcopy(objects)


def add_labels(obj, pairs, selectors, templates):
    if not pairs:
        return
    obj.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
    kind, spec = obj.get("kind"), obj.get("spec")
    if not isinstance(spec, dict):
        return
    if selectors:
        if kind in WORKLOADS and kind != "Job":
            spec.setdefault("selector", {}).setdefault("matchLabels", {}).update(pairs)
        elif kind == "Service":
            spec.setdefault("selector", {}).update(pairs)
        elif kind == "PodDisruptionBudget":
            spec.setdefault("selector", {}).setdefault("matchLabels", {}).update(pairs)
    if templates and kind in WORKLOADS:
        template = spec.setdefault("template", {})
        template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def set_image(obj, image):
    if obj.get("kind") not in WORKLOADS:
        return
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in (pod.get("containers") or []) + (pod.get("initContainers") or []):
        current = container.get("image", "")
        name, tag, digest = split_image(current)
        if name != image["name"]:
            continue
        name = image.get("newName", name)
        if "digest" in image:
            container["image"] = f"{name}@{image['digest']}"
        elif "newTag" in image:
            container["image"] = f"{name}:{image['newTag']}"
        else:
            container["image"] = name + (f"@{digest}" if digest else f":{tag}" if tag else "")


def split_image(reference):
    name, _, digest = reference.partition("@")
    tag = ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    return name, tag, digest


def main(argv):
    if len(argv) != 2:
        print("usage: kustomize_render.py <directory with kustomization.yaml>", file=sys.stderr)
        return 2
    try:
        objects = render(argv[1])
    except RenderError as err:
        print(f"kustomize_render: {err}", file=sys.stderr)
        return 1
    yaml.safe_dump_all(objects, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
