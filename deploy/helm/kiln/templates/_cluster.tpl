{{/*
The build cluster (buildCluster.*): names, labels, URLs and the checks of its
values. docs/kubernetes.md, "The build cluster".
*/}}

{{/* The scheduler's Deployment and Service. */}}
{{- define "kiln.scheduler.name" -}}
{{- printf "%s-scheduler" (include "kiln.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The workers' Deployment (and ScaledObject); cut to leave room for the pods' suffixes. */}}
{{- define "kiln.worker.name" -}}
{{- printf "%s-worker" (include "kiln.fullname" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "scheduler"). */}}
{{- define "kiln.cluster.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kiln.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kiln.cluster.labels" -}}
helm.sh/chart: {{ include "kiln.chart" .root }}
{{ include "kiln.cluster.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/* "repository:tag" of a component's image (dict "root" $ "image" .Values.buildCluster.scheduler.image), defaulting to image.*. */}}
{{- define "kiln.cluster.image" -}}
{{- $root := .root -}}
{{- $repository := .image.repository | default $root.Values.image.repository -}}
{{- $tag := .image.tag | default $root.Values.image.tag | default $root.Chart.AppVersion -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}

{{/* http(s)://<scheduler service>.<namespace>.svc.<clusterDomain>:<port>: the in-cluster scheduler. */}}
{{- define "kiln.scheduler.url" -}}
{{- $scheme := ternary "https" "http" (not (empty .Values.buildCluster.scheduler.tls.existingSecret)) -}}
{{- printf "%s://%s.%s.svc.%s:%s" $scheme (include "kiln.scheduler.name" .) .Release.Namespace .Values.clusterDomain (include "kiln.count" (dict "name" "buildCluster.scheduler.service.port" "value" .Values.buildCluster.scheduler.service.port "min" 1)) -}}
{{- end -}}

{{/* Where pods mount the tokens Secret's keys and the scheduler's CA. */}}
{{- define "kiln.cluster.tokensDir" -}}/etc/kiln/dist-tokens{{- end -}}
{{- define "kiln.cluster.caDir" -}}/etc/kiln/scheduler-ca{{- end -}}

{{/* Whether pods that talk to the scheduler get a CA file: TLS on and a caKey. */}}
{{- define "kiln.cluster.hasCa" -}}
{{- if and .Values.buildCluster.scheduler.tls.existingSecret .Values.buildCluster.scheduler.tls.caKey -}}true{{- end -}}
{{- end -}}

{{/* The pod volume of the scheduler's CA (only when kiln.cluster.hasCa); never the key. */}}
{{- define "kiln.cluster.caVolume" -}}
- name: scheduler-ca
  secret:
    secretName: {{ .Values.buildCluster.scheduler.tls.existingSecret | quote }}
    items:
      - key: {{ .Values.buildCluster.scheduler.tls.caKey | quote }}
        path: ca.crt
{{- end -}}

{{/* The pod volume holding some keys of the tokens Secret: (dict "root" $ "keys" (list "client-token")). */}}
{{- define "kiln.cluster.tokenVolume" -}}
- name: dist-tokens
  secret:
    secretName: {{ .root.Values.buildCluster.tokens.existingSecret | quote }}
    items:
      {{- range .keys }}
      - key: {{ . }}
        path: {{ . }}
      {{- end }}
{{- end -}}

{{/* jobs one worker carries, the autoscaler's target: autoscaling.jobsPerWorker, or the worker's slots. */}}
{{- define "kiln.worker.jobsPerWorker" -}}
{{- $w := .Values.buildCluster.worker -}}
{{- $given := include "kiln.count" (dict "name" "buildCluster.worker.autoscaling.jobsPerWorker" "value" $w.autoscaling.jobsPerWorker "min" 0) | int -}}
{{- if gt $given 0 -}}
{{- $given -}}
{{- else -}}
{{- $cores := include "kiln.count" (dict "name" "buildCluster.worker.cores" "value" $w.cores "min" 1) | int -}}
{{- add $cores 1 (div $cores 8) -}}
{{- end -}}
{{- end -}}

{{/* The autoscaler's Prometheus query: autoscaling.prometheus.query, or running + waiting jobs of this scheduler. */}}
{{- define "kiln.worker.autoscalingQuery" -}}
{{- with .Values.buildCluster.worker.autoscaling.prometheus.query -}}
{{- . -}}
{{- else -}}
{{- $selector := printf "namespace=%q,service=%q" .Release.Namespace (include "kiln.scheduler.name" .) -}}
{{- printf "sum(kiln_scheduler_jobs_running{%s}) + sum(kiln_scheduler_jobs_waiting{%s})" $selector $selector -}}
{{- end -}}
{{- end -}}

{{/*
Checks of the cluster's values, when it is enabled: what would otherwise
render pods that cannot work.
*/}}
{{- define "kiln.cluster.validate" -}}
{{- $c := .Values.buildCluster -}}
{{- if not $c.tokens.existingSecret -}}
{{- fail "kiln: buildCluster.enabled needs buildCluster.tokens.existingSecret, the name of a Secret with keys client-token and worker-token (the scheduler refuses to start without both). Create one with: kubectl create secret generic kiln-dist-tokens --from-literal=client-token=$(head -c 24 /dev/urandom | base64) --from-literal=worker-token=$(head -c 24 /dev/urandom | base64)" -}}
{{- end -}}
{{- $drain := include "kiln.count" (dict "name" "buildCluster.worker.drainGraceSeconds" "value" $c.worker.drainGraceSeconds "min" 0) | int -}}
{{- $grace := include "kiln.count" (dict "name" "buildCluster.worker.terminationGracePeriodSeconds" "value" $c.worker.terminationGracePeriodSeconds "min" 0) | int -}}
{{- if le $grace $drain -}}
{{- fail (printf "kiln: buildCluster.worker.terminationGracePeriodSeconds (%d) must be more than buildCluster.worker.drainGraceSeconds (%d): a worker drains for up to drainGraceSeconds after SIGTERM, then deregisters, and Kubernetes kills it at terminationGracePeriodSeconds, with its jobs if it is still draining" $grace $drain) -}}
{{- end -}}
{{- range $name, $level := dict "scheduler" $c.scheduler.logLevel "worker" $c.worker.logLevel -}}
{{- if not (has (toString $level) (list "debug" "info" "warn" "error")) -}}
{{- fail (printf "kiln: buildCluster.%s.logLevel must be debug, info, warn or error, not %v" $name $level) -}}
{{- end -}}
{{- end -}}
{{- if $c.worker.autoscaling.enabled -}}
{{- $min := include "kiln.count" (dict "name" "buildCluster.worker.autoscaling.minReplicas" "value" $c.worker.autoscaling.minReplicas "min" 0) | int -}}
{{- $max := include "kiln.count" (dict "name" "buildCluster.worker.autoscaling.maxReplicas" "value" $c.worker.autoscaling.maxReplicas "min" 1) | int -}}
{{- if lt $max $min -}}
{{- fail (printf "kiln: buildCluster.worker.autoscaling.maxReplicas (%d) is less than minReplicas (%d)" $max $min) -}}
{{- end -}}
{{- if not $c.worker.autoscaling.prometheus.serverAddress -}}
{{- fail "kiln: buildCluster.worker.autoscaling.enabled needs buildCluster.worker.autoscaling.prometheus.serverAddress, the URL of the Prometheus that scrapes the scheduler (e.g. http://prometheus-server.monitoring.svc:80)" -}}
{{- end -}}
{{- end -}}
{{- end -}}
