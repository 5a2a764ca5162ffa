// Package room is the chat room: everyone met at the rendezvous. It takes
// found peers from the node and lines from the user, keeps one session per
// peer, and reports what happens as events (internal/event); it never
// prints and knows nothing of terminals.
//
// # Its pieces
//
// Each job is a piece of its own, the one owner of its state:
//
//   - Room (room.go, send.go, info.go): the public API (Offer, Send,
//     SendLines, SendTo, SetNick, Peers, PeerList, Conns, Pending, Ping,
//     FindPeer, Share, Fetch, Close) and the path of a line;
//   - roster (roster.go, names.go): who is in the room, sessions and
//     members by topic, and the names they are shown by;
//   - dialer (dialer.go): which found peers to dial, the dials, redials and
//     the memory of them;
//   - streams (streams.go): opening, accepting and moving chat streams;
//   - session (session.go): the chat with one peer, a reader and a writer
//     goroutine per stream;
//   - ledger, receipts and deliveries (ledger.go, receipts.go,
//     delivery.go): our lines, their receipts, resend, the lines held while
//     nobody is here (for every peer who joins within the resend window),
//     and whether each line was delivered; seenTable (dedupe.go): the IDs
//     of their lines, to show each once;
//   - topicBridge (topic.go), files (files.go) and directs (direct.go): the
//     room on GossipSub, universal-connectivity's files and direct
//     messages.
//
// Every table kept per peer has one owner that creates it, prunes it when
// the peer is gone, and caps it: a hostile peer can change identity as
// often as it likes.
//
// # The room on GossipSub
//
// A room is a GossipSub topic named exactly as the rendezvous string
// (internal/gossiproom), and, beside it, the sessions: framed streams to
// the few peers of ours we are connected to, and plain streams to peers
// that speak only /chat/1.1.0. A line we type goes
//
//   - on every session: to our own peers with its ID, receipts and resend;
//     to plain peers as a line;
//   - on the topic as well, raw, when someone in the room can be reached
//     only that way: a topic neighbour we have no framed session with (a
//     universal-connectivity peer), or a member known from presence only
//     (a peer of a big room we are not connected to). In a small room of
//     our own peers, all connected, nothing is published: the streams
//     carry everything, in order, as fast as they can.
//
// A line published on the topic keeps its topic message ID on the
// sessions too, so a peer that gets it both ways shows it once (seenTable,
// keyed by author and ID), and in order: the stream carries every line of
// its peer in order, so a topic line from a peer we have a framed session
// with waits for its stream copy (streamGrace at most). A session that
// opens while our line is on the way starts with the lines we published in
// the last streamGrace, so that its peer does not wait for nothing.
//
// In a big room we dial only a few room peers (maxRoomDials, picked at
// random among those found), so each peer keeps about twice that many
// connections to the room, whatever its size.
//
// Who is in the room: every peer with a session, and every peer the
// presence table of the topic knows (gossiproom's presence). A peer we are
// connected to gets a moment to open its session before presence alone
// makes it a member, so that one peer is announced once, with the
// session's details when it has one.
package room
