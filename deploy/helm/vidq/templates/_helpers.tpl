{{/*
Names. With the release called "vidq" every object has the name the kustomize base gives it
(vidq-worker, vidq-api, vidq-common, ...); another release name prefixes them, so two releases
in one namespace do not share selectors.
*/}}
{{- define "vidq.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains "vidq" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-vidq" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object's metadata; kustomize adds part-of too (to the base's objects). */}}
{{- define "vidq.labels" -}}
app.kubernetes.io/part-of: vidq
{{ include "vidq.helmLabels" . }}
{{- end -}}

{{/* The labels only Helm adds. */}}
{{- define "vidq.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
{{- end -}}

{{/* Labels of one component (worker or api): selector, pod template and metadata. */}}
{{- define "vidq.componentLabels" -}}
app.kubernetes.io/name: {{ include "vidq.fullname" .root }}-{{ .component }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vidq.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Secret names: an existing Secret by reference, or the one this chart creates. */}}
{{- define "vidq.secret.shared" -}}
{{- if and (not .Values.secrets.create) .Values.secrets.existing.shared -}}
{{- .Values.secrets.existing.shared -}}
{{- else -}}
{{- include "vidq.fullname" . }}-secrets
{{- end -}}
{{- end -}}
{{- define "vidq.secret.worker" -}}
{{- if and (not .Values.secrets.create) .Values.secrets.existing.worker -}}
{{- .Values.secrets.existing.worker -}}
{{- else -}}
{{- include "vidq.fullname" . }}-worker-secrets
{{- end -}}
{{- end -}}
{{- define "vidq.secret.apiConfig" -}}
{{- if and (not .Values.secrets.create) .Values.secrets.existing.apiConfig -}}
{{- .Values.secrets.existing.apiConfig -}}
{{- else -}}
{{- include "vidq.fullname" . }}-api-config
{{- end -}}
{{- end -}}
