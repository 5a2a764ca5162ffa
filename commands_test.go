package main

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/room"
	"github.com/rendezvous-chat/rendezvous-chat/internal/words"
)

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
		{"/get 1b", "/get 1b9d6bcd "},
		{"/get 1", ""}, // two handles agree on "1" only
	} {
		got, pos, ok := complete(tc.line, len(tc.line), names, []string{"1b9d6bcd", "1c00aaaa"})
		if !ok {
			got = ""
		}
		if got != tc.want || (ok && pos != len(got)) {
			t.Errorf("complete(%q) = %q, %d, %v; want %q", tc.line, got, pos, ok, tc.want)
		}
	}
}

// fakeRoom records what runCommand asks of the room.
type fakeRoom struct {
	sent, shared []string
	to           map[peer.ID]string
	pinged       []peer.ID
	nickErr      error
	peers        map[string]peer.ID
}

func (f *fakeRoom) Send(line string)              { f.sent = append(f.sent, line) }
func (f *fakeRoom) SendTo(p peer.ID, text string) { f.to[p] = text }
func (f *fakeRoom) SetNick(string) error          { return f.nickErr }
func (f *fakeRoom) PeerList() []event.PeerInfo    { return nil }
func (f *fakeRoom) Pending() []event.PendingInfo  { return nil }
func (f *fakeRoom) Conns() []event.ConnInfo       { return nil }
func (f *fakeRoom) Ping(p peer.ID)                { f.pinged = append(f.pinged, p) }
func (f *fakeRoom) Share(path string)             { f.shared = append(f.shared, path) }
func (f *fakeRoom) Fetch(string, string)          {}
func (f *fakeRoom) FindPeer(name string) (peer.ID, error) {
	if p, ok := f.peers[name]; ok {
		return p, nil
	}
	return "", &room.FindError{Code: event.NoSuchPeer, Name: name}
}

// TestRunCommand: commands call the room's API; what cannot be done is
// an error event with a code, and nothing typed as a command is sent.
func TestRunCommand(t *testing.T) {
	bob := peer.ID("bob-id")
	f := &fakeRoom{to: map[peer.ID]string{}, peers: map[string]peer.ID{"bob": bob}}
	var got []event.Event
	emit := func(e event.Event) { got = append(got, e) }
	for _, tc := range []struct {
		line string
		want commandResult
		code event.Code
	}{
		{"hello", notACommand, ""},
		{"//slash", commandDone, ""},
		{"/msg bob hi there", commandDone, ""},
		{"/msg bob", commandDone, event.Usage},
		{"/msg nobody hi", commandDone, event.NoSuchPeer},
		{"/ping bob", commandDone, ""},
		{"/send", commandDone, event.Usage},
		{"/send notes.txt", commandDone, ""},
		{"/get", commandDone, event.Usage},
		{"/mgs bob hi", commandDone, event.UnknownCommand},
		{"/quit", commandQuit, ""},
	} {
		got = nil
		if r := runCommand(f, emit, tc.line); r != tc.want {
			t.Errorf("runCommand(%q) = %v, want %v", tc.line, r, tc.want)
		}
		switch {
		case tc.code == "" && len(got) > 0:
			t.Errorf("%q: events %+v, want none", tc.line, got)
		case tc.code != "" && (len(got) != 1 || got[0].Code != tc.code || got[0].Kind != event.Error || words.Text(got[0]) == ""):
			t.Errorf("%q: events %+v, want one %s error with words", tc.line, got, tc.code)
		}
	}
	if len(f.sent) != 1 || f.sent[0] != "/slash" || f.to[bob] != "hi there" || len(f.pinged) != 1 || len(f.shared) != 1 {
		t.Errorf("the room was asked: sent %q, to %v, pinged %v, shared %q", f.sent, f.to, f.pinged, f.shared)
	}
}
