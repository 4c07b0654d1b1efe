package oidcclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keySet holds the provider's signing keys. Unlike go-oidc's RemoteKeySet,
// it refetches the JWKS on an unknown kid at most once per minInterval, so a
// stream of tokens with made-up kids cannot turn Gatehouse into a load
// generator against the provider. Safe for concurrent use.
type keySet struct {
	url         string
	client      *http.Client
	algs        []jose.SignatureAlgorithm
	minInterval time.Duration
	now         func() time.Time

	mu        sync.RWMutex
	keys      []jose.JSONWebKey
	lastFetch time.Time
	fetchMu   sync.Mutex // one fetch at a time; waiters reuse its result
}

var errUnknownKey = errors.New("oidcclient: token signed by an unknown key")

func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, k.algs)
	if err != nil {
		return nil, fmt.Errorf("oidcclient: malformed token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("oidcclient: token must have exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	if payload, ok := k.verifyWith(jws, kid); ok {
		return payload, nil
	}
	if err := k.refresh(ctx); err != nil {
		return nil, err
	}
	if payload, ok := k.verifyWith(jws, kid); ok {
		return payload, nil
	}
	return nil, errUnknownKey
}

func (k *keySet) verifyWith(jws *jose.JSONWebSignature, kid string) ([]byte, bool) {
	k.mu.RLock()
	keys := k.keys
	k.mu.RUnlock()
	for _, key := range keys {
		if kid != "" && key.KeyID != kid {
			continue
		}
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		if payload, err := jws.Verify(key.Key); err == nil {
			return payload, true
		}
	}
	return nil, false
}

// refresh fetches the JWKS unless that happened less than minInterval ago.
func (k *keySet) refresh(ctx context.Context) error {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	k.mu.RLock()
	recent := !k.lastFetch.IsZero() && k.now().Sub(k.lastFetch) < k.minInterval
	k.mu.RUnlock()
	if recent {
		return nil
	}
	keys, err := k.fetch(ctx)
	k.mu.Lock()
	k.lastFetch = k.now()
	if err == nil {
		k.keys = keys
	}
	k.mu.Unlock()
	return err
}

func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("oidcclient: fetching keys: %w", err)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("oidcclient: fetching keys: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("oidcclient: fetching keys: %s", resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("oidcclient: decoding keys: %w", err)
	}
	var out []jose.JSONWebKey
	for _, key := range set.Keys {
		if key.IsPublic() && key.Valid() {
			out = append(out, key)
		}
	}
	return out, nil
}
