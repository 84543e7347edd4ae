{{/*
Checks that need more than one value or a non-empty string (values.schema.json checks types, enums and ranges
first). Each failure names the value, so `helm install` says what to fix. Included by every workload template.
*/}}
{{- define "moemesh.validate" -}}
{{- $v := .Values }}
{{- if not (has $v.model.source (list "pvc" "initContainer")) }}
{{- fail (printf "model.source must be pvc or initContainer, got %q" (toString $v.model.source)) }}
{{- end }}
{{- if not (trim (toString $v.model.path)) }}
{{- fail "model.path must name the model directory inside the model volume (e.g. mixtral-8x7b)" }}
{{- end }}
{{- if not (hasPrefix "/" (toString $v.model.mountPath)) }}
{{- fail (printf "model.mountPath must be an absolute path, got %q" (toString $v.model.mountPath)) }}
{{- end }}
{{- if and (eq $v.model.source "pvc") (not (trim (toString $v.model.pvc.claimName))) }}
{{- fail "model.pvc.claimName must name the PersistentVolumeClaim holding the model when model.source is pvc" }}
{{- end }}
{{- if eq $v.model.source "initContainer" }}
{{- if not (trim (toString $v.model.initContainer.image)) }}
{{- fail "model.initContainer.image must be set when model.source is initContainer" }}
{{- end }}
{{- if not $v.model.initContainer.command }}
{{- fail "model.initContainer.command must be set when model.source is initContainer" }}
{{- end }}
{{- end }}
{{- range $c := list "gateway" "router" "expertService" "kvcache" }}
{{- if not (trim (toString (index $v $c "image" "repository"))) }}
{{- fail (printf "%s.image.repository must not be empty" $c) }}
{{- end }}
{{- end }}
{{- if and (eq $v.expertService.device "gpu") (lt (int $v.expertService.gpus) 1) }}
{{- fail (printf "expertService.gpus must be at least 1 when expertService.device is gpu, got %v (use expertService.device=cpu for pods without a GPU)" $v.expertService.gpus) }}
{{- end }}
{{- if and (eq $v.expertService.device "gpu") (not (trim (toString $v.expertService.gpuResource))) }}
{{- fail "expertService.gpuResource must name the GPU resource (e.g. nvidia.com/gpu) when expertService.device is gpu" }}
{{- end }}
{{- range $c := list "gateway" "expertService" }}
{{- $a := index $v $c "autoscaling" }}
{{- if and $a.enabled (gt (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- fail (printf "%s.autoscaling.minReplicas (%v) must not exceed %s.autoscaling.maxReplicas (%v)" $c $a.minReplicas $c $a.maxReplicas) }}
{{- end }}
{{- if and $a.enabled $a.servingMetric.enabled (not (trim (toString $a.servingMetric.name))) }}
{{- fail (printf "%s.autoscaling.servingMetric.name must name a Pods metric of the custom metrics API when %s.autoscaling.servingMetric.enabled" $c $c) }}
{{- end }}
{{- end }}
{{- $experts := ternary $v.expertService.autoscaling.minReplicas $v.expertService.replicas $v.expertService.autoscaling.enabled }}
{{- if gt (int $v.router.expertReplicas) (int $experts) }}
{{- fail (printf "router.expertReplicas (%v) must not exceed the expert-service pods (%v: %s)" $v.router.expertReplicas $experts (ternary "expertService.autoscaling.minReplicas" "expertService.replicas" $v.expertService.autoscaling.enabled)) }}
{{- end }}
{{- if and $v.expertService.pdb.enabled (gt (int $v.router.expertReplicas) 1) (ge (int $v.expertService.pdb.maxUnavailable) (int $v.router.expertReplicas)) }}
{{- fail (printf "expertService.pdb.maxUnavailable (%v) must be below router.expertReplicas (%v): a node drain must never take every replica of an expert at once" $v.expertService.pdb.maxUnavailable $v.router.expertReplicas) }}
{{- end }}
{{- if and (eq $v.tlsMode "mtls") $v.tls.certManager.enabled (not (trim (toString $v.tls.certManager.issuerRef.name))) }}
{{- fail "tls.certManager.issuerRef.name must name the Issuer of the mesh CA when tls.certManager.enabled" }}
{{- end }}
{{- /* Every certificate the mesh CA signs is a member of the mesh and may claim any identity (router: LoadAssignment
on every expert; gateway or kvcache: the KV cache's blocks). A ClusterIssuer signs for every namespace, so its CA
must be this release's alone: the chart cannot check that, the installer says so. */}}
{{- if and (eq $v.tlsMode "mtls") $v.tls.certManager.enabled (eq (toString $v.tls.certManager.issuerRef.kind) "ClusterIssuer") (not $v.tls.certManager.dedicatedCa) }}
{{- fail "tls.certManager.issuerRef.kind ClusterIssuer: every certificate its CA signs joins this mesh and may claim any identity (router, gateway), so the CA must sign for this release only; set tls.certManager.dedicatedCa=true to confirm it does, or use a namespaced Issuer of a CA of this release's own (docs/kubernetes.md, \"Certificates\")" }}
{{- end }}
{{- /* cert-manager refuses a Certificate shorter than 1h, one renewed less than 5m before expiry, and one whose
renewBefore is not below its duration (it would be renewed at once, forever): the install would succeed and no
certificate would ever be issued. values.schema.json has checked both are Go durations (cert-manager's form). */}}
{{- if and (eq $v.tlsMode "mtls") $v.tls.certManager.enabled }}
{{- $cm := $v.tls.certManager }}
{{- $duration := float64 (include "moemesh.goDurationSeconds" ($cm.duration | default "2160h")) }}
{{- if and $cm.duration (lt $duration 3600.0) }}
{{- fail (printf "tls.certManager.duration must be at least 1h (cert-manager's minimum), got %s" $cm.duration) }}
{{- end }}
{{- if $cm.renewBefore }}
{{- $renew := float64 (include "moemesh.goDurationSeconds" $cm.renewBefore) }}
{{- if lt $renew 300.0 }}
{{- fail (printf "tls.certManager.renewBefore must be at least 5m (cert-manager's minimum), got %s" $cm.renewBefore) }}
{{- end }}
{{- if ge $renew $duration }}
{{- fail (printf "tls.certManager.renewBefore (%s) must be shorter than tls.certManager.duration (%s): cert-manager renews that long before expiry" $cm.renewBefore ($cm.duration | default "2160h, cert-manager's default")) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* The placer certificate is issued by cert-manager and is only of use to an operator identity. */}}
{{- if $v.router.placerCertificate.enabled }}
{{- if not (and (eq $v.tlsMode "mtls") $v.tls.certManager.enabled) }}
{{- fail "router.placerCertificate.enabled needs tlsMode mtls and tls.certManager.enabled (cert-manager issues it); without cert-manager, issue a certificate with the URI SAN spiffe://moemesh/placer from the mesh CA yourself (docs/kubernetes.md, \"Re-planning\")" }}
{{- end }}
{{- if not (has "placer" $v.router.operatorIdentities) }}
{{- fail (printf "router.placerCertificate.enabled issues a certificate for the identity placer, which router.operatorIdentities (%s) does not let call Replan: add placer to it, or turn router.placerCertificate.enabled off" (toJson $v.router.operatorIdentities)) }}
{{- end }}
{{- end }}
{{- if and $v.kvcache.enabled (not (trim (toString $v.kvcache.persistence.size))) }}
{{- fail "kvcache.persistence.size must be set (the SSD volume of each kvcache pod) when kvcache.enabled" }}
{{- end }}
{{- if and $v.kvcache.enabled (not (hasPrefix "/" (toString $v.kvcache.persistence.mountPath))) }}
{{- fail (printf "kvcache.persistence.mountPath must be an absolute path, got %q" (toString $v.kvcache.persistence.mountPath)) }}
{{- end }}
{{- /* The DRAM tier lives on the kvcache JVM's heap, beside the rest of the service, which refuses at startup (so
the pod crash-loops) a tier above the larger of 3/4 of its max heap and the heap less 256 MiB
(KvCacheProperties.checkDramFitsHeap); the heap is what the JVM makes of the container's memory limit and its options
(moemesh.kvcache.maxHeap). The memory a fitting tier needs is the smaller of dramBytes + 256 MiB and dramBytes ÷ 3/4,
divided by the heap's percentage. */}}
{{- if $v.kvcache.enabled }}
{{- $heap := include "moemesh.kvcache.maxHeap" . | fromJson }}
{{- $bytes := float64 $heap.bytes }}
{{- $allowed := maxf (mulf $bytes 0.75) (subf $bytes 268435456.0) | floor }}
{{- $dram := float64 $v.kvcache.dramBytes }}
{{- if gt $dram $allowed }}
{{- $neededHeap := minf (addf $dram 268435456.0) (ceil (divf $dram 0.75)) }}
{{- $raise := printf "raise the heap (-Xmx) to at least %dMi" (int64 (ceil (divf $neededHeap 1048576.0))) }}
{{- if hasKey $heap "percent" }}
{{- $raise = printf "raise kvcache.resources.limits.memory to at least %dMi (or the -XX:MaxRAMPercentage of kvcache.javaOptions)" (int64 (ceil (divf $neededHeap (mulf (divf (float64 $heap.percent) 100.0) 1048576.0)))) }}
{{- end }}
{{- fail (printf "kvcache.dramBytes (%d) does not fit the kvcache JVM's heap of %d bytes (%s): the DRAM tier lives on the heap beside the rest of the service, which refuses at startup (the pod would crash-loop) a tier above the larger of 3/4 of the heap and the heap less 256 MiB, %d bytes. Lower kvcache.dramBytes to at most %d, or %s" (int64 $dram) (int64 $bytes) $heap.from (int64 $allowed) (int64 $allowed) $raise) }}
{{- end }}
{{- end }}
{{- /* The SSD tier's segment files hold more than ssdBytes of live blocks: compaction
rewrites a sealed segment only once less than the live fraction of it is live, so the sealed segments may hold
ssdBytes ÷ that fraction; a stop demotes the whole DRAM tier on top (dramBytes, with no compaction in between), and
the segment being written comes on top of that. A volume below the sum fills up in a steady state the service can
reach (puts then fail, and a stop loses the DRAM blocks it cannot write), so ssdBytes may be at most (size − dramBytes
− one segment) × the fraction. The fraction is the service's default unless kvcache.env sets it (under any name
Spring reads); compaction off (fraction 0, or MOEMESH_KVCACHE_COMPACTION_PERIOD 0) reclaims nothing, which no volume
size can make up for, so there is nothing to check then. */}}
{{- if $v.kvcache.enabled }}
{{- $fraction := float64 (include "moemesh.kvcache.liveFraction" .) }}
{{- $segment := float64 (include "moemesh.kvcache.segmentBytes" .) }}
{{- $size := float64 (include "moemesh.quantityBytes" $v.kvcache.persistence.size) }}
{{- $limit := mulf (subf $size (float64 $v.kvcache.dramBytes) $segment) $fraction }}
{{- if and (gt $fraction 0.0) (gt (float64 $v.kvcache.ssdBytes) $limit) }}
{{- fail (printf "kvcache.ssdBytes (%d) must not exceed (kvcache.persistence.size (%v) − kvcache.dramBytes (%d) − one segment (%d)) × the SSD tier's compaction live fraction (%v) = %d bytes: compaction keeps a sealed segment until less than that fraction of it is live, so the segment files may hold ssdBytes ÷ %v, and a stop writes the whole DRAM tier on top; lower kvcache.ssdBytes or kvcache.dramBytes, or raise kvcache.persistence.size (on an installed release a new size also needs its volumes expanded: docs/kubernetes.md, \"Changing the kvcache volume\"), and leave headroom for what is written between compactions" (int64 $v.kvcache.ssdBytes) $v.kvcache.persistence.size (int64 $v.kvcache.dramBytes) (int64 $segment) $fraction (int64 $limit) $fraction) }}
{{- end }}
{{- end }}
{{- if and $v.router.persistence.enabled (not (trim (toString $v.router.persistence.size))) }}
{{- fail "router.persistence.size must be set when router.persistence.enabled" }}
{{- end }}
{{- end }}
