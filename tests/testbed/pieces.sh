# shellcheck shell=bash
# Fetching and building the pieces of the test bed into the cache.
# Sourced by ./testbed after lib.sh.

# The Go toolchain settings every Go command of the bed uses: the installed
# Go (go.mod's `go` line is the minimum), go.sum as the only truth, no VCS
# stamping (a checkout may be owned by another user, or not be git at all).
go_in_bins() {
  (cd "$TESTBED_SRC/bins" && GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" go "$@")
}

k8s_ldflags() {
  local v="v$KUBERNETES_VERSION" minor pkg flags="-s -w"
  minor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  echo "$flags"
}

# What the built programs depend on; a change of any of it rebuilds them.
k8s_stamp() {
  { cat "$TESTBED_SRC/bins/go.mod" "$TESTBED_SRC/bins/go.sum" "$TESTBED_SRC/bins/cmd/etcd/main.go"; k8s_ldflags; go version 2>/dev/null; } |
    sha256sum | cut -d' ' -f1
}

command_go() {
  command -v go >/dev/null || die "go is not installed (needed once to build the Kubernetes control plane)"
}

# The Kubernetes programs and etcd, compiled from the pinned Go modules.
build_k8s() {
  local stamp="$K8S_BIN/.stamp" want
  command_go
  want=$(k8s_stamp)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  log "building kube-apiserver, kube-controller-manager, kubectl v$KUBERNETES_VERSION and etcd $ETCD_VERSION (first run only; 10-15 minutes on 2 cores)"
  local tmp="$K8S_BIN.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  go_in_bins build -trimpath -ldflags "$(k8s_ldflags)" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl \
    ./cmd/etcd || die "building the Kubernetes control plane failed"
  echo "$want" >"$tmp/.stamp"
  rm -rf "$K8S_BIN" && mkdir -p "$(dirname "$K8S_BIN")" && mv "$tmp" "$K8S_BIN"
}

# Only the downloads (network, little CPU): the Go modules the build needs
# and the Keycloak zip. CI runs this while cargo compiles.
fetch_pieces() {
  command_go
  if [[ ! -f "$K8S_BIN/.stamp" || "$(cat "$K8S_BIN/.stamp")" != "$(k8s_stamp)" ]]; then
    log "downloading the Go modules of the control plane"
    go_in_bins mod download || die "downloading the Go modules failed"
  fi
  [[ -x "$KEYCLOAK_DIST/bin/kc.sh" ]] || download_keycloak
}

KEYCLOAK_ZIP="$DOWNLOADS/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip"

# The Keycloak server distribution from Maven Central, checked against its
# pinned SHA-1.
download_keycloak() {
  local zip=$KEYCLOAK_ZIP
  mkdir -p "$DOWNLOADS"
  if [[ -f "$zip" ]] && echo "$KEYCLOAK_DIST_SHA1  $zip" | sha1sum -c --quiet - >/dev/null 2>&1; then
    return 0
  fi
  log "downloading Keycloak $KEYCLOAK_VERSION from Maven Central"
  local url="https://repo1.maven.org/maven2/org/keycloak/keycloak-quarkus-dist/$KEYCLOAK_VERSION/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip"
  rm -f "$zip.part"
  if ! curl -fsSL --retry 3 --connect-timeout 20 -o "$zip.part" "$url"; then
    log "direct download failed; asking Maven instead"
    local tmp
    tmp=$(mktemp -d)
    mvn -q -B dependency:copy -Dartifact="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" \
      -DoutputDirectory="$tmp" -Dmdep.stripVersion=false || die "could not download Keycloak $KEYCLOAK_VERSION"
    mv "$tmp/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip" "$zip.part"
    rm -rf "$tmp"
  fi
  echo "$KEYCLOAK_DIST_SHA1  $zip.part" | sha1sum -c --quiet - >/dev/null 2>&1 ||
    die "the Keycloak download does not match its pinned SHA-1 ($KEYCLOAK_DIST_SHA1)"
  mv "$zip.part" "$zip"
}

# The unpacked distribution (the pristine copy every profile is built from).
fetch_keycloak() {
  [[ -x "$KEYCLOAK_DIST/bin/kc.sh" ]] && return 0
  download_keycloak
  local tmp="$KEYCLOAK_DIST.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  unzip -q "$KEYCLOAK_ZIP" -d "$tmp"
  rm -rf "$KEYCLOAK_DIST"
  mv "$tmp/keycloak-$KEYCLOAK_VERSION" "$KEYCLOAK_DIST"
  rm -rf "$tmp"
}

# Build-time options of each Keycloak profile. Keycloak bakes these into the
# distribution (`kc.sh build`), after which `start --optimized` skips the
# slow augmentation step on every start.
keycloak_build_options() {
  local db
  case "$KEYCLOAK_PROFILE" in
    postgres) db=postgres ;;
    dev) db=dev-file ;;
  esac
  echo "--db=$db --health-enabled=true --metrics-enabled=true --cache=local"
}

