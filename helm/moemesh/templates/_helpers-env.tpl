{{/* Values as the services read them: Kubernetes quantities, Spring and Go durations, and a component's env
entries under every name Spring binds (ChartEnvironmentTest, ChartStartupAndStopBudgetTest). */}}

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
the map that are one setting to Spring fail too. Values are written as moemesh.envValue prints them. An optional
"from" dict names the chart value behind an entry (MOEMESH_GATEWAY_KV_BLOCK_TOKENS: kvBlockTokens) for the message. */}}
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
{{- with index ($.from | default dict) (index $chartKeys $key) }}
{{- fail (printf "%s.%s is set by the chart itself%s from %s; set %s instead (docs/kubernetes.md, values reference)" $.value $k $as . .) }}
{{- end }}
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
