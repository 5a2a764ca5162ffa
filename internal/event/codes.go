package event

// Code is the stable machine code of an info, error or left event. A code,
// once published, keeps its meaning: scripts match it. docs/json-events.md
// lists every code with its fields; a test checks that the list and the
// constants agree.
type Code string

// Codes of the node: the host, the DHT, discovery and reachability.
const (
	// BootstrapConnected (info): Count of the Bootstrap peers answered
	// (Total tried); the others' Why.
	BootstrapConnected Code = "bootstrap_connected"
	// BootstrapUnreachable (error): no bootstrap peer answered; Bootstrap
	// says why for each. Why is WhyMDNSOnly when mDNS can still find peers
	// on the LAN, WhyInboundOnly when only peers that dial us can join.
	BootstrapUnreachable Code = "bootstrap_unreachable"
	// DHTLost (error): no DHT peer is connected any more; the node dials
	// the bootstrap peers again.
	DHTLost Code = "dht_lost"
	// Advertising (info): our record is stored at Rendezvous.
	Advertising Code = "advertising"
	// MDNSFailed (error): mDNS could not start; Cause.
	MDNSFailed Code = "mdns_failed"
	// ReachabilityPublic and ReachabilityPrivate (info): what the host
	// learned of its reachability; Forced when -reachability said it.
	ReachabilityPublic  Code = "reachability_public"
	ReachabilityPrivate Code = "reachability_private"
	// RelayReserved (info): a relay (Peer) holds a slot for us again after
	// NoRelay.
	RelayReserved Code = "relay_reserved"
	// NoRelay (error): behind NAT with no relay slot; Count is how many
	// relays we know.
	NoRelay Code = "no_relay"
	// NotMember (info): in a private room, Peer tried to open a chat
	// without proving it holds the room's passphrase; it was refused (said
	// once per peer).
	NotMember Code = "not_member"
	// PeerUnreachable (info): a peer found at the rendezvous could not be
	// reached; Why is a dial reason, with Cause and WaitMS.
	PeerUnreachable Code = "peer_unreachable"
)

// Codes of the configuration, said once at start.
const (
	// WebServing (info): the room's page is served at Addr (-web).
	WebServing Code = "web_serving"
	// PSKNoBootstrap (info): a private network has no public bootstrap
	// peers; give a -peer.
	PSKNoBootstrap Code = "psk_no_bootstrap"
	// PSKTCPOnly (info): QUIC is off in a private network.
	PSKTCPOnly Code = "psk_tcp_only"
)

