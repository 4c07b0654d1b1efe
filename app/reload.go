package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/tokenmint"
)

// Live reload: SIGHUP, or a change of the configuration file or of a file it
// names, loads the configuration again. A configuration that does not
// validate is refused whole and the running one keeps serving. One that
// does becomes a new generation (proxy server, cookie codecs, routes,
// policies, transport, OpenID client when its settings changed), swapped in
// with one atomic store after the minter took the new keys: requests in
// flight finish on the generation they started with, new ones see the new.
//
// Keys that cannot change without a restart (restartOnly) keep their
// running values; a change there is logged as needing a restart, counted in
// gatehouse_config_restart_required, and the rest of the reload applies.
// Refusing the whole reload instead would hold back a key or secret
// rotation because somebody also edited, say, the Redis address.

// Reload triggers, for logs and ReloadResult.
const (
	TriggerSignal = "signal" // SIGHUP (Options.ReloadSignals)
	TriggerFile   = "file"   // a watched file changed
	TriggerCall   = "call"   // App.Reload
)

// reloadDebounce is how long the watched files must stay quiet before a
// reload: an editor's save or a Kubernetes Secret update is a burst of
// events, and a file read mid-write would be refused.
const reloadDebounce = time.Second

// restartOnly are the configuration keys (a key, or a section ending in
// ".") whose value is read once at startup: the listeners and their
// servers, the session store and its Redis, the logger, and the OpenID
// issuer (sessions and their provider tokens belong to it).
var restartOnly = []string{
	"listen", "metrics_listen", "server.",
	"session.store", "session.memory_max_sessions", "session.cache_ttl", "session.cache_max_entries", "redis.",
	"log.format", "log.level",
	"oidc.issuer",
	"tracing.",
}

func isRestartOnly(key string) bool {
	for _, r := range restartOnly {
		if key == r || strings.HasSuffix(r, ".") && strings.HasPrefix(key, r) {
			return true
		}
	}
	return false
}

// ReloadResult is the outcome of one reload attempt.
type ReloadResult struct {
	// Trigger is TriggerSignal, TriggerFile or TriggerCall.
	Trigger string
	// Err is nil when the new configuration serves; otherwise it lists
	// every problem, and the previous configuration keeps serving.
	Err error
	// Hash identifies the configuration serving after the attempt
	// (gatehouse_config_info's hash label).
	Hash string
	// Changed are the keys whose values changed, by name (secrets too,
	// never their values); "token.signing_keys" when the keys the files
	// hold changed.
	Changed []string
	// Restart are the changed keys that keep their running value until a
	// restart.
	Restart []string
}

// Reload loads the configuration again from Options.ConfigFile and
// Options.Getenv and applies it; SIGHUP and file changes take the same
// path. It returns nil when the new configuration serves, else an error
// listing every problem (the running configuration then keeps serving).
func (a *App) Reload(ctx context.Context) error {
	return a.reload(ctx, TriggerCall).Err
}

func (a *App) reloadable() bool { return a.opts.ConfigFile != "" || a.opts.Getenv != nil }

func (a *App) reload(ctx context.Context, trigger string) ReloadResult {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	prev := a.gen.Load()
	res := ReloadResult{Trigger: trigger, Hash: prev.hash}
	if !a.reloadable() {
		res.Err = errors.New("reload: the configuration was not loaded from a file or the environment, so there is nothing to load again")
		a.refused(&res)
		return res
	}

	next, keys, err := a.loadConfig()
	if next != nil {
		a.attemptedFiles = watchedFiles("", next)
	}
	attempt := ""
	if err != nil {
		attempt = "error\x00" + err.Error()
	} else {
		attempt = configHash(next, keys)
	}
	if trigger == TriggerFile && attempt == a.lastAttempt {
		// Another file in a watched directory, or a write that changed
		// nothing: not a reload.
		return res
	}
	a.lastAttempt = attempt
	if err != nil {
		res.Err = err
		a.refused(&res)
		return res
	}

	res.Restart = pinRestartOnly(prev.cfg, next)
	slices.Sort(res.Restart)
	res.Changed = changedKeys(prev.cfg, next)
	if !slices.Equal(kids(prev.keys), kids(keys)) {
		res.Changed = append(res.Changed, "token.signing_keys")
	}
	res.Changed = append(res.Changed, res.Restart...)
	slices.Sort(res.Changed)

	gen, err := a.build(next, keys, prev)
	if err == nil && gen.login != prev.login {
		// New client settings (a rotated client secret): the new client must
		// know its provider before it serves. Refused otherwise, so that
		// logins keep working with the old settings.
		dctx, cancel := context.WithTimeout(ctx, 2*next.OIDC.DiscoveryTimeout)
		if derr := gen.login.Discover(dctx); derr != nil {
			err = fmt.Errorf("oidc: discovery with the new settings: %w", derr)
		}
		cancel()
	}
	if err == nil {
		// The commit point: keys and JWKS change together, then new
		// requests get the new generation. Nothing below can fail.
		err = a.minter.Reconfigure(tokenIssuer(next), next.Token.TTL, keys)
	}
	if err != nil {
		// Not the configuration's fault alone (the provider may be down):
		// the next file event tries again even if the files stay the same.
		a.lastAttempt = ""
		res.Err = fmt.Errorf("reload refused:\n  %w", err)
		a.refused(&res)
		return res
	}
	a.gen.Store(gen)
	if gen.transport != prev.transport {
		prev.transport.CloseIdleConnections() // busy ones finish first
	}
	res.Hash = gen.hash
	a.reloads.applied(gen, time.Now())
	a.reloads.restartRequired(len(res.Restart) > 0)
	a.reloads.total.WithLabelValues("success").Inc()
	a.log.Info("configuration reloaded", "trigger", trigger, "changed", res.Changed, "config_hash", gen.hash)
	if len(res.Restart) > 0 {
		a.log.Warn("configuration reloaded, but some changes need a restart to take effect; their running values stay",
			"needs_restart", res.Restart)
	}
	if a.opts.OnReload != nil {
		a.opts.OnReload(res)
	}
	return res
}

