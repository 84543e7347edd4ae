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

{{- define "moemesh.labels" -}}
helm.sh/chart: {{ include "moemesh.chart" .root }}
{{ include "moemesh.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: moemesh
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
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

{{/* Where every service unpacks native libraries (JavaCPP/OpenBLAS): an emptyDir, the root filesystem is read-only. */}}
{{- define "moemesh.nativeCacheDir" -}}/var/cache/moemesh/native{{- end }}

{{/* JDK_JAVA_OPTIONS of a component: (dict "root" $ "options" .Values.gateway.javaOptions). */}}
{{- define "moemesh.javaOptions" -}}
{{- $opts := list (printf "-Dorg.bytedeco.javacpp.cachedir=%s" (include "moemesh.nativeCacheDir" .root)) "-Djava.io.tmpdir=/tmp" }}
{{- with .root.Values.jvm.extraOptions }}{{ $opts = append $opts . }}{{ end }}
{{- with .options }}{{ $opts = append $opts . }}{{ end }}
{{- join " " $opts }}
{{- end }}

{{/* Pod annotations: Prometheus scraping of the actuator, the config checksum (a changed setting rolls the pods),
and the user's. (dict "root" $ "port" 9081 "config" (include (print $.Template.BasePath "/x.yaml") $)) */}}
{{- define "moemesh.podAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /actuator/prometheus
checksum/config: {{ .config | sha256sum }}
{{- with .root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volume mounts every MoE Mesh container has: /tmp, the native cache, the model, the certificate. */}}
{{- define "moemesh.commonMounts" -}}
- name: tmp
  mountPath: /tmp
- name: native-cache
  mountPath: {{ include "moemesh.nativeCacheDir" .root }}
- name: model
  mountPath: {{ .root.Values.model.mountPath }}
  readOnly: true
{{- if eq .root.Values.tlsMode "mtls" }}
- name: tls
  mountPath: /etc/moemesh/tls
  readOnly: true
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
"secret" NAME). The one URI SAN spiffe://moemesh/<identity> is what the services authorise by; the key is PKCS#8
(what the services read); both server and client auth, since every service is both. */}}
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
    - server auth
    - client auth
    - digital signature
  issuerRef:
    name: {{ $cm.issuerRef.name }}
    kind: {{ $cm.issuerRef.kind }}
    group: {{ $cm.issuerRef.group }}
{{- end }}

{{/* Bytes of a Kubernetes quantity (100Gi, 500G, 1.5Ti, or a number of bytes) as a float64, printed: the caller
converts it back with float64. values.schema.json has checked the quantity's form. */}}
{{- define "moemesh.quantityBytes" -}}
{{- if or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .) }}
{{- float64 . }}
{{- else }}
{{- $q := trim (toString .) }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $q }}
{{- $factors := dict "" 1 "m" 0.001 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "Pi" 1125899906842624 "Ei" 1152921504606846976 }}
{{- mulf (float64 $number) (index $factors (trimPrefix $number $q)) }}
{{- end }}
{{- end }}

{{/* A component's env value (NAME: value) as more settings ConfigMap entries: (dict "env" .Values.gateway.env
"settings" <the chart's entries> "podEnv" <the container's own env entries, YAML> "value" "gateway.env"). A name the
chart already sets fails naming it: a ConfigMap entry's value is the chart's to change, and a ConfigMap with the key
twice would be ambiguous; a name of the container's own env (the pod's name or namespace) would be ignored silently,
since a container's env wins over its envFrom.
Numbers are written as the user wrote them: Helm reads a values file's numbers as float64, which toString prints
in scientific notation from 1e+06 on (2000000 -> "2e+06", which Spring cannot bind to an int or a long), so a
float64 that is a whole number is printed as an integer; other numbers, strings and booleans as they are. */}}
{{- define "moemesh.userEnv" -}}
{{- $podNames := list }}
{{- range (.podEnv | default "[]" | fromYamlArray) }}
{{- $podNames = append $podNames .name }}
{{- end }}
{{- range $k, $v := .env }}
{{- if not (regexMatch "^[A-Za-z_][A-Za-z0-9_]*$" $k) }}
{{- fail (printf "%s.%s is not an environment variable name (letters, digits and _, not starting with a digit)" $.value $k) }}
{{- end }}
{{- if hasKey $.settings $k }}
{{- fail (printf "%s.%s is set by the chart itself; change the chart value that sets it instead (docs/kubernetes.md, values reference)" $.value $k) }}
{{- end }}
{{- if has $k $podNames }}
{{- fail (printf "%s.%s is set by the chart itself from the pod (the container's env, which wins over %s); remove it from %s" $.value $k $.value $.value) }}
{{- end }}
{{- $s := toString $v }}
{{- if and (kindIs "float64" $v) (eq $v (float64 (int64 $v))) }}
{{- $s = int64 $v | toString }}
{{- end }}
{{ $k }}: {{ $s | quote }}
{{- end }}
{{- end }}
