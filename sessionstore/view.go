package sessionstore

import "context"

// View is Load: every Redis read decodes a fresh copy, so there is nothing
// to share. It completes the read-only contract Memory and Cached offer.
func (r *Redis) View(ctx context.Context, t Ticket) (*Session, error) { return r.Load(ctx, t) }
