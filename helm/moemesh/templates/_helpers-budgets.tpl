{{/* Time and space budgets derived from the values: the kvcache-service's startup probe, termination grace, SSD
volume and heap, the gateway's and the router's termination grace (ChartStartupAndStopBudgetTest,
ChartKvCacheVolumeTest). */}}

{{/* The kvcache SSD tier's compaction live fraction as it works, a float64, printed: kvcache.env's
MOEMESH_KVCACHE_COMPACTION_LIVE_FRACTION under any name Spring reads it from, else the service's default 0.5; and 0
when compaction never runs, either because that fraction is 0 or because MOEMESH_KVCACHE_COMPACTION_PERIOD is 0
(KvCacheBackground schedules no compaction then): dead space is never reclaimed, whatever the fraction says. */}}
{{- define "moemesh.kvcache.liveFraction" -}}
{{- $period := include "moemesh.envSeconds" (dict "env" .Values.kvcache.env "name" "MOEMESH_KVCACHE_COMPACTION_PERIOD" "default" 60 "value" "kvcache.env" "use" "0 turns compaction off, which the chart's SSD volume check accounts for") | int64 }}
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

{{/* Seconds the kvcache's startup probe allows: kvcache.startupProbeSeconds, or else derived from the SSD volume.
Before its actuator answers, the service rebuilds its index by reading and CRC-checking every record of the segment
files (SsdTier.open), and only then evicts down to its ssdBytes. So the scan reads what the volume holds, which the
current ssdBytes, dramBytes and compaction do not bound: the files were written under the values of the release
before (the volume outlives upgrades, and a reinstall's StatefulSet adopts the claims the last one left), and from
the defaults an upgrade to ssdBytes 1e10 would allow 366 s for a 94.6 GB scan, the pod killed mid-scan and every
restart scanning from zero again: a crash loop. The budget reads the whole volume, kvcache.persistence.size, which
is fixed once installed (an upgrade or a reinstall with another size fails, moemesh.kvcache.checkLiveVolume), at
100 MB/s, the slowest volume assumed (network block storage; a local NVMe reads GB/s), plus 120 s for the JVM, Spring
and the model's config: 1194 s with the defaults (100Gi). */}}
{{- define "moemesh.kvcache.startupSeconds" -}}
{{- $k := .Values.kvcache }}
{{- if $k.startupProbeSeconds }}
{{- int64 $k.startupProbeSeconds }}
{{- else }}
{{- add 120 (ceil (divf (float64 (include "moemesh.quantityBytes" $k.persistence.size)) 1e8) | int64) }}
{{- end }}
{{- end }}

{{/* The kvcache's terminationGracePeriodSeconds: what its stop takes after SIGTERM, in order: its shutdown-grace
(in-flight calls finish: 10 s, or kvcache.env's MOEMESH_KVCACHE_SHUTDOWN_GRACE), the servers' forced stop (10 s:
calls still running are cancelled and each of its two gRPC servers waits up to 5 s more, GrpcServerLifecycle.stop),
the wait for a compaction in progress to stop (30 s, KvCacheBackground), the demotion of the whole DRAM tier to the
SSD volume with every segment forced (ServedModels.close: dramBytes at 100 MB/s, the slowest volume the chart
assumes, as for the startup budget), then 15 s for the other beans and the JVM to exit: 108 s with the defaults
(4 GiB), 237 s with 16 GiB. The CLI's `down` gives a kvcache-service the same (MeshShutdown.kvcacheStopGrace). A pod
killed before loses the DRAM tier's blocks. kvcache.terminationGracePeriodSeconds 0 renders that; a set value must
not be below it (the chart fails naming both): set one only to give a slower volume more. */}}
{{- define "moemesh.kvcache.terminationGraceSeconds" -}}
{{- $k := .Values.kvcache }}
{{- $grace := include "moemesh.envSeconds" (dict "env" $k.env "name" "MOEMESH_KVCACHE_SHUTDOWN_GRACE" "default" 10 "value" "kvcache.env" "use" "the chart adds it to the kvcache's terminationGracePeriodSeconds") | int64 }}
{{- $demotion := ceil (divf (float64 $k.dramBytes) 1e8) | int64 }}
{{- $needed := add $grace 10 30 $demotion 15 }}
{{- if $k.terminationGracePeriodSeconds }}
{{- if lt (int64 $k.terminationGracePeriodSeconds) $needed }}
{{- fail (printf "kvcache.terminationGracePeriodSeconds (%d) is shorter than a kvcache pod's stop: its shutdown-grace (%d s) + 10 s for the gRPC servers' forced stop + 30 s for a compaction to stop + kvcache.dramBytes (%d) demoted to the SSD volume at 100 MB/s (%d s) + 15 s to exit = %d s; a pod killed before loses the DRAM tier's blocks. Set it to at least %d, or to 0 for exactly that" (int64 $k.terminationGracePeriodSeconds) $grace (int64 $k.dramBytes) $demotion $needed $needed) }}
{{- end }}
{{- int64 $k.terminationGracePeriodSeconds }}
{{- else }}
{{- $needed }}
{{- end }}
{{- end }}

