// Package kubecheck decodes the Kubernetes example strictly against the k8s.io/api types, the
// way the API server's strict field validation does: an unknown or duplicated field, or a
// value of the wrong type, fails. It is a module of its own so that k8s.io/api stays out of
// rotatord's dependencies; `make test` runs it.
package kubecheck

import (
	"bytes"
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

func TestSidecarDecodesStrictly(t *testing.T) {
	body, err := os.ReadFile("../sidecar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

	kinds := map[string]int{}
	var deployment *appsv1.Deployment
	for i, doc := range bytes.Split(body, []byte("\n---\n")) {
		obj, gvk, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("document %d: %v", i+1, err)
		}
		kinds[gvk.Kind]++
		if d, ok := obj.(*appsv1.Deployment); ok {
			deployment = d
		}
	}
	for _, want := range []string{"ConfigMap", "ServiceAccount", "Deployment", "NetworkPolicy"} {
		if kinds[want] != 1 {
			t.Errorf("%d %s documents, want 1", kinds[want], want)
		}
	}
	// Applying the file must not overwrite the Secret the README creates first.
	if kinds["Secret"] != 0 {
		t.Error("the example holds a Secret: applying it would replace the API key created with kubectl")
	}
	if deployment == nil {
		t.Fatal("no Deployment")
	}

	// The same in a second, independent way: the strict decoder also refuses a field the
	// types do not have (so the check above can fail).
	bad := strings.Replace(string(body), "restartPolicy: Always", "restartPolicy: Always\n          restartPolcy: Always", 1)
	failed := false
	for _, doc := range strings.Split(bad, "\n---\n") {
		if _, _, err := decoder.Decode([]byte(doc), nil, nil); err != nil && strings.Contains(err.Error(), "restartPolcy") {
			failed = true
		}
	}
	if !failed {
		t.Error("the strict decoder accepted an unknown field")
	}

	pod := deployment.Spec.Template.Spec
	var sidecar *corev1.Container
	for i := range pod.InitContainers {
		if pod.InitContainers[i].Name == "rotatord" {
			sidecar = &pod.InitContainers[i]
		}
	}
	if sidecar == nil || sidecar.RestartPolicy == nil || *sidecar.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Fatalf("rotatord is not a native sidecar (an init container with restartPolicy Always): %+v", sidecar)
	}
	for name, p := range map[string]*corev1.Probe{"startupProbe": sidecar.StartupProbe, "livenessProbe": sidecar.LivenessProbe, "readinessProbe": sidecar.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.String() != "metrics" {
			t.Errorf("%s = %+v, want an httpGet on the metrics port", name, p)
		}
	}
	if p := sidecar.StartupProbe; p != nil && p.HTTPGet != nil && p.HTTPGet.Path != "/readyz" {
		t.Errorf("startupProbe path %s, want /readyz", p.HTTPGet.Path)
	}
	if sa := pod.ServiceAccountName; sa != "rotatord" {
		t.Errorf("serviceAccountName %q", sa)
	}
}
