# shellcheck shell=bash
# Shared helpers of the test bed scripts: paths, ports, processes, waiting.
# Sourced by ./testbed and ./selftest; not meant to be run on its own.
# shellcheck disable=SC2034 # the paths and ports are used by the sourcing scripts

set -euo pipefail

TESTBED_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$TESTBED_SRC/../.." && pwd)"
# shellcheck source=versions.env
. "$TESTBED_SRC/versions.env"

# Everything downloaded or compiled lives outside the repo, keyed by version,
# so that a second checkout or a fresh clone on a warm machine reuses it.
CACHE_ROOT="${KEYCLOAK_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/keycloak-operator}/testbed"
K8S_BIN="$CACHE_ROOT/k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION/bin"
KEYCLOAK_DIST="$CACHE_ROOT/keycloak-$KEYCLOAK_VERSION/dist"
DOWNLOADS="$CACHE_ROOT/downloads"

# Everything that belongs to one running bed (data, logs, pids, credentials)
# lives in the checkout, so two checkouts never share state.
TESTBED_DIR="$(realpath -m "${TESTBED_DIR:-$REPO_ROOT/.testbed}")"
LOGS="$TESTBED_DIR/logs"
PIDS="$TESTBED_DIR/pids"
PKI="$TESTBED_DIR/pki"

# Which database the bed's Keycloak uses: `postgres` (the production path,
# default) or `dev` (embedded H2 file database, no PostgreSQL). Without
# TESTBED_KEYCLOAK_PROFILE the bed keeps the profile it last ran with.
KEYCLOAK_PROFILE="${TESTBED_KEYCLOAK_PROFILE:-$(cat "$TESTBED_DIR/keycloak.profile" 2>/dev/null || echo postgres)}"
case "$KEYCLOAK_PROFILE" in
  postgres | dev) ;;
  *) printf '[testbed] error: unknown TESTBED_KEYCLOAK_PROFILE %s (use postgres or dev)\n' "$KEYCLOAK_PROFILE" >&2 && exit 1 ;;
esac

# Ports: below the Linux ephemeral range (32768+), away from the standard ones,
# and offset by a hash of the bed's directory so that two checkouts (or two
# beds of one checkout) on one machine do not collide. TESTBED_PORT_BASE
# overrides the offset.
if [[ -z "${TESTBED_PORT_BASE:-}" ]]; then
  hash=$(printf '%s' "$TESTBED_DIR" | cksum | cut -d' ' -f1)
  TESTBED_PORT_BASE=$((20000 + (hash % 120) * 100))
fi
if ! [[ "$TESTBED_PORT_BASE" =~ ^[0-9]+$ ]] || ((TESTBED_PORT_BASE < 1024 || TESTBED_PORT_BASE > 65000)); then
  printf '[testbed] error: TESTBED_PORT_BASE must be a number between 1024 and 65000\n' >&2
  exit 1
fi
PORT_ETCD=$((TESTBED_PORT_BASE + 0))
PORT_ETCD_PEER=$((TESTBED_PORT_BASE + 1))
PORT_APISERVER=$((TESTBED_PORT_BASE + 10))
PORT_KCM=$((TESTBED_PORT_BASE + 11))
PORT_KEYCLOAK=$((TESTBED_PORT_BASE + 20))
PORT_KEYCLOAK_MGMT=$((TESTBED_PORT_BASE + 21))
PORT_POSTGRES=$((TESTBED_PORT_BASE + 30))
PORT_REGISTRY=$((TESTBED_PORT_BASE + 40))

log() { printf '[testbed] %s\n' "$*" >&2; }
die() {
  printf '[testbed] error: %s\n' "$*" >&2
  exit 1
}

# process_alive PID: the process exists and is not a zombie (an exited
# process its parent has not reaped yet still answers `kill -0`).
process_alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# pid_of NAME: the pid recorded for NAME if that process is still alive and is
# still the program we started (pids are reused), else nothing.
pid_of() {
  local file="$PIDS/$1.pid" pid marker
  [[ -f "$file" ]] || return 0
  pid=$(cat "$file")
  marker=$(cat "$PIDS/$1.cmd" 2>/dev/null || true)
  [[ -n "$pid" && -n "$marker" ]] || return 0
  if process_alive "$pid" && grep -qaF -- "$marker" "/proc/$pid/cmdline" 2>/dev/null; then
    echo "$pid"
  fi
}

