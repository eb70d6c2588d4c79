{{/* The name of every object of the release: the release name, with "-restack" unless it says restack already. */}}
{{- define "restack.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "restack.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "restack.labels" -}}
{{ include "restack.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "restack.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "restack.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: with serviceAccount.create=false, name the existing ServiceAccount the operator runs as" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "restack.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "restack.webhookSecretName" -}}
{{- default (printf "%s-webhook" (include "restack.fullname" .)) .Values.webhook.existingSecret -}}
{{- end -}}

{{- define "restack.layerRecordsSecretName" -}}
{{- default (printf "%s-layer-records" (include "restack.fullname" .)) .Values.layerRecords.existingSecret -}}
{{- end -}}

{{- define "restack.builderImage" -}}
{{- default (include "restack.image" .) .Values.builderImage -}}
{{- end -}}

{{/* The images build pods may run, comma-separated: the builder image first. */}}
{{- define "restack.builderImages" -}}
{{- prepend .Values.allowedBuilderImages (include "restack.builderImage" .) | uniq | join "," -}}
{{- end -}}
