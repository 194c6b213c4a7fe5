{{/* Image reference of both components. */}}
{{- define "ferrolb.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "ferrolb.labels" -}}
app: metallb
app.kubernetes.io/name: ferrolb
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Arguments shared by controller and speaker. */}}
{{- define "ferrolb.commonArgs" -}}
- --log-level={{ .Values.logLevel }}
{{- if .Values.loadBalancerClass }}
- --lb-class={{ .Values.loadBalancerClass }}
{{- end }}
{{- end -}}
