// Package ucdm speaks the direct-message protocol of libp2p's
// universal-connectivity demo, "/universal-connectivity/dm/1.0.0", so that a
// private message from this chat reaches the demo's browser and Node peers
// and theirs reach us.
//
// # Where the format comes from
//
// Only the demo's JavaScript peers implement direct messages; its Go, Rust and
// Nim peers do not. Everything below was read in the repository
// libp2p/universal-connectivity at commit e18a6de:
//
//   - js-peer/src/lib/protobuf/direct-message.proto (lines 9-30) defines the
//     messages: Metadata{clientVersion string = 1; timestamp int64 = 2},
//     enum Status{UNKNOWN = 0; OK = 200; ERROR = 500},
//     DirectMessageRequest{metadata Metadata = 1; content string = 2;
//     type string = 3} and DirectMessageResponse{metadata Metadata = 1;
//     status Status = 2; optional statusText string = 3}.
//     node-js-peer/src/protobuf/direct-message.proto is identical.
//   - js-peer/src/lib/protobuf/direct-message.ts is the protons code
//     generated from it. It writes the fields in field-number order and leaves
//     out proto3 defaults (empty strings, a zero timestamp, status UNKNOWN),
//     except statusText, which is written whenever it is set because it is
//     declared optional; metadata is written whenever the object has one, even
//     an empty one. Unknown fields are skipped on reading.
//   - js-peer/src/lib/direct-message.ts (lines 87-194) is the exchange. The
//     sender opens a stream, writes one DirectMessageRequest with
//     it-protobuf-stream (an unsigned-varint length prefix, then the
//     protobuf bytes), reads one DirectMessageResponse the same way, and
//     closes. It sets type to "text/plain", clientVersion to "0.0.1", and
//     timestamp to Date.now(), which is milliseconds since the Unix epoch
//     although the .proto comment says "unix time". It throws when the
//     response has no metadata or a status other than OK, and gives up after
//     5 seconds. The receiver reads one request, answers status OK with
//     metadata, and on any failure (for example bytes that do not decode)
//     aborts the stream: it never answers ERROR.
//
// # What this package adds
//
// The JavaScript peers bound a frame only by it-length-prefixed's default
// (4 MiB). This package is stricter, because a direct message is one line of
// chat: a frame is at most MaxMessageBytes, a content at most MaxContentBytes,
// and the short strings at most MaxFieldBytes. A length prefix over the limit
// is refused before anything is allocated for it. Every string must be valid
// UTF-8, as proto3 requires. Stream reads and writes carry a deadline, so a
// peer that stalls costs a stream for at most StreamTimeout.
//
// Like the reference receiver, Handler resets the stream when the request is
// malformed or too large, and answers ERROR only when the application asks
// it to.
//
// Every string of a decoded message comes from the peer: valid UTF-8 and
// bounded, but not safe to print to a terminal. The caller sanitizes it
// before showing it.
package ucdm
