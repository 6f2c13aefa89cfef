{{- /* The labels every workspace object carries. Context: the workspace context. */ -}}
{{- define "hb.labels" -}}
app.kubernetes.io/managed-by: hexabase
hexabase.ai/org: {{ .w.org | quote }}
hexabase.ai/workspace: {{ .w.name | quote }}
toolkit.fluxcd.io/tenant: {{ .tenant | quote }}
{{- end }}

{{- /* Quota entries in Kubernetes spelling, in the compiler's order. Context: a Quota. */ -}}
{{- define "hb.quota" -}}
{{- $q := . }}
{{- range $e := list (list "requestsCpu" "requests.cpu") (list "requestsMemory" "requests.memory") (list "limitsCpu" "limits.cpu") (list "limitsMemory" "limits.memory") (list "requestsStorage" "requests.storage") (list "pods" "pods") (list "services" "services") (list "persistentVolumeClaims" "persistentvolumeclaims") }}
{{- with index $q (index $e 0) }}
{{ index $e 1 | quote }}: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{- /* LimitRange sections. Context: a LimitRange. */ -}}
{{- define "hb.limitRange" -}}
{{- $r := . }}
{{- range $s := list (list "default" "defaultCpu" "defaultMemory") (list "defaultRequest" "defaultRequestCpu" "defaultRequestMemory") (list "max" "maxCpu" "maxMemory") }}
{{- $cpu := index $r (index $s 1) }}
{{- $memory := index $r (index $s 2) }}
{{- if or $cpu $memory }}
{{ index $s 0 | quote }}:
{{- with $cpu }}
  "cpu": {{ . | quote }}
{{- end }}
{{- with $memory }}
  "memory": {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- /* requests/limits of one container. Context: Resources. */ -}}
{{- define "hb.resources" -}}
{{- if or .cpu .memory -}}
resources:
  requests:
    {{- with .cpu }}
    cpu: {{ . | quote }}
    {{- end }}
    {{- with .memory }}
    memory: {{ . | quote }}
  limits:
    memory: {{ . | quote }}
    {{- end }}
{{- end }}
{{- end }}

{{- /* Environment variables. Context: a list of EnvVar. */ -}}
{{- define "hb.env" -}}
{{- if . -}}
env:
{{- range . }}
  - name: {{ .name | quote }}
    value: {{ .value | quote }}
{{- end }}
{{- end }}
{{- end }}
