// Package gossiproom is the engine for big chat rooms: a room is a GossipSub
// topic (go-libp2p-pubsub v0.19.0), so a line costs each peer about the same
// whether the room holds ten peers or five hundred, instead of one write per
// peer over a full mesh of streams. The chat's room drives it: its GossipSub
// topic, its presence, its file topic and the dial policy of a big room all
// come from here.
//
// # The topic
//
// New starts a GossipSub router on a host and joins the topic whose name is
// the room's name, exactly. Messages are signed and signatures required
// (StrictSign), message IDs are the library's default (the author's peer ID
// followed by the sequence number, pubsub.DefaultMsgIdFn), and the payload
// of a chat message is the line as raw UTF-8, nothing around it. That is the
// contract of libp2p's universal-connectivity chat, so in the room
// "universal-connectivity" our peers chat with its Go, Rust, Nim and browser
// peers; its peers drop unsigned messages, as we do.
//
// Publish sends a line and returns its ID, rendered by FormatID as the
// author's peer ID, a slash and the sequence number in hex: the same string
// on every peer, so receipts and deduplication can be keyed by it. Messages
// delivers other peers' lines, each with its ID, its author (the verified
// signer) and the neighbour that handed it to us; the router gives us our
// own lines back, and they are filtered out. Text is not sanitized.
//
// In the room "universal-connectivity" the Room also relays the topic
// "universal-connectivity-browser-peer-discovery", on which the demo's
// browser peers publish their addresses for each other: it forwards the
// records (up to 16 KiB, five in a burst then one every two seconds from
// each author) without reading them.
//
// # Limits, and whom to blame
//
// A topic validator checks every line before it is delivered or forwarded:
// at most MaxMessageBytes (64 KiB by default), valid UTF-8, and within its
// author's token bucket (a burst of 50 lines, then 10 a second). Invalid
// UTF-8 is dropped, not passed on with a flag: the contract is text, and a
// view would have to replace the bytes anyway. Publish refuses lines the
// validator would drop, and paces our own lines at half the accepted rate
// and burst, so that jitter on the way never pushes them over a receiver's
// bucket.
//
// A dropped line is rejected (held against the peer that sent it to us)
// only when that peer is its author. When a neighbour merely forwarded it,
// the line is ignored: dropped, not forwarded, held against nobody. This is
// the heart of the design. universal-connectivity's peers forward anything
// signed and under the library's 1 MiB limit, since they know neither our
// limits nor our rate; penalizing them for what they relay would graylist
// the honest relays between us and the rest of the room. The author still
// meets the penalty wherever it hands its lines to one of our peers itself.
//
// # Peer scoring
//
// The router scores its neighbours (GossipSub v1.1). The thresholds are
// -500 (no more gossip to the peer), -1000 (none of our lines) and -2500
// (graylisted: everything it sends is dropped unread). The dominant term is
// invalid messages (P4): -100 times the square of their count, decaying to
// nothing over an hour. Three rejected messages stop gossip, four stop our
// lines, six graylist: a flooder is graylisted after six lines over its
// bucket, a peer that sends a few bad lines by accident recovers in minutes.
// Missing or wrong signatures count too. Positive terms (time in the mesh,
// first deliveries) are capped at 100 in all, too little to buy a penalty
// back. The mesh-delivery terms (P3, P3b) are off: they suit topics with a
// steady flow and would push every honest peer out of the mesh of a quiet
// chat. More than 10 peers behind one IP address are penalized (P6); broken
// gossip promises too (P7). Peer exchange is never accepted: which room
// peers to dial is DialPolicy's decision. The presence topic is scored for
// invalid messages only. See score.go for every value.
//
// # Queues and memory
//
// Everything a peer can make us hold is bounded. The router reads at most
// 32 RPCs ahead (each at most 1 MiB, the library's limit, kept because the
// demo's peers use it), keeps a validation queue of 256 messages (raised
// from 32, which a single batched RPC could overflow and so drop an honest
// line during a forwarded flood) and an outbound queue of 32 RPCs per
// neighbour, and drops what does not fit. Before messages enter the
// validation queue, an RPC inspector removes those over our size limits
// that their sender did not author, so the queue holds messages of our
// limits, not of the library's. The subscriptions and the Messages and
// Presence channels hold QueueSize entries each: when the reader of
// Messages falls behind, the router drops lines meant for us but keeps
// forwarding the room's traffic, so a slow terminal never slows the room.
// The rate buckets, the presence table and its tombstones are bounded by
// MaxPresencePeers (times a small factor). One bound is the library's: it
// remembers every message ID it has seen for two minutes, including those
// it dropped, so a flood relayed by an honest neighbour costs about a
// hundred bytes a message for two minutes; the relay's own outbound queue
// to us caps how fast that can grow.
//
// # Presence
//
// Who is in a room of hundreds without a full mesh? Each of our peers
// announces itself on a second topic, PresenceTopic(room) =
// room + "/rendezvous-chat/presence/1". universal-connectivity's topics are
// the room, room + "-file" and "universal-connectivity-browser-peer-discovery";
// none contains a slash, so ours cannot clash with them, and New refuses a
// room whose name ends in the suffix, whose chat topic would be another
// room's presence topic.
//
// An announcement is a small JSON object, signed like every message:
//
//	{"v":1,"t":"here","nick":"alice","caps":["/rendezvous-chat/1.0.0"],"every_ms":30000}
//	{"v":1,"t":"bye"}
//
// v is the format's version (later versions may add fields, which are
// ignored); t is "here" or "bye"; nick (at most 64 bytes) and caps (at most
// 8 strings of 64 bytes, for example the protocols we speak besides the
// topic) are optional; every_ms is the sender's interval. A whole
// announcement is at most 1 KiB and must be valid UTF-8.
//
// A peer announces "here" as soon as it joins, then every PresenceInterval
// (30 s by default) times a random factor between 0.8 and 1.2, so that peers
// started together drift apart; after a nick change, within half an
// interval. A peer also announces itself again soon after a new neighbour
// joins or a newcomer announces itself (so that peers started together
// meet within a second or two), spending tokens of a bucket of 4, refilled
// at 2 per interval. Close publishes "bye" and waits, at most LeaveLinger
// (250 ms), until the router has written it to every presence neighbour.
// Receivers accept about three announcements per interval from each author
// (a burst of five: "here", the extra ones, a nick change, "bye"); more
// are ignored, never rejected, since a later version may announce more
// often. Malformed or oversized
// announcements are rejected or ignored as for chat lines.
//
// Each Room keeps a table of the peers present, at most MaxPresencePeers
// (4096); a newcomer that finds it full is left out and counted. A peer
// joins the table on its first sign and leaves it on a "bye", or when it
// has given no sign for long enough: three of its intervals (its every_ms,
// taken between our interval and ten of ours) for a peer that announces
// itself, SilentTTL (5 minutes) for one that does not. A neighbour
// (connected to us and subscribed to the chat topic) never times out;
// its clock starts when it leaves the topic or the connection drops, which
// is how a killed peer next to us leaves three intervals after it died. A
// "bye" leaves a tombstone for three intervals, so that a line or an
// older "here" still on its way does not bring the peer back; a "here"
// with a higher sequence number (pubsub's, which grows across restarts)
// does. Announcements that arrive out of order are recognized the same
// way. Presence reports Joined, Updated (a new nick or capabilities, or a
// first announcement from a peer seen before only on the chat topic) and
// Left (with ReasonBye, ReasonTimeout or ReasonSilent).
//
// universal-connectivity's peers never announce themselves. For them, the
// signs are a chat line (any peer's line reaches everyone), a subscription
// to the chat topic seen on a direct connection (the router's PeerJoin
// event), and, for the demo's browser peers, a record on the browser
// discovery topic, which they publish every 10 seconds. Such peers are
// counted as Silent in Counts. A peer that never writes a line, is not our
// neighbour and publishes no discovery record looks like nobody: there is
// nothing of it for us to see. One that is our neighbour is present while
// it stays subscribed and for SilentTTL after.
//
// Presence costs each peer one announcement per interval and, since every
// announcement reaches everyone, the forwarding of everyone else's: at 500
// peers and 30 s that is about 17 announcements a second room-wide, each
// about 260 bytes on the wire (signature, author, sequence number and
// topic included) and sent on to about five mesh peers: some 20 KB/s per
// peer, an estimate rather than a measurement. That
// grows with the room, as knowing who is in it must; a room of thousands
// would need a longer interval.
//
// # Connections
//
// GossipSub needs only a handful of connected room peers. DialPolicy says
// when to dial a room peer found at the rendezvous: while fewer than D (6)
// room peers are connected, or fewer than Dout (2) of them were dialed by
// us; then nothing, and gossip carries the rest. WaterMarks suggests a
// connection manager's low and high marks around it. Room.RoomConns gives
// the policy's inputs.
//
// # Lifetime
//
// A Room owns four goroutines (the chat reader, the topic-event reader,
// the presence reader and the presence table's loop) and the router, which
// runs on the Room's context. Close says "bye", cancels the subscriptions
// (so neighbours learn at once that we left), closes the topics, cancels
// the context, waits for the goroutines, removes the router's stream
// handlers from the host, and closes Messages and Presence. The router's
// own goroutines end with the context. A host carries one Room at a time.
//
// # go-libp2p-pubsub v0.19.0, as found
//
//   - Flood publishing is off by default. A line we publish then goes only
//     to our mesh, which is empty until a heartbeat grafts someone (100 ms
//     after start, then every second), so a line published just after
//     meeting the first neighbour is silently lost. The Room turns it on
//     (WithFloodPublish): our own lines go to every neighbour above the
//     publish threshold, which DialPolicy keeps to a handful. Plain
//     GossipSub peers (tests, and other implementations on this version)
//     still lose their first lines until their first heartbeat.
//   - The router runs our validator synchronously inside Topic.Publish for
//     our own messages, with the message ID already computed; Publish learns
//     the ID that way, through the validator data.
//   - A message dropped because the validation queue is full is not marked
//     seen and is held against no one: it may still arrive from another
//     neighbour, but a line a peer sent only to us is lost.
//   - Topic.Relay forwards a topic without delivering it to us, which is
//     exactly what relaying the browsers' discovery records needs.
package gossiproom
