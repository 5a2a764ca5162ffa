package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/room"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A commandResult says what the input loop does with a line after
// runCommand.
type commandResult int

const (
	// notACommand: send the line as a message.
	notACommand commandResult = iota
	// commandDone: the line was a command (or a mistyped one) and is done.
	commandDone
	// commandQuit: leave the chat.
	commandQuit
)

// commands are the chat's commands, as /help lists them.
var commands = []struct{ usage, what string }{
	{"/help", "list the commands"},
	{"/peers", "who is in the room: name, peer ID, protocol and path"},
	{"/nick NAME", "change your nickname and tell the room"},
	{"/msg PEER TEXT", "send TEXT to one peer only (PEER: a name, or part of a peer ID)"},
	{"/send PATH", "share a file with the room; peers fetch it with /get"},
	{"/get FILE [PATH]", "fetch a file shared in the room: FILE is its handle or ID (ID@PEER when two share one ID)"},
	{"/pending", "your lines some peer has not acknowledged yet, and who"},
	{"/ping [PEER]", "measure the round-trip time to a peer"},
	{"/conns", "every connection to the room: address, transport, security, path, age, RTT"},
	{"/quit", "leave the chat (so does Ctrl-D)"},
	{"//TEXT", "send a line that starts with /"},
}

// The room API the commands use: *room.Room, or a stand-in in tests.
type commandRoom interface {
	Send(line string)
	SendTo(p peer.ID, text string)
	SetNick(nick string) error
	PeerList() []event.PeerInfo
	Pending() []event.PendingInfo
	Conns() []event.ConnInfo
	Ping(p peer.ID)
	FindPeer(name string) (peer.ID, error)
	Share(path string)
	Fetch(id, path string)
}

// runCommand carries out a line typed as a command: it parses it and calls
// the room's API; what the room does, it reports itself. A line that starts
// with "/" is never sent by mistake: an unknown command gets a hint, and
// "//" sends the rest of the line, starting with "/".
func runCommand(r commandRoom, emit event.Emit, line string) commandResult {
	if !strings.HasPrefix(line, "/") {
		return notACommand
	}
	if strings.HasPrefix(line, "//") {
		r.Send(line[1:])
		return commandDone
	}
	name, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	arg = strings.TrimSpace(arg)
	usage := func() { emit(event.Event{Kind: event.Error, Code: event.Usage, Command: name}) }
	switch name {
	case "/help":
		emit(event.Event{Kind: event.Help, Text: helpText()})
	case "/peers":
		emit(event.Event{Kind: event.Peers, Room: r.PeerList()})
	case "/nick":
		if err := r.SetNick(arg); err != nil {
			emit(event.Event{Kind: event.Error, Code: event.NickInvalid, Command: name, Cause: err.Error()})
		}
	case "/msg":
		who, text, _ := strings.Cut(arg, " ")
		text = strings.TrimLeft(text, " ")
		if who == "" || text == "" {
			usage()
			break
		}
		if p, ok := findPeer(r, emit, name, who); ok {
			r.SendTo(p, text)
		}
	case "/send":
		if arg == "" {
			usage()
			break
		}
		r.Share(arg)
	case "/get":
		id, path, _ := strings.Cut(arg, " ")
		if id == "" {
			usage()
			break
		}
		r.Fetch(id, strings.TrimSpace(path))
	case "/pending":
		emit(event.Event{Kind: event.Pending, Pending: r.Pending()})
	case "/conns":
		emit(event.Event{Kind: event.Conns, Conns: r.Conns()})
	case "/ping":
		if p, ok := findPeer(r, emit, name, arg); ok {
			r.Ping(p)
		}
	case "/quit", "/exit":
		return commandQuit
	default:
		emit(event.Event{Kind: event.Error, Code: event.UnknownCommand, Command: name})
	}
	return commandDone
}

// findPeer finds the peer a command names, or says why it cannot.
func findPeer(r commandRoom, emit event.Emit, command, name string) (peer.ID, bool) {
	p, err := r.FindPeer(name)
	if err == nil {
		return p, true
	}
	e := event.Event{Kind: event.Error, Code: event.NoSuchPeer, Command: command, Name: name, Cause: err.Error()}
	var fe *room.FindError
	if errors.As(err, &fe) {
		e.Code, e.Count, e.Cause = fe.Code, fe.Count, ""
	}
	emit(e)
	return "", false
}

// complete completes the word before the cursor, for Tab in the line
// editor: a command name at the start of the line, a peer's name after the
// commands that take one, and a file's handle after /get. An ambiguous word
// is completed as far as all the candidates agree.
func complete(line string, pos int, names, files []string) (string, int, bool) {
	if pos != len(line) || !strings.HasPrefix(line, "/") {
		return "", 0, false
	}
	var candidates []string
	word := line
	if i := strings.IndexByte(line, ' '); i < 0 {
		for _, c := range commands {
			if name, _, _ := strings.Cut(c.usage, " "); !strings.HasPrefix(name, "//") {
				candidates = append(candidates, name+" ")
			}
		}
	} else if cmd := line[:i]; (cmd == "/msg" || cmd == "/ping") && !strings.Contains(line[i+1:], " ") {
		word = line[i+1:]
		for _, n := range names {
			candidates = append(candidates, n+" ")
		}
	} else if cmd == "/get" && !strings.Contains(line[i+1:], " ") {
		word = line[i+1:]
		for _, f := range files {
			candidates = append(candidates, f+" ")
		}
	}
	var match []string
	for _, c := range candidates {
		if strings.HasPrefix(c, word) {
			match = append(match, c)
		}
	}
	if len(match) == 0 {
		return "", 0, false
	}
	common := match[0]
	for _, m := range match[1:] {
		for !strings.HasPrefix(m, common) {
			common = common[:len(common)-1]
		}
	}
	if len(common) <= len(word) {
		return "", 0, false
	}
	newLine := line[:len(line)-len(word)] + common
	return newLine, len(newLine), true
}

// helpText is the answer to /help.
func helpText() string {
	var b strings.Builder
	for _, c := range commands {
		fmt.Fprintf(&b, "%-16s %s\n", c.usage, c.what)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