// Codes of the room's sessions and lines.
const (
	// ConnectedDirectly (info): a peer known from the topic now has a
	// session with us (Protocol, Direction).
	ConnectedDirectly Code = "connected_directly"
	// Resending (info): Count lines that Peer had not acknowledged are sent
	// again.
	Resending Code = "resending"
	// HeldSent (info): Count held lines go to Peer, who joined.
	HeldSent Code = "held_sent"
	// Held (info): nobody is here; the lines MsgIDs are held, Count in all.
	Held Code = "held"
	// HeldFull (error): the lines MsgIDs are not sent: Limit lines are held
	// already.
	HeldFull Code = "held_full"
	// HeldUndelivered (error): Count held lines, MsgIDs, were never
	// delivered: nobody joined before we left, or within the resend window.
	HeldUndelivered Code = "held_undelivered"
	// Undelivered (error): as we leave, Count lines were not delivered, or
	// not known to be: MsgIDs are (the first thousand of) them. The program
	// then exits with status 3 when its input was not a terminal.
	Undelivered Code = "undelivered"
	// Stalled (error): input stopped being read: nobody joined while Limit
	// lines were held, for WaitMS (-linger).
	Stalled Code = "stalled"
	// StillRelayed (info): the chat with Peer stays on a relay: no direct
	// path found so far.
	StillRelayed Code = "still_relayed"
	// PathMoved (info): the chat with Peer moved to another connection
	// (Addr; Relayed or direct).
	PathMoved Code = "path_moved"
	// UnackedOnLeave (info): Count lines to Peer, who left, are not
	// acknowledged yet; they are sent again if it is back within WaitMS.
	UnackedOnLeave Code = "unacked_on_leave"
	// UnackedAtExit (error): Count lines were not acknowledged by Peer
	// before we left.
	UnackedAtExit Code = "unacked_at_exit"
	// ReconnectFailed (info): the room gave up reconnecting to Peer;
	// discovery keeps looking for it.
	ReconnectFailed Code = "reconnect_failed"
	// LineTooLong (error): a line is not sent: it is Bytes long (0 when
	// unknown), over Limit bytes.
	LineTooLong Code = "line_too_long"
	// NotSentClosing (error): Count lines (Private: a private one) are not
	// sent: we are leaving.
	NotSentClosing Code = "not_sent_closing"
	// PrivatePeerLeft (error): a private line is not sent: Peer left.
	PrivatePeerLeft Code = "private_peer_left"
	// NotDelivered (error): the line MsgID (Text) did not reach Peer, or
	// Peers; Why says why (WhySessionEnded, WhyClosing, WhyNotReading,
	// WhyWindowFull, WhyNoReceipt), with WaitMS and Limit.
	NotDelivered Code = "not_delivered"
	// LinesLost (error): Count lines to Peer, on the plain protocol, were
	// lost when writing failed (Cause).
	LinesLost Code = "lines_lost"
	// FlushFailed (error): the last lines to Peer may not have been
	// delivered (Cause).
	FlushFailed Code = "flush_failed"
	// ProtocolViolation (error): Peer sent an oversized line (Plain; Limit
	// bytes) or a frame that breaks the protocol (Cause); the stream was
	// reset.
	ProtocolViolation Code = "protocol_violation"
	// OverRate (error, or info when some peers got them): Count lines,
	// MsgIDs, were over the topic's rate (Limit at once, then Rate a
	// second); Peers are the directly connected peers that got them.
	OverRate Code = "over_rate"
	// NotPublished (error): the line MsgID (Text) was not published on the
	// room's topic (Cause).
	NotPublished Code = "not_published"
)

// Codes of direct messages and files.
const (
	// DirectFlood (error): Peer sent more than Limit direct messages at
	// once; they are refused.
	DirectFlood Code = "direct_flood"
	// DirectMalformed (error): a direct message from Peer was refused
	// (Cause).
	DirectMalformed Code = "direct_malformed"
	// DirectFailed (error): a private line (Text) did not reach Peer as a
	// direct message; Why is WhyNotSupported, WhyStatus (Status, Cause) or
	// WhyOther (Cause).
	DirectFailed Code = "direct_failed"
	// FilesOff (error): Command needs the room's topic, which -gossip=false
	// turns off.
	FilesOff Code = "files_off"
	// ShareFailed (error): /send of Path failed (Cause).
	ShareFailed Code = "share_failed"
	// FileTooLarge (error): /send of Path refused: Bytes is over Limit
	// (-max-file).
	FileTooLarge Code = "file_too_large"
	// FileUnknown (error): /get of FileID (from Name, when the command named
	// an author): nobody shared it here.
	FileUnknown Code = "file_unknown"
	// AmbiguousFile (error): /get of FileID: Count files match it (an ID
	// that two peers announced, or a handle that starts two IDs); name the
	// author with ID@PEER, or give more of the ID.
	AmbiguousFile Code = "ambiguous_file"
	// FetchFailed (error): /get of FileID from Peer into Path failed; Why
	// is WhyNotSupported, WhyExists, WhyUnavailable, WhyTooLarge (Limit),
	// WhyLengthMismatch or WhyOther (Cause).
	FetchFailed Code = "fetch_failed"
)