// refused records a reload that did not apply.
func (a *App) refused(res *ReloadResult) {
	a.reloads.total.WithLabelValues("failure").Inc()
	a.reloads.lastOK.Set(0)
	a.log.Error("configuration reload refused; the running configuration keeps serving",
		"trigger", res.Trigger, "problems", problemLines(res.Err), "config_hash", res.Hash)
	if a.opts.OnReload != nil {
		a.opts.OnReload(*res)
	}
}

// problemLines splits a multi-line configuration error into its problems.
func problemLines(err error) []string {
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" && l != "invalid configuration:" && l != "reload refused:" {
			out = append(out, l)
		}
	}
	return out
}

// loadConfig loads and validates the configuration as serve does, and
// loads the signing keys.
func (a *App) loadConfig() (*config.Config, []*tokenmint.Key, error) {
	getenv := a.opts.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	next, err := config.Load(a.opts.ConfigFile, getenv)
	if err != nil {
		return nil, nil, err
	}
	if err := next.Validate(); err != nil {
		return next, nil, err
	}
	keys, err := a.signingKeys(next)
	if err != nil {
		return next, nil, fmt.Errorf("invalid configuration:\n  %w", err)
	}
	return next, keys, nil
}

// pinRestartOnly gives next the running value of every restart-only key
// and returns the keys whose value differed.
func pinRestartOnly(running, next *config.Config) []string {
	var pinned []string
	walkConfig("", reflect.ValueOf(running).Elem(), reflect.ValueOf(next).Elem(), func(key string, r, n reflect.Value) {
		if isRestartOnly(key) && !reflect.DeepEqual(r.Interface(), n.Interface()) {
			n.Set(r)
			pinned = append(pinned, key)
		}
	})
	return pinned
}

// changedKeys lists the keys whose values differ between a and b.
func changedKeys(a, b *config.Config) []string {
	var out []string
	walkConfig("", reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem(), func(key string, x, y reflect.Value) {
		if !reflect.DeepEqual(x.Interface(), y.Interface()) {
			out = append(out, key)
		}
	})
	return out
}

// walkConfig calls fn for each value key (dotted, as the file spells it) of
// two configurations, a and b being the same struct type. Lists, routes
// included, are one value each.
func walkConfig(prefix string, a, b reflect.Value, fn func(key string, a, b reflect.Value)) {
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if !f.IsExported() || tag == "" {
			continue
		}
		if isSection(f.Type) {
			walkConfig(prefix+tag+".", a.Field(i), b.Field(i), fn)
			continue
		}
		fn(prefix+tag, a.Field(i), b.Field(i))
	}
}

// isSection reports whether t is a configuration section (a struct of keys)
// rather than a value that happens to be a struct.
func isSection(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	for i := range t.NumField() {
		if t.Field(i).Tag.Get("mapstructure") != "" {
			return true
		}
	}
	return false
}

// configHash identifies a configuration and its signing keys: equal hashes,
// equal behaviour. Secrets go into the hash, which is a digest; it never
// shows them. Truncated to 64 bits: a label to compare replicas by.
func configHash(cfg *config.Config, keys []*tokenmint.Key) string {
	h := sha256.New()
	// A Config marshals deterministically (struct fields in order, map keys
	// sorted); it holds only data.
	b, err := json.Marshal(cfg)
	if err != nil {
		b = []byte(err.Error())
	}
	h.Write(b)
	for _, id := range kids(keys) {
		h.Write([]byte{0})
		h.Write([]byte(id))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func kids(keys []*tokenmint.Key) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.KeyID()
	}
	return out
}

// reloadMetrics are the configuration's series.
type reloadMetrics struct {
	total       *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	lastOK      prometheus.Gauge
	restart     prometheus.Gauge
	info        *prometheus.GaugeVec
}

