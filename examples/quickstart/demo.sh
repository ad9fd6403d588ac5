#!/usr/bin/env bash
# `make demo`: the quickstart on the local test bed. Installs the CRDs, runs
# the operator (in the background), applies examples/quickstart/, waits for
# Ready, shows the realm as Keycloak reports it, and gets a token with only
# what the client's credentials Secret holds.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck disable=SC1091
source .testbed/env

demo_dir="$TESTBED_DIR/demo"
mkdir -p "$demo_dir" "$TESTBED_DIR/logs"
components="$PWD/target/components"
operator="$PWD/target/release/keycloak-operator"
for file in "$operator" "$components/realm_component.wasm" "$components/keycloak_component.wasm" \
  "$components/client_component.wasm"; do
  [[ -e "$file" ]] || { echo "missing $file: run make build" >&2; exit 1; }
done

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Installing the CRDs"
kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established crd/keycloaks.keycloak.wasmop.dev crd/keycloakrealms.keycloak.wasmop.dev \
  crd/keycloakclients.keycloak.wasmop.dev --timeout=60s

step "Starting the operator"
if [[ -f "$demo_dir/operator.pid" ]] && kill -0 "$(cat "$demo_dir/operator.pid")" 2>/dev/null; then
  kill "$(cat "$demo_dir/operator.pid")" && sleep 1
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$demo_dir/config.yaml" <<YAML
components:
- path: $components/keycloak_component.wasm
  grants: [keycloak-admin, read-secrets]
- path: $components/realm_component.wasm
  grants: [keycloak-admin, read-secrets]
- path: $components/client_component.wasm
  grants: [keycloak-admin, read-secrets]
resyncPeriod: 30s
httpAddress: 127.0.0.1:$port
runtime:
  cacheDir: $demo_dir/compile-cache
leaderElection:
  namespace: kube-system
  leaseName: keycloak-operator-demo
YAML
nohup "$operator" run --config "$demo_dir/config.yaml" --identity demo >"$TESTBED_DIR/logs/operator.log" 2>&1 &
echo $! >"$demo_dir/operator.pid"
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fs "http://127.0.0.1:$port/readyz" >/dev/null || { tail -n 30 "$TESTBED_DIR/logs/operator.log" >&2; exit 1; }
echo "operator pid $(cat "$demo_dir/operator.pid"), metrics on http://127.0.0.1:$port/metrics, log $TESTBED_DIR/logs/operator.log"

step "Applying examples/quickstart/"
kubectl apply -f examples/quickstart/namespace.yaml
kubectl -n quickstart create secret generic sso-admin \
  --from-literal=username="$KEYCLOAK_ADMIN_USER" --from-literal=password="$KEYCLOAK_ADMIN_PASSWORD" \
  --dry-run=client -o yaml | kubectl apply -f -
sed "s|\${KEYCLOAK_URL}|$KEYCLOAK_URL|" examples/quickstart/keycloak.yaml | kubectl apply -f -
kubectl apply -f examples/quickstart/realm.yaml
kubectl apply -f examples/quickstart/client.yaml

step "Waiting for Ready"
kubectl -n quickstart wait --for=condition=Ready keycloak/sso keycloakrealm/shop keycloakclient/shop-backend --timeout=180s
kubectl -n quickstart get keycloaks,keycloakrealms,keycloakclients

step "The realm as Keycloak reports it (GET /admin/realms/quickstart-shop)"
token=$(curl -fs -d grant_type=password -d client_id=admin-cli -d "username=$KEYCLOAK_ADMIN_USER" \
  --data-urlencode "password=$KEYCLOAK_ADMIN_PASSWORD" "$KEYCLOAK_URL/realms/master/protocol/openid-connect/token" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
curl -fs -H "Authorization: Bearer $token" "$KEYCLOAK_URL/admin/realms/quickstart-shop" | python3 -c '
import json, sys
realm = json.load(sys.stdin)
keys = ["id", "realm", "displayName", "enabled", "registrationAllowed", "loginWithEmailAllowed",
        "resetPasswordAllowed", "sslRequired", "accessTokenLifespan"]
shown = {k: realm.get(k) for k in keys}
shown["attributes"] = {k: v for k, v in realm.get("attributes", {}).items()
                       if k == "team" or k.startswith("keycloak.wasmop.dev/")}
print(json.dumps(shown, indent=2))'

step "A token for shop-backend, with only what its Secret holds (the secret itself is not shown)"
secret_key() { kubectl -n quickstart get secret shop-backend-credentials -o "jsonpath={.data.$1}" | base64 -d; }
curl -fs -d grant_type=client_credentials --data-urlencode "client_id=$(secret_key client-id)" \
  --data-urlencode "client_secret=$(secret_key client-secret)" "$(secret_key token-endpoint)" |
  python3 -c '
import base64, json, sys
token = json.load(sys.stdin)["access_token"]
payload = token.split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
print(json.dumps({k: claims.get(k) for k in ["iss", "azp", "team", "resource_access"]}, indent=2))'

step "Done"
cat <<TEXT
Try: change displayName in examples/quickstart/realm.yaml and kubectl apply it again, or change it
in Keycloak's admin console ($KEYCLOAK_URL/admin, user $KEYCLOAK_ADMIN_USER) and watch it come back
within 30s. The operator keeps running; make testbed-down stops it with the bed.
TEXT
