{{/*
The alerting rules, as the `groups` of a Prometheus rules file. prometheusrule.yaml
wraps them in a PrometheusRule; tests/chart/render-rules extracts them for promtool.
Every alert links its runbook, docs/runbooks/<AlertName>.md.

Replicas that do not lead keep their last value of the per-instance gauges
(circuit state, queue depth) for as long as they run, so those are read from the
leader only: `and on (instance) (keycloak_operator_leader == 1)`.
*/}}

{{/* The label matchers selecting this release's series: by default the job the
ServiceMonitor gives its targets (the metrics Service's name) and the release
namespace (the Prometheus Operator adds a namespace label to every target). */}}
{{- define "keycloak-operator.alertSelector" -}}
{{- default (printf "job=%q, namespace=%q" (include "keycloak-operator.metricsServiceName" .) .Release.Namespace) .Values.prometheusRule.selector -}}
{{- end -}}

{{/* Labels of one alert: its severity and the extra labels. Argument: (list $ alert). */}}
{{- define "keycloak-operator.alertLabels" -}}
{{- $root := index . 0 -}}
{{- $alert := index . 1 -}}
labels:
  severity: {{ $alert.severity }}
  {{- with $root.Values.prometheusRule.extraAlertLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{- define "keycloak-operator.alertGroups" -}}
{{- $s := include "keycloak-operator.alertSelector" . -}}
{{- $a := .Values.prometheusRule.alerts -}}
{{- $runbooks := trimSuffix "/" .Values.prometheusRule.runbookBaseUrl -}}
- name: keycloak-operator
  rules:
  {{- with $a.KeycloakOperatorDown }}{{ if .enabled }}
  - alert: KeycloakOperatorDown
    expr: absent(up{ {{- $s -}} } == 1)
    for: {{ .for }}
    {{- include "keycloak-operator.alertLabels" (list $ .) | nindent 4 }}
    annotations:
      summary: No keycloak-operator replica is up.
      description: >-
        No target of {{ $s }} has been scraped successfully for {{ .for }}. Nothing
        reconciles Keycloak, KeycloakRealm and KeycloakClient resources until a replica
        runs again.
      runbook_url: {{ $runbooks }}/KeycloakOperatorDown.md
  {{- end }}{{ end }}
  {{- with $a.KeycloakOperatorNoLeader }}{{ if .enabled }}
  - alert: KeycloakOperatorNoLeader
    expr: sum(keycloak_operator_leader{ {{- $s -}} }) == 0
    for: {{ .for }}
    {{- include "keycloak-operator.alertLabels" (list $ .) | nindent 4 }}
    annotations:
      summary: The keycloak-operator replicas run but none leads.
      description: >-
        No replica has held the leader Lease for {{ .for }}, although replicas are up.
        Only the leader reconciles, so nothing converges.
      runbook_url: {{ $runbooks }}/KeycloakOperatorNoLeader.md
  {{- end }}{{ end }}
  {{- with $a.KeycloakOperatorMultipleLeaders }}{{ if .enabled }}
  - alert: KeycloakOperatorMultipleLeaders
    expr: sum(keycloak_operator_leader{ {{- $s -}} }) > 1
    for: {{ .for }}
    {{- include "keycloak-operator.alertLabels" (list $ .) | nindent 4 }}
    annotations:
      summary: More than one keycloak-operator replica leads.
      description: >-
        {{`{{ $value }}`}} replicas report that they hold the leader Lease. Two leaders
        reconcile the same resources at once and race on Keycloak.
      runbook_url: {{ $runbooks }}/KeycloakOperatorMultipleLeaders.md
  {{- end }}{{ end }}
  {{- with $a.KeycloakOperatorReconcileErrors }}{{ if .enabled }}
  - alert: KeycloakOperatorReconcileErrors
    expr: >-
      sum by (kind) (rate(keycloak_operator_reconciles_total{ {{- $s -}} ,result=~"retrying|stalled"}[15m]))
      /
      sum by (kind) (rate(keycloak_operator_reconciles_total{ {{- $s -}} }[15m]))
      > {{ .threshold }}
    for: {{ .for }}
    {{- include "keycloak-operator.alertLabels" (list $ .) | nindent 4 }}
    annotations:
      summary: Many {{`{{ $labels.kind }}`}} reconciles fail.
      description: >-
        {{`{{ $value | humanizePercentage }}`}} of the {{`{{ $labels.kind }}`}} reconciles of the
        last 15 minutes ended retrying or stalled. keycloak_operator_reconcile_errors_total
        names the condition reasons.
      runbook_url: {{ $runbooks }}/KeycloakOperatorReconcileErrors.md
  {{- end }}{{ end }}
  {{- with $a.KeycloakOperatorKeycloakUnavailable }}{{ if .enabled }}
  - alert: KeycloakOperatorKeycloakUnavailable
    expr: >-
      max by (keycloak) (
        max_over_time(keycloak_operator_keycloak_circuit_state{ {{- $s -}} }[2m])
        and on (instance) (keycloak_operator_leader{ {{- $s -}} } == 1)
      ) == 2
    for: {{ .for }}
    {{- include "keycloak-operator.alertLabels" (list $ .) | nindent 4 }}
    annotations:
      summary: Keycloak {{`{{ $labels.keycloak }}`}} is unavailable to the operator.
      description: >-
        The circuit breaker of Keycloak {{`{{ $labels.keycloak }}`}} has been open for
        {{ .for }}: its requests fail or time out. Its realms and clients show
        Degraded=True, reason KeycloakUnavailable, and changes to them wait.
      runbook_url: {{ $runbooks }}/KeycloakOperatorKeycloakUnavailable.md
  {{- end }}{{ end }}
  {{- with $a.KeycloakOperatorKeycloakErrors }}{{ if .enabled }}
  - alert: KeycloakOperatorKeycloakErrors
    expr: >-
      sum by (keycloak) (rate(keycloak_operator_keycloak_requests_total{ {{- $s -}} ,code=~"5.."}[10m]))
      /
      sum by (keycloak) (rate(keycloak_operator_keycloak_requests_total{ {{- $s -}} ,code=~"[0-9]+"}[10m]))
      > {{ .threshold }}
    for: {{ .for }}
    {{- include "keycloak-operator.alertLabels" (list $ .) | nindent 4 }}
    annotations:
      summary: Keycloak {{`{{ $labels.keycloak }}`}} answers the operator with server errors.
      description: >-
        {{`{{ $value | humanizePercentage }}`}} of the answers of Keycloak
        {{`{{ $labels.keycloak }}`}} to the operator in the last 10 minutes were 5xx.
      runbook_url: {{ $runbooks }}/KeycloakOperatorKeycloakErrors.md
  {{- end }}{{ end }}
  {{- with $a.KeycloakOperatorComponentRejected }}{{ if .enabled }}
  - alert: KeycloakOperatorComponentRejected
    # The second half catches a failure counted in a series' first sample (a
    # component that fails at start), which increase() cannot see.
    expr: >-
      sum by (kind) (
        increase(keycloak_operator_component_swaps_total{ {{- $s -}} ,result="rejected"}[15m])
        or increase(keycloak_operator_component_loads_total{ {{- $s -}} ,result="failed"}[15m])
      ) > 0
      or
      sum by (kind) (
        (keycloak_operator_component_swaps_total{ {{- $s -}} ,result="rejected"}
          unless keycloak_operator_component_swaps_total{ {{- $s -}} ,result="rejected"} offset 15m)
        or (keycloak_operator_component_loads_total{ {{- $s -}} ,result="failed"}
          unless keycloak_operator_component_loads_total{ {{- $s -}} ,result="failed"} offset 15m)
      ) > 0
    for: {{ .for }}
    {{- include "keycloak-operator.alertLabels" (list $ .) | nindent 4 }}
    annotations:
      summary: A component for {{`{{ $labels.kind }}`}} was refused.
      description: >-
        In the last 15 minutes a component file for {{`{{ $labels.kind }}`}} failed to load
        or a new version was rejected. The version that served before (if any) keeps
        serving; the new one is not used.
      runbook_url: {{ $runbooks }}/KeycloakOperatorComponentRejected.md
  {{- end }}{{ end }}
  {{- with $a.KeycloakOperatorQueueBacklog }}{{ if .enabled }}
  - alert: KeycloakOperatorQueueBacklog
    expr: >-
      max by (kind) (
        keycloak_operator_queue_depth{ {{- $s -}} }
        and on (instance) (keycloak_operator_leader{ {{- $s -}} } == 1)
      ) > {{ .threshold }}
    for: {{ .for }}
    {{- include "keycloak-operator.alertLabels" (list $ .) | nindent 4 }}
    annotations:
      summary: The {{`{{ $labels.kind }}`}} work queue does not drain.
      description: >-
        {{`{{ $value }}`}} {{`{{ $labels.kind }}`}} resources have been waiting to be reconciled
        for {{ .for }}. Changes take that much longer to reach Keycloak.
      runbook_url: {{ $runbooks }}/KeycloakOperatorQueueBacklog.md
  {{- end }}{{ end }}
  {{- with $a.KeycloakOperatorDriftCorrections }}{{ if .enabled }}
  - alert: KeycloakOperatorDriftCorrections
    expr: >-
      sum by (kind) (increase(keycloak_operator_drift_corrections_total{ {{- $s -}} }[1h]))
      > {{ .threshold }}
    for: {{ .for }}
    {{- include "keycloak-operator.alertLabels" (list $ .) | nindent 4 }}
    annotations:
      summary: Managed {{`{{ $labels.kind }}`}} fields keep drifting in Keycloak.
      description: >-
        The operator reverted {{`{{ $value | humanize }}`}} drifted {{`{{ $labels.kind }}`}} fields
        in the last hour, and has kept doing so for {{ .for }}. Something else changes
        what the operator manages.
      runbook_url: {{ $runbooks }}/KeycloakOperatorDriftCorrections.md
  {{- end }}{{ end }}
  {{- with $a.KeycloakOperatorSlowReconciles }}{{ if .enabled }}
  - alert: KeycloakOperatorSlowReconciles
    expr: >-
      histogram_quantile(0.99,
        sum by (kind, le) (rate(keycloak_operator_reconcile_duration_seconds_bucket{ {{- $s -}} }[10m]))
      ) > {{ .threshold }}
    for: {{ .for }}
    {{- include "keycloak-operator.alertLabels" (list $ .) | nindent 4 }}
    annotations:
      summary: '{{`{{ $labels.kind }}`}} reconciles are slow.'
      description: >-
        The 99th percentile of {{`{{ $labels.kind }}`}} reconcile durations has been
        {{`{{ $value | humanizeDuration }}`}} for {{ .for }} (threshold {{ .threshold }}s).
      runbook_url: {{ $runbooks }}/KeycloakOperatorSlowReconciles.md
  {{- end }}{{ end }}
{{- end -}}