is_running() { [[ -n "$(pid_of "$1")" ]]; }

# port_in_use PORT: something accepts connections on 127.0.0.1:PORT, or
# holds it bound (ss sees listeners that a connect cannot reach).
port_in_use() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
  if command -v ss >/dev/null; then
    [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]] && return 0
  fi
  return 1
}

# require_free_port NAME PORT: fail with a clear message when a port that one
# of our processes needs is held by something else.
require_free_port() {
  if port_in_use "$2"; then
    die "port $2 (for $1) is already in use by another process; stop it, or run this bed on other ports with TESTBED_PORT_BASE=<n> (current base $TESTBED_PORT_BASE; the bed uses base+0..base+40)"
  fi
}

# start_process NAME MARKER COMMAND...: run COMMAND in its own session with
# output to logs/NAME.log and remember its pid. MARKER is a string of its
# command line that identifies it later (guards against reused pids).
start_process() {
  local name=$1 marker=$2
  shift 2
  mkdir -p "$LOGS" "$PIDS"
  printf '%s' "$marker" >"$PIDS/$name.cmd"
  # setsid: a session (and process group) of its own, so `down` can signal
  # the program together with any children (kc.sh runs java as a child).
  # Our lock's descriptor (9) must not leak into the long-lived process.
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$PIDS/$name.pid"
}

# stop_process NAME: TERM, then KILL after a grace period; waits until gone.
stop_process() {
  local name=$1 pid
  pid=$(pid_of "$name")
  if [[ -n "$pid" ]]; then
    log "stopping $name (pid $pid)"
    # The process leads its own session (setsid): signal the whole group so
    # that wrappers such as kc.sh take their java child with them.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 150; i++)); do
      process_alive "$pid" || break
      sleep 0.1
    done
    if process_alive "$pid"; then
      log "$name did not stop within 15s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
    # Whatever is left of its process group (a child that outlived its parent).
    if pgrep -g "$pid" >/dev/null 2>&1; then
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$PIDS/$name.pid" "$PIDS/$name.cmd"
}

# wait_for NAME SECONDS COMMAND...: poll COMMAND until it succeeds; fail with
# the tail of the process's log if it does not within SECONDS, or if the
# process died meanwhile.
wait_for() {
  local name=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! is_running "$name"; then
      tail -n 40 "$LOGS/$name.log" >&2 || true
      die "$name exited before it became ready (log: $LOGS/$name.log)"
    fi
    if ((SECONDS > deadline)); then
      tail -n 40 "$LOGS/$name.log" >&2 || true
      die "$name did not become ready within ${timeout}s (log: $LOGS/$name.log)"
    fi
    sleep "${WAIT_INTERVAL:-0.25}"
  done
}

# Returns the directory of the newest PostgreSQL server installed by Debian.
postgres_bindir() {
  local dir
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  [[ -n "$dir" && -x "$dir/postgres" ]] || die "PostgreSQL server not found under /usr/lib/postgresql (install Debian's postgresql package; .ci/run does)"
  echo "$dir"
}

# PostgreSQL refuses to run as root; when we are root, run it as the
# unprivileged `postgres` account the Debian package creates. setpriv execs
# (no intermediate process), so the pid we record is PostgreSQL's own.
if [[ $(id -u) -eq 0 ]]; then
  AS_POSTGRES=(env -C / setpriv --reuid=postgres --regid=postgres --init-groups --)
else
  AS_POSTGRES=()
fi
as_postgres() { "${AS_POSTGRES[@]}" "$@"; }

# Where PostgreSQL keeps its data and socket. Inside the bed's directory when
# the postgres account can reach it; otherwise (a checkout under /root, a
# mktemp directory) in a directory of its own under /var/tmp. The choice is
# recorded, so later runs (and `clean`) find it.
postgres_root() {
  local record=$TESTBED_DIR/postgres.location root
  if [[ -s "$record" ]]; then
    cat "$record"
    return 0
  fi
  root=$TESTBED_DIR/postgres
  if [[ $(id -u) -eq 0 ]] && ! as_postgres test -x "$TESTBED_DIR"; then
    root=/var/tmp/keycloak-operator-testbed-$(printf '%s' "$TESTBED_DIR" | cksum | cut -d' ' -f1)/postgres
  fi
  mkdir -p "$TESTBED_DIR"
  echo "$root" >"$record"
  echo "$root"
}
