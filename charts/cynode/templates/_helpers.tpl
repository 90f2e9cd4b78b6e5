{{/* Chart name, truncated to a DNS label. */}}
{{- define "cynode.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart (or the override), at most 63 characters. */}}
{{- define "cynode.fullname" -}}
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

{{/*
A name with a suffix that always survives truncation: the full name is cut so that "-suffix" fits in 63
characters. Call with (list . "suffix").
*/}}
{{- define "cynode.suffixed" -}}
{{- $ctx := index . 0 }}
{{- $suffix := index . 1 }}
{{- $base := include "cynode.fullname" $ctx | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base $suffix }}
{{- end }}

{{- define "cynode.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels common to every resource. */}}
{{- define "cynode.labels" -}}
helm.sh/chart: {{ include "cynode.chart" . }}
app.kubernetes.io/name: {{ include "cynode.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of a pod of one component: its selector labels plus the common ones. Call with (list . "component"). */}}
{{- define "cynode.podLabels" -}}
{{- $ctx := index . 0 -}}
{{ include "cynode.selectorLabels" . }}
helm.sh/chart: {{ include "cynode.chart" $ctx }}
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
{{- with $ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: call with (list . "component"). */}}
{{- define "cynode.selectorLabels" -}}
{{- $ctx := index . 0 -}}
app.kubernetes.io/name: {{ include "cynode.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "cynode.gatewayImage" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "cynode.nodeImage" -}}
{{- printf "%s:%s" .Values.nodeAgent.image.repository (default .Chart.AppVersion .Values.nodeAgent.image.tag) }}
{{- end }}

{{- define "cynode.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cynode.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the chart-created quick-start Secret. */}}
{{- define "cynode.quickstartSecret" -}}
{{- include "cynode.suffixed" (list . "quickstart") }}
{{- end }}

{{/* Whether the chart creates the quick-start Secret (some secret given as a plain value). */}}
{{- define "cynode.needsQuickstartSecret" -}}
{{- if or (and (not .Values.database.existingSecret.name) .Values.database.url) (and (not .Values.masterKey.existingSecret.name) .Values.masterKey.value) (and .Values.nodeAgent.enabled (not .Values.nodeAgent.nodeKey.existingSecret.name) .Values.nodeAgent.nodeKey.value) }}true{{ end }}
{{- end }}

{{/* secretKeyRef of the database URL; fails with the fix when neither source is set. */}}
{{- define "cynode.databaseUrlRef" -}}
{{- if .Values.database.existingSecret.name }}
name: {{ .Values.database.existingSecret.name }}
key: {{ .Values.database.existingSecret.key }}
{{- else if .Values.database.url }}
name: {{ include "cynode.quickstartSecret" . }}
key: database-url
{{- else }}
{{- fail "cynode: no database: set database.existingSecret.name (a Secret with the PostgreSQL URL under database.existingSecret.key) or, for a quick start only, database.url" }}
{{- end }}
{{- end }}

{{- define "cynode.masterKeyRef" -}}
{{- if .Values.masterKey.existingSecret.name }}
name: {{ .Values.masterKey.existingSecret.name }}
key: {{ .Values.masterKey.existingSecret.key }}
{{- else if .Values.masterKey.value }}
name: {{ include "cynode.quickstartSecret" . }}
key: master-key
{{- else }}
{{- fail "cynode: no master key: set masterKey.existingSecret.name (a Secret holding the output of `cynode keygen`) or, for a quick start only, masterKey.value" }}
{{- end }}
{{- end }}

{{- define "cynode.nodeKeyRef" -}}
{{- if .Values.nodeAgent.nodeKey.existingSecret.name }}
name: {{ .Values.nodeAgent.nodeKey.existingSecret.name }}
key: {{ .Values.nodeAgent.nodeKey.existingSecret.key }}
{{- else if .Values.nodeAgent.nodeKey.value }}
name: {{ include "cynode.quickstartSecret" . }}
key: node-key
{{- else }}
{{- fail "cynode: node agents need a node key: set nodeAgent.nodeKey.existingSecret.name (a key listed in the bootstrap file's node_keys) or, for a quick start only, nodeAgent.nodeKey.value" }}
{{- end }}
{{- end }}

{{/* The pod-level settings every CyNode pod shares (restricted Pod Security Standard). */}}
{{- define "cynode.podCommon" -}}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Environment every CyNode process reads for logging. */}}
{{- define "cynode.logEnv" -}}
- name: CYNODE_LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
- name: RUST_LOG
  value: {{ .Values.config.logFilter | quote }}
{{- end }}

{{/* Checksum of the inputs the gateway pods read, so a change rolls them. */}}
{{- define "cynode.configChecksum" -}}
{{- /* Names and settings only: a hash of a secret value must not appear in pod annotations. */}}
{{- list .Values.config .Values.database.existingSecret .Values.masterKey.existingSecret .Values.bootstrap | toJson | sha256sum | trunc 16 }}
{{- end }}

{{/* NetworkPolicy egress rules shared by several policies. */}}
{{- define "cynode.np.dns" -}}
- to:
    - namespaceSelector: {}
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end }}
{{- define "cynode.np.database" -}}
- to:
    {{- range .Values.networkPolicy.database.cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - {port: {{ .Values.networkPolicy.database.port }}, protocol: TCP}
{{- end }}
