{{- define "edgemesh.labels" -}}
k8s-app: kubeedge
kubeedge: edgemesh-agent
app.kubernetes.io/name: edgemesh-agent
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "edgemesh.selector" -}}
k8s-app: kubeedge
kubeedge: edgemesh-agent
{{- end -}}

{{/* The PSK source; fails the install when none is given (upstream shipped a shared default key). */}}
{{- define "edgemesh.pskCheck" -}}
{{- if and (not .Values.agent.psk) (not .Values.agent.existingPskSecret) (not .Values.agent.existingPskConfigMap) -}}
{{- fail "agent.psk is required: generate one with `edgemesh psk generate` or `openssl rand -base64 32` and pass --set agent.psk=<psk> (or set agent.existingPskSecret / agent.existingPskConfigMap)" -}}
{{- end -}}
{{- if .Values.agent.psk -}}
{{- $raw := .Values.agent.psk | toString -}}
{{- if lt (len $raw) 16 -}}
{{- fail "agent.psk is too short: use at least 16 characters (edgemesh psk generate prints 32 random bytes in base64)" -}}
{{- end -}}
{{- if or (regexMatch "^<[^<>]*>$" (trim $raw)) (eq (trim $raw) "JugH9HP1XBouyO5pWGeZa8LtipDURrf17EJvUHcJGuQ=") -}}
{{- fail "agent.psk is a published placeholder or upstream's default PSK, which anyone can read: generate a secret one with `edgemesh psk generate` or `openssl rand -base64 32`" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* edgemesh-agent.yaml: the values' sections, plus relay nodes, mesh CIDRs and the PSK path. */}}
{{- define "edgemesh.agentConfig" -}}
{{- $modules := deepCopy (.Values.agent.modules | default dict) -}}
{{- $tunnel := get $modules "edgeTunnel" | default dict -}}
{{- if .Values.agent.relayNodes -}}
{{- $_ := set $tunnel "relayNodes" .Values.agent.relayNodes -}}
{{- end -}}
{{- $psk := get $tunnel "psk" | default dict -}}
{{- $_ := set $psk "path" "/etc/edgemesh/psk" -}}
{{- $_ := set $tunnel "psk" $psk -}}
{{- $_ := set $modules "edgeTunnel" $tunnel -}}
{{- $cloud := concat (.Values.agent.meshCIDRConfig.cloudCIDR | default list) (.Values.agent.cloudCIDR | default list) -}}
{{- $edge := concat (.Values.agent.meshCIDRConfig.edgeCIDR | default list) (.Values.agent.edgeCIDR | default list) -}}
{{- if or $cloud $edge -}}
{{- $cni := get $modules "edgeCNI" | default dict -}}
{{- $_ := set $cni "meshCIDRConfig" (dict "cloudCIDR" $cloud "edgeCIDR" $edge) -}}
{{- /* The seed installs the edge CNI with the CIDRs alone: they turn it on unless it is set off. */ -}}
{{- if not (hasKey $cni "enable") -}}{{- $_ := set $cni "enable" true -}}{{- end -}}
{{- $_ := set $modules "edgeCNI" $cni -}}
{{- end -}}
{{- $cfg := dict "apiVersion" "agent.edgemesh.config.kubeedge.io/v1alpha1" "kind" "EdgeMeshAgent" "modules" $modules -}}
{{- if .Values.agent.kubeAPIConfig -}}{{- $_ := set $cfg "kubeAPIConfig" .Values.agent.kubeAPIConfig -}}{{- end -}}
{{- if .Values.agent.commonConfig -}}{{- $_ := set $cfg "commonConfig" .Values.agent.commonConfig -}}{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
"true" when agent.image is upstream's Go agent (kubeedge/edgemesh-agent:v1.x, any registry): it takes no
arguments, serves no /healthz or /readyz, and upstream runs it privileged.
*/}}
{{- define "edgemesh.upstreamImage" -}}
{{- if regexMatch "(^|/)kubeedge/edgemesh-agent:v1\\." (.Values.agent.image | toString) -}}true{{- end -}}
{{- end -}}
