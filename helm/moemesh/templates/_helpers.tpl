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

{{/* An environment variable name as Spring Boot's relaxed binding compares it: upper case, every "_" removed.
Spring reads moemesh.gateway.grpc-port from MOEMESH_GATEWAY_GRPCPORT before MOEMESH_GATEWAY_GRPC_PORT (and from
their lower-case forms), so two names equal in this form may set the same property; the chart's checks compare
names this way. (Removing every "_", not only those inside a property name's words, refuses a few names Spring
would not bind to the same property: a refusal too many, never a setting let through.) */}}
{{- define "moemesh.envKey" -}}
{{- . | toString | upper | replace "_" "" }}
{{- end }}

{{/* A component's env value as the ConfigMap entry holds it. Helm reads a values file's numbers as float64, which
toString prints in scientific notation from 1e+06 on (2000000 -> "2e+06", which Spring cannot bind to an int or a
long), so a float64 that is a whole number is printed as an integer; other numbers, strings and booleans as they
are. */}}
{{- define "moemesh.envValue" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) }}
{{- int64 . | toString }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/* The value a component's env map gives a setting, under any name Spring would read it from (moemesh.envKey):
(dict "env" .Values.kvcache.env "name" "MOEMESH_KVCACHE_COMPACTION_LIVE_FRACTION"). Empty when the map does not
set it; moemesh.userEnv refuses a map that names one setting twice. */}}
{{- define "moemesh.envSetting" -}}
{{- $want := include "moemesh.envKey" .name }}
{{- range $k, $v := (.env | default dict) }}
{{- if eq (include "moemesh.envKey" $k) $want }}
{{- include "moemesh.envValue" $v }}
{{- end }}
{{- end }}
{{- end }}

{{/* Whole seconds (rounded up) of a duration as Spring Boot binds one without a unit annotation: the simple form
(10s, 500ms, 2m, 1h, 1d; a bare number is milliseconds) or ISO-8601 (PT10S, PT1M30S, P1DT2H). Empty when the text
is neither, or negative. */}}
{{- define "moemesh.springDurationSeconds" -}}
{{- $d := trim (toString .) }}
{{- if regexMatch "^\\+?[0-9]+([a-zA-Z]{0,2})$" $d }}
{{- $n := regexFind "[0-9]+" $d | int64 }}
{{- $unit := lower (regexFind "[a-zA-Z]*$" $d) }}
{{- $perUnit := dict "" 1000 "ms" 1000 "us" 1000000 "ns" 1000000000 }}
{{- $seconds := dict "s" 1 "m" 60 "h" 3600 "d" 86400 }}
{{- if hasKey $perUnit $unit }}
{{- div (add $n (sub (index $perUnit $unit) 1)) (index $perUnit $unit) }}
{{- else if hasKey $seconds $unit }}
{{- mul $n (index $seconds $unit) }}
{{- end }}
{{- else if regexMatch "^(?i)\\+?P([0-9]+D)?(T([0-9]+H)?([0-9]+M)?([0-9]+(\\.[0-9]+)?S)?)?$" $d }}
{{- $u := upper $d }}
{{- $days := regexReplaceAll "^.*?([0-9]+)D.*$" (regexFind "[0-9]+D" $u | default "0D") "${1}" | int64 }}
{{- $time := regexFind "T.*$" $u }}
{{- $hours := regexFind "[0-9]+H" $time | default "0H" | trimSuffix "H" | int64 }}
{{- $minutes := regexFind "[0-9]+M" $time | default "0M" | trimSuffix "M" | int64 }}
{{- $secs := regexFind "[0-9]+(\\.[0-9]+)?S" $time | default "0S" | trimSuffix "S" | float64 | ceil | int64 }}
{{- add (mul $days 86400) (mul $hours 3600) (mul $minutes 60) $secs }}
{{- end }}
{{- end }}

