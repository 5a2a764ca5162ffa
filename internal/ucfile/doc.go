// Package ucfile speaks the file exchange of libp2p's universal-connectivity
// demo, "/universal-connectivity-file/1", so that a file shared in this chat
// can be fetched by the demo's peers and theirs by us.
//
// # Where the format comes from
//
// Read in the repository libp2p/universal-connectivity at commit e18a6de:
//
//   - rust-peer/src/file_exchange.rs (lines 5-20, 46-105) documents and
//     implements the wire format. A request is an unsigned varint, the
//     length of the file ID, then the file ID as UTF-8. A response is an
//     unsigned varint, the length of the file, then the file's bytes. One
//     request and one response per stream. The Rust reader caps a request at
//     1,000,000 bytes and a response at 500,000,000 bytes, and refuses an
//     empty one of either.
//   - go-peer/chatroom.go (lines 65-76, 148-211) subscribes to the topic
//     roomName+"-file", takes a message's data, raw, as the file ID, and
//     requests it from the message's signer (msg.GetFrom()): it writes the
//     varint and the ID, half-closes, and reads the varint and the body.
//     It never serves files.
//   - js-peer/src/components/chat.tsx (lines 91-125) is the only peer of the
//     demo that shares files made by a user: the file ID is a random UUID
//     (uuidv4(), for example "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"), kept
//     in memory with the file's bytes and published, as UTF-8 and nothing
//     else, on the topic "universal-connectivity-file"
//     (js-peer/src/lib/constants.ts, CHAT_FILE_TOPIC). That is
//     "<room>-file" for the demo's one room, "universal-connectivity".
//   - js-peer/src/context/chat-ctx.tsx serves (lines 194-207) and fetches
//     (lines 118-157) with it-length-prefixed, the same unsigned-varint
//     framing. Its server looks the ID up and, when it is unknown, fails
//     (files.get(fileId)! is undefined), which aborts the stream: no
//     response, a reset. Its fetcher accepts only signed announcements and
//     fetches from their signer; it-length-prefixed refuses a frame over
//     its default limit of 4 MiB, so a browser cannot fetch a larger file.
//   - nim-peer/src/file_exchange.nim and nim-peer/src/ui/root.nim use the
//     file's name without its extension as the ID, cap an ID at 1 KiB, and
//     close the stream without a response for an unknown ID.
//   - rust-peer/src/peer.rs (lines 600-614, 890-906) fetches announced
//     files from their signer but answers no request.
//
// # What this package does
//
// Store.Share gives a file an ID formed as the js-peer forms it: a random
// (version 4) UUID in its canonical text form. The ID is announced by
// publishing exactly its bytes on the topic Topic(room) = room + "-file";
// ParseAnnouncement checks an announcement that arrives there. A peer
// fetches from the announcement's signer.
//
// Handler serves only what the Store holds, the files shared in this run,
// and only while each is the same file, unchanged since it was shared. For
// any request it cannot serve (an unknown ID, a file that changed or grew
// past the limit, too many transfers at once, in all or to that peer) it
// resets the stream without a response, as the js-peer does; a fetcher of
// any implementation sees that as a failed request. The Go peer of the demo crashes on such a
// failure (it closes its message channel, and a later send on it panics);
// Fetch returns an error wrapping ErrUnavailable instead.
//
// # Limits
//
// Nothing a peer does can hold this side's resources without bound.
//
// A Handler reads a request within RequestTimeout, and only then, for an ID
// its Store holds, takes a transfer slot: MaxConcurrentTransfers (16) in
// all, MaxTransfersPerPeer (2) for one peer, so that one peer, or one peer
// opening many streams, cannot take them all; a request for an unknown ID
// costs none. The slots by peer are counted in a table that only the
// Handler touches, and a peer leaves it with its last transfer, so it holds
// at most MaxConcurrentTransfers peers, however many identities ask. A
// request over a limit is refused with ErrBusy.
//
// Both sides hold a transfer to a least rate: each MinRate×RateWindow bytes
// (16 KiB/s over 30 s: 480 KiB) must follow the previous ones within
// RateWindow, or the transfer ends with ErrTooSlow; and no read or write may
// wait more than IdleTimeout (30 s) for progress. The idle timeout alone
// does not bound a transfer: a peer that reads (or sends) a few bytes
// before each timeout would keep it, and its slot, for ever. With the least
// rate, a transfer of n bytes ends within about n/MinRate + RateWindow: 70
// minutes for a file of DefaultMaxBytes (64 MiB). Each window begins where
// the previous one was met, so a transfer well above the rate may pause (up
// to IdleTimeout) anywhere, and a burst early on does not excuse a crawl
// later.
//
// The values leave room to real links. 16 KiB/s is 128 kbit/s: a tenth or
// less of what a slow real path carries (a connection through a relay or a
// mobile network, a few hundred KiB/s), and what a server with 2 Mbit/s of
// upload still gives each of its 16 transfers at once. A window of 30 s
// rides out a stall of a radio link or a TCP retransmission timeout, as the
// idle timeout does. On the server's side, writes run ahead of the reader
// by the stream's flow-control window (256 KiB to 16 MiB in yamux), so a
// slow reader is noticed once that is full.
//
// Fetch bounds everything a peer controls: the ID it sends (MaxIDBytes),
// the length prefix it accepts (maxBytes, DefaultMaxBytes by default, read
// before anything is allocated or created), the time between two reads
// (IdleTimeout), the rate of the body (MinRate over RateWindow), and the
// whole transfer (the least rate, and the caller's context). It checks
// that the body has exactly the announced length, writes it to a temporary
// file next to the destination, syncs it, and only then moves it into
// place, never over an existing file unless asked to. On any failure the
// temporary file is removed.
//
// A file ID is untrusted input from the network: this package never uses
// one as a file name, and a caller that shows one should sanitize it.
package ucfile
