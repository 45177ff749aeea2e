{{/* Names, labels and the pieces every workload shares. */}}

{{- define "ai.fullname" -}}
{{- printf "%s-alpaca-improved" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "ai.selectorLabels" -}}
app.kubernetes.io/name: alpaca-improved
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ai.labels" -}}
{{ include "ai.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "ai.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{/* Pod-level: non-root, a fixed uid/gid (default 10001), the runtime's seccomp profile. */}}
{{- define "ai.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 10001 }}
runAsGroup: {{ .uid | default 10001 }}
fsGroup: {{ .uid | default 10001 }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level: no privilege escalation, every capability dropped, a read-only root. */}}
{{- define "ai.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "ai.dagsterHome" -}}/opt/dagster/dagster_home{{- end -}}

{{/* The database host: the bundled Service or the external server. */}}
{{- define "ai.pgHost" -}}
{{- if .Values.postgresql.bundled -}}{{ include "ai.fullname" . }}-postgres{{- else -}}{{ required "postgresql.host is required when postgresql.bundled is false" .Values.postgresql.host }}{{- end -}}
{{- end -}}

{{- define "ai.s3Endpoint" -}}
{{- if .Values.s3.bundled -}}http://{{ include "ai.fullname" . }}-s3:5000{{- else -}}{{ .Values.s3.endpointUrl }}{{- end -}}
{{- end -}}

{{/* Secret volumes (files, never env): postgres, s3 and, when set, the vendor keys. */}}
{{- define "ai.appSecretVolumes" -}}
- name: secret-postgres
  secret:
    secretName: {{ .Values.postgresql.existingSecret }}
    defaultMode: 0440
    items: [{key: password, path: password}]
- name: secret-s3
  secret:
    secretName: {{ .Values.s3.existingSecret }}
    defaultMode: 0440
    items: [{key: access-key-id, path: access-key-id}, {key: secret-access-key, path: secret-access-key}]
{{- if .Values.mlflow.enabled }}
- name: secret-mlflow-client
  secret:
    secretName: {{ .Values.mlflow.clientSecret }}
    defaultMode: 0440
    items: [{key: password, path: password}]
{{- end }}
{{- if .Values.app.vendorSecret }}
- name: secret-vendor
  secret:
    secretName: {{ .Values.app.vendorSecret }}
    defaultMode: 0440
    items:
    {{- range $env, $key := .Values.app.vendorKeys }}
      - {key: {{ $key }}, path: {{ $key }}}
    {{- end }}
{{- end }}
{{- end -}}

{{- define "ai.appSecretMounts" -}}
- {name: secret-postgres, mountPath: {{ .Values.secretsMountPath }}/postgres, readOnly: true}
- {name: secret-s3, mountPath: {{ .Values.secretsMountPath }}/s3, readOnly: true}
{{- if .Values.mlflow.enabled }}
- {name: secret-mlflow-client, mountPath: {{ .Values.secretsMountPath }}/mlflow-client, readOnly: true}
{{- end }}
{{- if .Values.app.vendorSecret }}
- {name: secret-vendor, mountPath: {{ .Values.secretsMountPath }}/vendor, readOnly: true}
{{- end }}
{{- end -}}

{{/* NAME_FILE variables: paths of the mounted secret files (the entrypoint exports NAME). */}}
{{- define "ai.appSecretFileEnv" -}}
- {name: DAGSTER_PG_PASSWORD_FILE, value: {{ .Values.secretsMountPath }}/postgres/password}
- {name: AWS_ACCESS_KEY_ID_FILE, value: {{ .Values.secretsMountPath }}/s3/access-key-id}
- {name: AWS_SECRET_ACCESS_KEY_FILE, value: {{ .Values.secretsMountPath }}/s3/secret-access-key}
{{- if .Values.mlflow.enabled }}
- {name: MLFLOW_TRACKING_PASSWORD_FILE, value: {{ .Values.secretsMountPath }}/mlflow-client/password}
{{- end }}
{{- if .Values.app.vendorSecret }}
{{- range $env, $key := .Values.app.vendorKeys }}
- {name: {{ $env }}_FILE, value: {{ $.Values.secretsMountPath }}/vendor/{{ $key }}}
{{- end }}
{{- end }}
{{- end -}}

{{/* Exec probe of a loopback-only HTTP endpoint (the webserver and the live runner bind 127.0.0.1). */}}
{{- define "ai.loopbackProbe" -}}
exec:
  command: ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:{{ .port }}{{ .path }}', timeout=5)"]
periodSeconds: {{ .period | default 20 }}
timeoutSeconds: 10
failureThreshold: 3
{{- end -}}
