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
	// EventSent is emitted for the lines we send: their message IDs, and
	// the peers they went to. Lines sent together (a paste, a pipe) share
	// one event.
	EventSent EventKind = "sent"
	// EventDelivered is emitted when every peer a line went to that can
	// send receipts (those on our own protocol) has acknowledged it. Lines
	// acknowledged together by the same peers share one event.
	EventDelivered EventKind = "delivered"
	// EventNick is emitted when a peer (or we, with Peer empty) takes a
	// new nickname, or when a peer's shown name changes to tell it apart
	// from another peer with the same nickname.
	EventNick EventKind = "nick"
	// EventPeers answers /peers: who is in the room.
	EventPeers EventKind = "peers"
	// EventPending answers /pending: our lines that some peer has not
	// acknowledged yet, and who.
	EventPending EventKind = "pending"
	// EventHelp answers /help.
	EventHelp EventKind = "help"
	// EventDirect is a direct message to us on
	// /universal-connectivity/dm/1.0.0 (a /msg from universal-connectivity
	// peers, or from ours to a peer we have no framed session with).
	EventDirect EventKind = "direct"
	// EventFile is a file a peer shared with the room (on the file topic):
	// FileID, to fetch with /get.
	EventFile EventKind = "file"
	// EventShared confirms a file we shared with /send.
	EventShared EventKind = "shared"
	// EventTransfer reports a /get: when it starts, its progress (Bytes of
	// Total, a few times a second) and, with Done, its end.
	EventTransfer EventKind = "transfer"
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

	// Nick is a peer's own nickname, sanitized (joined, message, left,
	// nick); Name is how the view shows the peer: the nickname, with a
	// short peer-ID suffix when two peers share it, or the short peer ID
	// of a peer without one. Was is the name shown before (nick).
	Nick string `json:"nick,omitempty"`
	Name string `json:"name,omitempty"`
	Was  string `json:"was,omitempty"`
	// MsgID is a message's ID (message, error); MsgIDs are the lines a
	// sent or delivered event is about. Private marks a message to one peer only
	// (/msg), and To is that peer (sent).
	MsgID   string   `json:"msg_id,omitempty"`
	MsgIDs  []string `json:"msg_ids,omitempty"`
	Private bool     `json:"private,omitempty"`
	To      string   `json:"to,omitempty"`
	// Peers are the peers a line went to (sent) or that acknowledged it
	// (delivered); NoReceipt are those that cannot acknowledge, because
	// they speak the plain protocol.
	Peers     []string `json:"peers,omitempty"`
	NoReceipt []string `json:"no_receipt,omitempty"`
	// Names are the names of Peers as the view shows them (delivered).
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
	// of ours: "topic" (the room's GossipSub topic: joined, message, left)
	// or "dm" (a direct message: sent, delivered).
	Via string `json:"via,omitempty"`
	// Topic is the topic our lines or our file went out on (sent, shared).
	Topic string `json:"topic,omitempty"`
	// Status is a direct message's response status (delivered, error).
	Status string `json:"status,omitempty"`
	// FileID, Path, Bytes and Total describe a shared file or a transfer
	// (file, shared, transfer, error); Done ends a transfer.
	FileID string `json:"file_id,omitempty"`
	Path   string `json:"path,omitempty"`
	Bytes  int64  `json:"bytes,omitempty"`
	Total  int64  `json:"total,omitempty"`
	Done   bool   `json:"done,omitempty"`
}

// emitFunc hands an event to whoever renders events. It may block when the
// view is slow: the view's backpressure is the program's backpressure.
type emitFunc func(Event)