# One built copy of the distribution per profile, in the cache.
keycloak_home() { echo "$CACHE_ROOT/keycloak-$KEYCLOAK_VERSION/$KEYCLOAK_PROFILE"; }

build_keycloak() {
  fetch_keycloak
  local home options
  home=$(keycloak_home)
  options=$(keycloak_build_options)
  if [[ -f "$home/.build-options" && "$(cat "$home/.build-options")" == "$options" ]]; then
    return 0
  fi
  log "building Keycloak $KEYCLOAK_VERSION for the $KEYCLOAK_PROFILE profile (first run only)"
  rm -rf "$home.tmp" && cp -a "$KEYCLOAK_DIST" "$home.tmp"
  # shellcheck disable=SC2086
  "$home.tmp/bin/kc.sh" build $options >"$CACHE_ROOT/keycloak-build-$KEYCLOAK_PROFILE.log" 2>&1 ||
    die "kc.sh build failed (log: $CACHE_ROOT/keycloak-build-$KEYCLOAK_PROFILE.log)"
  echo "$options" >"$home.tmp/.build-options"
  rm -rf "$home" && mv "$home.tmp" "$home"
}

# The bed's certificate authority, serving certificate and client
# certificates, plus the service-account signing key. Made once per bed.
make_pki() {
  [[ -f "$PKI/.done" ]] && return 0
  command -v openssl >/dev/null || die "openssl is not installed"
  rm -rf "$PKI" && mkdir -p "$PKI"
  (
    cd "$PKI" || exit 1
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=testbed-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    cat >serving.ext <<'EOF'
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1
extendedKeyUsage=serverAuth
EOF
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile serving.ext -out apiserver.crt 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    # name:subject — the admin is in system:masters; the controller manager
    # gets the identity RBAC's bootstrap policy binds for it.
    for pair in "admin:/O=system:masters/CN=testbed-admin" "controller-manager:/CN=system:kube-controller-manager"; do
      local name=${pair%%:*} subject=${pair#*:}
      openssl req -newkey rsa:2048 -nodes -subj "$subject" -keyout "$name.key" -out "$name.csr" 2>/dev/null
      openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile client.ext -out "$name.crt" 2>/dev/null
    done
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ./*.ext ./*.srl
  )
  touch "$PKI/.done"
}

# write_kubeconfig FILE USER: a kubeconfig with the client certificate USER
# embedded, pointing at the bed's API server.
write_kubeconfig() {
  local file=$1 user=$2
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: https://127.0.0.1:$PORT_APISERVER
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/$user.crt")
    client-key-data: $(base64 -w0 <"$PKI/$user.key")
contexts:
- name: testbed
  context:
    cluster: testbed
    user: $user
current-context: testbed
EOF
  chmod 600 "$file"
}

# CloudNativePG's Cluster CRD, taken from the operator's Go module zip (the
# Go module proxy is reachable where GitHub is not).
CNPG_DIR="$CACHE_ROOT/cnpg-$CNPG_VERSION"
fetch_cnpg_crds() {
  [[ -f "$CNPG_DIR/postgresql.cnpg.io_clusters.yaml" ]] && return 0
  local zip="$DOWNLOADS/cloudnative-pg-v$CNPG_VERSION.zip"
  mkdir -p "$DOWNLOADS"
  if [[ ! -f "$zip" ]] || ! echo "$CNPG_MODULE_ZIP_SHA256  $zip" | sha256sum -c --quiet - 2>/dev/null; then
    log "downloading CloudNativePG $CNPG_VERSION's CRDs from the Go module proxy"
    curl -fsSL --retry 3 -o "$zip.part" \
      "https://proxy.golang.org/github.com/cloudnative-pg/cloudnative-pg/@v/v$CNPG_VERSION.zip" ||
      die "could not download the CloudNativePG module"
    echo "$CNPG_MODULE_ZIP_SHA256  $zip.part" | sha256sum -c --quiet - || die "CloudNativePG module does not match its pinned SHA-256"
    mv "$zip.part" "$zip"
  fi
  rm -rf "$CNPG_DIR.tmp" && mkdir -p "$CNPG_DIR.tmp"
  unzip -q -j "$zip" "github.com/cloudnative-pg/cloudnative-pg@v$CNPG_VERSION/config/crd/bases/postgresql.cnpg.io_clusters.yaml" -d "$CNPG_DIR.tmp"
  rm -rf "$CNPG_DIR" && mv "$CNPG_DIR.tmp" "$CNPG_DIR"
}

# Tools built with `go install` into the cache, one directory per version.
TOOLS_DIR="$CACHE_ROOT/tools"
HELM_BIN="$TOOLS_DIR/helm-v$HELM_VERSION/helm"
CRANE_BIN="$TOOLS_DIR/crane-v$CRANE_VERSION/crane"

# go_install_tool BINARY PACKAGE@VERSION: build one program into the
# directory of BINARY, unless it is there already.
go_install_tool() {
  local binary=$1 package=$2 dir
  [[ -x "$binary" ]] && return 0
  command_go
  dir=$(dirname "$binary")
  log "building $(basename "$binary") ($package) into the cache (first run only)"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  (cd / && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false GOBIN="$dir.tmp" go install -trimpath -ldflags "-s -w" "$package") ||
    die "building $package failed"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

build_tools() {
  go_install_tool "$HELM_BIN" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
  go_install_tool "$CRANE_BIN" "github.com/google/go-containerregistry/cmd/crane@v$CRANE_VERSION"
}

# Prometheus Operator's CRDs, from its Go module zip.
PROMETHEUS_CRDS_DIR="$CACHE_ROOT/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"
fetch_prometheus_crds() {
  [[ -f "$PROMETHEUS_CRDS_DIR/monitoring.coreos.com_prometheusrules.yaml" ]] && return 0
  local zip="$DOWNLOADS/prometheus-operator-v$PROMETHEUS_OPERATOR_VERSION.zip"
  local inside="github.com/prometheus-operator/prometheus-operator@v$PROMETHEUS_OPERATOR_VERSION/example/prometheus-operator-crd"
  mkdir -p "$DOWNLOADS"
  if [[ ! -f "$zip" ]] || ! echo "$PROMETHEUS_OPERATOR_ZIP_SHA256  $zip" | sha256sum -c --quiet - 2>/dev/null; then
    log "downloading Prometheus Operator $PROMETHEUS_OPERATOR_VERSION's CRDs from the Go module proxy"
    curl -fsSL --retry 3 -o "$zip.part" \
      "https://proxy.golang.org/github.com/prometheus-operator/prometheus-operator/@v/v$PROMETHEUS_OPERATOR_VERSION.zip" ||
      die "could not download the Prometheus Operator module"
    echo "$PROMETHEUS_OPERATOR_ZIP_SHA256  $zip.part" | sha256sum -c --quiet - ||
      die "the Prometheus Operator module does not match its pinned SHA-256"
    mv "$zip.part" "$zip"
  fi
  rm -rf "$PROMETHEUS_CRDS_DIR.tmp" && mkdir -p "$PROMETHEUS_CRDS_DIR.tmp"
  unzip -q -j "$zip" "$inside/monitoring.coreos.com_servicemonitors.yaml" \
    "$inside/monitoring.coreos.com_prometheusrules.yaml" -d "$PROMETHEUS_CRDS_DIR.tmp"
  rm -rf "$PROMETHEUS_CRDS_DIR" && mv "$PROMETHEUS_CRDS_DIR.tmp" "$PROMETHEUS_CRDS_DIR"
}
