{{/*
Names. Every object is named from "kiln.fullname" ("<release>-kiln", or the
release name when it already contains "kiln"). The StatefulSet is
"<fullname>-server"; it is cut to 52 characters because Kubernetes adds an
11-character hash to it in the controller-revision-hash label (63 at most).
*/}}
{{- define "kiln.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kiln.fullname" -}}
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

{{/* The StatefulSet; its pods are "<this>-<ordinal>". */}}
{{- define "kiln.server.name" -}}
{{- printf "%s-server" (include "kiln.fullname" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/* The headless Service that gives each pod a DNS name. */}}
{{- define "kiln.server.headlessName" -}}
{{- printf "%s-headless" (include "kiln.server.name" .) -}}
{{- end -}}

{{- define "kiln.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kiln.server.name" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kiln.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the server's pods; never change them (a StatefulSet's selector is immutable). */}}
{{- define "kiln.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kiln.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "kiln.labels" -}}
helm.sh/chart: {{ include "kiln.chart" . }}
{{ include "kiln.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
A whole number from the values, at least `min`, printed as an integer: values
files give numbers as float64, which `quote` would print as 1e+06. Fails on
anything else, naming the value.
  include "kiln.count" (dict "name" "server.compileJobs" "value" .Values.server.compileJobs "min" 1)
*/}}
{{- define "kiln.count" -}}
{{- $v := .value -}}
{{- $numeric := or (kindIs "float64" $v) (kindIs "int64" $v) (kindIs "int" $v) (and (kindIs "string" $v) (regexMatch "^[0-9]+$" (toString $v))) -}}
{{- if or (not $numeric) (ne (float64 (int64 $v)) (float64 $v)) (lt (int64 $v) (int64 .min)) -}}
{{- fail (printf "kiln: %s must be a whole number of at least %d, not %v" .name (int64 .min) $v) -}}
{{- end -}}
{{- int64 $v -}}
{{- end -}}

{{/*
The number of replicas: parallelCompilation.replicas when parallel compilation
is enabled, else 1 (as in Feldera's chart).
*/}}
{{- define "kiln.server.replicas" -}}
{{- if .Values.parallelCompilation.enabled -}}
{{- include "kiln.count" (dict "name" "parallelCompilation.replicas" "value" .Values.parallelCompilation.replicas "min" 1) -}}
{{- else -}}
1
{{- end -}}
{{- end -}}

{{/* http://<host>:8080 of the pod named by `pod` (a name or a $(VAR) reference). */}}
{{- define "kiln.server.podUrl" -}}
{{- $root := .root -}}
{{- printf "http://%s.%s.%s.svc.%s:8080" .pod (include "kiln.server.headlessName" $root) $root.Release.Namespace $root.Values.clusterDomain -}}
{{- end -}}

{{/*
Checks of values that would otherwise render a StatefulSet that cannot work.
*/}}
{{- define "kiln.validate" -}}
{{- $replicas := include "kiln.server.replicas" . | int -}}
{{- if and (gt $replicas 1) (not .Values.database.existingSecret) -}}
{{- fail (printf "kiln: %d replicas need a shared database, and database.existingSecret is empty. Without it each replica would get its own SQLite file on its own volume, which the others cannot see. Create a Secret whose key %q holds a postgresql:// URL and set database.existingSecret to its name (or run one replica)." $replicas (default "url" .Values.database.secretKey)) -}}
{{- end -}}
{{- if .Values.parallelCompilation.sccache.enabled -}}
{{- $s3 := .Values.parallelCompilation.sccache.s3 -}}
{{- if not $s3.bucket -}}
{{- fail "kiln: parallelCompilation.sccache.enabled needs parallelCompilation.sccache.s3.bucket" -}}
{{- end -}}
{{- if not (has (toString $s3.useSSL) (list "true" "false")) -}}
{{- fail (printf "kiln: parallelCompilation.sccache.s3.useSSL must be true or false, not %v" $s3.useSSL) -}}
{{- end -}}
{{- if not (has (toString (default false $s3.serverSideEncryption)) (list "true" "false" "AES256" "aws:kms")) -}}
{{- fail (printf "kiln: parallelCompilation.sccache.s3.serverSideEncryption must be false, true, AES256 or aws:kms, not %v" $s3.serverSideEncryption) -}}
{{- end -}}
{{- end -}}
{{- end -}}