func newReloadMetrics(reg prometheus.Registerer) *reloadMetrics {
	m := &reloadMetrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_config_reloads_total",
			Help: "Configuration reloads (SIGHUP, a changed file), by result: success or failure (refused; the running configuration kept serving).",
		}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_config_last_reload_success_timestamp_seconds",
			Help: "When the serving configuration was loaded (at startup or by the last successful reload), in Unix seconds.",
		}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_config_last_reload_successful",
			Help: "1 if the last reload attempt applied (or none was made), 0 if it was refused.",
		}),
		restart: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_config_restart_required",
			Help: "1 when the configuration changed keys that only a restart applies (listeners, server.*, the session store, redis.*, log format and level, oidc.issuer).",
		}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_config_info",
			Help: "Always 1; hash identifies the serving configuration (secrets and signing keys included, as a digest), so replicas can be compared.",
		}, []string{"hash"}),
	}
	reg.MustRegister(m.total, m.lastSuccess, m.lastOK, m.restart, m.info)
	m.total.WithLabelValues("success")
	m.total.WithLabelValues("failure")
	return m
}

// applied records that g serves from now.
func (m *reloadMetrics) applied(g *generation, now time.Time) {
	m.info.Reset()
	m.info.WithLabelValues(g.hash).Set(1)
	m.lastSuccess.Set(float64(now.UnixNano()) / 1e9)
	m.lastOK.Set(1)
}

func (m *reloadMetrics) restartRequired(yes bool) {
	if yes {
		m.restart.Set(1)
	} else {
		m.restart.Set(0)
	}
}

// watch reloads on every value from Options.ReloadSignals, and when a
// watched file changes, until ctx ends. It watches the directories of the
// configuration file and of every file the configuration names (and of
// their symlinks' targets), since editors and Kubernetes replace a file
// rather than write it: a Secret volume swaps its "..data" symlink.
func (a *App) watch(ctx context.Context) {
	var events <-chan fsnotify.Event
	var errs <-chan error
	var w *fsnotify.Watcher
	dirs := map[string]bool{}
	names := map[string]bool{}
	if a.reloadable() {
		var err error
		if w, err = fsnotify.NewWatcher(); err != nil {
			a.log.Error("cannot watch the configuration's files; reload with SIGHUP", "err", err)
		} else {
			defer w.Close()
			events, errs = w.Events, w.Errors
			a.rewatch(w, dirs, names)
		}
	}
	var quiet *time.Timer
	var fire <-chan time.Time
	defer func() {
		if quiet != nil {
			quiet.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.opts.ReloadSignals:
			if !a.reloadable() {
				a.log.Warn("reload signal ignored: the configuration was not loaded from a file or the environment")
				continue
			}
			a.reload(ctx, TriggerSignal)
			if w != nil {
				a.rewatch(w, dirs, names)
			}
		case ev := <-events:
			if !names[ev.Name] && !strings.HasPrefix(filepath.Base(ev.Name), "..") {
				continue
			}
			if quiet == nil {
				quiet = time.NewTimer(reloadDebounce)
			} else {
				quiet.Reset(reloadDebounce)
			}
			fire = quiet.C
		case err := <-errs:
			a.log.Warn("watching the configuration's files", "err", err)
		case <-fire:
			fire = nil
			a.reload(ctx, TriggerFile)
			if w != nil {
				a.rewatch(w, dirs, names)
			}
		}
	}
}

// rewatch points w at the directories of the files the running
// configuration names, and of those the last attempted one named (so that
// creating a file a refused configuration lacked reloads).
func (a *App) rewatch(w *fsnotify.Watcher, dirs, names map[string]bool) {
	a.reloadMu.Lock()
	files := append(watchedFiles(a.opts.ConfigFile, a.gen.Load().cfg), a.attemptedFiles...)
	a.reloadMu.Unlock()
	want := map[string]bool{}
	clear(names)
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			continue
		}
		names[abs], want[filepath.Dir(abs)] = true, true
		if target, err := filepath.EvalSymlinks(abs); err == nil && target != abs {
			names[target], want[filepath.Dir(target)] = true, true
		}
	}
	for d := range dirs {
		if !want[d] {
			_ = w.Remove(d)
			delete(dirs, d)
		}
	}
	for d := range want {
		if dirs[d] {
			continue
		}
		if err := w.Add(d); err != nil {
			a.log.Warn("cannot watch a configuration directory; changes there need SIGHUP", "dir", d, "err", err)
			continue
		}
		dirs[d] = true
	}
}

// watchedFiles lists the configuration file and every file cfg names.
func watchedFiles(configFile string, cfg *config.Config) []string {
	var out []string
	for _, f := range append([]string{
		configFile, cfg.OIDC.ClientSecretFile, cfg.Cookie.SecretsFile,
		cfg.Redis.PasswordFile, cfg.Redis.SentinelPasswordFile, cfg.Redis.TLSCAFile,
	}, cfg.Token.SigningKeyFiles...) {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}
