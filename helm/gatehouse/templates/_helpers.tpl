{{/* Names and labels. */}}

{{- define "gatehouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gatehouse.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "gatehouse.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatehouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gatehouse.labels" -}}
helm.sh/chart: {{ include "gatehouse.chart" . }}
{{ include "gatehouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "gatehouse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gatehouse.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "gatehouse.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Secrets: where they are mounted and what the Secret holds. */}}

{{- define "gatehouse.secretDir" -}}/run/secrets/gatehouse{{- end -}}

{{- define "gatehouse.secretName" -}}
{{- default (include "gatehouse.fullname" .) .Values.existingSecret.name -}}
{{- end -}}

{{/*
gatehouse.signingKeyNames: the Secret's signing-key entries in order, as a
JSON list. The chart names them signing-key.pem, signing-key-2.pem, ...
*/}}
{{- define "gatehouse.signingKeyNames" -}}
{{- $names := list -}}
{{- if .Values.existingSecret.name -}}
{{- $names = .Values.existingSecret.signingKeys | default list -}}
{{- else -}}
{{- range $i, $_ := .Values.secrets.signingKeys -}}
{{- $names = append $names (ternary "signing-key.pem" (printf "signing-key-%d.pem" (add1 $i)) (eq $i 0)) -}}
{{- end -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/*
gatehouse.cookieSecrets: the cookie-secrets entry, one secret a line, newest
first. Each is trimmed: --set-file keeps the file's final newline.
*/}}
{{- define "gatehouse.cookieSecrets" -}}
{{- range .Values.secrets.cookieSecrets -}}
{{- trim . }}
{{ end -}}
{{- end -}}

{{- define "gatehouse.hasRedisPassword" -}}
{{- if .Values.existingSecret.name -}}
{{- ternary "true" "" (.Values.existingSecret.redisPassword | default false) -}}
{{- else -}}
{{- ternary "true" "" (ne (.Values.secrets.redisPassword | default "") "") -}}
{{- end -}}
{{- end -}}

{{/*
gatehouse.validate fails the render, listing every problem with the value to
fix, when the values cannot work on Kubernetes. Each template that depends on
them includes it, so the message is the same whichever renders first.
*/}}
{{- define "gatehouse.validate" -}}
{{- $p := list -}}
{{- $dir := include "gatehouse.secretDir" . -}}
{{- $user := .Values.config | default dict -}}

{{- /* Secrets belong in the Secret, never in a ConfigMap. */ -}}
{{- $owned := list
      (list "oidc" "client_secret" "secrets.clientSecret")
      (list "oidc" "client_secret_file" "secrets.clientSecret")
      (list "cookie" "secrets" "secrets.cookieSecrets")
      (list "cookie" "secrets_file" "secrets.cookieSecrets")
      (list "redis" "password" "secrets.redisPassword")
      (list "redis" "password_file" "secrets.redisPassword")
      (list "token" "signing_key_files" "secrets.signingKeys") -}}
{{- range $owned -}}
{{- if hasKey (get $user (index . 0) | default dict) (index . 1) -}}
{{- $p = append $p (printf "config.%s.%s: remove it; the chart points Gatehouse at the Secret mounted at %s, so put the value in %s or existingSecret (a ConfigMap is not a Secret)" (index . 0) (index . 1) $dir (index . 2)) -}}
{{- end -}}
{{- end -}}

{{- if not $user.public_url -}}
{{- $p = append $p "config.public_url: required: Gatehouse's external URL, such as https://app.example.com" -}}
{{- end -}}
{{- $oidc := get $user "oidc" | default dict -}}
{{- if not $oidc.issuer -}}
{{- $p = append $p "config.oidc.issuer: required: the identity provider's issuer URL" -}}
{{- end -}}
{{- if not $oidc.client_id -}}
{{- $p = append $p "config.oidc.client_id: required: Gatehouse's client id at the identity provider" -}}
{{- end -}}

{{- if not .Values.existingSecret.name -}}
{{- $s := .Values.secrets -}}
{{- if not $s.clientSecret -}}
{{- $p = append $p "secrets.clientSecret: required: the OIDC client secret (or name a Secret you manage in existingSecret.name)" -}}
{{- end -}}
{{- if not $s.cookieSecrets -}}
{{- $p = append $p "secrets.cookieSecrets: required: at least one secret of 32 bytes or more, such as the output of head -c 48 /dev/urandom | base64 (or name a Secret you manage in existingSecret.name)" -}}
{{- end -}}
{{- range $i, $c := $s.cookieSecrets -}}
{{- $c = trim $c -}}
{{- if contains "\n" $c -}}
{{- $p = append $p (printf "secrets.cookieSecrets[%d]: contains a newline; give one secret per list item" $i) -}}
{{- else if lt (len $c) 32 -}}
{{- $p = append $p (printf "secrets.cookieSecrets[%d]: %d bytes; each cookie secret must be at least 32" $i (len $c)) -}}
{{- end -}}
{{- end -}}
{{- range $i, $k := $s.signingKeys -}}
{{- if not (contains "PRIVATE KEY-----" $k) -}}
{{- $p = append $p (printf "secrets.signingKeys[%d]: not a PEM private key (gatehouse keys generate writes one)" $i) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- /* Several replicas must share sessions and signing keys. Gatehouse
       cannot see its sibling pods at run time (the memory store shares
       nothing with them, and it never calls the Kubernetes API), so the
       chart, which knows the replica count, refuses here. */ -}}
{{- $replicas := int .Values.replicaCount -}}
{{- $what := printf "replicaCount is %d" $replicas -}}
{{- if .Values.autoscaling.enabled -}}
{{- $replicas = int .Values.autoscaling.maxReplicas -}}
{{- $what = printf "autoscaling.enabled is true (maxReplicas %d)" $replicas -}}
{{- end -}}
{{- $store := dig "session" "store" "memory" $user -}}
{{- if and (eq $store "memory") (or (gt $replicas 1) .Values.autoscaling.enabled) -}}
{{- $p = append $p (printf "config.session.store: memory, but %s: each replica would keep its own sessions and users would be signed out whenever a request reached another pod. Set config.session.store: redis with config.redis.addrs (see examples/ha-values.yaml), or run one replica without autoscaling" $what) -}}
{{- end -}}
{{- if and (eq $store "redis") (eq (include "gatehouse.signingKeyNames" .) "[]") -}}
{{- $p = append $p (printf "%s: empty, but config.session.store is redis: every replica must sign with the same key, and Gatehouse refuses to start with an ephemeral one next to a shared store. Add a key from gatehouse keys generate" (ternary "existingSecret.signingKeys" "secrets.signingKeys" (ne .Values.existingSecret.name ""))) -}}
{{- end -}}
{{- if and (eq $store "redis") (not (dig "redis" "addrs" list $user)) -}}
{{- $p = append $p "config.redis.addrs: required when config.session.store is redis: the Redis address, or the Sentinels' with config.redis.master_name" -}}
{{- end -}}

{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) -}}
{{- $p = append $p "ingress.hosts: required with ingress.enabled: the hosts whose /oauth2 paths Gatehouse serves" -}}
{{- end -}}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) -}}
{{- $p = append $p "httpRoute.parentRefs: required with httpRoute.enabled: the Gateway (and listener) that serves your application's hosts" -}}
{{- end -}}

