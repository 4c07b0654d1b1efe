package tokenmint

import "context"

// WaitForKeys waits for v's JWKS fetch in progress, if any, to land, so a test
// can observe what a background refresh did without sleeping.
func WaitForKeys(ctx context.Context, v *Verifier) error { return v.keys.Wait(ctx) }
