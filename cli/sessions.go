package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/sessionstore"
)

// sessionsTimeout bounds one `gatehouse sessions` command as a whole; each
// Redis call has redis.timeout besides, and a revocation the store's own
// bound (30s).
const sessionsTimeout = 2 * time.Minute

// errMemoryStore is what `gatehouse sessions` says about the memory store.
var errMemoryStore = errors.New("session.store is memory: sessions live in the serving process's memory; use the Redis store to manage them from the command line")

const sessionsUsage = `Usage: gatehouse sessions list   (--sub S | --email E | --session SID) [--json] [--config FILE] [--set key=value ...]
       gatehouse sessions revoke (--sub S | --email E | --session SID) [--reason TEXT] [--config FILE] [--set key=value ...]

List or end users' sessions in the configured Redis, from the same configuration
as serve. 'gatehouse sessions list -h' and 'gatehouse sessions revoke -h' list the flags.
`

// sessionsCommand runs `gatehouse sessions list|revoke`.
func sessionsCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprint(stdout, sessionsUsage)
		return nil
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "revoke") {
		return usageError{errors.New("usage: gatehouse sessions list|revoke (--sub S | --email E | --session SID) (gatehouse sessions -h)")}
	}
	verb := args[0]
	fs := newFlags("sessions " + verb)
	path := fs.String("config", "", "configuration `FILE` (YAML), the one serve runs with; env GATEHOUSE_CONFIG")
	sets := setFlags{}
	fs.Var(sets, "set", "`key=value` override of a configuration key, repeatable")
	var sel sessionstore.Selector
	fs.StringVar(&sel.Subject, "sub", "", "every session of the user with this `subject` (the provider's sub claim; the login log's user)")
	fs.StringVar(&sel.Email, "email", "", "every session signed in with this email `address`, whatever its case")
	fs.StringVar(&sel.SID, "session", "", "the one session with this public `sid` (the sid claim of minted tokens, the logs' sid)")
	asJSON, reason := new(bool), new(string)
	if verb == "list" {
		fs.BoolVar(asJSON, "json", false, "print JSON instead of a table")
	} else {
		fs.StringVar(reason, "reason", "", "why, recorded in the audit log line (a ticket number, say)")
	}
	if done, err := parseFlags(fs, args[1:], stdout); done || err != nil {
		return err
	}
	n := 0
	for _, v := range []string{sel.Subject, sel.Email, sel.SID} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return usageError{fmt.Errorf("sessions %s: give exactly one of --sub, --email or --session (gatehouse sessions %s -h)", verb, verb)}
	}

	cfg, err := load(*path, sets.over(getenv))
	if err != nil {
		return err
	}
	admin, closeStore, err := openAdmin(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	ctx, cancel := context.WithTimeout(ctx, sessionsTimeout)
	defer cancel()
	if verb == "list" {
		infos, err := admin.List(ctx, sel)
		if err != nil {
			return err
		}
		if *asJSON {
			return printSessionsJSON(stdout, infos)
		}
		return printSessions(stdout, infos)
	}
	return revokeSessions(ctx, admin, sel, *reason, getenv, stdout, stderr)
}

// openAdmin connects to the Redis of cfg, checks that it answers and is
// recent enough, and returns the operator's view of it.
func openAdmin(ctx context.Context, cfg *config.Config) (*sessionstore.Admin, func(), error) {
	if cfg.Session.Store != "redis" {
		return nil, nil, errMemoryStore
	}
	keys, err := sessionstore.NewMetaKeys(cfg.CookieSecrets())
	if err != nil {
		return nil, nil, fmt.Errorf("cookie.secrets: %w", err)
	}
	store, err := app.RedisStore(cfg)
	if err != nil {
		return nil, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.Redis.DialTimeout+cfg.Redis.Timeout)
	defer cancel()
	if err := store.Check(cctx); err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("redis (redis.addrs %s): %w", strings.Join(cfg.Redis.Addrs, ","), err)
	}
	return sessionstore.NewAdmin(store, keys), func() { store.Close() }, nil
}

