{{- /* What the compiler writes to <workspace>/inside/, plus both kustomization.yaml files. */ -}}

{{- define "hb.rbac" -}}
{{- $ctx := . }}
{{- $prefix := .platform.oidc.groupsPrefix }}
{{- $bindings := list (dict "name" "hexabase:workspace-admin:WSAdmins" "group" "WSAdmins" "role" "hexabase:workspace-admin") }}
{{- range .w.workspace.spec.clusterRoleBindings }}
{{- $name := printf "%s:%s" .clusterRole .group }}
{{- if ne $name "hexabase:workspace-admin:WSAdmins" }}
{{- $bindings = append $bindings (dict "name" $name "group" .group "role" .clusterRole) }}
{{- end }}
{{- end }}
# Preset roles of every workspace. Custom ClusterRoles are not allowed; projects get Roles.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: hexabase:workspace-admin
  labels:
    {{- include "hb.labels" . | nindent 4 }}
rules:
  - apiGroups:
      - "*"
    resources:
      - "*"
    verbs:
      - "*"
  - nonResourceURLs:
      - "*"
    verbs:
      - "*"
---
# The viewer role is Kubernetes' own "view" role (no Secrets), kept current by aggregation.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: hexabase:workspace-viewer
  labels:
    {{- include "hb.labels" . | nindent 4 }}
aggregationRule:
  clusterRoleSelectors:
    - matchLabels:
        rbac.authorization.k8s.io/aggregate-to-view: "true"
rules: []
{{- range $b := $bindings }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ $b.name | quote }}
  labels:
    {{- include "hb.labels" $ctx | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $b.role | quote }}
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: Group
    name: {{ printf "%s%s" $prefix $b.group | quote }}
{{- end }}
{{- end }}

{{- /* One project file. Context: dict "ctx" <workspace context> "p" <Project document>. */ -}}
{{- define "hb.project" -}}
{{- $ctx := .ctx }}
{{- $name := .p.metadata.name }}
{{- $spec := .p.spec }}
{{- $prefix := $ctx.platform.oidc.groupsPrefix }}
{{- $labels := printf "%s\n%s: %s" (include "hb.labels" $ctx) (quote "hexabase.ai/project") (quote $name) }}
{{- $quota := include "hb.quota" (merge (deepCopy ($spec.quota | default dict)) ($ctx.plan.projectQuota | default dict)) | trim }}
{{- $limitRange := include "hb.limitRange" ($ctx.plan.projectLimitRange | default dict) | trim }}
apiVersion: v1
kind: Namespace
metadata:
  name: {{ $name | quote }}
  labels:
    {{- include "hb.labels" $ctx | nindent 4 }}
    {{- range $k, $v := .p.metadata.labels }}
    {{ $k | quote }}: {{ $v | quote }}
    {{- end }}
    hexabase.ai/project: {{ $name | quote }}
  {{- with $spec.displayName }}
  annotations:
    hexabase.ai/display-name: {{ . | quote }}
  {{- end }}
{{- if $quota }}
---
apiVersion: v1
kind: ResourceQuota
metadata:
  name: hexabase-project
  namespace: {{ $name | quote }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  hard:
    {{- $quota | nindent 4 }}
{{- end }}
{{- if $limitRange }}
---
apiVersion: v1
kind: LimitRange
metadata:
  name: hexabase-project
  namespace: {{ $name | quote }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  limits:
    - type: Container
      {{- $limitRange | nindent 6 }}
{{- end }}
{{- range $r := $spec.roles }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $r.name | quote }}
  namespace: {{ $name | quote }}
  labels:
    {{- $labels | nindent 4 }}
rules:
  {{- range $rule := $r.rules }}
  - apiGroups:
      {{- range $rule.apiGroups }}
      - {{ . | quote }}
      {{- end }}
    resources:
      {{- range $rule.resources }}
      - {{ . | quote }}
      {{- end }}
    verbs:
      {{- range $rule.verbs }}
      - {{ . | quote }}
      {{- end }}
    {{- with $rule.resourceNames }}
    resourceNames:
      {{- range . }}
      - {{ . | quote }}
      {{- end }}
    {{- end }}
  {{- end }}
{{- end }}
{{- range $b := $spec.roleBindings }}
{{- $role := $b.role | default $b.clusterRole }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ printf "%s:%s" $b.group $role | quote }}
  namespace: {{ $name | quote }}
  labels:
    {{- $labels | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: {{ ternary "Role" "ClusterRole" (hasKey $b "role") | quote }}
  name: {{ $role | quote }}
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: Group
    name: {{ printf "%s%s" $prefix $b.group | quote }}
{{- end }}
{{- range $j := $spec.cronJobs }}
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ $j.name | quote }}
  namespace: {{ $name | quote }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  schedule: {{ $j.schedule | quote }}
  {{- with $j.timeZone }}
  timeZone: {{ . | quote }}
  {{- end }}
  concurrencyPolicy: {{ $j.concurrencyPolicy | quote }}
  suspend: {{ $j.suspend | default false }}
  jobTemplate:
    spec:
      backoffLimit: 2
      template:
        metadata:
          labels:
            hexabase.ai/cronjob: {{ $j.name | quote }}
        spec:
          restartPolicy: OnFailure
          containers:
            - name: job
              image: {{ $j.image | quote }}
              {{- with $j.command }}
              command:
                {{- range . }}
                - {{ . | quote }}
                {{- end }}
              {{- end }}
              {{- with $j.args }}
              args:
                {{- range . }}
                - {{ . | quote }}
                {{- end }}
              {{- end }}
              {{- include "hb.env" $j.env | nindent 14 }}
              {{- include "hb.resources" ($j.resources | default dict) | nindent 14 }}
{{- end }}
{{- end }}

{{- define "hb.kustomizations" -}}
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  {{- if .functions }}
  - "functions.yaml"
  {{- end }}
  - "monitoring.yaml"
  - "namespace.yaml"
  - "network.yaml"
  - "sources.yaml"
  - "sync.yaml"
  - "vcluster.yaml"
---
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  {{- range .w.projects }}
  - {{ printf "projects/%s.yaml" .metadata.name | quote }}
  {{- end }}
  - "rbac.yaml"
{{- end }}
