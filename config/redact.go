package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// redactedValue replaces every secret that is set in Redacted's output.
const redactedValue = "REDACTED"

// Redacted returns the effective configuration as nested maps keyed like the
// YAML file, for `gatehouse config check --print`. Every secret that is set
// is replaced by "REDACTED" (an unset one stays empty, so the output shows
// whether it is set); durations are written like the file's ("30m", "1h30m");
// routes show their defaulted audience.
func (c *Config) Redacted() map[string]any {
	eff := *c
	if len(c.Routes) > 0 {
		eff.Routes = c.EffectiveRoutes()
	}
	return redactStruct(eff)
}

// redactStruct walks a config struct by its mapstructure tags; fields tagged
// secret:"true" are redacted.
func redactStruct(v any) map[string]any {
	m, _ := redactValue(reflect.ValueOf(v)).(map[string]any)
	return m
}

var durationType = reflect.TypeFor[time.Duration]()

func redactValue(v reflect.Value) any {
	if v.Type() == durationType {
		return formatDuration(time.Duration(v.Int()))
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		m := make(map[string]any, t.NumField())
		for i := range t.NumField() {
			f := t.Field(i)
			key := f.Tag.Get("mapstructure")
			if !f.IsExported() || key == "" {
				continue
			}
			if f.Tag.Get("secret") == "true" {
				m[key] = redactSecret(v.Field(i))
				continue
			}
			m[key] = redactValue(v.Field(i))
		}
		return m
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.String {
			out := make([]string, v.Len())
			for i := range out {
				out[i] = v.Index(i).String()
			}
			return out
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = redactValue(v.Index(i))
		}
		return out
	case reflect.Map:
		out := make(map[string]any, v.Len())
		iter := v.MapRange()
		for iter.Next() {
			out[iter.Key().String()] = redactValue(iter.Value())
		}
		return out
	}
	return v.Interface()
}

// redactSecret redacts a string or each element of a string list, keeping
// empty values empty.
func redactSecret(v reflect.Value) any {
	if v.Kind() == reflect.Slice {
		out := make([]string, v.Len())
		for i := range out {
			if v.Index(i).String() != "" {
				out[i] = redactedValue
			}
		}
		return out
	}
	if v.String() == "" {
		return ""
	}
	return redactedValue
}

// formatDuration writes d the way a user would: "30m", not "30m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// formatRedacted formats a config struct as "{key:value ...}" with its
// secrets redacted and its keys sorted.
func formatRedacted(v any) string {
	m := redactStruct(v)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%v", k, m[k])
	}
	b.WriteByte('}')
	return b.String()
}
