// Package browser tests Gatehouse end to end with real clients: headless
// Chromium driven through the DevTools protocol (chromedp), the Django REST
// Framework example in examples/django as the upstream, and a native app
// holding the identity provider's bearer token. It holds tests only.
package browser
