#!/usr/bin/env bash
# Validate every Kubernetes manifest under deploy/ against the Kubernetes API schemas bundled
# with kubernetes-validate (offline), strictly: unknown fields are errors. kustomization.yaml is
# kustomize's own file, not an API object, and is checked for the files it lists instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${SMTPMATCH_CI_BIN:-$(bash .ci/setup.sh)}"
version="${KUBERNETES_VERSION:-1.30.0}"

mapfile -t manifests < <(find deploy -name '*.yaml' ! -name kustomization.yaml | sort)
[ ${#manifests[@]} -gt 0 ] || { echo "no manifests under deploy/" >&2; exit 1; }
"$bin/kubernetes-validate" --strict -k "$version" "${manifests[@]}"

# Every resource kustomize is told about exists, and every manifest is listed.
"$bin/python" - <<'PY'
import pathlib, sys
import yaml

ok = True
for kustomization in pathlib.Path("deploy").rglob("kustomization.yaml"):
    folder = kustomization.parent
    listed = yaml.safe_load(kustomization.read_text()).get("resources", [])
    for name in listed:
        if not (folder / name).exists():
            print(f"{kustomization}: resource {name} does not exist")
            ok = False
    here = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
    for name in sorted(here - set(listed)):
        print(f"{kustomization}: {name} is not listed in resources")
        ok = False
sys.exit(0 if ok else 1)
PY
echo "kustomization resources: ok"
