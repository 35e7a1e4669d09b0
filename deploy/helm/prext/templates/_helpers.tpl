{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "prext.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base name of every object: fullnameOverride, else the release name when it contains
the chart name, else <release>-<name>. It is also the Service name, so the serving
certificate is for <fullname>.<namespace>.svc.
*/}}
{{- define "prext.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "prext.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "prext.labels" -}}
helm.sh/chart: {{ include "prext.chart" . }}
{{ include "prext.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The labels that select the pods. */}}
{{- define "prext.selectorLabels" -}}
app.kubernetes.io/name: {{ include "prext.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "prext.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "prext.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the serving certificate (tls.crt, tls.key, ca.crt). */}}
{{- define "prext.tlsSecretName" -}}
{{- if and (not .Values.tls.certManager.enabled) .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else }}
{{- printf "%s-tls" (include "prext.fullname" .) }}
{{- end }}
{{- end }}

{{/* Whether the chart issues the serving certificate itself (genCA/genSignedCert). */}}
{{- define "prext.generatesTLS" -}}
{{- if and (not .Values.tls.certManager.enabled) (not .Values.tls.existingSecret) }}true{{ end }}
{{- end }}

{{/* The store type, checked. */}}
{{- define "prext.storeType" -}}
{{- if not (has .Values.store.type (list "sqlite" "postgres")) }}
{{- fail "store.type must be sqlite or postgres" }}
{{- end }}
{{- .Values.store.type }}
{{- end }}

{{/* The cert-manager Certificate of the serving certificate. */}}
{{- define "prext.servingCertificateName" -}}
{{- printf "%s-serving" (include "prext.fullname" .) }}
{{- end }}

{{/* The Service's DNS names, for the serving certificate. */}}
{{- define "prext.dnsNames" -}}
{{- $svc := include "prext.fullname" . -}}
- {{ $svc }}
- {{ $svc }}.{{ .Release.Namespace }}
- {{ $svc }}.{{ .Release.Namespace }}.svc
- {{ $svc }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
{{- end }}

{{/* A volumeClaimTemplate: dict with name, persistence (size, storageClassName, accessModes), context. */}}
{{- define "prext.claim" -}}
- metadata:
    name: {{ .name }}
    labels:
      {{- include "prext.selectorLabels" .context | nindent 6 }}
  spec:
    accessModes:
      {{- toYaml .persistence.accessModes | nindent 6 }}
    {{- with .persistence.storageClassName }}
    storageClassName: {{ . | quote }}
    {{- end }}
    resources:
      requests:
        storage: {{ .persistence.size }}
{{- end }}
