package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// pingCommandTimeout bounds /ping.
const pingCommandTimeout = 5 * time.Second

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
	{"/get ID [PATH]", "fetch a file shared in the room (to PATH, or a file named after its ID)"},
	{"/pending", "your lines some peer has not acknowledged yet, and who"},
	{"/ping [PEER]", "measure the round-trip time to a peer"},
	{"/conns", "every connection to the room: address, transport, security, path, age, RTT"},
	{"/quit", "leave the chat (so does Ctrl-D)"},
	{"//TEXT", "send a line that starts with /"},
}

// runCommand carries out a line typed as a command. A line that starts with
// "/" is never sent by mistake: an unknown command gets a hint, and "//"
// sends the rest of the line, starting with "/".
func (r *Room) runCommand(line string) commandResult {
	if !strings.HasPrefix(line, "/") {
		return notACommand
	}
	if strings.HasPrefix(line, "//") {
		r.Send(line[1:])
		return commandDone
	}
	name, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	arg = strings.TrimSpace(arg)
	switch name {
	case "/help":
		r.emit(Event{Kind: EventHelp, Text: helpText()})
	case "/peers":
		r.emit(Event{Kind: EventPeers, Room: r.PeerList()})
	case "/nick":
		if err := r.SetNick(arg); err != nil {
			r.emit(Event{Kind: EventError, Error: "/nick: " + err.Error()})
		}
	case "/msg":
		r.msgCommand(arg)
	case "/send":
		if arg == "" {
			r.emit(Event{Kind: EventError, Error: "/send: give the path of a file, e.g. /send notes.txt"})
			break
		}
		r.shareFile(arg)
	case "/get":
		id, path, _ := strings.Cut(arg, " ")
		if id == "" {
			r.emit(Event{Kind: EventError, Error: "/get: give a file's ID (as shown when it was shared), e.g. /get 1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"})
			break
		}
		r.fetchFile(id, strings.TrimSpace(path))
	case "/pending":
		r.emit(Event{Kind: EventPending, Pending: r.Pending()})
	case "/conns":
		r.emit(Event{Kind: EventConns, Conns: r.Conns()})
	case "/ping":
		r.pingCommand(arg)
	case "/quit", "/exit":
		return commandQuit
	default:
		r.emit(Event{Kind: EventError, Error: fmt.Sprintf(
			"unknown command %s: /help lists the commands; to send a line that starts with /, type //", sanitize(name))})
	}
	return commandDone
}

// complete completes the word before the cursor, for Tab in the line
// editor: a command name at the start of the line, and a peer's name after
// the commands that take one. An ambiguous word is completed as far as all
// the candidates agree.
func complete(line string, pos int, names []string) (string, int, bool) {
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

// Names returns the names the room's peers are shown by.
func (r *Room) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.sessions)+len(r.members))
	for _, s := range r.sessions {
		names = append(names, s.name())
	}
	for _, m := range r.members {
		names = append(names, m.name)
	}
	slices.Sort(names)
	return names
}

