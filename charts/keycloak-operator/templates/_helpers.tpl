{{/*
Names, labels and small computed values shared by the templates.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "keycloak-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every resource name: fullnameOverride, else the release name when it
already contains the chart name, else `<release>-<name>`. At most 52 characters, so
that the metrics Service, `<fullname>-metrics`, stays a valid 63-character DNS label.
*/}}
{{- define "keycloak-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "keycloak-operator.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* `<chart>-<version>`, for the helm.sh/chart label. */}}
{{- define "keycloak-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels that select the operator pods. They never include
`app.kubernetes.io/managed-by: keycloak-operator`: that label marks the children the
operator itself creates and watches.
*/}}
{{- define "keycloak-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keycloak-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of every object the chart renders. */}}
{{- define "keycloak-operator.labels" -}}
helm.sh/chart: {{ include "keycloak-operator.chart" . }}
{{ include "keycloak-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: keycloak-operator
{{- end -}}

{{/* The operator image: `repository@digest` when a digest is set, else `repository:tag`. */}}
{{- define "keycloak-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The ServiceAccount the pods run as. */}}
{{- define "keycloak-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "keycloak-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The metrics Service's name, which is also the Prometheus job of its targets. */}}
{{- define "keycloak-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "keycloak-operator.fullname" .) -}}
{{- end -}}

{{/* Whether the operator watches a list of namespaces ("true") or all of them (""). */}}
{{- define "keycloak-operator.namespaced" -}}
{{- if .Values.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/*
The API group and resource (plural) of the child kinds, by `apiVersion/Kind`. RBAC
rules need the resource; the operator's configuration names the kind.
*/}}
{{- define "keycloak-operator.knownChildKinds" -}}
v1/ConfigMap: {group: "", resource: configmaps}
v1/Secret: {group: "", resource: secrets}
v1/Service: {group: "", resource: services}
v1/ServiceAccount: {group: "", resource: serviceaccounts}
v1/PersistentVolumeClaim: {group: "", resource: persistentvolumeclaims}
apps/v1/Deployment: {group: apps, resource: deployments}
apps/v1/StatefulSet: {group: apps, resource: statefulsets}
batch/v1/Job: {group: batch, resource: jobs}
batch/v1/CronJob: {group: batch, resource: cronjobs}
policy/v1/PodDisruptionBudget: {group: policy, resource: poddisruptionbudgets}
networking.k8s.io/v1/Ingress: {group: networking.k8s.io, resource: ingresses}
networking.k8s.io/v1/NetworkPolicy: {group: networking.k8s.io, resource: networkpolicies}
autoscaling/v2/HorizontalPodAutoscaler: {group: autoscaling, resource: horizontalpodautoscalers}
{{- end -}}

{{/*
The child kinds as a YAML list of {kind, group, resource}, in the order of
.Values.childKinds. Fails on an unknown kind (without a childKindResources entry),
on a kind that is not `apiVersion/Kind`, and on RBAC kinds.
*/}}
{{- define "keycloak-operator.childKindRefs" -}}
{{- $known := include "keycloak-operator.knownChildKinds" . | fromYaml -}}
{{- $refs := list -}}
{{- range $kind := .Values.childKinds -}}
{{- $parts := splitList "/" $kind -}}
{{- if or (lt (len $parts) 2) (gt (len $parts) 3) -}}
{{- fail (printf "childKinds: %q is not apiVersion/Kind (for example apps/v1/Deployment or v1/Secret)" $kind) -}}
{{- end -}}
{{- $group := "" -}}
{{- if eq (len $parts) 3 -}}{{- $group = index $parts 0 -}}{{- end -}}
{{- if eq $group "rbac.authorization.k8s.io" -}}
{{- fail (printf "childKinds: %q is refused: a component must not create RBAC objects" $kind) -}}
{{- end -}}
{{- $resource := "" -}}
{{- if hasKey $.Values.childKindResources $kind -}}
{{- $resource = index $.Values.childKindResources $kind -}}
{{- else if hasKey $known $kind -}}
{{- $resource = (index $known $kind).resource -}}
{{- else -}}
{{- fail (printf "childKinds: the chart does not know the resource of %q; add it to childKindResources, e.g. {%q: <plural>}" $kind $kind) -}}
{{- end -}}
{{- $refs = append $refs (dict "kind" $kind "group" $group "resource" $resource) -}}
{{- end -}}
{{- toYaml (dict "refs" $refs) -}}
{{- end -}}

{{/* A duration (`300ms`, `10s`, `5m`, `1h`) in milliseconds, for the checks below. */}}
{{- define "keycloak-operator.durationMs" -}}
{{- $text := toString . -}}
{{- $number := regexReplaceAll "^([0-9]+)(ms|s|m|h)$" $text "${1}" | int64 -}}
{{- $unit := regexReplaceAll "^([0-9]+)(ms|s|m|h)$" $text "${2}" -}}
{{- $factor := get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) $unit | default 0 | int64 -}}
{{- mul $number $factor -}}
{{- end -}}

{{/*
Combinations the schema cannot express, refused at render time with the reason
(the operator would refuse the same configuration at start, or misbehave).
*/}}
{{- define "keycloak-operator.validate" -}}
{{- if and (not .Values.leaderElection.enabled) (gt (int .Values.replicaCount) 1) -}}
{{- fail "leaderElection.enabled=false needs replicaCount: 1; without leader election every replica would reconcile" -}}
{{- end -}}
{{- $lease := include "keycloak-operator.durationMs" .Values.leaderElection.leaseDuration | int64 -}}
{{- $grace := include "keycloak-operator.durationMs" .Values.leaderElection.renewGrace | int64 -}}
{{- if ge $grace $lease -}}
{{- fail "leaderElection.renewGrace must be shorter than leaderElection.leaseDuration" -}}
{{- end -}}
{{- if lt (include "keycloak-operator.durationMs" .Values.config.resyncPeriod | int64) 100 -}}
{{- fail "config.resyncPeriod must be at least 100ms" -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.service.enabled) -}}
{{- fail "serviceMonitor.enabled needs metrics.service.enabled: the ServiceMonitor selects that Service" -}}
{{- end -}}
{{- if gt (include "keycloak-operator.durationMs" .Values.serviceMonitor.scrapeTimeout | int64) (include "keycloak-operator.durationMs" .Values.serviceMonitor.interval | int64) -}}
{{- fail "serviceMonitor.scrapeTimeout must not be longer than serviceMonitor.interval" -}}
{{- end -}}
{{- $seen := dict -}}
{{- range concat .Values.components .Values.extraComponents -}}
{{- if hasKey $seen .path -}}
{{- fail (printf "components/extraComponents: %s is listed twice" .path) -}}
{{- end -}}
{{- $_ := set $seen .path true -}}
{{- end -}}
{{- $namespaces := dict -}}
{{- range .Values.watchNamespaces -}}
{{- if hasKey $namespaces . -}}
{{- fail (printf "watchNamespaces: %s is listed twice" .) -}}
{{- end -}}
{{- $_ := set $namespaces . true -}}
{{- end -}}
{{- $_ := include "keycloak-operator.childKindRefs" . -}}
{{- end -}}
