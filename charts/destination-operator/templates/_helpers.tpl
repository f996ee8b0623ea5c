{{/* Names, labels and small computed values shared by the templates. */}}

{{- define "destination-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the release name alone when it already holds the chart name. */}}
{{- define "destination-operator.fullname" -}}
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

{{- define "destination-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "destination-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* hack/chart.py drops helm.sh/chart and app.kubernetes.io/managed-by for manifests/. */}}
{{- define "destination-operator.labels" -}}
{{ include "destination-operator.selectorLabels" . }}
app.kubernetes.io/component: operator
{{ include "destination-operator.commonLabels" . }}
{{- end }}

{{/* Labels of every object that are not selectors, commonLabels among them. */}}
{{- define "destination-operator.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: destination-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "destination-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "destination-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "destination-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- with .Values.image.digest }}@{{ . }}{{ end }}
{{- end }}

{{/* The metrics Service's name, and the prefix of the variables the kubelet derives from it. */}}
{{- define "destination-operator.metricsService" -}}
{{- printf "%s-metrics" (include "destination-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "destination-operator.metricsServiceEnv" -}}
{{- include "destination-operator.metricsService" . | upper | replace "-" "_" }}
{{- end }}

{{/*
Settings renamed: each old value, when set, still wins over the new one (NOTES.txt warns).
"destination-operator.namespaces" is a JSON list: `include ... | fromJsonArray`.
*/}}
{{- define "destination-operator.namespaces" -}}
{{- if not (kindIs "invalid" .Values.watchNamespaces) }}
{{- toJson .Values.watchNamespaces }}
{{- else }}
{{- toJson (.Values.namespaces | default list) }}
{{- end }}
{{- end }}

{{- define "destination-operator.timeoutSeconds" -}}
{{- if not (kindIs "invalid" .Values.defaultTimeoutSeconds) }}
{{- .Values.defaultTimeoutSeconds }}
{{- else }}
{{- .Values.timeoutSeconds }}
{{- end }}
{{- end }}

{{/* The values still read under an old name: "old new" pairs, one a line. */}}
{{- define "destination-operator.renamedValues" -}}
{{- if not (kindIs "invalid" .Values.watchNamespaces) }}
watchNamespaces namespaces
{{- end }}
{{- if not (kindIs "invalid" .Values.defaultTimeoutSeconds) }}
defaultTimeoutSeconds timeoutSeconds
{{- end }}
{{- end }}

{{/*
The Lease a Deployment's replicas elect their leader on: leaderElectionId, or
<leaderElectionId>-<shard> for a shard. Called with (list $ $shard).
*/}}
{{- define "destination-operator.leaseName" -}}
{{- list (index . 0).Values.leaderElectionId (index . 1).name | compact | join "-" }}
{{- end }}
