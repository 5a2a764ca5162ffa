// Package event holds what the chat reports: an Event is one thing that
// happened, as data. The node, the room and its sessions emit events and
// never print; a view (the terminal's or the JSON one) turns them into words.
// Every info and error event, and every left event, carries a stable machine
// Code (codes.go) and the fields that its words are made from, so that a
// script matches the code, never the English.
//
// The package is a leaf: of this module it imports only internal/safetext,
// and everything else, bench/ included, imports it.
package event

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Kind names what happened.
type Kind string

const (
	// Ready is emitted once, when the host listens.
	Ready Kind = "ready"
	// Joined is emitted when a peer joins the room: a chat session with it
	// opens, or the room's topic shows it (Via "topic").
	Joined Kind = "joined"
	// Message is emitted for each line a peer sends.
	Message Kind = "message"
	// Left is emitted when a peer leaves the room; Code says why.
	Left Kind = "left"
	// Info reports progress a user may want to see (bootstrap, held lines).
	Info Kind = "info"
	// Error reports anything the user should know that does not stop the
	// program.
	Error Kind = "error"
	// Conns answers /conns: every connection to every peer in the room.
	Conns Kind = "conns"
	// Ping answers /ping: the round-trip time to a peer.
	Ping Kind = "ping"
	// Sent is emitted for the lines we send: their message IDs, and the
	// peers they went to. Lines sent together (a paste, a pipe) share one
	// event.
	Sent Kind = "sent"
	// Delivered is emitted when every peer a line went to that can send
	// receipts (those on our own protocol) has acknowledged it. Lines
	// acknowledged together by the same peers share one event.
	Delivered Kind = "delivered"
	// Nick is emitted when a peer (or we, with Peer empty) takes a new
	// nickname, or when a peer's shown name changes to tell it apart from
	// another peer with the same nickname.
	Nick Kind = "nick"
	// Peers answers /peers: who is in the room.
	Peers Kind = "peers"
	// Pending answers /pending: our lines that some peer has not
	// acknowledged yet, and who.
	Pending Kind = "pending"
	// Help answers /help.
	Help Kind = "help"
	// Direct is a direct message to us on /universal-connectivity/dm/1.0.0
	// (a /msg from universal-connectivity peers, or from ours to a peer we
	// have no framed session with).
	Direct Kind = "direct"
	// File is a file a peer shared with the room (on the file topic):
	// FileID, to fetch with /get.
	File Kind = "file"
	// Shared confirms a file we shared with /send.
	Shared Kind = "shared"
	// Transfer reports a /get: when it starts, its progress (Bytes of
	// Total, a few times a second) and, with Done, its end.
	Transfer Kind = "transfer"
)

// Via values: how a peer or a line reached us when it was not a session
// of ours.
const (
	// ViaTopic marks peers and lines known from the room's GossipSub topic.
	ViaTopic = "topic"
	// ViaDM marks lines sent as universal-connectivity direct messages.
	ViaDM = "dm"
)

// PeerInfo describes one peer in the room, for /peers.
type PeerInfo struct {
	Peer      string `json:"peer"`
	Nick      string `json:"nick,omitempty"`
	Name      string `json:"name"`
	Protocol  string `json:"protocol"`
	Path      string `json:"path"`
	Direction string `json:"direction"`
	Addr      string `json:"addr"`
}

// PendingInfo describes one of our lines that is not yet acknowledged by
// every peer it went to, for /pending.
type PendingInfo struct {
	MsgID string `json:"msg_id"`
	Text  string `json:"text"`
	// Waiting are the peers that have not acknowledged it, by ID; Names
	// are the same peers as the view shows them.
	Waiting []string `json:"waiting"`
	Names   []string `json:"names"`
	AgeMS   int64    `json:"age_ms"`
}

// ConnInfo describes one connection to a peer, for /conns.
type ConnInfo struct {
	Peer      string  `json:"peer"`
	Name      string  `json:"name,omitempty"`
	Addr      string  `json:"addr"`
	Transport string  `json:"transport"`
	Security  string  `json:"security"`
	Muxer     string  `json:"muxer"`
	Direction string  `json:"direction"`
	Relayed   bool    `json:"relayed"`
	AgeMS     int64   `json:"age_ms"`
	RTTMS     float64 `json:"rtt_ms,omitempty"`
}

// BootstrapPeer is how the dial of one bootstrap peer went (bootstrap_*
// codes).
type BootstrapPeer struct {
	Peer string `json:"peer"`
	// Addr is the address that matters: the one we reached it at, or the
	// first we know; More counts the other addresses we know.
	Addr string `json:"addr,omitempty"`
	More int    `json:"more,omitempty"`
	// Reached says the dial succeeded; otherwise Why (a dial reason code,
	// see codes.go), Cause and WaitMS say why it failed.
	Reached bool   `json:"reached,omitempty"`
	Why     string `json:"why,omitempty"`
	Cause   string `json:"cause,omitempty"`
	WaitMS  int64  `json:"wait_ms,omitempty"`
}

