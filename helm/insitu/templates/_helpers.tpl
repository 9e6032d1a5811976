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

{{/* Probes of the platform's Python services (insitu/probes.py): /livez and /readyz answer
     without credentials and say only "ok"; outside the service prefix, so the hub's proxy never
     routes them. The start-up probe allows for the database migrations run at start. */}}
{{- define "insitu.probes" -}}
startupProbe: {httpGet: {path: /livez, port: http}, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 60}
livenessProbe: {httpGet: {path: /livez, port: http}, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 6}
readinessProbe: {httpGet: {path: /readyz, port: http}, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 3}
{{- end -}}
