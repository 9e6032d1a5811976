{{- define "insitu.labels" -}}
app.kubernetes.io/part-of: insitu
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "insitu.image" -}}
{{ .root.Values.images.registry }}/{{ .name }}:{{ .root.Values.images.tag }}
{{- end -}}
{{- define "insitu.restricted" -}}
securityContext:
  runAsNonRoot: true
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
  seccompProfile: {type: RuntimeDefault}
{{- end -}}
