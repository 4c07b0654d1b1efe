package proxy

import (
	"strings"

	"github.com/gatehouse/gatehouse/sessionstore"
)

// rules is Policy compiled for the request path: lower-cased sets.
type rules struct {
	domains        map[string]bool
	emails         map[string]bool
	groups         []string
	verifiedEmails bool
}

func compilePolicy(p Policy) rules {
	r := rules{groups: p.AllowedGroups, verifiedEmails: p.RequireVerifiedEmail}
	if len(p.EmailDomains) > 0 {
		r.domains = make(map[string]bool, len(p.EmailDomains))
		for _, d := range p.EmailDomains {
			r.domains[strings.ToLower(d)] = true
		}
	}
	if len(p.AllowedEmails) > 0 {
		r.emails = make(map[string]bool, len(p.AllowedEmails))
		for _, e := range p.AllowedEmails {
			r.emails[strings.ToLower(e)] = true
		}
	}
	return r
}

// refuse names the global rule that refuses sess, or "" when none does.
// The name is a metric label and appears in logs and 403 answers.
func (r *rules) refuse(sess *sessionstore.Session) string {
	emailRules := r.domains != nil || r.emails != nil
	if sess.Email != "" && !sess.EmailVerified && (r.verifiedEmails || emailRules) {
		// An unverified address cannot satisfy an email rule, and with
		// require_verified_email it cannot reach an upstream at all.
		return "email_unverified"
	}
	if emailRules && sess.Email == "" {
		return "email_missing"
	}
	if r.domains != nil {
		_, domain, _ := strings.Cut(sess.Email, "@")
		if !r.domains[strings.ToLower(domain)] {
			return "email_domain"
		}
	}
	if r.emails != nil && !r.emails[strings.ToLower(sess.Email)] {
		return "allowed_emails"
	}
	if !allowed(r.groups, sess.Groups) {
		return "allowed_groups"
	}
	return ""
}
