// Package ingress tests Gatehouse's forward-auth endpoint behind real
// ingresses (nginx auth_request, the configuration ingress-nginx generates,
// and Caddy forward_auth), each started on a random 127.0.0.1 port from a
// configuration the test writes, and keeps docs/ingress.md's snippets equal
// to the configurations that passed. It has no code outside its tests.
package ingress