// Codes of the user's input and commands.
const (
	// UnknownCommand (error): Command is not a command.
	UnknownCommand Code = "unknown_command"
	// Usage (error): Command was given without what it needs.
	Usage Code = "usage"
	// NickInvalid (error): the nickname asked for is refused (Cause).
	NickInvalid Code = "nick_invalid"
	// NoSuchPeer (error): Command names Name, which matches no peer in the
	// room.
	NoSuchPeer Code = "no_such_peer"
	// AmbiguousPeer (error): Command names Name, which matches Count peers;
	// with Name empty, the room has Count peers: say which.
	AmbiguousPeer Code = "ambiguous_peer"
	// RoomEmpty (error): Command needs a peer, and nobody is in the room.
	RoomEmpty Code = "room_empty"
	// PingFailed (error): /ping of Peer got no answer (Cause).
	PingFailed Code = "ping_failed"
	// NotAdmitted (error): in a private room, Command needs Peer to have a
	// chat session with us (it proved its membership there): direct
	// messages and files go to admitted peers only.
	NotAdmitted Code = "not_admitted"
	// InputFailed (error): reading the input failed (Cause).
	InputFailed Code = "input_failed"
)

// Codes of left events: why a peer left.
const (
	// LeftClosed: the peer closed the chat.
	LeftClosed Code = "closed"
	// LeftRefused: the peer reset the chat on a live connection.
	LeftRefused Code = "reset"
	// LeftConnReset: the connection was reset.
	LeftConnReset Code = "conn_reset"
	// LeftConnLost: the connection broke (Cause).
	LeftConnLost Code = "conn_lost"
	// LeftWriteFailed: sending to the peer failed (Cause).
	LeftWriteFailed Code = "write_failed"
	// LeftNotAnswering: no ping reply for WaitMS.
	LeftNotAnswering Code = "not_answering"
	// LeftProtocol: the peer broke the chat protocol.
	LeftProtocol Code = "protocol_violation"
	// LeftWeLeft: we left (never shown: we are gone).
	LeftWeLeft Code = "we_left"
	// LeftBye, LeftPresenceTimeout and LeftPresenceSilent: a member known
	// from the topic said bye, stopped announcing itself, or went silent.
	LeftBye             Code = "bye"
	LeftPresenceTimeout Code = "presence_timeout"
	LeftPresenceSilent  Code = "presence_silent"
)

// Why values: a second code, under Code.
const (
	// Bootstrap hints (BootstrapUnreachable).
	WhyMDNSOnly    = "mdns_only"
	WhyInboundOnly = "inbound_only"

	// Dial reasons (BootstrapPeer.Why, PeerUnreachable), the most telling
	// first.
	WhyMismatch      = "peer_id_mismatch" // another peer answers at its address
	WhyNoReservation = "no_reservation"   // its relay no longer holds a slot for it
	WhyRefused       = "refused"          // nothing listening
	WhyOurLimit      = "our_limit"        // our connection limits are reached
	WhyFiltered      = "filtered"         // our -allow/-deny filters
	WhyRelayFull     = "relay_full"       // its relay is full
	WhyNoAddrs       = "no_addrs"         // no address known for it
	WhyNoGoodAddrs   = "no_good_addrs"    // none of its addresses can be dialed from here
	WhyNoRoute       = "no_route"         // no route to its addresses
	WhyTimeout       = "timeout"          // no answer (within WaitMS, when set)
	WhyBackoff       = "backoff"          // a dial failed moments ago
	WhyCancelled     = "cancelled"
	WhyOnlyPrivate   = "only_private" // it lists only private addresses, none reachable
	WhyNoDNS         = "no_dns"       // its DNS name gave no address we can dial
	WhyOther         = "other"        // see Cause

	// Why a line was not delivered (NotDelivered).
	WhySessionEnded = "session_ended"
	WhyClosing      = "closing"
	WhyNotReading   = "not_reading" // the peer has not read for WaitMS
	WhyWindowFull   = "window_full" // Limit lines have waited for its receipts for WaitMS
	WhyNoReceipt    = "no_receipt"  // no receipt within WaitMS

	// Why a direct message or a fetch failed (DirectFailed, FetchFailed).
	WhyNotSupported   = "not_supported" // the peer does not speak the protocol
	WhyStatus         = "status"        // refused with Status
	WhyExists         = "exists"        // the destination exists
	WhyUnavailable    = "unavailable"   // the peer did not serve the file
	WhyTooLarge       = "too_large"     // over Limit bytes
	WhyLengthMismatch = "length_mismatch"
)
