{{/*
Names, labels and the pieces every workload shares. Components: gateway, router, expert-service, kvcache.
*/}}

{{- define "moemesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<release>-<chart>", or the release name alone when it already contains the chart name. */}}
{{- define "moemesh.fullname" -}}
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

{{/* Resource name of a component: (dict "root" $ "component" "gateway"). 52 characters leave room for the
StatefulSet's pod ordinal and controller-revision suffixes. */}}
{{- define "moemesh.componentName" -}}
{{- printf "%s-%s" (include "moemesh.fullname" .root) .component | trunc 52 | trimSuffix "-" }}
{{- end }}

{{- define "moemesh.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of a component: what Services, PDBs, the router's discovery and the HPAs' pods match. */}}
{{- define "moemesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "moemesh.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels of the chart's objects. Not for pod templates (moemesh.podLabels): helm.sh/chart and
app.kubernetes.io/version change with every release of the chart. */}}
{{- define "moemesh.labels" -}}
helm.sh/chart: {{ include "moemesh.chart" .root }}
{{ include "moemesh.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: moemesh
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* Labels of a component's pod template: only those that never change with the chart's version. A changed pod
template is a rollout, so helm.sh/chart or app.kubernetes.io/version there would restart every pod on every chart
release, even one that changes nothing the pods run (each expert pod would reload its experts, each kvcache pod
demote and rescan its tiers). The selector labels must stay as they are: a workload's selector is immutable. */}}
{{- define "moemesh.podLabels" -}}
{{ include "moemesh.selectorLabels" . }}
app.kubernetes.io/part-of: moemesh
{{- end }}

{{/* The spec.replicas of a workload whose pod count an HPA owns: (dict "root" $ "kind" "StatefulSet" "name" NAME).
On an upgrade, the count the live object has (lookup); nothing on a first install, where the HPA starts from 1 and
scales to its minimum, and nothing where lookup finds nothing (helm template, lint, client-side dry runs). Omitting
the field while the object exists is what breaks (helm/helm#12650): upgraded from a release that rendered it
(autoscaling was off), Helm's three-way merge deletes the field, the API server defaults it to 1, and the workload
drops to one pod at once, before the HPA can act; for the expert-services every other pod stops and its experts with
it. Keeping the live count changes nothing on the object, and the HPA scales from there. Looked up on upgrades only:
a first install has nothing to keep. */}}
{{- define "moemesh.liveReplicas" -}}
{{- if .root.Release.IsUpgrade }}
{{- $live := lookup "apps/v1" .kind .root.Release.Namespace .name | default dict }}
{{- $replicas := dig "spec" "replicas" "" $live }}
{{- if not (kindIs "string" $replicas) }}
{{- int64 $replicas }}
{{- end }}
{{- end }}
{{- end }}

{{/* The label selector the router's discovery lists and watches expert-service pods with. */}}
{{- define "moemesh.expertSelector" -}}
{{- printf "app.kubernetes.io/name=%s,app.kubernetes.io/instance=%s,app.kubernetes.io/component=expert-service" (include "moemesh.name" .) .Release.Name }}
{{- end }}

{{/* The placement ConfigMap the router owns (key placement.json) and the gateways mount. */}}
{{- define "moemesh.placementConfigMap" -}}
{{- include "moemesh.componentName" (dict "root" . "component" "placement") }}
{{- end }}

{{- define "moemesh.routerServiceAccount" -}}
{{- include "moemesh.componentName" (dict "root" . "component" "router") }}
{{- end }}

{{/* Image reference of a component: (dict "root" $ "image" .Values.gateway.image). */}}
{{- define "moemesh.image" -}}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- if .root.Values.image.registry }}
{{- printf "%s/%s:%s" (trimSuffix "/" .root.Values.image.registry) .image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/* Secret with a component's certificate: (dict "root" $ "value" .Values.tls.gatewaySecret "component" "gateway"). */}}
{{- define "moemesh.tlsSecret" -}}
{{- .value | default (printf "%s-tls" (include "moemesh.componentName" (dict "root" .root "component" .component))) }}
{{- end }}

{{- define "moemesh.modelDir" -}}
{{- printf "%s/%s" (trimSuffix "/" .Values.model.mountPath) (trimPrefix "/" .Values.model.path) }}
{{- end }}

{{/* Tokens per KV block, the one value of the gateway's and the kvcache-service's ConfigMaps: kvBlockTokens, or 16
(values.yaml's default, and both services' own) when the key is missing, as in a release upgraded with
--reuse-values from a chart before kvBlockTokens (Helm then takes the old chart's values.yaml, without it). */}}
{{- define "moemesh.kvBlockTokens" -}}
{{- .Values.kvBlockTokens | default 16 | int }}
{{- end }}

{{/* Where every service unpacks native libraries (JavaCPP/OpenBLAS): a directory the service itself creates, as the
pod's non-root user (under the container's umask, 022: writable by that user alone), inside the emptyDir mounted at
moemesh.nativeCacheMount (the root filesystem is read-only). Not the mount point itself: the kubelet makes an
emptyDir world-writable (0777, and group-writable for the fsGroup), and a library loaded from a directory others may
write to is theirs to replace. Not under /tmp either, nor under the user's home: the images' user's home, /app, is
on the read-only root filesystem. */}}
{{- define "moemesh.nativeCacheDir" -}}/var/cache/moemesh/native{{- end }}
{{- define "moemesh.nativeCacheMount" -}}/var/cache/moemesh{{- end }}

{{/* JDK_JAVA_OPTIONS of a component: (dict "root" $ "options" .Values.gateway.javaOptions). */}}
{{- define "moemesh.javaOptions" -}}
{{- $opts := list (printf "-Dorg.bytedeco.javacpp.cachedir=%s" (include "moemesh.nativeCacheDir" .root)) "-Djava.io.tmpdir=/tmp" }}
{{- with .root.Values.jvm.extraOptions }}{{ $opts = append $opts . }}{{ end }}
{{- with .options }}{{ $opts = append $opts . }}{{ end }}
{{- join " " $opts }}
{{- end }}

{{/* Pod annotations: Prometheus scraping of the actuator, the config checksum (a changed setting rolls the pods),
and the user's. (dict "root" $ "port" 9081 "config" (include (print $.Template.BasePath "/x.yaml") $)). The checksum
is of the settings ConfigMap's data alone: its metadata carries the chart's version labels, and a checksum over them
would roll every pod on every chart release (moemesh.podLabels). */}}
{{- define "moemesh.podAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /actuator/prometheus
checksum/config: {{ (.config | fromYaml).data | toYaml | sha256sum }}
{{- with .root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volume mounts every MoE Mesh container has: /tmp, the native cache's parent, the model, the certificate. */}}
{{- define "moemesh.commonMounts" -}}
- name: tmp
  mountPath: /tmp
- name: native-cache
  mountPath: {{ include "moemesh.nativeCacheMount" .root }}
- name: model
  mountPath: {{ .root.Values.model.mountPath }}
  readOnly: true
{{- if eq .root.Values.tlsMode "mtls" }}
- name: tls
  mountPath: /etc/moemesh/tls
  readOnly: true
{{- if .root.Values.tls.caBundle.configMap }}
- name: ca-bundle
  mountPath: /etc/moemesh/ca-bundle
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{/* The CA certificates every service trusts (its MOEMESH_*_TLS_CA_BUNDLE): the tls.caBundle ConfigMap when set, one
file for the whole release that can hold the old and the new CA while the CA is rotated (docs/kubernetes.md, "Rotating
the mesh CA"); else the ca.crt of the component's own Secret, which cert-manager writes per certificate at its issue. */}}
{{- define "moemesh.caBundlePath" -}}
{{- if .Values.tls.caBundle.configMap -}}
/etc/moemesh/ca-bundle/ca-bundle.crt
{{- else -}}
/etc/moemesh/tls/ca.crt
{{- end }}
{{- end }}

{{/* Volumes matching moemesh.commonMounts: (dict "root" $ "tlsSecret" NAME). */}}
{{- define "moemesh.commonVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
- name: native-cache
  emptyDir:
    sizeLimit: 1Gi
{{- if eq .root.Values.model.source "pvc" }}
- name: model
  persistentVolumeClaim:
    claimName: {{ .root.Values.model.pvc.claimName }}
    readOnly: true
{{- else }}
- name: model
  emptyDir:
    sizeLimit: {{ .root.Values.model.initContainer.sizeLimit }}
{{- end }}
{{- if eq .root.Values.tlsMode "mtls" }}
- name: tls
  secret:
    secretName: {{ .tlsSecret }}
    defaultMode: 0440
{{- with .root.Values.tls.caBundle }}
{{- if .configMap }}
# Mounted whole (no subPath): the kubelet updates it in place, and the services re-read it every tls.reloadPeriod.
- name: ca-bundle
  configMap:
    name: {{ .configMap }}
    items:
      - key: {{ .key }}
        path: ca-bundle.crt
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The init container that writes the model into the pod's emptyDir (model.source initContainer). */}}
{{- define "moemesh.modelInitContainers" -}}
{{- if eq .Values.model.source "initContainer" }}
- name: model-download
  image: {{ .Values.model.initContainer.image }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    {{- toYaml .Values.model.initContainer.command | nindent 4 }}
  env:
    - name: MODEL_ID
      value: {{ .Values.model.initContainer.repoId | quote }}
    - name: MODEL_DIR
      value: {{ include "moemesh.modelDir" . }}
    - name: HOME
      value: /tmp
    - name: HF_HOME
      value: /tmp/hf
    - name: PIP_DISABLE_PIP_VERSION_CHECK
      value: "1"
    {{- with .Values.model.initContainer.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  resources:
    {{- toYaml .Values.model.initContainer.resources | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    - name: model
      mountPath: {{ .Values.model.mountPath }}
{{- end }}
{{- end }}

{{/* Probes on the actuator (HTTP): startup and liveness on the liveness group, readiness on readiness. */}}
{{- define "moemesh.actuatorProbes" -}}
startupProbe:
  httpGet:
    path: /actuator/health/liveness
    port: management
  periodSeconds: 5
  failureThreshold: {{ .startupFailures | default 120 }}
livenessProbe:
  httpGet:
    path: /actuator/health/liveness
    port: management
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /actuator/health/readiness
    port: management
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end }}

{{/* A cert-manager Certificate of a mesh identity: (dict "root" $ "component" "gateway" "identity" "gateway"
"secret" NAME), optionally "clientOnly" true. The one URI SAN spiffe://moemesh/<identity> is what the services
authorise by; the key is PKCS#8 (what the services read); both server and client auth, since every service is both,
or client auth alone for an identity that only calls (the placer). */}}
{{- define "moemesh.certificate" -}}
{{- $cm := .root.Values.tls.certManager }}
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {{ include "moemesh.componentName" . }}
  labels:
    {{- include "moemesh.labels" . | nindent 4 }}
spec:
  secretName: {{ .secret }}
  commonName: {{ .identity }}
  uris:
    - spiffe://moemesh/{{ .identity }}
  duration: {{ $cm.duration }}
  renewBefore: {{ $cm.renewBefore }}
  privateKey:
    algorithm: ECDSA
    size: 256
    encoding: PKCS8
    rotationPolicy: Always
  usages:
    {{- if not .clientOnly }}
    - server auth
    {{- end }}
    - client auth
    - digital signature
  issuerRef:
    name: {{ $cm.issuerRef.name }}
    kind: {{ $cm.issuerRef.kind }}
    group: {{ $cm.issuerRef.group }}
{{- end }}
