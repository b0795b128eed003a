{{/* Chart name, overridable. */}}
{{- define "bluegreen-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the objects. When the release name already contains the chart name, it is
not repeated (release "bluegreen-controller" gives "bluegreen-controller", not twice).
*/}}
{{- define "bluegreen-controller.fullname" -}}
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

{{- define "bluegreen-controller.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "bluegreen-controller.labels" -}}
helm.sh/chart: {{ include "bluegreen-controller.chart" . }}
{{ include "bluegreen-controller.selectorLabels" . }}
app.kubernetes.io/version: {{ (.Values.image.tag | default .Chart.AppVersion) | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: controller
{{- end }}

{{/* Selector labels must never change between upgrades: no version in here. */}}
{{- define "bluegreen-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bluegreen-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "bluegreen-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bluegreen-controller.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "bluegreen-controller.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
"true" when leader election is on: always with more than one replica, because two replicas
reconciling the same release would fight over its Services.
*/}}
{{- define "bluegreen-controller.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ else }}false{{ end }}
{{- end }}

{{- define "bluegreen-controller.leaseName" -}}
{{- default (include "bluegreen-controller.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
Everything the controller reads and writes inside the namespaces it watches. Shared by the
ClusterRole (all namespaces) and the Role (watchNamespace) so the two cannot drift apart.
*/}}
{{- define "bluegreen-controller.namespacedRules" -}}
- apiGroups: ["bluegreen.dev"]
  resources: ["bluegreenreleases"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["bluegreen.dev"]
  resources: ["bluegreenreleases/status"]
  verbs: ["get", "patch", "update"]
# One ReplicaSet per color.
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Active and preview Services; the active one's selector is owned through server-side apply.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
# Smoke-test Jobs.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
# Pods of smoke tests, and their log tail when a test fails.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# Preview endpoints are checked before smoke tests start.
- apiGroups: [""]
  resources: ["endpoints"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list", "watch"]
# An Event on every phase transition.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
