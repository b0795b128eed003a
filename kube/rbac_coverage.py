"""What the controller's ServiceAccount used, against what the chart grants it.

Reads the API server's audit log of a whole e2e-kube run (the suite ran the controller with a
token of the chart's ServiceAccount) and the chart's ClusterRole and Roles as installed, then
prints two lists and exits non-zero when either is not empty:

  refused:  (verb, group, resource, subresource) the controller asked for and was denied
            (403), i.e. a grant the chart lacks, with the request that needed it;
  unused:   every granted (verb, group, resource, subresource) that no request used.

Usage: rbac_coverage.py AUDIT_LOG KUBECTL KUBECONFIG SERVICEACCOUNT NAMESPACE
"""

import json
import subprocess
import sys


def rules_of(kubectl, kubeconfig, namespace, sa):
    """(verb, group, resource, subresource) granted to the ServiceAccount by its bindings."""
    def get(*args):
        out = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "get", *args, "-o", "json"],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)["items"]

    def bound(binding):
        return any(s.get("kind") == "ServiceAccount" and s.get("name") == sa
                   and s.get("namespace") == namespace for s in binding.get("subjects") or [])

    roles = []
    for b in get("clusterrolebindings"):
        if bound(b):
            roles.append(("clusterrole", None, b["roleRef"]["name"]))
    for b in get("rolebindings", "--all-namespaces"):
        if bound(b):
            kind = "clusterrole" if b["roleRef"]["kind"] == "ClusterRole" else "role"
            roles.append((kind, b["metadata"]["namespace"], b["roleRef"]["name"]))
    granted = set()
    for kind, ns, name in roles:
        args = [kind, name] + (["-n", ns] if kind == "role" else [])
        out = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "get", *args, "-o", "json"],
                             check=True, capture_output=True, text=True).stdout
        for rule in json.loads(out).get("rules") or []:
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    res, _, sub = resource.partition("/")
                    for verb in rule.get("verbs") or []:
                        granted.add((verb, group, res, sub))
    return granted


def main():
    audit_log, kubectl, kubeconfig, sa, namespace = sys.argv[1:6]
    user = f"system:serviceaccount:{namespace}:{sa}"
    used, refused = {}, {}
    with open(audit_log) as f:
        for line in f:
            event = json.loads(line)
            if event.get("user", {}).get("username") != user or "objectRef" not in event:
                continue
            ref = event["objectRef"]
            key = (event["verb"], ref.get("apiGroup", ""), ref.get("resource", ""),
                   ref.get("subresource", ""))
            code = event.get("responseStatus", {}).get("code", 0)
            target = refused if code == 403 else used
            target.setdefault(key, event["requestURI"])
            if key[0] == "patch" and code == 201:
                # A server-side apply that creates the object is authorized as a create.
                used.setdefault(("create",) + key[1:], event["requestURI"])
    granted = rules_of(kubectl, kubeconfig, namespace, sa)
    unused = sorted(granted - set(used))
    print(f"{len(used)} (verb, group, resource, subresource) used by {user}:")
    for key in sorted(used):
        print("  used    ", key, used[key])
    for key in sorted(refused):
        print("  REFUSED ", key, refused[key])
    for key in unused:
        print("  UNUSED  ", key)
    if refused or unused:
        print(f"rbac coverage: {len(refused)} refused, {len(unused)} granted but unused",
              file=sys.stderr)
        sys.exit(1)
    print("rbac coverage: every grant used, nothing refused")


if __name__ == "__main__":
    main()
