//go:build tools

package main

import (
	_ "github.com/coreos/go-oidc/v3/oidc"
	_ "github.com/go-jose/go-jose/v4"
	_ "github.com/gorilla/securecookie"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/spf13/viper"
	_ "github.com/zitadel/oidc/v3/pkg/op"
	_ "golang.org/x/crypto/hkdf"
	_ "golang.org/x/oauth2"
)
