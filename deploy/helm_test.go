package deploy

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/gatehouse/gatehouse/config"
)

const (
	// kubeVersion is the cluster the renders are for: helm built from
	// source assumes Kubernetes 1.20, older than the chart's kubeVersion.
	kubeVersion = "1.32.0"
	release     = "edge"
	namespace   = "auth"
	fullname    = "edge-gatehouse" // release + chart name
	secretDir   = "/run/secrets/gatehouse"
	configDir   = "/etc/gatehouse"
)

func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "helm", "gatehouse") }

// object is one rendered manifest.
type object struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	raw string // the manifest's text, as helm rendered it
}

// rendered is the output of helm template.
type rendered []object

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

func parseManifests(t testing.TB, out string) rendered {
	t.Helper()
	var r rendered
	for _, doc := range docSeparator.Split(out, -1) {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("rendered manifest is not YAML: %v\n%s", err, doc)
		}
		if o.Kind == "" {
			continue // a comment-only document
		}
		o.raw = doc
		r = append(r, o)
	}
	return r
}

// find returns the manifests of kind.
func (r rendered) find(kind string) []object {
	var out []object
	for _, o := range r {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// one decodes the single manifest of kind into v.
func (r rendered) one(t testing.TB, kind string, v any) object {
	t.Helper()
	all := r.find(kind)
	if len(all) != 1 {
		t.Fatalf("got %d %s manifests; want 1", len(all), kind)
	}
	if v != nil {
		if err := yaml.Unmarshal([]byte(all[0].raw), v); err != nil {
			t.Fatalf("decoding the %s: %v", kind, err)
		}
	}
	return all[0]
}

// named decodes the manifest of kind and name into v.
func (r rendered) named(t testing.TB, kind, name string, v any) object {
	t.Helper()
	for _, o := range r.find(kind) {
		if o.Metadata.Name == name {
			if v != nil {
				if err := yaml.Unmarshal([]byte(o.raw), v); err != nil {
					t.Fatalf("decoding the %s %s: %v", kind, name, err)
				}
			}
			return o
		}
	}
	t.Fatalf("no %s named %s rendered", kind, name)
	return object{}
}

// The parts of the Kubernetes objects the tests look at.
type (
	deployment struct {
		Spec struct {
			Replicas *int `yaml:"replicas"`
			Strategy struct {
				Type          string `yaml:"type"`
				RollingUpdate struct {
					MaxUnavailable any `yaml:"maxUnavailable"`
				} `yaml:"rollingUpdate"`
			} `yaml:"strategy"`
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Template struct {
				Metadata struct {
					Annotations map[string]string `yaml:"annotations"`
					Labels      map[string]string `yaml:"labels"`
				} `yaml:"metadata"`
				Spec podSpec `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	podSpec struct {
		AutomountServiceAccountToken  *bool `yaml:"automountServiceAccountToken"`
		TerminationGracePeriodSeconds *int  `yaml:"terminationGracePeriodSeconds"`
		SecurityContext               struct {
			RunAsNonRoot   *bool  `yaml:"runAsNonRoot"`
			RunAsUser      *int64 `yaml:"runAsUser"`
			FSGroup        *int64 `yaml:"fsGroup"`
			SeccompProfile struct {
				Type string `yaml:"type"`
			} `yaml:"seccompProfile"`
		} `yaml:"securityContext"`
		Containers []container `yaml:"containers"`
		Volumes    []struct {
			Name   string `yaml:"name"`
			Secret *struct {
				SecretName  string `yaml:"secretName"`
				DefaultMode *int   `yaml:"defaultMode"`
			} `yaml:"secret"`
			ConfigMap *struct {
				Name string `yaml:"name"`
			} `yaml:"configMap"`
		} `yaml:"volumes"`
		TopologySpreadConstraints []struct {
			TopologyKey   string `yaml:"topologyKey"`
			LabelSelector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"labelSelector"`
		} `yaml:"topologySpreadConstraints"`
	}
	container struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		StartupProbe   *probe `yaml:"startupProbe"`
		Lifecycle      struct {
			PreStop *struct {
				Sleep *struct {
					Seconds int `yaml:"seconds"`
				} `yaml:"sleep"`
			} `yaml:"preStop"`
		} `yaml:"lifecycle"`
		Resources struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext struct {
			RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
			RunAsUser                *int64 `yaml:"runAsUser"`
			ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
			AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	}
	probe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port any    `yaml:"port"`
		} `yaml:"httpGet"`
		FailureThreshold int `yaml:"failureThreshold"`
		// Enabled must never reach Kubernetes: it is the chart's switch.
		Enabled *bool `yaml:"enabled"`
	}
	service struct {
		Spec struct {
			Ports []struct {
				Name       string `yaml:"name"`
				Port       int    `yaml:"port"`
				TargetPort any    `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	configMap struct {
		Data map[string]string `yaml:"data"`
	}
	secret struct {
		Data map[string]string `yaml:"data"`
	}
)

// gatehouseConfig is the config.yaml the chart renders, decoded loosely so
// the test sees exactly the keys the chart wrote.
type gatehouseConfig map[string]any

func (c gatehouseConfig) get(path ...string) any {
	var v any = map[string]any(c)
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func (c gatehouseConfig) str(path ...string) string {
	s, _ := c.get(path...).(string)
	return s
}

func (c gatehouseConfig) strs(path ...string) []string {
	var out []string
	for _, v := range anySlice(c.get(path...)) {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

func anySlice(v any) []any { s, _ := v.([]any); return s }

// testSecrets are freshly generated secrets for a render.
type testSecrets struct {
	ClientSecret  string   `yaml:"clientSecret,omitempty"`
	CookieSecrets []string `yaml:"cookieSecrets,omitempty"`
	SigningKeys   []string `yaml:"signingKeys,omitempty"`
	RedisPassword string   `yaml:"redisPassword,omitempty"`
}

// newSecrets generates a client secret, a 52-byte cookie secret, the given
// number of signing keys (with `gatehouse keys generate`) and, if redis, a
// Redis password.
func newSecrets(t testing.TB, keys int, redis bool) testSecrets {
	t.Helper()
	s := testSecrets{
		ClientSecret:  "client-" + rand.Text(),
		CookieSecrets: []string{rand.Text() + rand.Text()},
	}
	for range keys {
		pem, err := runGatehouse(t, "keys", "generate")
		if err != nil {
			t.Fatalf("gatehouse keys generate: %v\n%s", err, pem)
		}
		s.SigningKeys = append(s.SigningKeys, pem)
	}
	if redis {
		s.RedisPassword = "redis-" + rand.Text()
	}
	return s
}

// valuesFile writes the secrets as a values file for secrets.*.
func (s testSecrets) valuesFile(t testing.TB) string {
	t.Helper()
	out, err := yaml.Marshal(map[string]any{"secrets": s})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "secrets-values.yaml")
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// needles are strings that must appear in no manifest but the Secret: each
// secret, its base64 form, and each line of the PEM keys' bodies.
func (s testSecrets) needles() []string {
	vals := append([]string{s.ClientSecret, s.RedisPassword}, s.CookieSecrets...)
	var out []string
	for _, v := range vals {
		if v != "" {
			out = append(out, v, base64.StdEncoding.EncodeToString([]byte(v)))
		}
	}
	for _, pem := range s.SigningKeys {
		out = append(out, base64.StdEncoding.EncodeToString([]byte(pem)))
		for line := range strings.Lines(pem) {
			if line = strings.TrimSpace(line); !strings.HasPrefix(line, "-----") && len(line) > 16 {
				out = append(out, line)
			}
		}
	}
	return out
}

// valuesArgs returns the -f arguments for the values files.
func valuesArgs(files []string) []string {
	var args []string
	for _, f := range files {
		args = append(args, "-f", f)
	}
	return args
}

// template runs helm template with the values files and extra arguments.
func template(t testing.TB, files []string, extra ...string) (rendered, error) {
	t.Helper()
	args := append([]string{"template", release, chartDir(t), "--namespace", namespace, "--kube-version", kubeVersion}, valuesArgs(files)...)
	out, _, err := runHelm(t, append(args, extra...)...)
	if err != nil {
		return nil, err
	}
	return parseManifests(t, out), nil
}

func mustTemplate(t testing.TB, files []string, extra ...string) rendered {
	t.Helper()
	r, err := template(t, files, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func minimalValues(t testing.TB) string {
	return filepath.Join(repoRoot(t), "deploy", "testdata", "minimal-values.yaml")
}

func haValues(t testing.TB) string {
	return filepath.Join(chartDir(t), "examples", "ha-values.yaml")
}

// TestChartLint runs helm lint --strict on the chart with the minimal and the
// HA values.
func TestChartLint(t *testing.T) {
	secrets := newSecrets(t, 1, false).valuesFile(t)
	for name, files := range map[string][]string{
		"minimal": {minimalValues(t), secrets},
		"ha":      {haValues(t)},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"lint", "--strict", chartDir(t), "--namespace", namespace, "--kube-version", kubeVersion}, valuesArgs(files)...)
			out, stderr, err := runHelm(t, args...)
			switch {
			case err != nil:
				t.Errorf("helm lint failed: %v", err)
			case !strings.Contains(out, "0 chart(s) failed"):
				t.Errorf("helm lint printed:\n%s\nwant 0 chart(s) failed", out)
			case strings.Contains(stderr, "Fail:"):
				// helm lint reports a template's fail as INFO and passes.
				t.Errorf("helm lint hit a template failure:\n%s", stderr)
			}
		})
	}
}

// renderCase is what the chart must get right for any values: the checks
// shared by the minimal and the HA renders.
type renderCase struct {
	r rendered
	// files are the Secret's entries as the pod sees them in secretDir.
	files map[string][]byte
	// needles must not appear outside the Secret.
	needles []string
	// secretName is the Secret the pod mounts.
	secretName string
}

// checkRender asserts what matters on every render and returns the config
// Gatehouse receives.
func checkRender(t *testing.T, c renderCase) gatehouseConfig {
	t.Helper()
	var dep deployment
	c.r.one(t, "Deployment", &dep)
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("got %d containers; want 1", len(pod.Containers))
	}
	ctr := pod.Containers[0]
	for _, o := range c.r {
		if o.Metadata.Namespace != namespace {
			t.Errorf("%s %s in namespace %q; want %q", o.Kind, o.Metadata.Name, o.Metadata.Namespace, namespace)
		}
	}

	t.Run("non-root and read-only", func(t *testing.T) {
		psc, csc := pod.SecurityContext, ctr.SecurityContext
		checks := []struct {
			what string
			ok   bool
		}{
			{"pod runAsNonRoot: true", psc.RunAsNonRoot != nil && *psc.RunAsNonRoot},
			{"pod runAsUser: 65532", psc.RunAsUser != nil && *psc.RunAsUser == 65532},
			{"pod fsGroup: 65532", psc.FSGroup != nil && *psc.FSGroup == 65532},
			{"pod seccompProfile RuntimeDefault", psc.SeccompProfile.Type == "RuntimeDefault"},
			{"container runAsNonRoot: true", csc.RunAsNonRoot != nil && *csc.RunAsNonRoot},
			{"container runAsUser: 65532", csc.RunAsUser != nil && *csc.RunAsUser == 65532},
			{"readOnlyRootFilesystem: true", csc.ReadOnlyRootFilesystem != nil && *csc.ReadOnlyRootFilesystem},
			{"allowPrivilegeEscalation: false", csc.AllowPrivilegeEscalation != nil && !*csc.AllowPrivilegeEscalation},
			{"capabilities drop ALL", slices.Equal(csc.Capabilities.Drop, []string{"ALL"})},
			{"automountServiceAccountToken: false", pod.AutomountServiceAccountToken != nil && !*pod.AutomountServiceAccountToken},
		}
		for _, ch := range checks {
			if !ch.ok {
				t.Errorf("deployment lacks %s", ch.what)
			}
		}
		if sa := c.r.find("ServiceAccount"); len(sa) == 1 && !strings.Contains(sa[0].raw, "automountServiceAccountToken: false") {
			t.Errorf("ServiceAccount mounts its token; want automountServiceAccountToken: false")
		}
	})

	t.Run("rolling update", func(t *testing.T) {
		if got := dep.Spec.Strategy.Type; got != "RollingUpdate" {
			t.Errorf("strategy %q; want RollingUpdate", got)
		}
		if got := dep.Spec.Strategy.RollingUpdate.MaxUnavailable; got != 0 {
			t.Errorf("maxUnavailable %v; want 0", got)
		}
		if len(ctr.Resources.Requests) == 0 || ctr.Resources.Limits["memory"] == "" {
			t.Errorf("resources %+v; want requests and a memory limit", ctr.Resources)
		}
		if !slices.Equal(ctr.Args, imageCmd) {
			t.Errorf("container args %q; want the image's CMD %q", ctr.Args, imageCmd)
		}
	})

	ports := map[string]int{}
	for _, p := range ctr.Ports {
		ports[p.Name] = p.ContainerPort
	}

	t.Run("probes on the metrics listener", func(t *testing.T) {
		for _, p := range []struct {
			name  string
			probe *probe
			path  string
		}{{"liveness", ctr.LivenessProbe, "/healthz"}, {"readiness", ctr.ReadinessProbe, "/readyz"}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s probe: none; want httpGet %s on port metrics", p.name, p.path)
				continue
			}
			if got := p.probe.HTTPGet.Path; got != p.path {
				t.Errorf("%s probe path %q; want %q", p.name, got, p.path)
			}
			if got := p.probe.HTTPGet.Port; got != "metrics" {
				t.Errorf("%s probe port %v; want metrics", p.name, got)
			}
			if p.probe.Enabled != nil {
				t.Errorf("%s probe has the chart's switch 'enabled' in it; Kubernetes rejects unknown fields", p.name)
			}
		}
		var svc service
		c.r.one(t, "Service", &svc)
		targets := map[string]any{}
		for _, p := range svc.Spec.Ports {
			targets[p.Name] = p.TargetPort
		}
		if targets["http"] != "http" || targets["metrics"] != "metrics" {
			t.Errorf("Service target ports %v; want http->http and metrics->metrics", targets)
		}
	})

	var cm configMap
	c.r.named(t, "ConfigMap", fullname, &cm)
	text, ok := cm.Data["config.yaml"]
	if !ok {
		t.Fatalf("ConfigMap keys %v; want config.yaml", slices.Collect(maps.Keys(cm.Data)))
	}
	// Decode into a plain map: yaml.v3 would give nested mappings the
	// named type of the outer one.
	var m map[string]any
	if err := yaml.Unmarshal([]byte(text), &m); err != nil {
		t.Fatalf("config.yaml is not YAML: %v\n%s", err, text)
	}
	cfg := gatehouseConfig(m)

	t.Run("listeners match the container ports", func(t *testing.T) {
		for key, port := range map[string]string{"listen": "http", "metrics_listen": "metrics"} {
			addr := cfg.str(key)
			if want := "0.0.0.0:" + strconv.Itoa(ports[port]); addr != want {
				t.Errorf("config %s %q; want %q (container port %s)", key, addr, want, port)
			}
		}
		if ports["http"] != 4180 || ports["metrics"] != 9180 {
			t.Errorf("container ports %v; want http 4180, metrics 9180", ports)
		}
	})

	t.Run("secrets mounted read-only", func(t *testing.T) {
		mounts := map[string]string{} // volume -> path
		for _, m := range ctr.VolumeMounts {
			if !m.ReadOnly {
				t.Errorf("volume %s mounted at %s read-write; want readOnly", m.Name, m.MountPath)
			}
			mounts[m.Name] = m.MountPath
		}
		var secretVol, configVol string
		for _, v := range pod.Volumes {
			switch {
			case v.Secret != nil && v.Secret.SecretName == c.secretName:
				secretVol = v.Name
				if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0 {
					t.Errorf("secret volume mode %v; want no access for others (0440)", v.Secret.DefaultMode)
				}
			case v.ConfigMap != nil && v.ConfigMap.Name == fullname:
				configVol = v.Name
			}
		}
		if got := mounts[secretVol]; secretVol == "" || got != secretDir {
			t.Errorf("Secret %s mounted at %q; want %s", c.secretName, got, secretDir)
		}
		if got := mounts[configVol]; configVol == "" || got != configDir {
			t.Errorf("ConfigMap mounted at %q; want %s", got, configDir)
		}
	})

	t.Run("config references the secrets by file", func(t *testing.T) {
		for _, key := range [][]string{{"oidc", "client_secret"}, {"cookie", "secrets"}, {"redis", "password"}} {
			if v := cfg.get(key...); v != nil {
				t.Errorf("config.yaml sets %s; want secrets only in files", strings.Join(key, "."))
			}
		}
		files := []string{cfg.str("oidc", "client_secret_file"), cfg.str("cookie", "secrets_file")}
		files = append(files, cfg.strs("token", "signing_key_files")...)
		if p := cfg.str("redis", "password_file"); p != "" {
			files = append(files, p)
		}
		for _, p := range files {
			name, ok := strings.CutPrefix(p, secretDir+"/")
			if !ok {
				t.Errorf("config names secret file %q; want one in %s", p, secretDir)
				continue
			}
			if _, ok := c.files[name]; !ok {
				t.Errorf("config names %s, but the Secret has no entry %q (entries: %v)", p, name, slices.Sorted(maps.Keys(c.files)))
			}
		}
	})

	t.Run("no secret outside the Secret", func(t *testing.T) {
		for _, o := range c.r {
			if o.Kind == "Secret" {
				continue
			}
			for _, n := range c.needles {
				if strings.Contains(o.raw, n) {
					t.Errorf("%s %s contains a secret value (%.8s...)", o.Kind, o.Metadata.Name, n)
				}
			}
		}
	})

	t.Run("checksum annotations", func(t *testing.T) {
		for _, k := range []string{"checksum/config", "checksum/secret"} {
			if v := dep.Spec.Template.Metadata.Annotations[k]; !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(v) {
				t.Errorf("pod annotation %s = %q; want a sha256", k, v)
			}
		}
	})

	t.Run("gatehouse config check", func(t *testing.T) {
		configCheck(t, text, c.files)
	})
	return cfg
}

// configCheck runs `gatehouse config check` on the rendered config.yaml with
// the secret directory replaced by a temporary one holding files.
func configCheck(t *testing.T, configYAML string, files map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	local := strings.ReplaceAll(configYAML, secretDir+"/", dir+"/")
	if local == configYAML {
		t.Fatalf("config.yaml references nothing in %s:\n%s", secretDir, configYAML)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(local), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runGatehouse(t, "config", "check", "--config", path)
	if err != nil || !strings.Contains(out, "configuration OK") {
		t.Errorf("gatehouse config check on the rendered config: %v\n%s\nconfig.yaml:\n%s", err, out, configYAML)
	}
}

// secretFiles decodes a rendered Secret's entries.
func secretFiles(t testing.TB, r rendered) (map[string][]byte, object) {
	t.Helper()
	var s secret
	obj := r.one(t, "Secret", &s)
	files := map[string][]byte{}
	for k, v := range s.Data {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			t.Fatalf("Secret entry %s: %v", k, err)
		}
		files[k] = b
	}
	return files, obj
}

func TestChartMinimal(t *testing.T) {
	s := newSecrets(t, 1, false)
	r := mustTemplate(t, []string{minimalValues(t), s.valuesFile(t)})
	files, obj := secretFiles(t, r)
	if obj.Metadata.Name != fullname {
		t.Errorf("Secret %q; want %q", obj.Metadata.Name, fullname)
	}
	for name, want := range map[string]string{
		"client-secret":   s.ClientSecret,
		"cookie-secrets":  s.CookieSecrets[0] + "\n",
		"signing-key.pem": s.SigningKeys[0],
	} {
		if got := string(files[name]); got != want {
			t.Errorf("Secret entry %s = %q; want %q", name, got, want)
		}
	}
	if _, ok := files["redis-password"]; ok {
		t.Errorf("Secret has redis-password; want none when secrets.redisPassword is empty")
	}
	cfg := checkRender(t, renderCase{r: r, files: files, needles: s.needles(), secretName: fullname})

	var dep deployment
	r.one(t, "Deployment", &dep)
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 {
		t.Errorf("replicas %v; want 1", dep.Spec.Replicas)
	}
	if got := cfg.str("session", "store"); got != "memory" {
		t.Errorf("session.store %q; want memory", got)
	}
	if got := cfg.get("redis", "password_file"); got != nil {
		t.Errorf("redis.password_file %v; want unset without a Redis password", got)
	}
	for _, kind := range []string{"HorizontalPodAutoscaler", "Ingress", "ServiceMonitor", "NetworkPolicy"} {
		if n := len(r.find(kind)); n != 0 {
			t.Errorf("%d %s rendered; want none by default", n, kind)
		}
	}
	if n := len(r.find("PodDisruptionBudget")); n != 1 {
		t.Errorf("%d PodDisruptionBudget rendered; want 1", n)
	}
}

func TestChartHA(t *testing.T) {
	r := mustTemplate(t, []string{haValues(t)})
	if n := len(r.find("Secret")); n != 0 {
		t.Fatalf("%d Secret rendered with existingSecret; want none", n)
	}
	var values struct {
		ExistingSecret struct {
			Name        string   `yaml:"name"`
			SigningKeys []string `yaml:"signingKeys"`
		} `yaml:"existingSecret"`
		Autoscaling struct {
			MinReplicas int `yaml:"minReplicas"`
		} `yaml:"autoscaling"`
	}
	raw, err := os.ReadFile(haValues(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	// The entries ha-values.yaml's comment tells the operator to create.
	s := newSecrets(t, 1, true)
	files := map[string][]byte{
		"client-secret":   []byte(s.ClientSecret + "\n"),
		"cookie-secrets":  []byte(strings.Join(s.CookieSecrets, "\n") + "\n"),
		"signing-key.pem": []byte(s.SigningKeys[0]),
		"redis-password":  []byte(s.RedisPassword + "\n"),
	}
	cfg := checkRender(t, renderCase{r: r, files: files, secretName: values.ExistingSecret.Name})

	var dep deployment
	r.one(t, "Deployment", &dep)
	if dep.Spec.Replicas != nil {
		t.Errorf("replicas %d; want none: the HPA owns the replica count", *dep.Spec.Replicas)
	}
	var hpa struct {
		APIVersion string `yaml:"apiVersion"`
		Spec       struct {
			MinReplicas    int `yaml:"minReplicas"`
			ScaleTargetRef struct {
				Kind string `yaml:"kind"`
				Name string `yaml:"name"`
			} `yaml:"scaleTargetRef"`
		} `yaml:"spec"`
	}
	r.one(t, "HorizontalPodAutoscaler", &hpa)
	if hpa.APIVersion != "autoscaling/v2" || hpa.Spec.MinReplicas < 3 || hpa.Spec.ScaleTargetRef.Name != fullname {
		t.Errorf("HPA %+v; want autoscaling/v2, at least 3 replicas, scaling %s", hpa, fullname)
	}
	var pdb struct {
		Spec struct {
			MinAvailable any `yaml:"minAvailable"`
		} `yaml:"spec"`
	}
	r.one(t, "PodDisruptionBudget", &pdb)
	if pdb.Spec.MinAvailable != 2 {
		t.Errorf("PDB minAvailable %v; want 2", pdb.Spec.MinAvailable)
	}

	if got := cfg.str("session", "store"); got != "redis" {
		t.Errorf("session.store %q; want redis", got)
	}
	if cfg.str("redis", "master_name") == "" || len(cfg.strs("redis", "addrs")) < 2 {
		t.Errorf("redis %v; want Sentinel: master_name and several addrs", cfg.get("redis"))
	}
	if got, want := cfg.str("redis", "password_file"), secretDir+"/redis-password"; got != want {
		t.Errorf("redis.password_file %q; want %q", got, want)
	}
	var wantKeys []string
	for _, k := range values.ExistingSecret.SigningKeys {
		wantKeys = append(wantKeys, secretDir+"/"+k)
	}
	if got := cfg.strs("token", "signing_key_files"); !slices.Equal(got, wantKeys) {
		t.Errorf("token.signing_key_files %q; want %q", got, wantKeys)
	}

	selector := dep.Spec.Selector.MatchLabels
	constraints := dep.Spec.Template.Spec.TopologySpreadConstraints
	if len(constraints) == 0 {
		t.Errorf("no topologySpreadConstraints; want pods spread over zones and nodes")
	}
	for _, c := range constraints {
		if !maps.Equal(c.LabelSelector.MatchLabels, selector) {
			t.Errorf("spread over %s selects %v; want the pods' %v", c.TopologyKey, c.LabelSelector.MatchLabels, selector)
		}
	}

	var ing struct {
		Spec struct {
			Rules []struct {
				Host string `yaml:"host"`
				HTTP struct {
					Paths []struct {
						Path    string `yaml:"path"`
						Backend struct {
							Service struct {
								Name string `yaml:"name"`
								Port struct {
									Name string `yaml:"name"`
								} `yaml:"port"`
							} `yaml:"service"`
						} `yaml:"backend"`
					} `yaml:"paths"`
				} `yaml:"http"`
			} `yaml:"rules"`
		} `yaml:"spec"`
	}
	r.one(t, "Ingress", &ing)
	for _, rule := range ing.Spec.Rules {
		for _, p := range rule.HTTP.Paths {
			if !strings.HasPrefix(p.Path, "/oauth2/") || p.Backend.Service.Name != fullname || p.Backend.Service.Port.Name != "http" {
				t.Errorf("Ingress %s routes %s to %s:%s; want /oauth2/... to %s:http", rule.Host, p.Path, p.Backend.Service.Name, p.Backend.Service.Port.Name, fullname)
			}
		}
	}
	sm := r.one(t, "ServiceMonitor", nil)
	if !strings.Contains(sm.raw, "port: metrics") || !strings.Contains(sm.raw, "path: /metrics") {
		t.Errorf("ServiceMonitor does not scrape port metrics at /metrics:\n%s", sm.raw)
	}
	r.one(t, "NetworkPolicy", nil)
}

// TestChartRotation renders two signing keys: both are mounted and listed in
// order (the first signs), as the publish, promote, retire rotation needs.
func TestChartRotation(t *testing.T) {
	s := newSecrets(t, 2, true)
	// A new cookie secret first, with the final newline --set-file keeps.
	newest := rand.Text() + rand.Text()
	s.CookieSecrets = append([]string{newest + "\n"}, s.CookieSecrets...)
	r := mustTemplate(t, []string{minimalValues(t), s.valuesFile(t)},
		"--set", "config.session.store=redis", "--set", "config.redis.addrs={redis.redis.svc:6379}", "--set", "replicaCount=2")
	files, _ := secretFiles(t, r)
	cfg := checkRender(t, renderCase{r: r, files: files, needles: s.needles(), secretName: fullname})
	want := []string{secretDir + "/signing-key.pem", secretDir + "/signing-key-2.pem"}
	if got := cfg.strs("token", "signing_key_files"); !slices.Equal(got, want) {
		t.Errorf("token.signing_key_files %q; want %q", got, want)
	}
	for i, name := range []string{"signing-key.pem", "signing-key-2.pem"} {
		if string(files[name]) != s.SigningKeys[i] {
			t.Errorf("Secret entry %s is not secrets.signingKeys[%d]", name, i)
		}
	}
	if got, want := string(files["cookie-secrets"]), newest+"\n"+s.CookieSecrets[1]+"\n"; got != want {
		t.Errorf("cookie-secrets %q; want %q (newest first, one a line)", got, want)
	}
}

// TestChartEphemeralKey renders one replica without a signing key: allowed
// (Gatehouse then signs with a key made at startup), but the notes warn.
func TestChartEphemeralKey(t *testing.T) {
	s := newSecrets(t, 0, false)
	files := []string{minimalValues(t), s.valuesFile(t)}
	r := mustTemplate(t, files)
	entries, _ := secretFiles(t, r)
	cfg := checkRender(t, renderCase{r: r, files: entries, needles: s.needles(), secretName: fullname})
	if v := cfg.get("token", "signing_key_files"); v != nil {
		t.Errorf("token.signing_key_files %v; want unset", v)
	}
	if notes := renderNotes(t, files); !strings.Contains(notes, "no signing key is configured") {
		t.Errorf("NOTES do not warn about the ephemeral key:\n%s", notes)
	}
}

// TestChartChecksumsRollPods checks that a configuration change and a secret
// change each change their pod annotation, so helm upgrade rolls the pods,
// and that neither disturbs the other's.
func TestChartChecksumsRollPods(t *testing.T) {
	s := newSecrets(t, 1, false)
	base := []string{minimalValues(t), s.valuesFile(t)}
	rotated := s
	rotated.CookieSecrets = append([]string{rand.Text() + rand.Text()}, s.CookieSecrets...)

	annotations := func(files []string, extra ...string) map[string]string {
		var dep deployment
		mustTemplate(t, files, extra...).one(t, "Deployment", &dep)
		return dep.Spec.Template.Metadata.Annotations
	}
	before := annotations(base)
	tests := []struct {
		name          string
		files         []string
		extra         []string
		changed, same string
	}{
		{"config change", base, []string{"--set", "config.log.level=debug"}, "checksum/config", "checksum/secret"},
		{"secret change", []string{minimalValues(t), rotated.valuesFile(t)}, nil, "checksum/secret", "checksum/config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			after := annotations(tt.files, tt.extra...)
			if after[tt.changed] == before[tt.changed] {
				t.Errorf("%s unchanged (%s); want a new value so the pods roll", tt.changed, after[tt.changed])
			}
			if after[tt.same] != before[tt.same] {
				t.Errorf("%s changed; want it unchanged", tt.same)
			}
		})
	}
}

// TestChartRefuses checks that values which cannot work fail to render with
// a message naming the value to fix.
func TestChartRefuses(t *testing.T) {
	secrets := newSecrets(t, 1, false).valuesFile(t)
	noKeys := newSecrets(t, 0, false).valuesFile(t)
	min := minimalValues(t)
	redis := []string{"--set", "config.session.store=redis", "--set", "config.redis.addrs={redis:6379}"}
	tests := []struct {
		name  string
		files []string
		args  []string
		want  string
	}{
		{"no values", nil, nil, "config.public_url: required"},
		{"no values lists every problem", nil, nil, "secrets.cookieSecrets: required"},
		{"no client id", []string{min, secrets}, []string{"--set", "config.oidc.client_id="}, "config.oidc.client_id: required"},
		{"no client secret", []string{min}, nil, "secrets.clientSecret: required"},
		{"replicas with the memory store", []string{min, secrets}, []string{"--set", "replicaCount=3"},
			"config.session.store: memory, but replicaCount is 3"},
		{"autoscaling with the memory store", []string{min, secrets}, []string{"--set", "autoscaling.enabled=true"},
			"config.session.store: memory, but autoscaling.enabled is true (maxReplicas 10)"},
		// An HPA is there to add pods, whatever its bound says today.
		{"autoscaling to one pod with the memory store", []string{min, secrets},
			[]string{"--set", "autoscaling.enabled=true", "--set", "autoscaling.minReplicas=1", "--set", "autoscaling.maxReplicas=1"},
			"config.session.store: memory, but autoscaling.enabled is true (maxReplicas 1)"},
		{"replicas without a signing key", []string{min, noKeys}, append([]string{"--set", "replicaCount=2"}, redis...),
			"secrets.signingKeys: empty, but config.session.store is redis"},
		// Gatehouse itself refuses to start so (app.New): the chart says it first.
		{"one replica on Redis without a signing key", []string{min, noKeys}, redis,
			"secrets.signingKeys: empty, but config.session.store is redis"},
		{"existing secret without a signing key", []string{min}, append([]string{"--set", "replicaCount=2", "--set", "existingSecret.name=mine", "--set", "existingSecret.signingKeys=null"}, redis...),
			"existingSecret.signingKeys: empty, but config.session.store is redis"},
		{"redis without addrs", []string{min, secrets}, []string{"--set", "config.session.store=redis"},
			"config.redis.addrs: required"},
		{"client secret in the ConfigMap", []string{min, secrets}, []string{"--set", "config.oidc.client_secret=hunter2hunter2"},
			"client_secret"},
		{"client secret in the ConfigMap, schema skipped", []string{min, secrets},
			[]string{"--skip-schema-validation", "--set", "config.oidc.client_secret=hunter2hunter2"},
			"config.oidc.client_secret: remove it"},
		{"redis password in the ConfigMap, schema skipped", []string{min, secrets},
			[]string{"--skip-schema-validation", "--set", "config.redis.password=hunter2hunter2"},
			"config.redis.password: remove it"},
		{"short cookie secret", []string{min, secrets}, []string{"--set", "secrets.cookieSecrets={tooshort}"},
			"cookieSecrets"},
		{"short cookie secret, schema skipped", []string{min, secrets},
			[]string{"--skip-schema-validation", "--set", "secrets.cookieSecrets={tooshort}"},
			"secrets.cookieSecrets[0]: 8 bytes"},
		{"unknown config key", []string{min, secrets}, []string{"--set", "config.session.idle_timout=5m"},
			"idle_timout"},
		{"ingress without hosts", []string{min, secrets}, []string{"--set", "ingress.enabled=true"},
			"ingress.hosts: required"},
		// Gatehouse serves its endpoints under /oauth2 only; a path value
		// that moved the Ingress elsewhere would route to nothing.
		{"ingress path", []string{min, secrets}, []string{"--set", "ingress.path=/auth"}, "path"},
		{"HTTPRoute without a Gateway", []string{min, secrets}, []string{"--set", "httpRoute.enabled=true"},
			"httpRoute.parentRefs: required"},
		{"grace period shorter than the drain", []string{min, secrets}, []string{"--set", "terminationGracePeriodSeconds=20"},
			"terminationGracePeriodSeconds: 20, but the preStop pause (lifecycle.preStop.sleep.seconds: 5) plus config.server.shutdown_timeout (25s) is 30"},
		{"unknown probe setting", []string{min, secrets}, []string{"--set", "startupProbe.path=/x"}, "path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := template(t, tt.files, tt.args...)
			if err == nil {
				t.Fatalf("helm template succeeded; want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("helm template error:\n%v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// renderNotes renders the chart's NOTES.txt. helm prints notes only on a
// real install, which needs a cluster, so this renders a copy of the chart
// with one more template that passes NOTES.txt through tpl, as helm does.
func renderNotes(t *testing.T, files []string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "gatehouse")
	if err := os.CopyFS(dir, os.DirFS(chartDir(t))); err != nil {
		t.Fatal(err)
	}
	notes, err := os.ReadFile(filepath.Join(dir, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes-under-test.txt"), notes, 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl := "apiVersion: v1\nkind: NotesUnderTest\nnotes: {{ tpl (.Files.Get \"notes-under-test.txt\") . | toJson }}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", "notes-under-test.yaml"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"template", release, dir, "--namespace", namespace, "--kube-version", kubeVersion}, valuesArgs(files)...)
	out, _, err := runHelm(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Notes string `yaml:"notes"`
	}
	parseManifests(t, out).one(t, "NotesUnderTest", &doc)
	return doc.Notes
}

// TestChartNotes checks that the install notes print the ingress-nginx
// annotations that protect an application, pointing at the release's
// Service, and that docs/kubernetes.md shows the same ones.
func TestChartNotes(t *testing.T) {
	notes := renderNotes(t, []string{minimalValues(t), newSecrets(t, 1, false).valuesFile(t)})
	want := []string{
		`nginx.ingress.kubernetes.io/auth-url: "http://` + fullname + `.` + namespace + `.svc.cluster.local:4180/oauth2/auth"`,
		`nginx.ingress.kubernetes.io/auth-signin: "https://$host/oauth2/start?rd=$escaped_request_uri"`,
		`nginx.ingress.kubernetes.io/auth-response-headers: "Authorization,X-Auth-Request-User,X-Auth-Request-Email,X-Auth-Request-Groups,X-Auth-Request-Preferred-Username"`,
		"https://app.example.com/oauth2/callback",
	}
	for _, w := range want {
		if !strings.Contains(notes, w) {
			t.Errorf("NOTES lack %s\nNOTES:\n%s", w, notes)
		}
	}
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "kubernetes.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want[1:3] {
		if !strings.Contains(string(doc), w) {
			t.Errorf("docs/kubernetes.md lacks %s", w)
		}
	}
}

// TestChartSchemaCoversConfig checks values.schema.json's config block
// against the config package: every key Gatehouse reads is known to the
// schema (so helm rejects typos before a pod crash-loops), except the secret
// keys the chart sets itself.
func TestChartSchemaCoversConfig(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema schemaNode
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	cfgSchema, ok := schema.Properties["config"]
	if !ok {
		t.Fatal("values.schema.json has no config property")
	}
	got := map[string]bool{}
	cfgSchema.keys("", got)

	want := map[string]bool{}
	configKeys(reflect.TypeFor[config.Config](), "", want)
	for _, k := range []string{
		"oidc.client_secret", "oidc.client_secret_file", "cookie.secrets", "cookie.secrets_file",
		"redis.password", "redis.password_file", "token.signing_key_files",
		// A secret: kept out of the ConfigMap; sentinel_password_file
		// names a file mounted with extraVolumes instead.
		"redis.sentinel_password",
	} {
		if !want[k] {
			t.Errorf("config has no key %s; the chart sets it", k)
		}
		delete(want, k)
	}
	for k := range want {
		if !got[k] {
			t.Errorf("config key %s is missing from values.schema.json", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("values.schema.json allows config key %s, which Gatehouse does not read", k)
		}
	}
}

type schemaNode struct {
	Properties map[string]schemaNode `json:"properties"`
	Items      *schemaNode           `json:"items"`
}

func (n schemaNode) keys(prefix string, out map[string]bool) {
	for name, child := range n.Properties {
		key := prefix + name
		switch {
		case len(child.Properties) > 0:
			child.keys(key+".", out)
		case child.Items != nil && len(child.Items.Properties) > 0:
			child.Items.keys(key+"[].", out)
		default:
			out[key] = true
		}
	}
}

// configKeys lists config's keys, as dotted paths, from mapstructure tags.
func configKeys(t reflect.Type, prefix string, out map[string]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + tag
		switch ft := f.Type; {
		case ft.Kind() == reflect.Struct:
			configKeys(ft, key+".", out)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			configKeys(ft.Elem(), key+"[].", out)
		default:
			out[key] = true
		}
	}
}

// TestChartIngressHidesAuthEndpoint: the optional Ingress exposes only the
// browser-facing endpoints. /oauth2/auth answers the ingress controller's
// subrequests; its 202 carries a minted token that page scripts must never
// be able to fetch and read.
func TestChartIngressHidesAuthEndpoint(t *testing.T) {
	r := mustTemplate(t, []string{haValues(t)}, "--set", "ingress.enabled=true", "--set", "ingress.hosts[0]=app.example.com")
	var ing struct {
		Spec struct {
			Rules []struct {
				HTTP struct {
					Paths []struct {
						Path     string `yaml:"path"`
						PathType string `yaml:"pathType"`
					} `yaml:"paths"`
				} `yaml:"http"`
			} `yaml:"rules"`
		} `yaml:"spec"`
	}
	r.one(t, "Ingress", &ing)
	var paths []string
	for _, rule := range ing.Spec.Rules {
		for _, p := range rule.HTTP.Paths {
			if p.PathType != "Exact" || p.Path == "/oauth2/auth" || !strings.HasPrefix(p.Path, "/oauth2/") {
				t.Errorf("ingress path %s (%s); want only Exact browser endpoints", p.Path, p.PathType)
			}
			paths = append(paths, p.Path)
		}
	}
	if !slices.Contains(paths, "/oauth2/callback") || !slices.Contains(paths, "/oauth2/start") {
		t.Errorf("ingress paths %v lack /oauth2/start or /oauth2/callback", paths)
	}
}

// TestChartKubeVersion: the chart declares the Kubernetes it needs (the
// preStop sleep action is 1.30's), and helm refuses an older cluster.
func TestChartKubeVersion(t *testing.T) {
	var chart struct {
		KubeVersion string `yaml:"kubeVersion"`
	}
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &chart); err != nil {
		t.Fatal(err)
	}
	if chart.KubeVersion != ">=1.30.0-0" {
		t.Errorf("Chart.yaml kubeVersion %q; want >=1.30.0-0", chart.KubeVersion)
	}
	files := []string{minimalValues(t), newSecrets(t, 1, false).valuesFile(t)}
	args := append([]string{"template", release, chartDir(t), "--namespace", namespace}, valuesArgs(files)...)
	if _, _, err := runHelm(t, append(args, "--kube-version", "1.29.9")...); err == nil || !strings.Contains(err.Error(), "kubeVersion") {
		t.Errorf("rendering for Kubernetes 1.29: %v; want a kubeVersion error", err)
	}
	if _, _, err := runHelm(t, append(args, "--kube-version", "1.30.0")...); err != nil {
		t.Errorf("rendering for Kubernetes 1.30: %v", err)
	}
}

// TestChartProbeSwitches: each probe can be turned off and the startup probe
// on, and the switch itself never reaches the pod spec.
func TestChartProbeSwitches(t *testing.T) {
	files := []string{minimalValues(t), newSecrets(t, 1, false).valuesFile(t)}
	tests := []struct {
		name                     string
		args                     []string
		liveness, ready, startup bool
	}{
		{"defaults", nil, true, true, false},
		{"no liveness", []string{"--set", "livenessProbe.enabled=false"}, false, true, false},
		{"no readiness", []string{"--set", "readinessProbe.enabled=false"}, true, false, false},
		{"startup", []string{"--set", "startupProbe.enabled=true"}, true, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dep deployment
			mustTemplate(t, files, tt.args...).one(t, "Deployment", &dep)
			ctr := dep.Spec.Template.Spec.Containers[0]
			for _, p := range []struct {
				name  string
				probe *probe
				want  bool
				path  string
			}{
				{"liveness", ctr.LivenessProbe, tt.liveness, "/healthz"},
				{"readiness", ctr.ReadinessProbe, tt.ready, "/readyz"},
				{"startup", ctr.StartupProbe, tt.startup, "/healthz"},
			} {
				switch {
				case (p.probe != nil) != p.want:
					t.Errorf("%s probe present = %v; want %v", p.name, p.probe != nil, p.want)
				case p.probe == nil:
				case p.probe.Enabled != nil:
					t.Errorf("%s probe carries the chart's switch 'enabled'", p.name)
				case p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port != "metrics":
					t.Errorf("%s probe %+v; want httpGet %s on port metrics", p.name, p.probe.HTTPGet, p.path)
				}
			}
			if tt.startup && ctr.StartupProbe != nil && ctr.StartupProbe.FailureThreshold != 30 {
				t.Errorf("startup probe failureThreshold %d; want the value's 30", ctr.StartupProbe.FailureThreshold)
			}
		})
	}
}

// TestChartPreStopPause: by default a pod pauses 5s in preStop (the kubelet's
// sleep action: the image has no shell) before SIGTERM, and its grace period
// covers the pause plus Gatehouse's drain; docs/operations.md explains why.
func TestChartPreStopPause(t *testing.T) {
	files := []string{minimalValues(t), newSecrets(t, 1, false).valuesFile(t)}
	var dep deployment
	mustTemplate(t, files).one(t, "Deployment", &dep)
	pod := dep.Spec.Template.Spec
	pre := pod.Containers[0].Lifecycle.PreStop
	if pre == nil || pre.Sleep == nil || pre.Sleep.Seconds != 5 {
		t.Errorf("preStop %+v; want sleep 5 seconds", pre)
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || *g < 5+25 {
		t.Errorf("terminationGracePeriodSeconds %v; want at least the pause (5) plus server.shutdown_timeout (25)", g)
	}

	// The pause can go; then the check counts only the drain.
	dep = deployment{}
	mustTemplate(t, files, "--set", "lifecycle.preStop=null", "--set", "terminationGracePeriodSeconds=26").one(t, "Deployment", &dep)
	if pre := dep.Spec.Template.Spec.Containers[0].Lifecycle.PreStop; pre != nil {
		t.Errorf("preStop %+v after lifecycle.preStop=null; want none", pre)
	}
	// A longer drain needs a longer grace period.
	if _, err := template(t, files, "--set", "config.server.shutdown_timeout=1m"); err == nil || !strings.Contains(err.Error(), "terminationGracePeriodSeconds: 35") {
		t.Errorf("shutdown_timeout 1m with a 35s grace period: %v; want refused", err)
	}
	if _, err := template(t, files, "--set", "config.server.shutdown_timeout=1m", "--set", "terminationGracePeriodSeconds=70"); err != nil {
		t.Errorf("shutdown_timeout 1m with a 70s grace period: %v", err)
	}
}

// TestChartExtraObjects: extraObjects are rendered as given, maps and
// strings alike, through tpl.
func TestChartExtraObjects(t *testing.T) {
	extra := filepath.Join(t.TempDir(), "extra.yaml")
	if err := os.WriteFile(extra, []byte(`extraObjects:
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: '{{ include "gatehouse.fullname" . }}-extra'
      namespace: '{{ .Release.Namespace }}'
    data:
      k: v
  - |
    apiVersion: cert-manager.io/v1
    kind: Certificate
    metadata:
      name: app-tls
      namespace: {{ .Release.Namespace }}
    spec:
      secretName: app-tls
      dnsNames: [app.example.com]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	files := []string{minimalValues(t), newSecrets(t, 1, false).valuesFile(t), extra}
	r := mustTemplate(t, files)
	var cm configMap
	r.named(t, "ConfigMap", fullname+"-extra", &cm)
	if cm.Data["k"] != "v" {
		t.Errorf("extra ConfigMap data %v; want k: v", cm.Data)
	}
	cert := r.one(t, "Certificate", nil)
	if cert.Metadata.Namespace != namespace || cert.Metadata.Name != "app-tls" {
		t.Errorf("Certificate %s/%s; want %s/app-tls", cert.Metadata.Namespace, cert.Metadata.Name, namespace)
	}
	if n := len(mustTemplate(t, files[:2]).find("Certificate")); n != 0 {
		t.Errorf("%d Certificates without extraObjects; want none", n)
	}
}

// TestChartServiceMonitorRelabelings: relabelings and metricRelabelings
// reach the ServiceMonitor's endpoint.
func TestChartServiceMonitorRelabelings(t *testing.T) {
	values := filepath.Join(t.TempDir(), "sm.yaml")
	if err := os.WriteFile(values, []byte(`serviceMonitor:
  enabled: true
  relabelings:
    - targetLabel: cluster
      replacement: prod-eu
  metricRelabelings:
    - sourceLabels: [__name__]
      regex: go_gc_.*
      action: drop
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var sm struct {
		Spec struct {
			Endpoints []struct {
				Port        string           `yaml:"port"`
				Relabelings []map[string]any `yaml:"relabelings"`
				Metric      []map[string]any `yaml:"metricRelabelings"`
			} `yaml:"endpoints"`
		} `yaml:"spec"`
	}
	mustTemplate(t, []string{minimalValues(t), newSecrets(t, 1, false).valuesFile(t), values}).one(t, "ServiceMonitor", &sm)
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor endpoints %+v; want one", sm.Spec.Endpoints)
	}
	ep := sm.Spec.Endpoints[0]
	if len(ep.Relabelings) != 1 || ep.Relabelings[0]["targetLabel"] != "cluster" || ep.Relabelings[0]["replacement"] != "prod-eu" {
		t.Errorf("relabelings %v; want the cluster label", ep.Relabelings)
	}
	if len(ep.Metric) != 1 || ep.Metric[0]["action"] != "drop" || ep.Metric[0]["regex"] != "go_gc_.*" {
		t.Errorf("metricRelabelings %v; want the drop rule", ep.Metric)
	}
}

// TestChartHTTPRoute: the Gateway API route sends exactly the Ingress's
// browser endpoints to Gatehouse, each matched exactly, never /oauth2/auth.
func TestChartHTTPRoute(t *testing.T) {
	values := filepath.Join(t.TempDir(), "route.yaml")
	if err := os.WriteFile(values, []byte(`httpRoute:
  enabled: true
  parentRefs:
    - name: public
      namespace: gateway-system
      sectionName: https
  hostnames: [app.example.com]
ingress:
  enabled: true
  hosts: [app.example.com]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := mustTemplate(t, []string{haValues(t), values})
	var route struct {
		APIVersion string `yaml:"apiVersion"`
		Spec       struct {
			ParentRefs []map[string]string `yaml:"parentRefs"`
			Hostnames  []string            `yaml:"hostnames"`
			Rules      []struct {
				Matches []struct {
					Path struct {
						Type  string `yaml:"type"`
						Value string `yaml:"value"`
					} `yaml:"path"`
				} `yaml:"matches"`
				BackendRefs []struct {
					Name string `yaml:"name"`
					Port int    `yaml:"port"`
				} `yaml:"backendRefs"`
			} `yaml:"rules"`
		} `yaml:"spec"`
	}
	r.one(t, "HTTPRoute", &route)
	if route.APIVersion != "gateway.networking.k8s.io/v1" {
		t.Errorf("HTTPRoute apiVersion %s; want gateway.networking.k8s.io/v1", route.APIVersion)
	}
	if len(route.Spec.ParentRefs) != 1 || route.Spec.ParentRefs[0]["name"] != "public" || route.Spec.ParentRefs[0]["sectionName"] != "https" {
		t.Errorf("parentRefs %v; want the values'", route.Spec.ParentRefs)
	}
	if !slices.Equal(route.Spec.Hostnames, []string{"app.example.com"}) {
		t.Errorf("hostnames %v; want [app.example.com]", route.Spec.Hostnames)
	}
	var paths []string
	for _, rule := range route.Spec.Rules {
		if len(rule.BackendRefs) != 1 || rule.BackendRefs[0].Name != fullname || rule.BackendRefs[0].Port != 4180 {
			t.Errorf("rule backends %+v; want %s:4180", rule.BackendRefs, fullname)
		}
		for _, m := range rule.Matches {
			if m.Path.Type != "Exact" || m.Path.Value == "/oauth2/auth" || !strings.HasPrefix(m.Path.Value, "/oauth2/") {
				t.Errorf("HTTPRoute matches %s (%s); want only Exact browser endpoints", m.Path.Value, m.Path.Type)
			}
			paths = append(paths, m.Path.Value)
		}
	}
	var ing struct {
		Spec struct {
			Rules []struct {
				HTTP struct {
					Paths []struct {
						Path string `yaml:"path"`
					} `yaml:"paths"`
				} `yaml:"http"`
			} `yaml:"rules"`
		} `yaml:"spec"`
	}
	r.one(t, "Ingress", &ing)
	var ingPaths []string
	for _, p := range ing.Spec.Rules[0].HTTP.Paths {
		ingPaths = append(ingPaths, p.Path)
	}
	if !slices.Equal(paths, ingPaths) {
		t.Errorf("HTTPRoute paths %v; want the Ingress's %v", paths, ingPaths)
	}
	if !slices.Contains(paths, "/oauth2/start") || !slices.Contains(paths, "/oauth2/callback") {
		t.Errorf("HTTPRoute paths %v lack /oauth2/start or /oauth2/callback", paths)
	}
	if n := len(mustTemplate(t, []string{haValues(t)}).find("HTTPRoute")); n != 0 {
		t.Errorf("%d HTTPRoutes by default; want none", n)
	}
}
