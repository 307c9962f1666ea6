{{/* Names, labels and the values the templates share. */}}

{{- define "aifw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "aifw.fullname" -}}
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

{{- define "aifw.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "aifw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aifw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "aifw.labels" -}}
helm.sh/chart: {{ include "aifw.chart" . }}
{{ include "aifw.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aifw
{{- end }}

{{- define "aifw.proxyLabels" -}}
{{ include "aifw.labels" . }}
app.kubernetes.io/component: proxy
{{- end }}

{{- define "aifw.proxySelectorLabels" -}}
{{ include "aifw.selectorLabels" . }}
app.kubernetes.io/component: proxy
{{- end }}

{{- define "aifw.redisFullname" -}}
{{- printf "%s-redis" (include "aifw.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "aifw.redisSelectorLabels" -}}
{{ include "aifw.selectorLabels" . }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "aifw.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "aifw.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "aifw.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The ConfigMap holding the policy files: the user's or the chart's. */}}
{{- define "aifw.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "aifw.fullname" .)) .Values.policy.existingConfigMap }}
{{- end }}

{{/* The inline policy files as YAML (read back with fromYaml): the values' or the chart's
     default policy. */}}
{{- define "aifw.policyFiles" -}}
{{- if .Values.policy.files }}
{{- toYaml .Values.policy.files }}
{{- else }}
{{- dict "policy.yaml" (.Files.Get "files/default-policy.yaml") | toYaml }}
{{- end }}
{{- end }}

{{/* ConfigMap keys cannot contain "/": a file in a subdirectory is stored under "a__b". */}}
{{- define "aifw.policyKey" -}}
{{- . | replace "/" "__" }}
{{- end }}

{{/* The Secret with provider keys and aifw's own keys, when there is one. */}}
{{- define "aifw.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if .Values.secrets.values }}
{{- printf "%s-env" (include "aifw.fullname" .) }}
{{- end }}
{{- end }}

{{/* The environment variables the proxy reads from the Secret, in a fixed order. */}}
{{- define "aifw.secretEnvNames" -}}
OPENAI_API_KEY ANTHROPIC_API_KEY AZURE_OPENAI_API_KEY AIFW_FINGERPRINT_SECRET AIFW_AUDIT_SIGNING_KEY AIFW_PII_ENCRYPTION_KEY AIFW_PII_HASH_KEY AIFW_READINESS_TOKEN
{{- end }}

{{- define "aifw.redisConfigured" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret .Values.redis.internal.enabled }}true{{ end }}
{{- end }}

{{/* The most replicas the release can run: what in-memory state would be multiplied by. */}}
{{- define "aifw.maxReplicas" -}}
{{- if .Values.autoscaling.enabled }}
{{- max (int .Values.replicaCount) (int .Values.autoscaling.maxReplicas) }}
{{- else }}
{{- int .Values.replicaCount }}
{{- end }}
{{- end }}

{{/* Render-time checks: a release that would misbehave does not install. */}}
{{- define "aifw.validate" -}}
{{- $max := include "aifw.maxReplicas" . | int }}
{{- if and (gt $max 1) (not (include "aifw.redisConfigured" .)) }}
{{- fail (printf "aifw: %d replicas need Redis: set redis.url, redis.existingSecret or redis.internal.enabled=true. Without Redis every replica keeps its own in-memory rate limits and budgets, so the effective limits would be multiplied by the replica count." $max) }}
{{- end }}
{{- if and .Values.redis.internal.enabled (or .Values.redis.url .Values.redis.existingSecret) }}
{{- fail "aifw: choose one Redis: redis.internal.enabled or an external redis.url / redis.existingSecret, not both." }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "aifw: autoscaling.maxReplicas must be at least autoscaling.minReplicas." }}
{{- end }}
{{- if not .Values.policy.existingConfigMap }}
{{- if not (hasKey (include "aifw.policyFiles" . | fromYaml) .Values.policy.fileName) }}
{{- fail (printf "aifw: policy.fileName %q is not among policy.files; add it there or set policy.existingConfigMap." .Values.policy.fileName) }}
{{- end }}
{{- end }}
{{- if and (gt $max 1) (not .Values.policy.existingConfigMap) }}
{{- $policy := get (include "aifw.policyFiles" . | fromYaml) .Values.policy.fileName | fromYaml }}
{{- $ratelimit := dig "guards" "ratelimit" dict $policy }}
{{- if and $ratelimit (ne (get $ratelimit "backend" | default "memory") "redis") }}
{{- fail (printf "aifw: %d replicas, but the policy's guards.ratelimit uses the in-memory backend: set guards.ratelimit.backend: redis in %s (the URL comes from AIFW_REDIS_URL), or the limits are multiplied by the replica count." $max .Values.policy.fileName) }}
{{- end }}
{{- end }}
{{- if and .Values.audit.persistence.enabled (gt $max 1) (not (has "ReadWriteMany" .Values.audit.persistence.accessModes)) }}
{{- fail (printf "aifw: %d replicas cannot share a ReadWriteOnce audit volume: set audit.persistence.accessModes to [ReadWriteMany] (each pod writes its own subdirectory), or send audit records to stdout." $max) }}
{{- end }}
{{- end }}

{{/* The restricted container security context; identical for every container. */}}
{{- define "aifw.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}
