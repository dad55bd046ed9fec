#!/usr/bin/env bash
# Validates deploy/ offline: renders every overlay with kustomize and checks
# every rendered object against the Kubernetes OpenAPI schemas in strict
# mode (unknown fields are errors), for the oldest Kubernetes these
# manifests support and the newest the validator ships; then lints the
# Dockerfile. Runs as root in CI on a fresh clone; needs python3 and
# kubectl (with kustomize), and PyPI for the pinned tools.
set -euo pipefail
cd "$(dirname "$0")/.."

# 1.30: the oldest with preStop `sleep` on by default (the manifests use it).
KUBERNETES_VERSIONS=(1.30.0 1.37.0)
VALIDATOR_VERSION=1.37.0
VENV="${RECAPP_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/recapp/deploy-validate}"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

command -v kubectl >/dev/null || fail "kubectl (with kustomize) is required"

step "validator tools (pinned, in $VENV)"
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  -r deploy/validate-requirements.txt
installed="$("$VENV/bin/kubernetes-validate" --version)"
[[ "$installed" == "$VALIDATOR_VERSION" ]] \
  || fail "kubernetes-validate is $installed, expected $VALIDATOR_VERSION"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

version_args=()
for version in "${KUBERNETES_VERSIONS[@]}"; do
  version_args+=(--kubernetes-version "$version")
done

# Prints one line per object and version; exits non-zero on an invalid one.
# A kind it has no schema for is only a WARN there: that fails here too.
validate() {
  local file="$1" log="$2" objects="$3"
  local rc=0
  "$VENV/bin/kubernetes-validate" --strict "${version_args[@]}" "$file" >"$log" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]] || grep -qv '^INFO ' "$log"; then
    grep -v '^INFO ' "$log" >&2 || true
    return 1
  fi
  local passed expected
  passed="$(grep -c '^INFO .* passed ' "$log" || true)"
  expected=$((objects * ${#KUBERNETES_VERSIONS[@]}))
  if [[ "$passed" -ne "$expected" ]]; then
    printf '%s: %s checks passed, expected %s\n' "$file" "$passed" "$expected" >&2
    return 1
  fi
}

overlays=(deploy/overlays/*/)
[[ ${#overlays[@]} -gt 0 ]] || fail "no overlays under deploy/overlays"
for overlay in "${overlays[@]}"; do
  name="$(basename "$overlay")"
  step "kustomize + strict schema validation: $name (Kubernetes ${KUBERNETES_VERSIONS[*]})"
  rendered="$work/$name.yaml"
  kubectl kustomize "$overlay" >"$rendered"
  objects="$(grep -c '^kind:' "$rendered" || true)"
  [[ "$objects" -gt 0 ]] || fail "$name renders no objects"
  validate "$rendered" "$work/$name.log" "$objects" || fail "$name does not validate"
  printf '%s: %s objects valid against Kubernetes %s\n' "$name" "$objects" "${KUBERNETES_VERSIONS[*]}"
done

# The validator must still be strict: a misspelt field has to fail.
step "self-check: a misspelt field is rejected"
canary="$work/canary.yaml"
sed 's/readOnlyRootFilesystem:/readOnlyRootFileSystem:/' "$work/dev.yaml" >"$canary"
if validate "$canary" "$work/canary.log" "$(grep -c '^kind:' "$canary")" 2>/dev/null; then
  fail "the validator accepted readOnlyRootFileSystem (not strict?)"
fi
echo "rejected, as it should be"

step "hadolint deploy/Dockerfile"
"$VENV/bin/hadolint" --failure-threshold warning deploy/Dockerfile
echo "Dockerfile: no findings"

echo
echo "deploy/ validation passed"
