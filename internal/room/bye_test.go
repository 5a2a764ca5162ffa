package room

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/gossiproom"
)

// TestRoomSaysByeWhenLeaving: a peer that leaves says so on the presence
// topic, so that others see it go at once rather than a ghost for three
// presence intervals. (Closing the room used to end its context before the
// topic closed, and the bye went nowhere.)
func TestRoomSaysByeWhenLeaving(t *testing.T) {
	needHosts(t)
	const rendezvous = "bye"
	server := startRoomServer(t)
	a := startTopicPeer(t, rendezvous, server, nil)
	presence := gossiproom.PresenceTopic(rendezvous)
	raw := newRawTopicPeer(t, presence)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := raw.h.Connect(ctx, addrInfo(a)); err != nil {
		t.Fatal(err)
	}
	// The raw peer is a new neighbour: a announces itself within a second.
	var here struct{ T string }
	if err := json.Unmarshal(raw.next(t, presence, a.id(), 10*time.Second).GetData(), &here); err != nil || here.T != "here" {
		t.Fatalf("first presence message: %+v, %v; want a here", here, err)
	}
	a.close()
	var bye struct{ T string }
	for bye.T != "bye" {
		if err := json.Unmarshal(raw.next(t, presence, a.id(), 5*time.Second).GetData(), &bye); err != nil {
			t.Fatal(err)
		}
	}
}