{{- /* SIGTERM comes after the preStop pause; the kubelet kills the pod at
       the end of the grace period, draining or not. */ -}}
{{- $shutdown := include "gatehouse.durationSeconds" (dig "server" "shutdown_timeout" "25s" $user) | int -}}
{{- $pause := dig "preStop" "sleep" "seconds" 0 (.Values.lifecycle | default dict) | int -}}
{{- if lt (int .Values.terminationGracePeriodSeconds) (add $shutdown $pause) -}}
{{- $p = append $p (printf "terminationGracePeriodSeconds: %d, but the preStop pause (lifecycle.preStop.sleep.seconds: %d) plus config.server.shutdown_timeout (%ds) is %d: the kubelet would kill pods still draining requests. Raise it to at least %d" (int .Values.terminationGracePeriodSeconds) $pause $shutdown (add $shutdown $pause) (add $shutdown $pause 5)) -}}
{{- end -}}

{{- if $p -}}
{{- fail (printf "\ngatehouse: these values cannot work:\n  %s" (join "\n  " $p)) -}}
{{- end -}}
{{- end -}}

{{/*
gatehouse.config: the config.yaml Gatehouse receives, as YAML: .Values.config
merged over the chart's defaults, with the *_file keys pointing at the
mounted Secret.
*/}}
{{- define "gatehouse.config" -}}
{{- include "gatehouse.validate" . -}}
{{- $dir := include "gatehouse.secretDir" . -}}
{{- $keyFiles := list -}}
{{- range (include "gatehouse.signingKeyNames" . | fromJsonArray) -}}
{{- $keyFiles = append $keyFiles (printf "%s/%s" $dir .) -}}
{{- end -}}
{{- $managed := dict
      "oidc" (dict "client_secret_file" (printf "%s/client-secret" $dir))
      "cookie" (dict "secrets_file" (printf "%s/cookie-secrets" $dir)) -}}
{{- if $keyFiles -}}
{{- $_ := set $managed "token" (dict "signing_key_files" $keyFiles) -}}
{{- end -}}
{{- if include "gatehouse.hasRedisPassword" . -}}
{{- $_ := set $managed "redis" (dict "password_file" (printf "%s/redis-password" $dir)) -}}
{{- end -}}
{{- $defaults := dict "listen" "0.0.0.0:4180" "metrics_listen" "0.0.0.0:9180" -}}
{{- toYaml (mustMergeOverwrite $defaults (deepCopy (.Values.config | default dict)) $managed) -}}
{{- end -}}

{{/*
gatehouse.browserPaths: the endpoints a browser (or the provider) must reach
on the application's hosts, as a JSON list; the Ingress and the HTTPRoute
route exactly these. Never /oauth2/auth: it answers the ingress's
subrequests, and its 202 carries a minted token that page scripts must not be
able to fetch. Gatehouse serves them under the fixed prefix /oauth2.
*/}}
{{- define "gatehouse.browserPaths" -}}
{{- $out := list -}}
{{- range list "start" "callback" "sign_out" "userinfo" "jwks.json" "backchannel_logout" -}}
{{- $out = append $out (printf "/oauth2/%s" .) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
gatehouse.durationSeconds: a Go duration ("25s", "1m30s") as whole seconds,
rounded up. values.schema.json has already checked its form.
*/}}
{{- define "gatehouse.durationSeconds" -}}
{{- $units := dict "h" 3600.0 "m" 60.0 "s" 1.0 "ms" 0.001 "us" 0.000001 "µs" 0.000001 "ns" 0.000000001 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9.]+[a-zµ]+" (toString .) -1 -}}
{{- $unit := regexFind "[a-zµ]+$" . -}}
{{- $total = addf $total (mulf (float64 (trimSuffix $unit .)) (get $units $unit | default 0.0)) -}}
{{- end -}}
{{- ceil $total | int -}}
{{- end -}}

{{/* gatehouse.port: the port of a host:port listen address. */}}
{{- define "gatehouse.port" -}}
{{- $port := regexFind "[0-9]+$" . -}}
{{- if not $port -}}
{{- fail (printf "gatehouse: listen address %q has no port" .) -}}
{{- end -}}
{{- $port -}}
{{- end -}}
