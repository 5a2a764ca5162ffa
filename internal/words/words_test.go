package words

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// eventConsts returns the names and values of the string constants of
// internal/event/codes.go whose name starts with prefix.
func eventConsts(t *testing.T, prefix string, typed bool) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../event/codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			isCode := vs.Type != nil
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, prefix) || isCode != typed || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
					consts[n.Name] = strings.Trim(lit.Value, `"`)
				}
			}
		}
	}
	if len(consts) == 0 {
		t.Fatalf("no constants %s… in codes.go", prefix)
	}
	return consts
}

// TestEveryCodeHasWords: every code of an info, error or left event is
// said in words, so that no event reaches a person as a bare code.
func TestEveryCodeHasWords(t *testing.T) {
	for name, code := range eventConsts(t, "", true) {
		e := event.Event{Code: event.Code(code), Peer: "12D3KooWPeerIDForTheWordsTest", Name: "bob", Count: 2,
			Limit: 64 << 10, WaitMS: 5000, Command: "/msg", Text: "hi", Cause: "a cause"}
		var got string
		if strings.HasPrefix(name, "Left") {
			e.Kind = event.Left
			got = Reason(e)
		} else {
			e.Kind = event.Error
			got = Text(e)
		}
		if got == "" || got == code {
			t.Errorf("%s (%q) has no words", name, code)
		}
	}
}

// TestDialWords: every dial reason reads as a few plain words on one line,
// and a timeout says the bound that ran out.
func TestDialWords(t *testing.T) {
	dial := []string{event.WhyMismatch, event.WhyNoReservation, event.WhyRefused, event.WhyOurLimit, event.WhyFiltered,
		event.WhyRelayFull, event.WhyNoAddrs, event.WhyNoGoodAddrs, event.WhyNoRoute, event.WhyTimeout, event.WhyBackoff,
		event.WhyCancelled, event.WhyOnlyPrivate, event.WhyNoDNS}
	for _, why := range dial {
		if got := dialWords(why, "", 0); got == "" || strings.Contains(got, "\n") || strings.Contains(got, "failed to dial") {
			t.Errorf("dialWords(%s) = %q", why, got)
		}
	}
	if got := dialWords(event.WhyTimeout, "", (10 * time.Second).Milliseconds()); got != "no answer in 10s" {
		t.Errorf("a timeout reads %q, want %q", got, "no answer in 10s")
	}
	if got := dialWords(event.WhyOther, "failed to negotiate security protocol: EOF", 0); got != "failed to negotiate security protocol: EOF" {
		t.Errorf("another reason reads %q, want its cause", got)
	}
}

// TestBootstrapWords: the bootstrap report names the peers that answered,
// with their address, and groups the others by reason.
func TestBootstrapWords(t *testing.T) {
	a, b, c := "12D3KooWaaaaaaaaAAAAAAAA", "12D3KooWbbbbbbbbBBBBBBBB", "12D3KooWccccccccCCCCCCCC"
	e := event.Event{Kind: event.Info, Code: event.BootstrapConnected, Count: 1, Total: 3, Bootstrap: []event.BootstrapPeer{
		{Peer: a, Addr: "/ip4/127.0.0.1/tcp/4001", More: 1, Reached: true},
		{Peer: b, Addr: "/ip4/127.0.0.1/tcp/1", Why: event.WhyRefused},
		{Peer: c, Addr: "/ip4/127.0.0.1/tcp/2", Why: event.WhyRefused},
	}}
	want := "connected to 1 of 3 bootstrap peers: AAAAAAAA (/ip4/127.0.0.1/tcp/4001 +1); " +
		"not reached: BBBBBBBB (/ip4/127.0.0.1/tcp/1), CCCCCCCC (/ip4/127.0.0.1/tcp/2): refused (nothing listening)"
	if got := Text(e); got != want {
		t.Errorf("words = %q\nwant    %q", got, want)
	}
	e.Kind, e.Code, e.Count, e.Why, e.Bootstrap = event.Error, event.BootstrapUnreachable, 0, event.WhyInboundOnly, e.Bootstrap[1:]
	if got := Text(e); !strings.HasPrefix(got, "no bootstrap peer reachable: ") || !strings.Contains(got, "only peers that dial us can join") {
		t.Errorf("words = %q", got)
	}
}