{{/* Seconds of a Go duration (time.ParseDuration, what cert-manager reads: 2160h, 1h30m, 90m; units ns, us, µs,
ms, s, m, h; no d) as a float64, printed; values.schema.json has checked its form. */}}
{{- define "moemesh.goDurationSeconds" -}}
{{- $factors := dict "ns" 1e-9 "us" 1e-6 "µs" 1e-6 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range (regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" (toString .) -1) }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" . }}
{{- $total = addf $total (mulf (float64 $number) (index $factors (trimPrefix $number .))) }}
{{- end }}
{{- $total }}
{{- end }}

{{/* A component's env value (NAME: value) as more settings ConfigMap entries: (dict "env" .Values.gateway.env
"settings" <the chart's entries> "podEnv" <the container's own env entries, YAML> "value" "gateway.env"). A name the
chart already sets fails naming it: a ConfigMap entry's value is the chart's to change, and a ConfigMap with the key
twice would be ambiguous; a name of the container's own env (the pod's name or namespace) would be ignored silently,
since a container's env wins over its envFrom. Names are compared as Spring binds them (moemesh.envKey), so
MOEMESH_GATEWAY_GRPCPORT is the chart's MOEMESH_GATEWAY_GRPC_PORT (and Spring would even prefer it), and two names of
the map that are one setting to Spring fail too. Values are written as moemesh.envValue prints them. */}}
{{- define "moemesh.userEnv" -}}
{{- $chartKeys := dict }}
{{- range $name, $_ := .settings }}
{{- $_ := set $chartKeys (include "moemesh.envKey" $name) $name }}
{{- end }}
{{- $podKeys := dict }}
{{- range (.podEnv | default "[]" | fromYamlArray) }}
{{- $_ := set $podKeys (include "moemesh.envKey" .name) .name }}
{{- end }}
{{- $seen := dict }}
{{- range $k, $v := .env }}
{{- if not (regexMatch "^[A-Za-z_][A-Za-z0-9_]*$" $k) }}
{{- fail (printf "%s.%s is not an environment variable name (letters, digits and _, not starting with a digit)" $.value $k) }}
{{- end }}
{{- $key := include "moemesh.envKey" $k }}
{{- if hasKey $chartKeys $key }}
{{- $as := ternary "" (printf " (as %s: Spring's relaxed binding reads both names for one setting)" (index $chartKeys $key)) (eq $k (index $chartKeys $key)) }}
{{- fail (printf "%s.%s is set by the chart itself%s; change the chart value that sets it instead (docs/kubernetes.md, values reference)" $.value $k $as) }}
{{- end }}
{{- if hasKey $podKeys $key }}
{{- $as := ternary "" (printf " as %s" (index $podKeys $key)) (eq $k (index $podKeys $key)) }}
{{- fail (printf "%s.%s is set by the chart itself from the pod%s (the container's env, which wins over %s); remove it from %s" $.value $k $as $.value $.value) }}
{{- end }}
{{- if hasKey $seen $key }}
{{- fail (printf "%s.%s and %s.%s are one setting to Spring's relaxed binding (case and _ inside a name do not count); keep one" $.value (index $seen $key) $.value $k) }}
{{- end }}
{{- $_ := set $seen $key $k }}
{{ $k }}: {{ include "moemesh.envValue" $v | quote }}
{{- end }}
{{- end }}

{{/* Whole seconds of a duration setting of a component's env map, or its default when the map does not set it:
(dict "env" .Values.kvcache.env "name" "MOEMESH_KVCACHE_SHUTDOWN_GRACE" "default" 10 "value" "kvcache.env" "use" "why
the chart reads it"). Fails naming the variable when it is not a duration Spring reads (the service would refuse it
at startup anyway). */}}
{{- define "moemesh.envSeconds" -}}
{{- $seconds := .default }}
{{- with include "moemesh.envSetting" (dict "env" .env "name" .name) }}
{{- $s := include "moemesh.springDurationSeconds" . }}
{{- if not $s }}
{{- fail (printf "%s.%s must be a duration of at least 0 such as 10s, 500ms, 2m or PT30S, got %q (%s)" $.value $.name . $.use) }}
{{- end }}
{{- $seconds = $s }}
{{- end }}
{{- int64 $seconds }}
{{- end }}

{{/* The kvcache SSD tier's compaction live fraction as it works, a float64, printed: kvcache.env's
MOEMESH_KVCACHE_COMPACTION_LIVE_FRACTION under any name Spring reads it from, else the service's default 0.5; and 0
when compaction never runs, either because that fraction is 0 or because MOEMESH_KVCACHE_COMPACTION_PERIOD is 0
(KvCacheBackground schedules no compaction then): dead space is never reclaimed, whatever the fraction says. */}}
{{- define "moemesh.kvcache.liveFraction" -}}
{{- $period := include "moemesh.envSeconds" (dict "env" .Values.kvcache.env "name" "MOEMESH_KVCACHE_COMPACTION_PERIOD" "default" 60 "value" "kvcache.env" "use" "0 turns compaction off, which the chart's SSD volume check and startup budget account for") | int64 }}
{{- if eq $period 0 }}
{{- 0.0 }}
{{- else }}
{{- include "moemesh.envSetting" (dict "env" .Values.kvcache.env "name" "MOEMESH_KVCACHE_COMPACTION_LIVE_FRACTION") | default "0.5" | float64 }}
{{- end }}
{{- end }}

{{/* Bytes of one SSD segment file (moemesh.kvcache.segment-bytes: kvcache.env's MOEMESH_KVCACHE_SEGMENT_BYTES, else
the service's 256 MiB), a float64, printed: the segment being written comes on top of the sealed ones. */}}
{{- define "moemesh.kvcache.segmentBytes" -}}
{{- include "moemesh.envSetting" (dict "env" .Values.kvcache.env "name" "MOEMESH_KVCACHE_SEGMENT_BYTES") | default "268435456" | float64 }}
{{- end }}

{{/* Bytes the kvcache's segment files may hold, a float64, printed. Compaction keeps a sealed segment until less
than the live fraction of it is live, so the sealed segments may hold ssdBytes ÷ that fraction; a stop then demotes
the whole DRAM tier to SSD (ServedModels.close), up to dramBytes more records written without a compaction in
between (the SSD tier evicts to keep ssdBytes live, which only adds dead space); and the segment being written comes
on top. With compaction off (moemesh.kvcache.liveFraction 0) nothing bounds them but the volume. */}}
{{- define "moemesh.kvcache.fileBytes" -}}
{{- $k := .Values.kvcache }}
{{- $fraction := float64 (include "moemesh.kvcache.liveFraction" .) }}
{{- if gt $fraction 0.0 }}
{{- addf (divf (float64 $k.ssdBytes) $fraction) (float64 $k.dramBytes) (float64 (include "moemesh.kvcache.segmentBytes" .)) }}
{{- else }}
{{- include "moemesh.quantityBytes" $k.persistence.size }}
{{- end }}
{{- end }}

{{/* Seconds the kvcache's startup probe allows: kvcache.startupProbeSeconds, or else derived from the SSD tier.
Before its actuator answers, the service rebuilds its index by reading and CRC-checking every record of the
segment files (SsdTier.open), and those may hold moemesh.kvcache.fileBytes: ssdBytes ÷ the compaction live
fraction, plus the DRAM tier the last stop demoted, plus one segment (the whole volume with compaction off). The
budget reads them at 100 MB/s, the slowest volume assumed (network block storage; a local NVMe reads GB/s), plus
120 s for the JVM, Spring and the model's config: 1066 s with the defaults (94.6 GB). A fixed budget below the scan
kills the pod mid-scan, and the next start scans again: a crash loop. */}}
{{- define "moemesh.kvcache.startupSeconds" -}}
{{- $k := .Values.kvcache }}
{{- if $k.startupProbeSeconds }}
{{- int64 $k.startupProbeSeconds }}
{{- else }}
{{- add 120 (ceil (divf (float64 (include "moemesh.kvcache.fileBytes" .)) 1e8) | int64) }}
{{- end }}
{{- end }}

{{/* The kvcache's terminationGracePeriodSeconds. After SIGTERM the service lets in-flight calls finish for its
shutdown-grace (10 s, or kvcache.env's MOEMESH_KVCACHE_SHUTDOWN_GRACE), then demotes the whole DRAM tier to the SSD
volume and forces every segment (ServedModels.close), so that every acknowledged put survives: dramBytes written at
100 MB/s (the slowest volume the chart assumes, as for the startup budget), then 30 s for the compaction's stop, the
forced writes, the other beans and the JVM to exit: 83 s with the defaults (4 GiB), 212 s with 16 GiB. A pod killed
before loses the DRAM tier's blocks. kvcache.terminationGracePeriodSeconds 0 renders that; a set value must not be
below it (the chart fails naming both): set one only to give a slower volume more. */}}
{{- define "moemesh.kvcache.terminationGraceSeconds" -}}
{{- $k := .Values.kvcache }}
{{- $grace := include "moemesh.envSeconds" (dict "env" $k.env "name" "MOEMESH_KVCACHE_SHUTDOWN_GRACE" "default" 10 "value" "kvcache.env" "use" "the chart adds it to the kvcache's terminationGracePeriodSeconds") | int64 }}
{{- $needed := add $grace (ceil (divf (float64 $k.dramBytes) 1e8) | int64) 30 }}
{{- if $k.terminationGracePeriodSeconds }}
{{- if lt (int64 $k.terminationGracePeriodSeconds) $needed }}
{{- fail (printf "kvcache.terminationGracePeriodSeconds (%d) is shorter than a kvcache pod's stop: its shutdown-grace (%d s) + kvcache.dramBytes (%d) demoted to the SSD volume at 100 MB/s (%d s) + 30 s to force the segments and exit = %d s; a pod killed before loses the DRAM tier's blocks. Set it to at least %d, or to 0 for exactly that" (int64 $k.terminationGracePeriodSeconds) $grace (int64 $k.dramBytes) (ceil (divf (float64 $k.dramBytes) 1e8) | int64) $needed $needed) }}
{{- end }}
{{- int64 $k.terminationGracePeriodSeconds }}
{{- else }}
{{- $needed }}
{{- end }}
{{- end }}

{{/* The gateway's terminationGracePeriodSeconds: the preStop wait, then what its stop takes after SIGTERM, in
order: shutdown-grace (in-flight requests finish), DrainLifecycle's stop wait (5 s: the requests it stopped end),
the KV write-back drain (moemesh.gateway.kvcache.drain-timeout: 10 s, or what gateway.env sets; counted also without
a kvcache, where it only lengthens a limit the gateway does not reach), then 15 s for the servers, the other beans
and the JVM to exit. The CLI's `down` gives a gateway the same (MeshShutdown.gatewayStopGrace). */}}
{{- define "moemesh.gateway.terminationGraceSeconds" -}}
{{- $g := .Values.gateway }}
{{- $drain := 10 }}
{{- with include "moemesh.envSetting" (dict "env" $g.env "name" "MOEMESH_GATEWAY_KVCACHE_DRAIN_TIMEOUT") }}
{{- $s := include "moemesh.springDurationSeconds" . }}
{{- if not $s }}
{{- fail (printf "gateway.env.MOEMESH_GATEWAY_KVCACHE_DRAIN_TIMEOUT must be a duration of at least 0 such as 10s, 500ms, 2m or PT30S, got %q (the chart adds it to the gateway's terminationGracePeriodSeconds)" .) }}
{{- end }}
{{- $drain = int64 $s }}
{{- end }}
{{- add $g.drain.preStopSeconds $g.drain.shutdownGraceSeconds 5 $drain 15 }}
{{- end }}

{{/* Fails when the kvcache StatefulSet is installed (lookup) with an SSD volume claim template of another size or
storage class than kvcache.persistence asks for. Kubernetes refuses every change of a StatefulSet's
volumeClaimTemplates ("Forbidden: updates to statefulset spec for fields other than ..."), so such an upgrade would
fail half-way, and raising the size is what the chart's own volume check suggests; this says what to do instead
(docs/kubernetes.md, "Changing the kvcache volume"). Checked on upgrades only (a first install creates the
StatefulSet), and only where lookup reaches the cluster (not in helm template, lint or client-side dry runs). */}}
{{- define "moemesh.kvcache.checkLiveVolume" -}}
{{- if .Release.IsUpgrade }}
{{- $k := .Values.kvcache }}
{{- $name := include "moemesh.componentName" (dict "root" . "component" "kvcache") }}
{{- $ns := .Release.Namespace }}
{{- $live := lookup "apps/v1" "StatefulSet" $ns $name | default dict }}
{{- range (dig "spec" "volumeClaimTemplates" (list) $live) }}
{{- if eq (dig "metadata" "name" "" .) "ssd" }}
{{- $liveSize := dig "spec" "resources" "requests" "storage" "" . | toString }}
{{- $liveClass := dig "spec" "storageClassName" "" . | toString }}
{{- $wantClass := $k.persistence.storageClassName | default "" | toString }}
{{- $pvcs := printf "ssd-%s-<ordinal>" $name }}
{{- $again := "then run this upgrade again: it re-creates the StatefulSet with the new claim template, which adopts the running pods" }}
{{- if and $liveSize (ne (float64 (include "moemesh.quantityBytes" $liveSize)) (float64 (include "moemesh.quantityBytes" $k.persistence.size))) }}
{{- $grow := gt (float64 (include "moemesh.quantityBytes" $k.persistence.size)) (float64 (include "moemesh.quantityBytes" $liveSize)) }}
{{- if $grow }}
{{- fail (printf "kvcache.persistence.size (%v) differs from the SSD volume size of the installed StatefulSet %s (%s), and Kubernetes refuses to change a StatefulSet's volumeClaimTemplates (the upgrade would fail with \"Forbidden: updates to statefulset spec\"). To grow the volumes: expand each PVC %s in place (its storage class must allow volume expansion): kubectl -n %s patch pvc ssd-%s-0 -p '{\"spec\":{\"resources\":{\"requests\":{\"storage\":\"%v\"}}}}', and so on for every ordinal; then delete the StatefulSet but not its pods and volumes: kubectl -n %s delete statefulset %s --cascade=orphan; %s. Or keep kvcache.persistence.size at %s. docs/kubernetes.md, \"Changing the kvcache volume\"" $k.persistence.size $name $liveSize $pvcs $ns $name $k.persistence.size $ns $name $again $liveSize) }}
{{- else }}
{{- fail (printf "kvcache.persistence.size (%v) is below the SSD volume size of the installed StatefulSet %s (%s): a volume cannot shrink, and Kubernetes refuses to change a StatefulSet's volumeClaimTemplates (the upgrade would fail with \"Forbidden: updates to statefulset spec\"). Keep kvcache.persistence.size at %s, or replace the volumes (each pod's cache starts empty): kubectl -n %s delete statefulset %s --cascade=orphan; %s; then, one pod at a time, kubectl -n %s delete pvc %s --wait=false and delete its pod, which comes back with a new volume. docs/kubernetes.md, \"Changing the kvcache volume\"" $k.persistence.size $name $liveSize $liveSize $ns $name $again $ns $pvcs) }}
{{- end }}
{{- end }}
{{- if ne $liveClass $wantClass }}
{{- fail (printf "kvcache.persistence.storageClassName (%q) differs from the SSD volumes' storage class of the installed StatefulSet %s (%q), and Kubernetes refuses to change a StatefulSet's volumeClaimTemplates (the upgrade would fail with \"Forbidden: updates to statefulset spec\"). A volume cannot change its class: keep kvcache.persistence.storageClassName at %q, or replace the volumes (each pod's cache starts empty): kubectl -n %s delete statefulset %s --cascade=orphan; %s; then, one pod at a time, kubectl -n %s delete pvc %s --wait=false and delete its pod, which comes back with a volume of the new class. docs/kubernetes.md, \"Changing the kvcache volume\"" $wantClass $name $liveClass $liveClass $ns $name $again $ns $pvcs) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
