package e2e

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// podSpecOf returns the pod template of a workload object.
func podSpecOf(obj any) (*corev1.PodSpec, bool) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template.Spec, true
	case *appsv1.StatefulSet:
		return &o.Spec.Template.Spec, true
	case *appsv1.DaemonSet:
		return &o.Spec.Template.Spec, true
	case *batchv1.Job:
		return &o.Spec.Template.Spec, true
	case *corev1.Pod:
		return &o.Spec, true
	}
	return nil, false
}

// checkRestrictedPod applies the Pod Security Standard "restricted" (which includes
// "baseline") to a pod spec, as the admission controller of a restricted namespace would.
func checkRestrictedPod(s *corev1.PodSpec) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if s.HostNetwork || s.HostPID || s.HostIPC {
		bad("host namespaces (hostNetwork/hostPID/hostIPC) are forbidden")
	}
	allowedVolumes := func(v corev1.Volume) bool {
		vs := v.VolumeSource
		return vs.ConfigMap != nil || vs.CSI != nil || vs.DownwardAPI != nil || vs.EmptyDir != nil ||
			vs.Ephemeral != nil || vs.PersistentVolumeClaim != nil || vs.Projected != nil || vs.Secret != nil
	}
	for _, v := range s.Volumes {
		if !allowedVolumes(v) {
			bad("volume %s: type not allowed (restricted allows configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret)", v.Name)
		}
	}
	psc := s.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		bad("pod runAsUser 0")
	}
	if psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeUnconfined {
		bad("pod seccompProfile Unconfined")
	}
	for _, sc := range psc.Sysctls {
		bad("sysctl %s: set none", sc.Name)
	}
	type ctr struct {
		kind string
		c    corev1.Container
	}
	var all []ctr
	for _, c := range s.InitContainers {
		all = append(all, ctr{"initContainer", c})
	}
	for _, c := range s.Containers {
		all = append(all, ctr{"container", c})
	}
	if len(s.Containers) == 0 {
		bad("no containers")
	}
	for _, x := range all {
		c, name := x.c, x.kind+" "+x.c.Name
		sc := c.SecurityContext
		if sc == nil {
			bad("%s: securityContext is required", name)
			continue
		}
		if sc.Privileged != nil && *sc.Privileged {
			bad("%s: privileged", name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			bad("%s: allowPrivilegeEscalation must be false", name)
		}
		nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
		if !nonRoot {
			bad("%s: runAsNonRoot must be true (pod or container)", name)
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			bad("%s: runAsUser 0", name)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = psc.SeccompProfile
		}
		if seccomp == nil || (seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost) {
			bad("%s: seccompProfile must be RuntimeDefault or Localhost (pod or container)", name)
		}
		dropAll := false
		if sc.Capabilities != nil {
			for _, d := range sc.Capabilities.Drop {
				if d == "ALL" {
					dropAll = true
				}
			}
			for _, a := range sc.Capabilities.Add {
				if a != "NET_BIND_SERVICE" {
					bad("%s: capability %s may not be added", name, a)
				}
			}
		}
		if !dropAll {
			bad("%s: capabilities.drop must include ALL", name)
		}
		if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
			bad("%s: procMount must be Default", name)
		}
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				bad("%s: hostPort %d", name, p.HostPort)
			}
		}
		// Not a PSS rule, but the security guide's deployment context asks for it.
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			bad("%s: readOnlyRootFilesystem must be true (security guide)", name)
		}
	}
	return errors.Join(errs...)
}

// A workload as the security guide's deployment context describes it: the reference the
// checker is tested against (istio/ ships no workload of its own).
const guideDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: stoa-mcp-gateway
  namespace: stoa-system
spec:
  selector:
    matchLabels: {app: stoa-mcp-gateway}
  template:
    metadata:
      labels: {app: stoa-mcp-gateway}
    spec:
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        fsGroup: 1000
        seccompProfile:
          type: RuntimeDefault
      containers:
      - name: gateway
        image: example.invalid/stoa-mcp-gateway@sha256:0000000000000000000000000000000000000000000000000000000000000000
        securityContext:
          runAsUser: 1000
          runAsGroup: 1000
          readOnlyRootFilesystem: true
          allowPrivilegeEscalation: false
          capabilities:
            drop: [ALL]
          seccompProfile:
            type: RuntimeDefault
        volumeMounts:
        - {name: tmp, mountPath: /tmp}
      volumes:
      - name: tmp
        emptyDir: {}
`

func checkWorkloadYAML(b []byte) error {
	d, err := decodeIstioDoc("deployment.yaml", b)
	if err != nil {
		return err
	}
	spec, ok := podSpecOf(d.obj)
	if !ok {
		return errors.New("not a workload")
	}
	return checkRestrictedPod(spec)
}

func TestRestrictedPodChecker(t *testing.T) {
	src := []byte(guideDeployment)
	require.NoError(t, checkWorkloadYAML(src))
	for _, tw := range []twin{
		{name: "privilege escalation", old: "allowPrivilegeEscalation: false", repl: "allowPrivilegeEscalation: true", wantErr: "allowPrivilegeEscalation"},
		{name: "root user", old: "runAsUser: 1000", repl: "runAsUser: 0", wantErr: "runAsUser 0"},
		{name: "may run as root", old: "runAsNonRoot: true", repl: "runAsNonRoot: false", wantErr: "runAsNonRoot"},
		{name: "capabilities kept", old: "drop: [ALL]", repl: "drop: [NET_RAW]", wantErr: "drop must include ALL"},
		{name: "capability added", old: "drop: [ALL]", repl: "drop: [ALL]\n            add: [SYS_ADMIN]", wantErr: "SYS_ADMIN"},
		{name: "no seccomp", old: "          seccompProfile:\n            type: RuntimeDefault\n        volumeMounts", repl: "        volumeMounts", wantErr: ""},
		{name: "unconfined seccomp", old: "type: RuntimeDefault", repl: "type: Unconfined", wantErr: "seccompProfile"},
		{name: "hostPath volume", old: "emptyDir: {}", repl: "hostPath: {path: /}", wantErr: "type not allowed"},
		{name: "writable root", old: "readOnlyRootFilesystem: true", repl: "readOnlyRootFilesystem: false", wantErr: "readOnlyRootFilesystem"},
		{name: "host network", old: "automountServiceAccountToken: false", repl: "automountServiceAccountToken: false\n      hostNetwork: true", wantErr: "host namespaces"},
		{name: "typo'd field (strict decoding)", old: "readOnlyRootFilesystem:", repl: "readOnlyRootFileSystem:", wantErr: "readOnlyRootFileSystem"},
	} {
		t.Run(tw.name, func(t *testing.T) {
			err := checkWorkloadYAML(tw.apply(t, src))
			if tw.name == "no seccomp" {
				// The pod-level profile still covers the container: allowed.
				require.NoError(t, err)
				err = checkWorkloadYAML(mutate(t, tw.apply(t, src), "        seccompProfile:\n          type: RuntimeDefault\n      containers", "      containers", 1))
				tw.wantErr = "seccompProfile must be"
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tw.wantErr)
		})
	}
}
