{{- /* What the compiler writes to <workspace>/flux.yaml and <workspace>/host/. */ -}}

{{- define "hb.flux" -}}
# The entry point of workspace {{ printf "%s/%s" .w.org .w.name | quote }}: applies host/ with the platform's rights,
# because host/ creates the tenant namespace and its service account.
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: {{ .ns | quote }}
  namespace: flux-system
  labels:
    {{- include "hb.labels" . | nindent 4 }}
spec:
  serviceAccountName: kustomize-controller
  interval: 10m
  retryInterval: 1m
  timeout: 10m
  prune: true
  wait: true
  sourceRef:
    kind: GitRepository
    name: flux-system
  path: {{ printf "./tenants/%s/%s/%s/host" .cluster.name .w.org .w.name | quote }}
{{- end }}

{{- define "hb.namespace" -}}
apiVersion: v1
kind: Namespace
metadata:
  name: {{ .ns | quote }}
  labels:
    {{- include "hb.labels" . | nindent 4 }}
    {{- range $k, $v := .w.workspace.metadata.labels }}
    {{ $k | quote }}: {{ $v | quote }}
    {{- end }}
    hexabase.ai/plan: {{ .plan.name | quote }}
    pod-security.kubernetes.io/enforce: baseline
---
# Flux acts as this account for everything in the workspace namespace (multi-tenancy lockdown).
apiVersion: v1
kind: ServiceAccount
metadata:
  name: hexabase-flux
  namespace: {{ .ns | quote }}
  labels:
    {{- include "hb.labels" . | nindent 4 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: hexabase-flux
  namespace: {{ .ns | quote }}
  labels:
    {{- include "hb.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cluster-admin
subjects:
  - kind: ServiceAccount
    name: hexabase-flux
    namespace: {{ .ns | quote }}
{{- if eq .plan.placement.mode "Dedicated" }}
---
# Node sync (dedicated nodes) makes the vCluster chart create a ClusterRole; Helm may only
# create it holding the same rules, which this binding grants.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ printf "hexabase:vcluster-nodes:%s" .ns | quote }}
  labels:
    {{- include "hb.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: hexabase:vcluster-nodes
subjects:
  - kind: ServiceAccount
    name: hexabase-flux
    namespace: {{ .ns | quote }}
{{- end }}
{{- end }}

{{- define "hb.sources" -}}
{{- $monitoring := .platform.charts.monitoringAgent }}
{{- if eq .plan.monitoring "Dedicated" }}{{ $monitoring = .platform.charts.monitoringStack }}{{ end }}
# Sources live in the workspace namespace: the lockdown forbids cross-namespace references.
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: {{ .tenant | quote }}
  namespace: {{ .ns | quote }}
  labels:
    {{- include "hb.labels" . | nindent 4 }}
spec:
  interval: 1m
  url: {{ .platform.git.url | quote }}
  ref:
    branch: {{ .platform.git.branch | quote }}
  {{- with .platform.git.secretName }}
  secretRef:
    name: {{ . | quote }}
  {{- end }}
  ignore: |
    /*
    !/tenants/{{ .cluster.name }}/{{ .w.org }}/{{ .w.name }}/inside/
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: vcluster
  namespace: {{ .ns | quote }}
  labels:
    {{- include "hb.labels" . | nindent 4 }}
spec:
  interval: 1h
  url: {{ .platform.charts.vcluster.repository | quote }}
  {{- if hasPrefix "oci://" .platform.charts.vcluster.repository }}
  type: oci
  {{- end }}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: monitoring
  namespace: {{ .ns | quote }}
  labels:
    {{- include "hb.labels" . | nindent 4 }}
spec:
  interval: 1h
  url: {{ $monitoring.repository | quote }}
  {{- if hasPrefix "oci://" $monitoring.repository }}
  type: oci
  {{- end }}
{{- end }}

{{- define "hb.vcluster" -}}
{{- $service := printf "vcluster.%s.svc" .ns }}
{{- $oidc := .platform.oidc }}
{{- $vc := .plan.vcluster }}
{{- $dedicated := eq .plan.placement.mode "Dedicated" }}
{{- $nodeSelector := merge (deepCopy (dig "dedicatedNodes" "nodeSelector" dict .w.workspace.spec)) (.plan.placement.nodeSelector | default dict) }}
{{- $tolerations := concat (.plan.placement.tolerations | default list) (dig "dedicatedNodes" "tolerations" list .w.workspace.spec) }}
{{- $hostQuota := include "hb.quota" .plan.hostQuota | trim }}
{{- $hostLimitRange := include "hb.limitRange" .plan.hostLimitRange | trim }}
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: vcluster
  namespace: {{ .ns | quote }}
  labels:
    {{- include "hb.labels" . | nindent 4 }}
spec:
  serviceAccountName: hexabase-flux
  interval: 10m
  chart:
    spec:
      chart: {{ .platform.charts.vcluster.chart | quote }}
      version: {{ .platform.charts.vcluster.version | quote }}
      interval: 1h
      sourceRef:
        kind: HelmRepository
        name: vcluster
  install:
    remediation:
      retries: 3
  upgrade:
    remediation:
      retries: 3
  values:
    controlPlane:
      distro:
        k8s:
          enabled: true
          {{- with $vc.kubernetesVersion }}
          version: {{ . | quote }}
          {{- end }}
          apiServer:
            extraArgs:
              - {{ printf "--oidc-issuer-url=%s" $oidc.issuerUrl | quote }}
              - {{ printf "--oidc-client-id=%s" .ns | quote }}
              - {{ printf "--oidc-username-claim=%s" $oidc.usernameClaim | quote }}
              - {{ printf "--oidc-username-prefix=%s" $oidc.usernamePrefix | quote }}
              - {{ printf "--oidc-groups-claim=%s" $oidc.groupsClaim | quote }}
              - {{ printf "--oidc-groups-prefix=%s" $oidc.groupsPrefix | quote }}
      proxy:
        extraSANs:
          - {{ $service | quote }}
          - {{ printf "%s.cluster.local" $service | quote }}
          - {{ printf "%s.%s" .ns .cluster.domain | quote }}
      {{- if or $vc.cpu $vc.memory $vc.storage $dedicated }}
      statefulSet:
        {{- if or $vc.cpu $vc.memory }}
        {{- include "hb.resources" $vc | nindent 8 }}
        {{- end }}
        {{- with $vc.storage }}
        persistence:
          volumeClaim:
            size: {{ . | quote }}
        {{- end }}
        {{- if $dedicated }}
        scheduling:
          nodeSelector:
            {{- range $k, $v := $nodeSelector }}
            {{ $k | quote }}: {{ $v | quote }}
            {{- end }}
          {{- if $tolerations }}
          tolerations:
            {{- range $tolerations }}
            - key: {{ .key | quote }}
              operator: {{ ternary "Equal" "Exists" (hasKey . "value") | quote }}
              {{- if hasKey . "value" }}
              value: {{ .value | quote }}
              {{- end }}
              effect: {{ .effect | quote }}
            {{- end }}
          {{- end }}
        {{- end }}
      {{- end }}
    # Flux reaches the vCluster through its in-cluster service, with this kubeconfig (Secret vc-vcluster).
    exportKubeConfig:
      server: {{ printf "https://%s:443" $service | quote }}
    {{- if or $hostQuota $hostLimitRange }}
    policies:
      {{- if $hostQuota }}
      resourceQuota:
        enabled: true
        quota:
          {{- $hostQuota | nindent 10 }}
      {{- end }}
      {{- if $hostLimitRange }}
      limitRange:
        enabled: true
        {{- $hostLimitRange | nindent 8 }}
      {{- end }}
    {{- end }}
    {{- if $dedicated }}
    sync:
      fromHost:
        nodes:
          enabled: true
          selector:
            labels:
              {{- range $k, $v := $nodeSelector }}
              {{ $k | quote }}: {{ $v | quote }}
              {{- end }}
      {{- if $tolerations }}
      toHost:
        pods:
          enforceTolerations:
            {{- range $tolerations }}
            - {{ printf "%s%s:%s" .key (ternary (printf "=%v" .value) "" (hasKey . "value")) .effect | quote }}
            {{- end }}
      {{- end }}
    {{- end }}
    experimental:
      deploy:
        vcluster:
          # Flux applies inside/ as the workspace's service account; inside the vCluster it needs these rights.
          manifests: |
            apiVersion: rbac.authorization.k8s.io/v1
            kind: ClusterRoleBinding
            metadata:
              name: hexabase-flux
            roleRef:
              apiGroup: rbac.authorization.k8s.io
              kind: ClusterRole
              name: cluster-admin
            subjects:
              - kind: User
                name: system:serviceaccount:{{ .ns }}:hexabase-flux
{{- end }}

{{- define "hb.network" -}}
# Tenants are fenced from each other: pods here accept traffic only from this namespace, from Flux
# (which reaches the vCluster API), from the Knative ingress (Functions) and from the monitoring stack.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: hexabase-isolate
  namespace: {{ .ns | quote }}
  labels:
    {{- include "hb.labels" . | nindent 4 }}
spec:
  podSelector: {}
  policyTypes:
    - Ingress
  ingress:
    - from:
        - podSelector: {}
        - namespaceSelector:
            matchExpressions:
              - key: kubernetes.io/metadata.name
                operator: In
                values:
                  - flux-system
                  - knative-serving
                  - kourier-system
                  - monitoring
{{- end }}

{{- define "hb.sync" -}}
# Applies inside/ into the vCluster, once the vCluster has written its kubeconfig Secret.
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: inside
  namespace: {{ .ns | quote }}
  labels:
    {{- include "hb.labels" . | nindent 4 }}
spec:
  serviceAccountName: hexabase-flux
  interval: 10m
  retryInterval: 1m
  timeout: 5m
  prune: true
  wait: true
  sourceRef:
    kind: GitRepository
    name: {{ .tenant | quote }}
  path: {{ printf "./tenants/%s/%s/%s/inside" .cluster.name .w.org .w.name | quote }}
  kubeConfig:
    secretRef:
      name: vc-vcluster
      key: config
{{- end }}

{{- define "hb.monitoring" -}}
{{- $dedicated := eq .plan.monitoring "Dedicated" }}
{{- $chart := ternary .platform.charts.monitoringStack .platform.charts.monitoringAgent $dedicated }}
{{- $endpoints := .platform.monitoring | default dict }}
# {{ ternary "Dedicated monitoring stack" "Monitoring agent shipping to the shared stack" $dedicated | quote }}, installed into the vCluster.
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: monitoring
  namespace: {{ .ns | quote }}
  labels:
    {{- include "hb.labels" . | nindent 4 }}
spec:
  serviceAccountName: hexabase-flux
  interval: 30m
  dependsOn:
    - name: vcluster
  kubeConfig:
    secretRef:
      name: vc-vcluster
      key: config
  targetNamespace: hexabase-monitoring
  storageNamespace: hexabase-monitoring
  chart:
    spec:
      chart: {{ $chart.chart | quote }}
      version: {{ $chart.version | quote }}
      interval: 1h
      sourceRef:
        kind: HelmRepository
        name: monitoring
  install:
    createNamespace: true
    remediation:
      retries: 3
  upgrade:
    remediation:
      retries: 3
  values:
    {{- if $dedicated }}
    grafana:
      enabled: true
    alertmanager:
      enabled: true
    prometheus:
      prometheusSpec:
        retention: 15d
        externalLabels:
          workspace_id: {{ .tenant | quote }}
    {{- else }}
    alloy:
      configMap:
        content: |
          prometheus.exporter.unix "node" { }
          discovery.kubernetes "pods" {
            role = "pod"
          }
          prometheus.scrape "pods" {
            targets    = discovery.kubernetes.pods.targets
            forward_to = [prometheus.remote_write.shared.receiver]
          }
          prometheus.remote_write "shared" {
            external_labels = { workspace_id = "{{ .tenant }}" }
          {{- with $endpoints.remoteWriteUrl }}
            endpoint {
              url = "{{ . }}"
            }
          {{- end }}
          }
          {{- with $endpoints.lokiUrl }}
          loki.source.kubernetes "pods" {
            targets    = discovery.kubernetes.pods.targets
            forward_to = [loki.write.shared.receiver]
          }
          loki.write "shared" {
            external_labels = { workspace_id = "{{ $.tenant }}" }
            endpoint {
              url = "{{ . }}"
            }
          }
          {{- end }}
    {{- end }}
{{- end }}

{{- define "hb.functions" -}}
{{- $ctx := . }}
{{- $first := true }}
{{- range $p := .w.projects }}
{{- range $f := $p.spec.functions }}
{{- if not $first }}
---
{{- end }}
{{- $first = false }}
{{- $scaling := $f.scaling | default dict }}
# Function {{ $f.name }} of project {{ $p.metadata.name }}.
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: {{ printf "%s-%s" $p.metadata.name $f.name | quote }}
  namespace: {{ $ctx.ns | quote }}
  labels:
    {{- include "hb.labels" $ctx | nindent 4 }}
    "hexabase.ai/function": {{ $f.name | quote }}
    "hexabase.ai/project": {{ $p.metadata.name | quote }}
spec:
  template:
    metadata:
      labels:
        app.kubernetes.io/managed-by: hexabase
        hexabase.ai/function: {{ $f.name | quote }}
        hexabase.ai/project: {{ $p.metadata.name | quote }}
        toolkit.fluxcd.io/tenant: {{ $ctx.tenant | quote }}
      {{- if or (hasKey $scaling "minScale") (hasKey $scaling "maxScale") (hasKey $scaling "target") }}
      annotations:
        {{- if hasKey $scaling "minScale" }}
        autoscaling.knative.dev/min-scale: {{ $scaling.minScale | toString | quote }}
        {{- end }}
        {{- if hasKey $scaling "maxScale" }}
        autoscaling.knative.dev/max-scale: {{ $scaling.maxScale | toString | quote }}
        {{- end }}
        {{- if hasKey $scaling "target" }}
        autoscaling.knative.dev/target: {{ $scaling.target | toString | quote }}
        {{- end }}
      {{- end }}
    spec:
      containers:
        - name: function
          image: {{ $f.image | quote }}
          {{- with $f.port }}
          ports:
            - containerPort: {{ . }}
          {{- end }}
          {{- include "hb.env" $f.env | nindent 10 }}
          {{- include "hb.resources" ($f.resources | default dict) | nindent 10 }}
{{- end }}
{{- end }}
{{- end }}