{{/* The kvcache JVM's max heap as the JVM sizes it from the container's JDK_JAVA_OPTIONS (moemesh.javaOptions:
jvm.extraOptions, then kvcache.javaOptions), as JSON: {"bytes": the heap, "from": what sets it}. The last -Xmx or
-XX:MaxHeapSize sets it; else the last -XX:MaxRAMPercentage (the JVM's default 25) of
kvcache.resources.limits.memory, the container's memory. The JVM rounds that product up to its heap alignment
(2 MiB); the product itself is taken, so a check against it is at most that much stricter than the service's. */}}
{{- define "moemesh.kvcache.maxHeap" -}}
{{- $k := .Values.kvcache }}
{{- $factors := dict "" 1.0 "k" 1024.0 "m" 1048576.0 "g" 1073741824.0 "t" 1099511627776.0 }}
{{- $size := "" }}
{{- $percent := "25" }}
{{- range regexSplit "\\s+" (trim (include "moemesh.javaOptions" (dict "root" . "options" $k.javaOptions))) -1 }}
{{- if regexMatch "^-(Xmx|XX:MaxHeapSize=)[0-9]+[kKmMgGtT]?$" . }}
{{- $size = . }}
{{- else if regexMatch "^-XX:MaxRAMPercentage=[0-9]+(\\.[0-9]+)?$" . }}
{{- $percent = trimPrefix "-XX:MaxRAMPercentage=" . }}
{{- end }}
{{- end }}
{{- if $size }}
{{- $n := regexFind "[0-9]+[kKmMgGtT]?$" $size }}
{{- $digits := regexFind "^[0-9]+" $n }}
{{- dict "bytes" (mulf (float64 $digits) (index $factors (lower (trimPrefix $digits $n)))) "from" (printf "%s in kvcache.javaOptions or jvm.extraOptions" $size) | toJson }}
{{- else }}
{{- $limit := $k.resources.limits.memory }}
{{- dict "bytes" (mulf (float64 (include "moemesh.quantityBytes" $limit)) (divf (float64 $percent) 100.0)) "percent" (float64 $percent) "from" (printf "kvcache.resources.limits.memory (%v) × -XX:MaxRAMPercentage=%s" $limit $percent) | toJson }}
{{- end }}
{{- end }}

{{/* The gateway's terminationGracePeriodSeconds: the preStop wait, then what its stop takes after SIGTERM, in
order: shutdown-grace (in-flight requests finish), DrainLifecycle's stop wait (5 s: the requests it stopped end),
the KV write-back drain (moemesh.gateway.kvcache.drain-timeout: 10 s, or what gateway.env sets; counted also without
a kvcache, where it only lengthens a limit the gateway does not reach), then 25 s for the servers, the other beans
and the JVM to exit: Tomcat's graceful shutdown (up to 5 s, spring.lifecycle.timeout-per-shutdown-phase), the gRPC
server's graceful stop (5 s) and its forced stop (up to 5 s more, GrpcServerLifecycle.stop), then the other beans'
close and the exit. 80 s with the defaults. The CLI's `down` gives a gateway the same, preStop aside
(MeshShutdown.gatewayStopGrace, GATEWAY_EXIT_MARGIN). */}}
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
{{- add $g.drain.preStopSeconds $g.drain.shutdownGraceSeconds 5 $drain 25 }}
{{- end }}

