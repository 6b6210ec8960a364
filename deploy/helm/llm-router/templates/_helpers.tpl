{{/* Names: "<release>" when the release is called like the chart, else "<release>-llm-router". */}}
{{- define "llm-router.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "llm-router.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "llm-router.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; "component" is gateway or redis. */}}
{{- define "llm-router.labels" -}}
helm.sh/chart: {{ include "llm-router.chart" .root }}
{{ include "llm-router.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{- define "llm-router.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-router.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "llm-router.redisName" -}}
{{- printf "%s-redis" (include "llm-router.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "llm-router.configMapName" -}}
{{- default (printf "%s-config" (include "llm-router.fullname" .)) .Values.config.existingConfigMap }}
{{- end }}

{{/* The Secret whose keys become the gateway's environment (${VAR} in routes.yaml). */}}
{{- define "llm-router.secretName" -}}
{{- default (printf "%s-secrets" (include "llm-router.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{/* Where the bundled Redis password is: a Secret name and key. */}}
{{- define "llm-router.redisPasswordSecret" -}}
{{- $auth := .Values.redis.bundled.auth }}
{{- if $auth.existingSecret }}{{ $auth.existingSecret }}
{{- else if or $auth.password $auth.generatePassword }}{{ include "llm-router.redisName" . }}-auth
{{- else }}{{ include "llm-router.secretName" . }}
{{- end }}
{{- end }}

{{- define "llm-router.redisPasswordKey" -}}
{{- $auth := .Values.redis.bundled.auth }}
{{- if and (not $auth.existingSecret) (or $auth.password $auth.generatePassword) }}redis-password
{{- else }}{{ $auth.existingSecretPasswordKey }}
{{- end }}
{{- end }}

{{/* The workload kind: a StatefulSet only when each pod keeps its own spool volume. */}}
{{- define "llm-router.workloadKind" -}}
{{- if eq .Values.spool.mode "statefulSet" }}StatefulSet{{ else }}Deployment{{ end }}
{{- end }}

{{- define "llm-router.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Fail early on values that cannot work together. */}}
{{- define "llm-router.validate" -}}
{{- if not (has .Values.redis.mode (list "bundled" "external" "none")) }}
{{- fail (printf "redis.mode must be bundled, external or none, not %q" .Values.redis.mode) }}
{{- end }}
{{- if and (eq .Values.redis.mode "external") (not .Values.redis.external.existingSecret) }}
{{- fail "redis.mode=external needs redis.external.existingSecret: a Secret holding the Redis URL (it carries the password)" }}
{{- end }}
{{- if not (has .Values.spool.mode (list "emptyDir" "sharedClaim" "statefulSet")) }}
{{- fail (printf "spool.mode must be emptyDir, sharedClaim or statefulSet, not %q" .Values.spool.mode) }}
{{- end }}
{{- if and .Values.ingress.enabled .Values.httpRoute.enabled }}
{{- fail "enable ingress or httpRoute, not both" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas is above autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.autoscaling.inflight.enabled (not (has .Values.autoscaling.inflight.provider (list "keda" "prometheusAdapter"))) }}
{{- fail "autoscaling.inflight.provider must be keda or prometheusAdapter" }}
{{- end }}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) }}
{{- fail "httpRoute.parentRefs must name the Gateway the route attaches to" }}
{{- end }}
{{- if and .Values.secrets.create (not .Values.secrets.existingSecret) (not .Values.secrets.values) }}
{{- fail "secrets.create needs secrets.values (or use secrets.existingSecret)" }}
{{- end }}
{{- if eq (int .Values.metrics.port) (int .Values.server.port) }}
{{- fail "metrics.port must differ from server.port: /metrics is kept off the client port" }}
{{- end }}
{{- end }}
