//go:build linux

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

// TestE2EIdentityChurn: a peer that takes a new identity again and again,
// each time sending a full window of framed lines with long IDs and
// leaving, does not grow our memory without bound: every table kept per
// peer is pruned and capped. 200 such identities of 4,096 lines with
// 128-byte IDs may grow the peak RSS by at most 48 MiB (it grew by 240 MiB
// when the seen IDs were kept per identity for ever); every line is still
// acknowledged, and a normal peer still chats afterwards.
//
// The binary is built without the race detector here, whose shadow memory
// would swamp what is measured. RENDEZVOUS_CHAT_CHURN sets the identities
// (default 200), for trying it at other sizes.
func TestE2EIdentityChurn(t *testing.T) {
	identities := 200
	if s := os.Getenv("RENDEZVOUS_CHAT_CHURN"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("RENDEZVOUS_CHAT_CHURN=%q: want a positive number", s)
		}
		identities = n
	}
	const (
		linesPerIdentity = 4096
		idBytes          = 128
		maxGrowthKiB     = 48 << 10
	)
	bin := e2e.BinaryNoRace(t)
	_, server := startServer(t)
	const rendezvous = "identity churn"
	target := e2e.StartWith(t, "target", e2e.Options{Path: bin}, "-json", "-mdns=false", "-peer", server,
		"-listen", "/ip4/127.0.0.1/tcp/0", "-rendezvous", rendezvous)
	ready := target.Ready(t)
	// A million message events would fill the harness's log: count them.
	var shown int
	var shownMu = make(chan struct{}, 1)
	shownMu <- struct{}{}
	target.SetSink(func(_, _ []byte, _ bool, _ time.Time) {
		<-shownMu
		shown++
		shownMu <- struct{}{}
	})
	ai, err := peer.AddrInfoFromString(ready.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	// Warm up with a few identities, so that what is measured is growth,
	// not the program's first allocations.
	churn := func(n int) {
		for i := range n {
			churnOnce(t, *ai, i, linesPerIdentity, idBytes)
		}
	}
	churn(5)
	time.Sleep(time.Second)
	before := target.Mem(t)
	if err := e2e.ResetPeak(target.Pid()); err != nil {
		t.Logf("cannot reset the peak (%v): measuring from the peak so far", err)
	}
	start := time.Now()
	churn(identities)
	after := target.Mem(t)
	growth := after.HWM - before.RSS
	t.Logf("%d identities × %d lines in %v: RSS %d → %d KiB, peak %d KiB (growth %d KiB)",
		identities, linesPerIdentity, time.Since(start).Round(time.Millisecond), before.RSS, after.RSS, after.HWM, growth)
	if growth > maxGrowthKiB {
		t.Errorf("the peak RSS grew by %d KiB over %d identities, more than %d KiB: a table grows with every identity",
			growth, identities, maxGrowthKiB)
	}

	// A normal peer still chats.
	target.SetSink(nil)
	b := startPeer(t, "b", server, rendezvous)
	bID := b.Ready(t).ID
	meet(t, target, b, ready.ID, bID)
	target.Send(t, "still here")
	b.Wait(t, event.Message, e2e.From(ready.ID, "still here"), eventTimeout)
	b.Send(t, "and me")
	target.Wait(t, event.Message, e2e.From(bID, "and me"), eventTimeout)
	<-shownMu
	// Lines still on their way to stdout when the sink was taken away are
	// in the log.
	shown += target.Count(event.Message, func(e e2e.Event) bool { return e.Peer != bID })
	if want := (identities + 5) * linesPerIdentity; shown != want {
		t.Errorf("the target showed %d lines of the churning identities, want %d", shown, want)
	}
}

// churnOnce connects to the target with a new identity, sends lines framed
// lines with IDs of idBytes bytes, reads a receipt for every one, and
// leaves.
func churnOnce(t *testing.T, target peer.AddrInfo, n, lines, idBytes int) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.Connect(ctx, target); err != nil {
		t.Fatalf("identity %d: connect: %v", n, err)
	}
	st, err := h.NewStream(ctx, target.ID, protocol.ID(ourProtocol))
	if err != nil {
		t.Fatalf("identity %d: open a chat stream: %v", n, err)
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := wire.ExchangeHello(st, fmt.Sprintf("churn%d", n)); err != nil {
		t.Fatalf("identity %d: hello: %v", n, err)
	}
	// Write everything, and read the receipts at the same time: the target
	// acknowledges as it reads.
	done := make(chan error, 1)
	go func() {
		w := wire.Framed{}.NewWriter(st)
		prefix := fmt.Sprintf("%d-", n)
		pad := strings.Repeat("x", idBytes-len(prefix)-8)
		for i := range lines {
			id := fmt.Sprintf("%s%s%08d", prefix, pad, i)
			if err := w.Write(wire.Frame{Type: wire.TypeMsg, ID: id, Text: "churn"}); err != nil {
				done <- err
				return
			}
		}
		done <- w.Flush()
	}()
	r := wire.Framed{}.NewReader(bufio.NewReader(st))
	acked := 0
	for acked < lines {
		f, err := r.Read()
		if err != nil {
			t.Fatalf("identity %d: %d of %d lines acknowledged: %v", n, acked, lines, err)
		}
		if f.Type == wire.TypeAck {
			acked += len(f.IDs)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("identity %d: send: %v", n, err)
	}
}