{{/* moemesh.router.shutdown-grace in seconds: router.shutdownGraceSeconds, or 5 (values.yaml's default, and the
router's own) when the key is missing, as in a release upgraded with --reuse-values from a chart before it (Helm then
takes the old chart's values.yaml, without it). 0 is a grace of its own: not replaced. */}}
{{- define "moemesh.router.shutdownGraceSeconds" -}}
{{- if hasKey .Values.router "shutdownGraceSeconds" }}
{{- int64 .Values.router.shutdownGraceSeconds }}
{{- else }}
{{- 5 }}
{{- end }}
{{- end }}

{{/* The router's terminationGracePeriodSeconds: what its stop takes after SIGTERM (no preStop: the gateways follow
its gRPC health, which the stop turns NOT_SERVING first), in order: RouterBackground.stop ends the open
WatchPlacement and ReportRoutes streams and the Replans waiting for watchers, releases the placement lease (up to
10 s: RouterLease.close waits up to 5 s for its renewals to stop, then reads and writes the Lease, each call bounded
by a sixth of the lease's 15 s) and writes the route statistics' snapshot to the state volume (RouteBookSnapshots);
then the gRPC server gives the calls still in flight the shutdown-grace (router.shutdownGraceSeconds, 5 s), cancels
the rest and waits up to 5 s more (GrpcServerLifecycle.stop); then the other beans close and the JVM exits. The
grace + 25 s (10 for the lease, 5 for the forced stop, 10 for the snapshot, the other beans and the exit): 30 s with
the defaults. The shutdown grace is the chart's to set (MOEMESH_ROUTER_SHUTDOWN_GRACE in router.env fails naming
router.shutdownGraceSeconds), so the kubelet never SIGKILLs a router inside a grace it was given. */}}
{{- define "moemesh.router.terminationGraceSeconds" -}}
{{- add (include "moemesh.router.shutdownGraceSeconds" . | int64) 10 5 10 }}
{{- end }}

{{/* Fails when the kvcache StatefulSet is installed (lookup) with an SSD volume claim template of another size or
storage class than kvcache.persistence asks for. Kubernetes refuses every change of a StatefulSet's
volumeClaimTemplates ("Forbidden: updates to statefulset spec for fields other than ..."), so such an upgrade would
fail half-way, and raising the size is what the chart's own volume check suggests; this says what to do instead
(docs/kubernetes.md, "Changing the kvcache volume"). Then, on an install and an upgrade alike, the claims the pods
will run on: moemesh.kvcache.checkClaims. Only where lookup reaches the cluster (not in helm template, lint or
client-side dry runs). */}}
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
{{- include "moemesh.kvcache.checkClaims" . }}
{{- end }}

