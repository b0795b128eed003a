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
# Exactly what the controller uses, checked against a real API server's audit log by
# scripts/e2e-kube.sh (kube/rbac_coverage.py): nothing refused, nothing granted unused.
# Releases: watched, their action annotations removed, their status written.
- apiGroups: ["bluegreen.dev"]
  resources: ["bluegreenreleases"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["bluegreen.dev"]
  resources: ["bluegreenreleases/status"]
  verbs: ["patch"]
# One ReplicaSet per color: server-side apply (authorized as a create when it creates), a
# fresh read right before the flip, resizing through the scale subresource, replacing a
# revision.
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["replicasets/scale"]
  verbs: ["patch"]
# Active and preview Services (server-side apply); one the controller created is deleted
# when spec.service.name moves on.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Smoke-test Jobs.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "delete"]
# Pods of both colors and of smoke tests, and a failed test's log tail.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# Preview endpoints are checked before smoke tests start.
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["list", "watch"]
# Events, as a series when one repeats.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
