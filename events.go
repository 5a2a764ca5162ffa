package main

import "time"

// EventKind names what happened. The room, its sessions and the node never
// print: they emit events, and a view (human or JSON) renders them.
type EventKind string

const (
	// EventReady is emitted once, when the host listens.
	EventReady EventKind = "ready"
	// EventJoined is emitted when a chat session with a peer opens.
	EventJoined EventKind = "joined"
	// EventMessage is emitted for each line a peer sends.
	EventMessage EventKind = "message"
	// EventLeft is emitted when a chat session ends.
	EventLeft EventKind = "left"
	// EventInfo reports progress a user may want to see (bootstrap, held lines).
	EventInfo EventKind = "info"
	// EventError reports anything the user should know that does not stop the program.
	EventError EventKind = "error"
	// EventConns answers /conns: every connection to every peer in the room.
	EventConns EventKind = "conns"
	// EventPing answers /ping: the round-trip time to a peer.
	EventPing EventKind = "ping"
)

// ConnInfo describes one connection to a peer, for /conns.
type ConnInfo struct {
	Peer      string  `json:"peer"`
	Addr      string  `json:"addr"`
	Transport string  `json:"transport"`
	Security  string  `json:"security"`
	Muxer     string  `json:"muxer"`
	Direction string  `json:"direction"`
	Relayed   bool    `json:"relayed"`
	AgeMS     int64   `json:"age_ms"`
	RTTMS     float64 `json:"rtt_ms,omitempty"`
}

// Event is one thing that happened, in the form the JSON view prints it.
// Fields that do not apply to a kind are left empty and omitted.
type Event struct {
	Kind EventKind `json:"event"`
	Time time.Time `json:"time"`

	// ID and Addrs describe this node (ready).
	ID    string   `json:"id,omitempty"`
	Addrs []string `json:"addrs,omitempty"`
	// Rendezvous and Server describe what this node does (ready).
	Rendezvous string `json:"rendezvous,omitempty"`
	Server     bool   `json:"server,omitempty"`

	// Peer is the remote peer ID (joined, message, left).
	Peer string `json:"peer,omitempty"`
	// Text is a message line (message) or a notice (info). Peer-sent text is
	// kept exactly as received; views sanitize it when they display it.
	Text string `json:"text,omitempty"`
	// Error describes a problem (error).
	Error string `json:"error,omitempty"`

	// Protocol, Direction and Addr describe a session's stream (joined).
	Protocol  string `json:"protocol,omitempty"`
	Direction string `json:"direction,omitempty"`
	Addr      string `json:"addr,omitempty"`
	// Reason says why a session ended (left).
	Reason string `json:"reason,omitempty"`

	// Conns lists the connections to the room's peers (conns).
	Conns []ConnInfo `json:"conns,omitempty"`
	// RTTMS is a measured round-trip time in milliseconds (ping).
	RTTMS float64 `json:"rtt_ms,omitempty"`
}

// emitFunc hands an event to whoever renders events. It may block when the
// view is slow: the view's backpressure is the program's backpressure.
type emitFunc func(Event)
