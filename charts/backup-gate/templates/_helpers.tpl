{{/*
Object names are fixed, as in manifests/: the gate's Lease is always backup-gate, and its
cluster-scoped objects (ClusterRole, webhook configurations) exist once per cluster, so one
release per cluster.
*/}}
{{- define "backup-gate.name" -}}backup-gate{{- end -}}

{{/* The label manifests/ puts on the pods and on the objects that select or list them. */}}
{{- define "backup-gate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "backup-gate.name" . }}
{{- end -}}

{{/* Labels only Helm adds: the chart unit test ignores exactly these when comparing with manifests/. */}}
{{- define "backup-gate.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "backup-gate.labels" -}}
{{ include "backup-gate.selectorLabels" . }}
{{ include "backup-gate.helmLabels" . }}
{{- end -}}

{{- define "backup-gate.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The ServiceAccount as a RoleBinding subject. */}}
{{- define "backup-gate.subject" -}}
- {kind: ServiceAccount, name: {{ include "backup-gate.name" . }}, namespace: {{ .Release.Namespace | quote }}}
{{- end -}}

{{/* The Secret the pods serve in the modes that mount one. */}}
{{- define "backup-gate.tlsSecret" -}}
{{- .Values.certificates.secretName | default (printf "%s-tls" (include "backup-gate.name" .)) -}}
{{- end -}}

{{/* Whether another operator injects the caBundle (the gate then never writes it). */}}
{{- define "backup-gate.caInjected" -}}
{{- if has .Values.certificates.mode (list "serviceCA" "certManager") }}true{{ end -}}
{{- end -}}

{{/* The injectors' annotations on both webhook configurations; nothing in the other modes. */}}
{{- define "backup-gate.webhookAnnotations" -}}
{{- if eq .Values.certificates.mode "serviceCA" -}}
annotations:
  service.beta.openshift.io/inject-cabundle: "true"
{{- else if eq .Values.certificates.mode "certManager" -}}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "backup-gate.name" .) | quote }}
{{- end -}}
{{- end -}}
