package gossiproom

import (
	"fmt"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
)

func dupMsg(seq, sig string) *pb.Message {
	topic := "t"
	return &pb.Message{From: []byte("author"), Seqno: []byte(seq), Signature: []byte(sig), Data: []byte("x"), Topic: &topic}
}

// TestDupFilter: the filter passes the first copy of a message and drops
// exact copies for the router's seen time; a message with the same ID but
// another signature (a forgery racing the genuine one) still passes, and
// so does a copy after forget (the router dropped the first unjudged).
func TestDupFilter(t *testing.T) {
	f := newDupFilter()
	now := time.Now()
	if !f.first(dupMsg("1", "sig"), now) {
		t.Fatal("first copy dropped")
	}
	if f.first(dupMsg("1", "sig"), now.Add(time.Second)) {
		t.Fatal("exact copy passed")
	}
	if !f.first(dupMsg("1", "forged"), now) {
		t.Fatal("a copy with another signature was dropped: a forgery could suppress the genuine message")
	}
	f.forget(dupMsg("1", "sig"))
	if !f.first(dupMsg("1", "sig"), now) {
		t.Fatal("copy after forget dropped")
	}
	if !f.first(dupMsg("1", "sig"), now.Add(pubsub.TimeCacheDuration+time.Second)) {
		t.Fatal("copy after the router's seen time dropped")
	}
	// Bounded: the oldest are forgotten first.
	for i := range dupFilterSize + 10 {
		f.first(dupMsg(fmt.Sprint("n", i), "s"), now)
	}
	if len(f.seen) > dupFilterSize || len(f.order) > dupFilterSize {
		t.Fatalf("%d remembered, %d in order, bound %d", len(f.seen), len(f.order), dupFilterSize)
	}
	if !f.first(dupMsg("n0", "s"), now) {
		t.Fatal("the oldest message was not forgotten")
	}
}
