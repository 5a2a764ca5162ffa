package main

import "testing"

func TestComplete(t *testing.T) {
	names := []string{"alice", "bob", "bobby", "sam~x7Qp"}
	for _, tc := range []struct{ line, want string }{
		{"/he", "/help "},
		{"/p", ""},  // /peers, /pending, /ping: nothing in common beyond "/p"
		{"/pe", ""}, // /peers, /pending
		{"/pi", "/ping "},
		{"/msg a", "/msg alice "},
		{"/msg b", "/msg bob"}, // bob and bobby agree on "bob"
		{"/msg s", "/msg sam~x7Qp "},
		{"/ping bobb", "/ping bobby "},
		{"/msg alice hi", ""}, // the text is not completed
		{"/nick a", ""},       // nor are names after other commands
		{"hello", ""},
		{"/zz", ""},
	} {
		got, pos, ok := complete(tc.line, len(tc.line), names)
		if !ok {
			got = ""
		}
		if got != tc.want || (ok && pos != len(got)) {
			t.Errorf("complete(%q) = %q, %d, %v; want %q", tc.line, got, pos, ok, tc.want)
		}
	}
}
