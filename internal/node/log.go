package node

import golog "github.com/ipfs/go-log/v2"

// log is the program's logger: every package of the chat logs under the one
// subsystem name, so that -log-level rendezvous-chat=debug shows them all.
var log = golog.Logger("rendezvous-chat")