{{/* Fails when a kvcache pod the release runs would take an existing SSD claim (lookup) of another size than
kvcache.persistence.size (on an upgrade: a smaller one only), or of another storage class than a set
kvcache.persistence.storageClassName. A StatefulSet takes ssd-<name>-<ordinal> by name, whatever its claim template
asks, and keeps the claims of the pods a scale-in removed; helm uninstall keeps them all. So a first install may
find the claims an uninstalled release left, and an upgrade the claim a scale-in left (made before the volumes were
grown: raising kvcache.replicas again would put that ordinal on it) or one an expansion forgot. On a smaller volume
the tier the values size for persistence.size (ssdBytes, the volume check in moemesh.validate) runs out of space. A
larger claim fails a first install: left by another release, it may hold more than the startup budget reads
(moemesh.kvcache.startupSeconds), so the pod would be killed mid-scan, over and over. On an upgrade a larger claim
passes: it is most often one grown in place (kubectl patch, a PVC autoresizer) under the release's own pods, whose
tier the values size for persistence.size, and failing there would stop every upgrade, an image bump included,
until the StatefulSet is re-created (docs/kubernetes.md says when such a claim wants kvcache.startupProbeSeconds).
Checked for the ordinals the release runs (kvcache.replicas). A claim without a storage class set in the values got
the cluster's default class when it was made, which the chart cannot name: its class is compared only when the
values set one. On an upgrade the values' size is the live claim template's (checkLiveVolume), so the way out is
the claim's, not the value's. */}}
{{- define "moemesh.kvcache.checkClaims" -}}
{{- $k := .Values.kvcache }}
{{- $name := include "moemesh.componentName" (dict "root" . "component" "kvcache") }}
{{- $ns := .Release.Namespace }}
{{- $upgrade := .Release.IsUpgrade }}
{{- $want := float64 (include "moemesh.quantityBytes" $k.persistence.size) }}
{{- $wantClass := $k.persistence.storageClassName | default "" | toString }}
{{- range $ordinal := until (int $k.replicas) }}
{{- $pvc := printf "ssd-%s-%d" $name $ordinal }}
{{- $live := lookup "v1" "PersistentVolumeClaim" $ns $pvc | default dict }}
{{- $liveSize := dig "spec" "resources" "requests" "storage" "" $live | toString }}
{{- $liveClass := dig "spec" "storageClassName" "" $live | toString }}
{{- $adopt := printf "the PersistentVolumeClaim %s (%s, storage class %q) in namespace %s, left by an earlier release (helm uninstall keeps a StatefulSet's volume claims), which this install's kvcache StatefulSet would take as it is" $pvc $liveSize $liveClass $ns }}
{{- $fresh := printf "or delete the claim for a new, empty volume (the cache starts empty): kubectl -n %s delete pvc %s. docs/kubernetes.md, \"Changing the kvcache volume\"" $ns $pvc }}
{{- if $upgrade }}
{{- $adopt = printf "the PersistentVolumeClaim %s (%s, storage class %q) in namespace %s, which the kvcache pod %s-%d runs on as it is (a StatefulSet takes an ordinal's claim by name whatever its claim template asks, and keeps the claims of the pods a scale-in removed)" $pvc $liveSize $liveClass $ns $name $ordinal }}
{{- $fresh = printf "or delete the claim for a new, empty volume (that pod's cache starts empty): kubectl -n %s delete pvc %s --wait=false, then kubectl -n %s delete pod %s-%d if it runs. docs/kubernetes.md, \"Changing the kvcache volume\"" $ns $pvc $ns $name $ordinal }}
{{- end }}
{{- $grow := printf "grow the claim first (its storage class must allow volume expansion): kubectl -n %s patch pvc %s -p '{\"spec\":{\"resources\":{\"requests\":{\"storage\":\"%v\"}}}}', %s" $ns $pvc $k.persistence.size $fresh }}
{{- if and $liveSize (lt (float64 (include "moemesh.quantityBytes" $liveSize)) $want) }}
{{- $fix := printf "Set kvcache.persistence.size to %s (and kvcache.ssdBytes to fit it), or %s" $liveSize $grow }}
{{- if $upgrade }}
{{- $fix = printf "Every pod's claim must be at least of kvcache.persistence.size: %s" $grow }}
{{- end }}
{{- fail (printf "kvcache.persistence.size (%v) is larger than %s: the SSD tier sized for kvcache.persistence.size (kvcache.ssdBytes, kvcache.dramBytes) would run out of space on it. %s" $k.persistence.size $adopt $fix) }}
{{- end }}
{{- if and $liveSize (not $upgrade) (gt (float64 (include "moemesh.quantityBytes" $liveSize)) $want) }}
{{- fail (printf "kvcache.persistence.size (%v) is smaller than %s: a starting kvcache pod reads all its volume holds before it answers, which may take longer than the startup budget derived from kvcache.persistence.size, and would then be killed mid-scan, over and over. Set kvcache.persistence.size to %s, %s" $k.persistence.size $adopt $liveSize $fresh) }}
{{- end }}
{{- if and $live $wantClass (ne $liveClass $wantClass) }}
{{- $fix := printf "Set kvcache.persistence.storageClassName to %q, %s" $liveClass $fresh }}
{{- if $upgrade }}
{{- $fix = printf "A claim cannot change its class: %s" (trimPrefix "or " $fresh) }}
{{- end }}
{{- fail (printf "kvcache.persistence.storageClassName (%q) differs from the storage class of %s. %s" $wantClass $adopt $fix) }}
{{- end }}
{{- end }}
{{- end }}