// helpText is the answer to /help.
func helpText() string {
	var b strings.Builder
	for _, c := range commands {
		fmt.Fprintf(&b, "%-16s %s\n", c.usage, c.what)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// msgCommand sends a private line: "/msg PEER TEXT".
func (r *Room) msgCommand(arg string) {
	name, text, _ := strings.Cut(arg, " ")
	text = strings.TrimLeft(text, " ")
	if name == "" || text == "" {
		r.emit(Event{Kind: EventError, Error: "/msg: give a peer and a text, e.g. /msg alice see you at 5"})
		return
	}
	p, err := r.findPeer(name)
	if err != nil {
		r.emit(Event{Kind: EventError, Error: "/msg: " + err.Error()})
		return
	}
	if r.hasSession(p) {
		r.send([]string{text}, p)
		return
	}
	// A peer we know from the topic only: universal-connectivity's direct
	// messages reach it, whatever program it runs.
	r.sendDirect(p, text)
}

// PeerList describes everyone in the room, for /peers.
func (r *Room) PeerList() []PeerInfo {
	r.mu.Lock()
	sessions := make([]*session, 0, len(r.sessions))
	for _, s := range r.sessions {
		sessions = append(sessions, s)
	}
	list := make([]PeerInfo, 0, len(sessions)+len(r.members))
	for p, m := range r.members {
		list = append(list, PeerInfo{Peer: p.String(), Nick: m.nick, Name: m.name, Protocol: r.gossip.cfg.Topic, Path: viaTopic})
	}
	r.mu.Unlock()
	for _, s := range sessions {
		st := s.currentStream()
		list = append(list, PeerInfo{
			Peer:      s.peerID,
			Nick:      s.nick(),
			Name:      s.name(),
			Protocol:  string(st.Protocol()),
			Path:      pathName(st.Conn()),
			Direction: s.direction,
			Addr:      st.Conn().RemoteMultiaddr().String(),
		})
	}
	slices.SortFunc(list, func(a, b PeerInfo) int { return strings.Compare(a.Name, b.Name) })
	return list
}

// Pending lists our lines that some peer has not acknowledged, for
// /pending.
func (r *Room) Pending() []PendingInfo {
	list := []PendingInfo{}
	for _, e := range r.receipts.pending() {
		list = append(list, PendingInfo{
			MsgID:   e.o.id,
			Text:    e.o.text,
			Waiting: peerStrings(e.peers),
			Names:   r.nameList(e.peers),
			AgeMS:   time.Since(e.o.sent).Milliseconds(),
		})
	}
	return list
}

// Conns describes every connection to every peer in the room: the view a
// developer wants when showing how two peers are connected.
func (r *Room) Conns() []ConnInfo {
	conns := []ConnInfo{}
	for _, p := range r.Peers() {
		rtt := r.host.Peerstore().LatencyEWMA(p)
		name := r.namesOf([]peer.ID{p})
		for _, c := range r.host.Network().ConnsToPeer(p) {
			stat, state := c.Stat(), c.ConnState()
			addr := c.RemoteMultiaddr()
			conns = append(conns, ConnInfo{
				Peer:      p.String(),
				Name:      name,
				Addr:      addr.String(),
				Transport: transportName(addr, state.Transport),
				Security:  string(state.Security),
				Muxer:     string(state.StreamMultiplexer),
				Direction: strings.ToLower(stat.Direction.String()),
				Relayed:   stat.Limited || isRelayed(addr),
				AgeMS:     time.Since(stat.Opened).Milliseconds(),
				RTTMS:     float64(rtt.Microseconds()) / 1000,
			})
		}
	}
	return conns
}

// transportName names the transport of a connection: "tcp", "quic-v1",
// "relay over tcp"...
func transportName(addr ma.Multiaddr, fromState string) string {
	name := fromState
	if name == "" || isRelayed(addr) {
		// A relayed connection's state names the relay's own transport
		// only sometimes; the address always does.
		name = "?"
	scan:
		for _, c := range addr {
			switch c.Protocol().Code {
			case ma.P_CIRCUIT:
				break scan // what follows is the relay's hop to the peer
			case ma.P_TCP, ma.P_QUIC_V1, ma.P_WEBTRANSPORT, ma.P_WS, ma.P_WSS, ma.P_WEBRTC_DIRECT:
				name = c.Protocol().Name
			}
		}
	}
	if isRelayed(addr) && !strings.Contains(name, "relay") {
		name = "relay/" + name
	}
	return name
}

func isRelayed(addr ma.Multiaddr) bool {
	_, err := addr.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// pingCommand measures the round-trip time to a room peer named by a prefix
// or suffix of its ID (the short form the view shows will do), in the
// background so that typing goes on.
func (r *Room) pingCommand(name string) {
	p, err := r.findPeer(name)
	if err != nil {
		r.emit(Event{Kind: EventError, Error: "/ping: " + err.Error()})
		return
	}
	if !r.startBackground() {
		return
	}
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(r.ctx, "ping"), pingCommandTimeout)
		defer cancel()
		start := time.Now()
		if err := r.ping(ctx, p); err != nil {
			r.emit(Event{Kind: EventError, Peer: p.String(), Error: fmt.Sprintf("/ping %s: %v", r.namesOf([]peer.ID{p}), err)})
			return
		}
		rtt := time.Since(start)
		if l := r.host.Peerstore().LatencyEWMA(p); l > 0 && l < rtt {
			rtt = l // ping recorded the exact round trip; ours includes opening the stream
		}
		r.emit(Event{Kind: EventPing, Peer: p.String(), Name: r.namesOf([]peer.ID{p}), RTTMS: float64(rtt.Microseconds()) / 1000})
	}()
}

// findPeer returns the one room peer named by name: the name the view
// shows, its nickname, or a prefix or suffix of its peer ID (the short
// form the view shows will do); with an empty name, the only peer in the
// room.
func (r *Room) findPeer(name string) (peer.ID, error) {
	type known struct {
		id               peer.ID
		idText, nick, nm string
	}
	r.mu.Lock()
	peers := make([]known, 0, len(r.sessions)+len(r.members))
	for _, s := range r.sessions {
		peers = append(peers, known{s.peer, s.peerID, s.nick(), s.name()})
	}
	for p, m := range r.members {
		peers = append(peers, known{p, p.String(), m.nick, m.name})
	}
	r.mu.Unlock()
	var byName, byNick, byID []peer.ID
	for _, k := range peers {
		switch {
		case name == "" || k.nm == name:
			byName = append(byName, k.id)
		case k.nick == name:
			byNick = append(byNick, k.id)
		case strings.HasPrefix(k.idText, name) || strings.HasSuffix(k.idText, name):
			byID = append(byID, k.id)
		}
	}
	for _, found := range [][]peer.ID{byName, byNick, byID} {
		switch {
		case len(found) == 1:
			return found[0], nil
		case len(found) > 1 && name != "":
			return "", fmt.Errorf("%d peers match %q: give their name as shown, with its ~ suffix, or more of the peer ID", len(found), sanitize(name))
		case len(found) > 1:
			return "", fmt.Errorf("%d peers are in the room: say which", len(found))
		}
	}
	if name == "" {
		return "", fmt.Errorf("nobody is in the room")
	}
	return "", fmt.Errorf("no peer in the room matches %q (/peers lists them)", sanitize(name))
}
