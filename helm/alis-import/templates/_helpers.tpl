{{/*
Names. The full name is truncated to 63 characters (a DNS label); the CronJob's to 52,
because the CronJob controller appends "-<minutes since epoch>" (up to 11 characters) to
name each Job.
*/}}
{{- define "alis-import.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "alis-import.fullname" -}}
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

{{- define "alis-import.cronJobName" -}}
{{- include "alis-import.fullname" . | trunc 52 | trimSuffix "-" }}
{{- end }}

{{- define "alis-import.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "alis-import.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "alis-import.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Labels (Helm and Kubernetes recommended labels). Selector labels never change between
releases; "component" tells the server pods from the CronJob's.
*/}}
{{- define "alis-import.labels" -}}
helm.sh/chart: {{ include "alis-import.chart" . }}
app.kubernetes.io/name: {{ include "alis-import.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: alis-import
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "alis-import.selectorLabels" -}}
app.kubernetes.io/name: {{ include "alis-import.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "alis-import.serverSelectorLabels" -}}
{{ include "alis-import.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "alis-import.cronJobSelectorLabels" -}}
{{ include "alis-import.selectorLabels" . }}
app.kubernetes.io/component: import-trigger
{{- end }}

{{- define "alis-import.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end }}

{{/*
Security contexts. Fixed, not values: every pod of the chart runs as a non-root user
with a read-only root filesystem, no privilege escalation, no capabilities and the
runtime's default seccomp profile.
*/}}
{{- define "alis-import.podSecurityContext" -}}
{{- if eq (int .Values.securityContext.runAsUser) 0 }}
{{- fail "securityContext.runAsUser must not be 0: the containers never run as root" }}
{{- end -}}
runAsNonRoot: true
runAsUser: {{ int .Values.securityContext.runAsUser }}
runAsGroup: {{ int .Values.securityContext.runAsGroup }}
fsGroup: {{ int .Values.securityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "alis-import.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ int .Values.securityContext.runAsUser }}
runAsGroup: {{ int .Values.securityContext.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Where Secrets and scratch space are mounted in the server container.
*/}}
{{- define "alis-import.authKeyFile" -}}
{{- if eq .Values.auth.keyType "jwks" -}}
/etc/alis-import/auth/jwks.json
{{- else if eq .Values.auth.keyType "publicKey" -}}
/etc/alis-import/auth/public-key.pem
{{- else -}}
{{- fail (printf "auth.keyType must be jwks or publicKey, not %q" .Values.auth.keyType) -}}
{{- end -}}
{{- end }}

{{- define "alis-import.clientCASecret" -}}
{{- .Values.tls.clientCA.existingSecret | default .Values.tls.existingSecret -}}
{{- end }}

{{- define "alis-import.vaultKubernetesAuth" -}}
{{- if and .Values.vault.enabled (eq .Values.vault.auth "kubernetes") -}}
true
{{- end -}}
{{- end }}

{{/*
The address the CronJob's client calls: this release's Service unless overridden.
*/}}
{{- define "alis-import.serverAddress" -}}
{{- if .Values.cronJob.server -}}
{{- .Values.cronJob.server -}}
{{- else -}}
{{- printf "%s://%s.%s.svc:%d" (ternary "https" "http" .Values.tls.enabled) (include "alis-import.fullname" .) .Release.Namespace (int .Values.service.port) -}}
{{- end -}}
{{- end }}

{{/*
One probe of the server container. The kubelet's gRPC probe is plaintext only, so with
TLS the "auto" mode checks that the port accepts connections instead.
Arguments: (dict "root" $ "probe" <probe values>).
*/}}
{{- define "alis-import.probe" -}}
{{- $root := .root -}}
{{- $mode := $root.Values.probes.mode -}}
{{- if eq $mode "auto" -}}
{{- $mode = ternary "tcp" "grpc" $root.Values.tls.enabled -}}
{{- end -}}
{{- if eq $mode "grpc" -}}
{{- if $root.Values.tls.enabled -}}
{{- fail "probes.mode grpc cannot be used with tls.enabled: the kubelet's gRPC probe does not speak TLS (use auto or tcp)" -}}
{{- end -}}
grpc:
  port: {{ int $root.Values.containerPort }}
  service: {{ .probe.grpcService | quote }}
{{- else if eq $mode "tcp" -}}
tcpSocket:
  port: grpc
{{- else }}
{{- fail (printf "probes.mode must be auto, grpc or tcp, not %q" $mode) }}
{{- end }}
periodSeconds: {{ int .probe.periodSeconds }}
timeoutSeconds: {{ int .probe.timeoutSeconds }}
failureThreshold: {{ int .probe.failureThreshold }}
{{- end }}

{{/*
Values that would put a credential into a manifest in clear are refused.
*/}}
{{- define "alis-import.refuseSecretsInValues" -}}
{{- if hasKey .Values.database "url" }}
{{- fail "database.url is not a value: put the URL in a Secret and name it in database.existingSecret" }}
{{- end }}
{{- range $name, $value := .Values.config.extra }}
{{- if regexMatch "^(DATABASE_URL|VAULT_TOKEN|ALIS_TOKEN)$|PASSWORD|SECRET|_TOKEN$" $name }}
{{- fail (printf "config.extra.%s looks like a credential: reference a Secret through extraEnv (valueFrom.secretKeyRef) instead" $name) }}
{{- end }}
{{- end }}
{{- range .Values.extraEnv }}
{{- if and (hasKey . "value") (regexMatch "^(DATABASE_URL|VAULT_TOKEN|ALIS_TOKEN)$|PASSWORD|SECRET|_TOKEN$" .name) }}
{{- fail (printf "extraEnv %s looks like a credential: use valueFrom.secretKeyRef, not value" .name) }}
{{- end }}
{{- end }}
{{- end }}
