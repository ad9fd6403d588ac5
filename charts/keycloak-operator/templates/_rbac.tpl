{{/*
The operator's RBAC rules, shared by the cluster-mode ClusterRole and the
namespaced-mode Roles. docs/rbac.md explains every rule; keep the two in step.
*/}}

{{/* Names of cluster-scoped RBAC objects (and of the Roles in watched namespaces):
the release namespace is part of the name, so two releases of the same name in
different namespaces do not collide. */}}
{{- define "keycloak-operator.rbacName" -}}
{{- printf "%s-%s" (include "keycloak-operator.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* Rules on namespaced resources: a ClusterRole in cluster mode, a Role in every
watched namespace in namespaced mode. */}}
{{- define "keycloak-operator.namespacedRules" -}}
{{- $ownKinds := list "keycloaks" "keycloakrealms" "keycloakclients" -}}
# why: informers list and watch the three kinds (as parents, and Keycloaks and realms
# as the references that realms and clients are resolved from); the finalizer is
# added and removed with a JSON merge patch.
- apiGroups: ["keycloak.wasmop.dev"]
  resources: {{ toJson $ownKinds }}
  verbs: ["get", "list", "watch", "patch"]
# why: status (conditions, observedGeneration, ...) is written with server-side apply.
- apiGroups: ["keycloak.wasmop.dev"]
  resources: {{ $s := list }}{{ range $ownKinds }}{{ $s = append $s (printf "%s/status" .) }}{{ end }}{{ toJson $s }}
  verbs: ["patch"]
# why: children carry an owner reference with blockOwnerDeletion: true; where the
# OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift, for one),
# setting it needs update on the owner's finalizers. Custom resources serve no such
# endpoint, so this grants nothing else.
- apiGroups: ["keycloak.wasmop.dev"]
  resources: {{ $f := list }}{{ range $ownKinds }}{{ $f = append $f (printf "%s/finalizers" .) }}{{ end }}{{ toJson $f }}
  verbs: ["update"]
{{- $byGroup := dict -}}
{{- $kindsByGroup := dict -}}
{{- range (include "keycloak-operator.childKindRefs" . | fromYaml).refs -}}
{{- $_ := set $byGroup .group (append (get $byGroup .group | default list) .resource | uniq) -}}
{{- $_ := set $kindsByGroup .group (append (get $kindsByGroup .group | default list) .kind) -}}
{{- end -}}
{{- range $group := keys $byGroup | sortAlpha }}
# why: child kinds of components: {{ join ", " (get $kindsByGroup $group) }}.
# list, watch: their cache (by the managed-by label); get: an existing object of
# someone else is never taken over; create, patch: server-side apply; delete: children
# no longer declared are pruned.
- apiGroups: [{{ $group | quote }}]
  resources: {{ get $byGroup $group | toJson }}
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end }}
# why: the Pods of a managed Keycloak's Deployment are watched (by the managed-by
# label) to explain a failing rollout (image pulls, crash loops, database errors).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# why: admin credentials of a Keycloak (spec.external.adminCredentials, a managed
# Keycloak's <name>-operator-client and <name>-bootstrap-admin) and the keys
# components read with the read-secrets grant (a client's clientSecretRef, a managed
# Keycloak's database Secret), one get each.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# why: Events on the resources (created, then patched as a series when repeated).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- range .Values.rbac.extensionResources }}
{{- $group := .apiGroup }}
# why: kinds of an extra component ({{ join ", " .resources }}.{{ $group }}): the same
# access as the operator's own kinds.
- apiGroups: [{{ $group | quote }}]
  resources: {{ toJson .resources }}
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: [{{ $group | quote }}]
  resources: {{ $s := list }}{{ range .resources }}{{ $s = append $s (printf "%s/status" .) }}{{ end }}{{ toJson $s }}
  verbs: ["patch"]
- apiGroups: [{{ $group | quote }}]
  resources: {{ $f := list }}{{ range .resources }}{{ $f = append $f (printf "%s/finalizers" .) }}{{ end }}{{ toJson $f }}
  verbs: ["update"]
{{- end }}
{{- end -}}

{{/* Rules on cluster-scoped resources, which no Role can grant. */}}
{{- define "keycloak-operator.clusterRules" -}}
# why: allowedNamespaces may select namespaces by label; an informer keeps every
# Namespace's labels. Namespaces are cluster-scoped, so only a ClusterRole can grant
# this, even in namespaced mode.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
# why: ReconcilerComponent (coming: which component serves which kind, declared as a
# resource) is cluster-scoped: read it, and report on it through its status.
- apiGroups: ["keycloak.wasmop.dev"]
  resources: ["reconcilercomponents"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["keycloak.wasmop.dev"]
  resources: ["reconcilercomponents/status"]
  verbs: ["patch"]
{{- end -}}