// Event is one thing that happened, in the form the JSON view prints it.
// Fields that do not apply to a kind are left empty and omitted.
type Event struct {
	Kind Kind      `json:"event"`
	Time time.Time `json:"time"`
	// Code is the stable machine code of info, error and left events (see
	// codes.go); scripts match it rather than the words.
	Code Code `json:"code,omitempty"`

	// ID and Addrs describe this node (ready).
	ID    string   `json:"id,omitempty"`
	Addrs []string `json:"addrs,omitempty"`
	// Rendezvous and Server describe what this node does (ready,
	// advertising); Private, on ready, says the room is private.
	Rendezvous string `json:"rendezvous,omitempty"`
	Server     bool   `json:"server,omitempty"`

	// Peer is the remote peer ID (joined, message, left, and any event
	// about one peer).
	Peer string `json:"peer,omitempty"`
	// Text is a message line (message, sent, delivered, and errors about a
	// line) or, written by the view, the words of an info event. Peer-sent
	// text is kept exactly as received; views sanitize it when they
	// display it.
	Text string `json:"text,omitempty"`
	// Error is the words of an error event, written by the view.
	Error string `json:"error,omitempty"`

	// Protocol, Direction and Addr describe a session's stream (joined);
	// Plain marks a session on the plain protocol, which has no receipts.
	Protocol  string `json:"protocol,omitempty"`
	Direction string `json:"direction,omitempty"`
	Addr      string `json:"addr,omitempty"`
	Plain     bool   `json:"plain,omitempty"`
	// Reason is the words of a left event's Code, written by the view.
	Reason string `json:"reason,omitempty"`

	// Nick is a peer's own nickname, sanitized (joined, message, left,
	// nick); Name is how the view shows the peer: the nickname, with a
	// short peer-ID suffix when two peers share it, or the short peer ID
	// of a peer without one. Was is the name shown before (nick).
	Nick string `json:"nick,omitempty"`
	Name string `json:"name,omitempty"`
	Was  string `json:"was,omitempty"`
	// MsgID is a message's ID (message, error); MsgIDs are the lines a
	// sent, delivered, info or error event is about. Private marks a
	// message to one peer only (/msg), and To is that peer (sent).
	MsgID   string   `json:"msg_id,omitempty"`
	MsgIDs  []string `json:"msg_ids,omitempty"`
	Private bool     `json:"private,omitempty"`
	To      string   `json:"to,omitempty"`
	// Peers are the peers a line went to (sent) or that acknowledged it
	// (delivered), or that an event is about; NoReceipt are those that
	// cannot acknowledge, because they speak the plain protocol.
	Peers     []string `json:"peers,omitempty"`
	NoReceipt []string `json:"no_receipt,omitempty"`
	// Names are the names of Peers as the view shows them.
	Names []string `json:"names,omitempty"`

	// Conns lists the connections to the room's peers (conns).
	Conns []ConnInfo `json:"conns,omitempty"`
	// Room lists the peers in the room (peers); Pending lists our lines
	// not yet acknowledged (pending).
	Room    []PeerInfo    `json:"room,omitempty"`
	Pending []PendingInfo `json:"pending,omitempty"`
	// RTTMS is a measured round-trip time in milliseconds (ping).
	RTTMS float64 `json:"rtt_ms,omitempty"`

	// Via says how a peer or a line reached us when it was not a session
	// of ours: ViaTopic (joined, message, left, nick) or ViaDM (sent,
	// delivered).
	Via string `json:"via,omitempty"`
	// Topic is the topic our lines or our file went out on (sent, shared).
	Topic string `json:"topic,omitempty"`
	// Status is a direct message's response status (delivered, error).
	Status string `json:"status,omitempty"`
	// FileID, Path, Bytes and Total describe a shared file or a transfer
	// (file, shared, transfer, error); Done ends a transfer. A file event
	// from one of our peers has the file's name in Path and its size in
	// Total.
	FileID string `json:"file_id,omitempty"`
	Path   string `json:"path,omitempty"`
	Bytes  int64  `json:"bytes,omitempty"`
	Total  int64  `json:"total,omitempty"`
	Done   bool   `json:"done,omitempty"`

	// The fields below are what the words of info, error and left events
	// are made from; codes.go says which code uses which.

	// Why is a second code under Code: why a dial failed, why a line was
	// not delivered (see the Why… constants).
	Why string `json:"why,omitempty"`
	// Cause is the first line of an underlying error, when no code says
	// more; it is not stable.
	Cause string `json:"cause,omitempty"`
	// Count counts what the event is about (lines, relays, peers).
	Count int `json:"count,omitempty"`
	// Limit is the limit that applied (lines, bytes), and Rate the rate
	// per second that did.
	Limit int64   `json:"limit,omitempty"`
	Rate  float64 `json:"rate,omitempty"`
	// WaitMS is a duration that matters to the event, in milliseconds: a
	// timeout that ran out, the resend window.
	WaitMS int64 `json:"wait_ms,omitempty"`
	// Relayed says a path is relayed rather than direct (path_moved);
	// Forced says that -reachability, not AutoNAT, decided
	// (reachability_*).
	Relayed bool `json:"relayed,omitempty"`
	Forced  bool `json:"forced,omitempty"`
	// Command is the slash command an error is about.
	Command string `json:"command,omitempty"`
	// Bootstrap is how each bootstrap peer's dial went (bootstrap_*).
	Bootstrap []BootstrapPeer `json:"bootstrap,omitempty"`
}

// Emit hands an event to whoever renders events. It may block when the
// view is slow: the view's backpressure is the program's backpressure.
type Emit func(Event)

// ShortID is the short form of a peer ID shown to people: its last eight
// characters, which differ between peers (the first ones rarely do).
func ShortID(id peer.ID) string {
	return ShortIDString(id.String())
}

// ShortIDString is ShortID of a peer ID in its text form.
func ShortIDString(s string) string {
	if len(s) <= 8 {
		return s
	}
	return s[len(s)-8:]
}

// Millis is d in whole milliseconds, for the …MS fields.
func Millis(d time.Duration) int64 { return d.Milliseconds() }
