package main

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"text/template"
)

// nginxConfTmpl is the configuration of the benchmark's nginx.
//
//go:embed nginx.conf.tmpl
var nginxConfTmpl string

var nginxTmpl = template.Must(template.New("nginx.conf").Parse(nginxConfTmpl))

// authSource is the address nginx's auth subrequests come from: the only
// address the auth services trust (Gatehouse's trusted_proxies), so wrk's
// direct requests from 127.0.0.1 are judged as before.
const authSource = "127.0.0.2"

// nginxConf is the data of nginx.conf.tmpl.
type nginxConf struct {
	Dir        string // prefix for the pid file, error log and temporary files
	Workers    int    // worker_processes: one per core
	App        string // host:port of the upstream
	RefListen  string // host:port of nginx-ref
	RefCookie  string // cookie whose presence nginx-ref checks
	NoneListen string // host:port of ingress-none
	AuthSource string // proxy_bind address of the auth subrequests
	Auth       []nginxAuth
}

// nginxAuth is one ingress with auth_request.
type nginxAuth struct {
	Name   string // upstream and variable name: letters, digits, _
	Addr   string // host:port of the auth service
	Listen string // host:port the ingress serves on
	Cookie string // the auth service's session cookie, as a regular expression
}

var nginxName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// renderNginx returns the configuration for c.
func renderNginx(c nginxConf) ([]byte, error) {
	for i, a := range c.Auth {
		if !nginxName.MatchString(a.Name) {
			return nil, fmt.Errorf("loadbench: nginx: auth name %q: want [a-z][a-z0-9_]*", a.Name)
		}
		c.Auth[i].Cookie = regexp.QuoteMeta(a.Cookie)
	}
	c.RefCookie = regexp.QuoteMeta(c.RefCookie)
	var b bytes.Buffer
	if err := nginxTmpl.Execute(&b, c); err != nil {
		return nil, fmt.Errorf("loadbench: nginx configuration: %w", err)
	}
	return b.Bytes(), nil
}

// nginxServer is the running nginx: one master and its workers.
type nginxServer struct {
	*proxy
	ref, none string            // base URLs of nginx-ref and ingress-none
	ingress   map[string]string // base URL of each auth ingress by name
}

// startNginx writes the configuration and runs nginx in the foreground in
// its own process group (stopped as a group: workers outlive a killed
// master), and waits until every server block answers.
func startNginx(bin, dir string, c nginxConf) (*nginxServer, error) {
	c.Dir = dir
	if err := os.MkdirAll(filepath.Join(dir, "nginx-temp"), 0o700); err != nil {
		return nil, fmt.Errorf("loadbench: %w", err)
	}
	conf, err := renderNginx(c)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		return nil, fmt.Errorf("loadbench: %w", err)
	}
	errLog := filepath.Join(dir, "nginx-error.log")
	// -e: nginx opens its error log before it reads the configuration.
	p, err := startProcGroup("nginx", filepath.Join(dir, "nginx.log"), bin, []string{"-p", dir, "-c", path, "-e", errLog}, nil)
	if err != nil {
		return nil, err
	}
	p.log = errLog // what tail() shows when it fails
	n := &nginxServer{
		proxy: &proxy{proc: p, kind: "nginx"},
		ref:   "http://" + c.RefListen, none: "http://" + c.NoneListen, ingress: map[string]string{},
	}
	n.url = n.ref
	urls := []string{n.ref, n.none}
	for _, a := range c.Auth {
		n.ingress[a.Name] = "http://" + a.Listen
		urls = append(urls, n.ingress[a.Name]+"/oauth2/nothing")
	}
	for _, u := range urls {
		// nginx-ref answers 401 without a cookie, the ingress 401 or a
		// redirect: any answer means the block is served.
		if err := waitHTTP(p, u, 0); err != nil {
			p.stop()
			return nil, err
		}
	}
	return n, nil
}