// revokeSessions ends the sessions and writes the audit line, as JSON on
// stderr, whatever the outcome: who ran it, what it named, how many ended.
func revokeSessions(ctx context.Context, admin *sessionstore.Admin, sel sessionstore.Selector, reason string, getenv func(string) string, stdout, stderr io.Writer) error {
	n, err := admin.Revoke(ctx, sel)
	attrs := []any{"by", osUser(getenv), "what", "cli_revoke"}
	switch {
	case sel.Subject != "":
		attrs = append(attrs, "user", sel.Subject)
	case sel.Email != "":
		attrs = append(attrs, "email", sel.Email)
	default:
		attrs = append(attrs, "sid", sel.SID)
	}
	attrs = append(attrs, "sessions", n)
	if reason != "" {
		attrs = append(attrs, "reason", reason)
	}
	audit := slog.New(slog.NewJSONHandler(stderr, nil))
	unannounced := errors.Is(err, sessionstore.ErrUnannounced)
	switch {
	case err != nil && !unannounced:
		audit.Error("audit: sessions revoked", append(attrs, "err", err)...)
		return fmt.Errorf("sessions revoke: %d sessions ended before: %w", n, err)
	case unannounced:
		audit.Warn("audit: sessions revoked", append(attrs, "err", err)...)
	default:
		audit.Info("audit: sessions revoked", attrs...)
	}
	switch {
	case n == 0:
		fmt.Fprintln(stdout, "no live session matched; nothing ended")
	case unannounced:
		fmt.Fprintf(stdout, "ended %d session(s) in Redis; the replicas could not be told, so each may serve its cached copy for up to session.cache_ttl\n", n)
	default:
		fmt.Fprintf(stdout, "ended %d session(s) on every replica\n", n)
	}
	return nil
}

// osUser names who runs the command, for the audit line: the OS account
// (in a container, the container's user; the cluster's own audit log says
// who ran kubectl exec).
func osUser(getenv func(string) string) string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	for _, k := range []string{"USER", "LOGNAME"} {
		if v := getenv(k); v != "" {
			return v
		}
	}
	if u, err := user.Current(); err == nil {
		return "uid:" + u.Uid
	}
	return "unknown"
}

// printSessions writes a table, soonest to expire first. Every value is
// cleaned of control characters: an email comes from the provider, and
// nothing a user chose may drive the operator's terminal.
func printSessions(w io.Writer, infos []sessionstore.SessionInfo) error {
	if len(infos) == 0 {
		_, err := fmt.Fprintln(w, "no live sessions")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION (sid)\tUSER (sub)\tEMAIL\tCLIENT\tDEVICE\tNETWORK\tCREATED\tLAST SEEN\tEXPIRES")
	for _, in := range infos {
		if !in.Described {
			fmt.Fprintf(tw, "-\t%s\t-\t-\t(no metadata: signed in before Gatehouse recorded any, or under a retired cookie secret)\t-\t-\t-\t%s\n",
				clean(in.Subject), stamp(in.ExpiresAt))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", clean(in.SID), clean(in.Subject), clean(in.Email),
			clean(in.Client), clean(in.Device), clean(in.Network), stamp(in.CreatedAt), stamp(in.LastSeen), stamp(in.ExpiresAt))
	}
	fmt.Fprintf(tw, "\n%d live session(s)\n", len(infos))
	return tw.Flush()
}

// sessionJSON is one line of `gatehouse sessions list --json`.
type sessionJSON struct {
	SID       string     `json:"sid,omitempty"`
	Subject   string     `json:"sub,omitempty"`
	Email     string     `json:"email,omitempty"`
	Client    string     `json:"client,omitempty"`
	Device    string     `json:"device,omitempty"`
	Network   string     `json:"network,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Described bool       `json:"described"`
}

func printSessionsJSON(w io.Writer, infos []sessionstore.SessionInfo) error {
	out := make([]sessionJSON, 0, len(infos))
	for _, in := range infos {
		out = append(out, sessionJSON{
			SID: in.SID, Subject: in.Subject, Email: in.Email, Client: in.Client, Device: in.Device, Network: in.Network,
			CreatedAt: timePtr(in.CreatedAt), LastSeen: timePtr(in.LastSeen), ExpiresAt: timePtr(in.ExpiresAt),
			Described: in.Described,
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// maxShown bounds each value a table cell shows.
const maxShown = 80

// clean makes s safe to print on a terminal: control and other
// non-printing characters become quoted escapes, and it is cut at
// maxShown runes.
func clean(s string) string {
	if s == "" {
		return "-"
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == maxShown {
			b.WriteString("…")
			break
		}
		n++
		if unicode.IsPrint(r) && r != '\t' {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}
