package proxy

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/sessionstore"
)

// staleView is a store whose View answers from an old copy, as a replica's
// cache does after another replica kept the session alive.
type staleView struct {
	Store
	seen time.Time
}

func (s *staleView) View(ctx context.Context, t sessionstore.Ticket) (*sessionstore.Session, error) {
	sess, err := s.Store.Load(ctx, t)
	if err == nil {
		sess.LastSeen = s.seen
	}
	return sess, err
}

// TestIdleIsJudgedByTheStore: a session idle by this replica's copy but
// active by the store's is not ended; one idle by both is.
func TestIdleIsJudgedByTheStore(t *testing.T) {
	f := newFixture(t, nil)
	mem := f.store
	start := f.clock.Now()
	cookie := f.plant(t)
	stale := &staleView{Store: mem, seen: start}
	f.srv.cfg.Session.Store = stale
	f.srv.tickets = ticketCache{}

	// Another replica saw the session a moment ago; this one's copy is 31m old.
	f.clock.Add(31 * time.Minute)
	tk, err := f.codec.DecodeTicket("gatehouse", cookie)
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.Touch(context.Background(), tk, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := f.get(cookie).Code; got != http.StatusOK {
		t.Fatalf("active elsewhere: got %d; want 200", got)
	}
	// Now idle everywhere.
	f.clock.Add(31 * time.Minute)
	stale.seen = f.clock.Now().Add(-31 * time.Minute)
	if got := f.get(cookie).Code; got != http.StatusUnauthorized {
		t.Fatalf("idle everywhere: got %d; want 401", got)
	}
	if _, err := mem.Load(context.Background(), tk); err == nil {
		t.Error("the idle session still exists in the store")
	}
}
