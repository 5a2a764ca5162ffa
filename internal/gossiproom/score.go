package gossiproom

import (
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The peer score thresholds. A peer's score is the sum of the terms set up
// in scoreParams; below GossipThreshold we stop gossiping with it, below
// PublishThreshold we stop sending it our own lines, and below
// GraylistThreshold we drop everything it sends before even decoding the
// messages in it.
//
// The thresholds are set against the invalid-message term, which dominates
// on purpose: each rejected message counts once, the term is the square of
// the count times InvalidMessageWeight (-100), so a peer that handed us 3
// invalid messages stops getting gossip (-900), 4 stop getting our lines
// (-1600) and 6 are graylisted (-3600). Everything positive a peer can earn
// is capped at TopicScoreCap (100), far too little to buy those back.
const (
	GossipThreshold   = -500
	PublishThreshold  = -1000
	GraylistThreshold = -2500

	// InvalidMessageWeight is the weight of the invalid-message term (P4).
	InvalidMessageWeight = -100
	// TopicScoreCap caps the positive topic terms (time in mesh, first
	// deliveries).
	TopicScoreCap = 100

	// acceptPXThreshold is out of reach (above TopicScoreCap): we never
	// connect to peers because another peer named them in a PRUNE. Which
	// room peers to dial is the dial policy's decision (see DialPolicy), and
	// peer exchange from strangers is a classic eclipse vector.
	acceptPXThreshold = 2 * TopicScoreCap
	// opportunisticGraftThreshold: when the median score of our mesh falls
	// below this small positive value, the router grafts better peers.
	opportunisticGraftThreshold = 3
)

// invalidDecay is how long the invalid-message counter takes to decay to
// nothing (1% of itself). An hour means a flooder that was graylisted after
// a thousand rejected lines stays graylisted for about an hour; a peer that
// sent six bad lines by accident is back above the threshold in about two
// and a half minutes.
const invalidDecay = time.Hour

// scoreThresholds returns the thresholds above.
func scoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             GossipThreshold,
		PublishThreshold:            PublishThreshold,
		GraylistThreshold:           GraylistThreshold,
		AcceptPXThreshold:           acceptPXThreshold,
		OpportunisticGraftThreshold: opportunisticGraftThreshold,
	}
}

// scoreParams returns the peer score parameters for the topics given, each
// scored as chatTopicScore (the chat topic) or presenceTopicScore.
//
// Terms not tied to a topic:
//   - P5, the application's own score, is unused (weight 0).
//   - P6 penalizes more than 10 peers behind one IP address (or one IPv6
//     /64), by 5 times the square of the excess: 20 peers behind one address
//     are at the gossip threshold, 33 are graylisted. A home or an office
//     never has that many chat peers; a crowd of made-up identities on one
//     machine does. Loopback addresses are never counted (the library skips
//     them), nor relayed connections.
//   - P7 penalizes broken gossip promises (IHAVE not followed by the
//     message) and re-grafting during a backoff, by 10 times the square of
//     the count above 6, decaying over 10 minutes.
//
// Scores decay every second; a disconnected peer's counters are kept for an
// hour, so that reconnecting does not wash a penalty away.
func scoreParams(chatTopic, presenceTopic string) *pubsub.PeerScoreParams {
	topics := map[string]*pubsub.TopicScoreParams{chatTopic: chatTopicScore()}
	if presenceTopic != "" {
		topics[presenceTopic] = presenceTopicScore()
	}
	return &pubsub.PeerScoreParams{
		Topics:                      topics,
		TopicScoreCap:               TopicScoreCap,
		AppSpecificScore:            func(peer.ID) float64 { return 0 },
		AppSpecificWeight:           0,
		IPColocationFactorWeight:    -5,
		IPColocationFactorThreshold: 10,
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:               pubsub.DefaultDecayInterval,
		DecayToZero:                 pubsub.DefaultDecayToZero,
		RetainScore:                 time.Hour,
	}
}

// chatTopicScore scores the chat topic.
//
//   - P1, time in our mesh: +1 per 6 minutes, at most +10 after an hour.
//   - P2, first deliveries (the peer was first to bring us a valid line):
//     +1 each, at most +50, decaying over 10 minutes.
//   - P3 and P3b, the mesh delivery rate, are off. They punish mesh peers
//     that deliver fewer messages than a threshold, which suits a topic with
//     a steady flow (blocks, attestations) and not a chat, where an hour of
//     silence is normal and would push every honest peer out of the mesh.
//   - P4, invalid messages: see the thresholds. A message counts as invalid
//     when its signature is missing or wrong, or when our validator rejects
//     it: too large, not UTF-8, or over its author's rate, and then only
//     when the author itself handed it to us (see validateChat).
func chatTopicScore() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight:                    1,
		TimeInMeshWeight:               10.0 / 3600,
		TimeInMeshQuantum:              time.Second,
		TimeInMeshCap:                  3600,
		FirstMessageDeliveriesWeight:   1,
		FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(10 * time.Minute),
		FirstMessageDeliveriesCap:      50,
		InvalidMessageDeliveriesWeight: InvalidMessageWeight,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(invalidDecay),
	}
}

// presenceTopicScore scores the presence topic: only invalid messages
// count (a malformed or oversized announcement handed to us by its author),
// with the chat topic's weight. Announcements earn nothing, so that a peer
// cannot build up credit by announcing itself.
func presenceTopicScore() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight:                    1,
		TimeInMeshQuantum:              time.Second,
		InvalidMessageDeliveriesWeight: InvalidMessageWeight,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(invalidDecay),
	}
}
