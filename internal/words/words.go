// Package words says events in words for people. The node and the room
// report what happened as data: a code and its fields (internal/event).
// Both views say it in these words: the human view on the terminal, and the
// JSON view in its text, error and reason fields, for people who read the
// JSON. Scripts match the codes, never these words, which may change.
package words

import (
	"fmt"
	"strings"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/ucdm"
	"github.com/rendezvous-chat/rendezvous-chat/internal/ucfile"
)

// Fill puts into an event the words people read: an info event's in Text,
// an error event's in Error, a left event's reason in Reason. An event
// without a code keeps what it has.
func Fill(e *event.Event) {
	if e.Code == "" {
		return
	}
	switch e.Kind {
	case event.Info:
		e.Text = Text(*e)
	case event.Error:
		e.Error = Text(*e)
	case event.Left:
		e.Reason = Reason(*e)
	}
}

// Text says an info or error event in words; "" when its code is not
// known.
func Text(e event.Event) string {
	if w, ok := nodeWords(e); ok {
		return w
	}
	if w, ok := lineWords(e); ok {
		return w
	}
	if w, ok := commandWords(e); ok {
		return w
	}
	return ""
}

// nodeWords says the node's events and the configuration's notices.
func nodeWords(e event.Event) (string, bool) {
	switch e.Code {
	case event.BootstrapConnected:
		s := fmt.Sprintf("connected to %d of %d bootstrap peers: %s", e.Count, e.Total, reachedPeers(e.Bootstrap))
		if failed := failedPeers(e.Bootstrap); failed != "" {
			s += "; not reached: " + failed
		}
		return s, true
	case event.BootstrapUnreachable:
		hint := "peers on this LAN can still be found by mDNS"
		if e.Why == event.WhyInboundOnly {
			hint = "only peers that dial us can join"
		}
		return fmt.Sprintf("no bootstrap peer reachable: %s; %s; retrying in the background", failedPeers(e.Bootstrap), hint), true
	case event.DHTLost:
		return "lost every DHT peer: reconnecting to the bootstrap peers (chats in progress go on)", true
	case event.Advertising:
		return fmt.Sprintf("advertising at rendezvous %q", e.Rendezvous), true
	case event.MDNSFailed:
		return "mDNS: " + e.Cause, true
	case event.ReachabilityPublic:
		return "reachability: public" + forced(e) + ", others can dial us directly", true
	case event.ReachabilityPrivate:
		return "reachability: behind NAT" + forced(e) + ", others reach us through a relay, then hole punching tries a direct path", true
	case event.RelayReserved:
		return fmt.Sprintf("relay reservation made via %s: peers can reach us through it", event.ShortIDString(e.Peer)), true
	case event.NoRelay:
		hint := "give a relay with -relay ADDR or a -peer server"
		if e.Count > 0 {
			hint = fmt.Sprintf("none of our %d relay(s) gave us a slot; check -relay and -peer, or give another relay", e.Count)
		}
		return "behind NAT and no relay reachable: peers outside this network cannot reach us; " +
			"only peers we can dial will join (" + hint + ")", true
	case event.NotMember:
		return fmt.Sprintf("%s tried to join without the room's passphrase: refused", event.ShortIDString(e.Peer)), true
	case event.PeerUnreachable:
		return fmt.Sprintf("found %s at the rendezvous but could not reach it "+
			"(its record may be stale, or it is offline or behind NAT without a relay): %s",
			event.ShortIDString(e.Peer), dialWords(e.Why, e.Cause, e.WaitMS)), true
	case event.WebServing:
		return fmt.Sprintf("the room's page: %s (a browser that opens it joins the room)", e.Addr), true
	case event.PSKNoBootstrap:
		return "a private network cannot bootstrap from the public one: " +
			"give a -server of your private network with -peer (mDNS still finds peers on this LAN)", true
	case event.PSKTCPOnly:
		return "private network: QUIC is off, since it cannot carry a swarm key; listening on TCP only", true
	}
	return "", false
}

func forced(e event.Event) string {
	if e.Forced {
		return " (as -reachability says)"
	}
	return ""
}

// reachedPeers lists the bootstrap peers that answered, with the address
// they answered at.
func reachedPeers(peers []event.BootstrapPeer) string {
	var list []string
	for _, p := range peers {
		if p.Reached {
			list = append(list, peerAt(p))
		}
	}
	return strings.Join(list, ", ")
}

// failedPeers lists the bootstrap peers that did not answer, those that
// failed the same way together: "A (addr), B (addr): refused (nothing
// listening); C (addr): no answer in 10s".
func failedPeers(peers []event.BootstrapPeer) string {
	type group struct {
		reason string
		peers  []string
	}
	var groups []*group
	for _, p := range peers {
		if p.Reached {
			continue
		}
		reason := dialWords(p.Why, p.Cause, p.WaitMS)
		var g *group
		for _, x := range groups {
			if x.reason == reason {
				g = x
			}
		}
		if g == nil {
			g = &group{reason: reason}
			groups = append(groups, g)
		}
		g.peers = append(g.peers, peerAt(p))
	}
	var bad []string
	for _, g := range groups {
		bad = append(bad, strings.Join(g.peers, ", ")+": "+g.reason)
	}
	return strings.Join(bad, "; ")
}

// peerAt names a peer for a person: its short ID and the address that
// matters, with a count of the others.
func peerAt(p event.BootstrapPeer) string {
	switch {
	case p.Addr == "":
		return event.ShortIDString(p.Peer)
	case p.More == 0:
		return fmt.Sprintf("%s (%s)", event.ShortIDString(p.Peer), p.Addr)
	}
	return fmt.Sprintf("%s (%s +%d)", event.ShortIDString(p.Peer), p.Addr, p.More)
}

// dialReasons are the words of the dial reasons (event.Why… values).
var dialReasons = map[string]string{
	event.WhyMismatch:      "another peer now answers at its address",
	event.WhyNoReservation: "its relay no longer holds a slot for it",
	event.WhyRefused:       "refused (nothing listening)",
	event.WhyOurLimit:      "our connection limits are reached",
	event.WhyFiltered:      "refused by our -allow/-deny filters",
	event.WhyRelayFull:     "its relay is full",
	event.WhyNoAddrs:       "no address known for it",
	event.WhyNoGoodAddrs:   "none of its addresses can be dialed from here (no transport for them, or filtered)",
	event.WhyNoRoute:       "no route to its addresses",
	event.WhyTimeout:       "no answer (timed out)",
	event.WhyBackoff:       "another dial of ours failed moments ago; not retried yet",
	event.WhyCancelled:     "cancelled",
	event.WhyOnlyPrivate:   "it lists only private addresses, none reachable from here",
	event.WhyNoDNS:         "its DNS name gave no address we can dial (no DNS here?)",
}

// dialWords says why a dial failed.
func dialWords(why, cause string, waitMS int64) string {
	if why == event.WhyTimeout && waitMS > 0 {
		return fmt.Sprintf("no answer in %v", millis(waitMS).Round(time.Second))
	}
	if w, ok := dialReasons[why]; ok {
		return w
	}
	return cause
}

// lineWords says the events about our lines and the sessions.
func lineWords(e event.Event) (string, bool) {
	name := nameOf(e)
	switch e.Code {
	case event.ConnectedDirectly:
		return fmt.Sprintf("now connected directly to %s (%s, %s)", name, e.Protocol, e.Direction), true
	case event.Resending:
		return fmt.Sprintf("sending again %d line(s) that %s had not acknowledged", e.Count, name), true
	case event.HeldSent:
		return fmt.Sprintf("sending %d held line(s) to %s", e.Count, name), true
	case event.Held:
		what := "the line"
		if n := len(e.MsgIDs); n != 1 {
			what = fmt.Sprintf("%d lines", n)
		}
		return fmt.Sprintf("nobody is here yet: holding %s until someone joins (%d held)", what, e.Count), true
	case event.HeldFull:
		return fmt.Sprintf("%d line(s) not sent: nobody is here yet and %d lines are already held", len(e.MsgIDs), e.Limit), true
	case event.HeldUndelivered:
		return fmt.Sprintf("%d held line(s) not delivered: nobody joined", e.Count), true
	case event.Undelivered:
		return fmt.Sprintf("%d line(s) not delivered, or not known to be: %s", e.Count, idList(e.MsgIDs, e.Count)), true
	case event.Stalled:
		return fmt.Sprintf("%d line(s) not sent, and input no longer read: nobody joined for %v while %d lines were held",
			e.Count, millis(e.WaitMS), e.Limit), true
	case event.StillRelayed:
		return fmt.Sprintf("the chat with %s stays on the relay: no direct path found so far", name), true
	case event.PathMoved:
		path := "direct"
		if e.Relayed {
			path = "relayed"
		}
		return fmt.Sprintf("the chat with %s moved to a %s connection (%s)", name, path, e.Addr), true
	case event.UnackedOnLeave:
		return fmt.Sprintf("%d line(s) to %s not acknowledged yet: they are sent again if %s is back within %v",
			e.Count, name, name, millis(e.WaitMS)), true
	case event.UnackedAtExit:
		return fmt.Sprintf("%d line(s) not acknowledged by %s before we left: they may not have arrived", e.Count, name), true
	case event.ReconnectFailed:
		return fmt.Sprintf("could not reconnect to %s; discovery keeps looking for it", name), true
	case event.LineTooLong:
		if e.Bytes > 0 {
			return fmt.Sprintf("line not sent: it is %d bytes, over the limit of %d KiB", e.Bytes, e.Limit>>10), true
		}
		return fmt.Sprintf("line not sent: it is over the limit of %d KiB", e.Limit>>10), true
	case event.NotSentClosing:
		if e.Private {
			return "private line not sent: shutting down", true
		}
		return fmt.Sprintf("%d line(s) not sent: shutting down", e.Count), true
	case event.PrivatePeerLeft:
		return fmt.Sprintf("private line not sent: %s left the room", event.ShortIDString(e.Peer)), true
	case event.NotDelivered:
		to := name
		if len(e.Names) > 0 {
			to = strings.Join(e.Names, ", ")
		}
		return fmt.Sprintf("line %s not delivered to %s: %s", Preview(e.Text), to, deliveryWords(e)), true
	case event.LinesLost:
		return fmt.Sprintf("%d line(s) not delivered to %s: %s", e.Count, name, e.Cause), true
	case event.FlushFailed:
		return fmt.Sprintf("the last lines to %s may not have been delivered: %s", name, e.Cause), true
	case event.ProtocolViolation:
		what := fmt.Sprintf("a frame that breaks the protocol (%s)", e.Cause)
		if e.Plain {
			what = fmt.Sprintf("an oversized line (over %d KiB)", e.Limit>>10)
		}
		return fmt.Sprintf("%s sent %s: chat stream reset", name, what), true
	case event.OverRate:
		if len(e.Peers) == 0 {
			return fmt.Sprintf("%d line(s) not sent: over the room's rate (%d at once, then %.0f a second, so that no peer drops them); send them again in a moment",
				e.Count, e.Limit, e.Rate), true
		}
		return fmt.Sprintf("%d line(s) over the room's rate (%d at once, then %.0f a second) went only to the %d peer(s) connected directly",
			e.Count, e.Limit, e.Rate, len(e.Peers)), true
	case event.NotPublished:
		return fmt.Sprintf("line %s not published on the room's topic: %s", Preview(e.Text), e.Cause), true
	case event.DirectFlood:
		return fmt.Sprintf("direct messages from %s refused: more than %d at once", event.ShortIDString(e.Peer), e.Limit), true
	case event.DirectMalformed:
		return fmt.Sprintf("a direct message from %s was refused: %s", event.ShortIDString(e.Peer), e.Cause), true
	case event.DirectFailed:
		why := e.Cause
		switch e.Why {
		case event.WhyNotSupported:
			why = "it does not take direct messages (it does not speak " + ucdm.ProtocolID + ")"
		case event.WhyStatus:
			why = "refused with status " + e.Status
			if e.Cause != "" {
				why += ": " + e.Cause
			}
		}
		return fmt.Sprintf("private line %s not delivered to %s: %s", Preview(e.Text), name, why), true
	}
	return "", false
}

// deliveryWords says why a line was not delivered.
func deliveryWords(e event.Event) string {
	switch e.Why {
	case event.WhySessionEnded:
		return "the session ended"
	case event.WhyClosing:
		return "shutting down"
	case event.WhyNotReading:
		return fmt.Sprintf("the peer has not read for %v", millis(e.WaitMS))
	case event.WhyWindowFull:
		return fmt.Sprintf("%d lines have waited for its receipts for %v", e.Limit, millis(e.WaitMS))
	case event.WhyNoReceipt:
		return fmt.Sprintf("no receipt within %v", millis(e.WaitMS))
	}
	return e.Cause
}

// commandUsage is what a command needs, said when it was given without.
var commandUsage = map[string]string{
	"/msg":  "give a peer and a text, e.g. /msg alice see you at 5",
	"/send": "give the path of a file, e.g. /send notes.txt",
	"/get":  "give a file's ID (as shown when it was shared), e.g. /get 1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed",
}

// commandWords says the events about commands, files and the input.
func commandWords(e event.Event) (string, bool) {
	name := nameOf(e)
	switch e.Code {
	case event.UnknownCommand:
		return fmt.Sprintf("unknown command %s: /help lists the commands; to send a line that starts with /, type //", e.Command), true
	case event.Usage:
		return e.Command + ": " + commandUsage[e.Command], true
	case event.NickInvalid:
		return "/nick: " + e.Cause, true
	case event.NoSuchPeer:
		if e.Cause != "" {
			return e.Command + ": " + e.Cause, true
		}
		return fmt.Sprintf("%s: no peer in the room matches %q (/peers lists them)", e.Command, e.Name), true
	case event.AmbiguousPeer:
		if e.Name == "" {
			return fmt.Sprintf("%s: %d peers are in the room: say which", e.Command, e.Count), true
		}
		return fmt.Sprintf("%s: %d peers match %q: give their name as shown, with its ~ suffix, or more of the peer ID", e.Command, e.Count, e.Name), true
	case event.RoomEmpty:
		return e.Command + ": nobody is in the room", true
	case event.PingFailed:
		return fmt.Sprintf("/ping %s: %s", name, e.Cause), true
	case event.NotAdmitted:
		return fmt.Sprintf("%s: %s has no chat session with us; in a private room direct messages and files go only to peers that proved they hold the passphrase there",
			e.Command, nameOf(e)), true
	case event.InputFailed:
		return "read input: " + e.Cause, true
	case event.FilesOff:
		return e.Command + ": files are shared on the room's topic, which -gossip=false turns off", true
	case event.ShareFailed:
		return "/send: " + e.Cause, true
	case event.FileTooLarge:
		return fmt.Sprintf("/send: %s is %d bytes, over -max-file (%d)", e.Path, e.Bytes, e.Limit), true
	case event.FileUnknown:
		if e.Name != "" {
			return fmt.Sprintf("/get: %s has shared no file %q in this room since you joined", e.Name, e.FileID), true
		}
		return fmt.Sprintf("/get: nobody has shared a file %q in this room since you joined", e.FileID), true
	case event.AmbiguousFile:
		return fmt.Sprintf("/get: %d files match %q: say whose, /get %s@NAME, or give more of the ID", e.Count, e.FileID, e.FileID), true
	case event.FetchFailed:
		return "/get: " + fetchWords(e, name), true
	}
	return "", false
}

// fetchWords says why a /get failed.
func fetchWords(e event.Event, name string) string {
	switch e.Why {
	case event.WhyNotSupported:
		return fmt.Sprintf("%s does not serve files (it does not speak %s)", name, ucfile.ProtocolID)
	case event.WhyExists:
		return fmt.Sprintf("%s exists already: give another path, /get %s PATH", e.Path, e.FileID)
	case event.WhyUnavailable:
		return fmt.Sprintf("%s did not serve file %s (it may have left, or no longer share it)", name, e.FileID)
	case event.WhyTooLarge:
		return fmt.Sprintf("file %s from %s is over -max-file (%d bytes): not fetched", e.FileID, name, e.Limit)
	case event.WhyLengthMismatch:
		return fmt.Sprintf("file %s from %s came with the wrong length: discarded", e.FileID, name)
	}
	return fmt.Sprintf("file %s from %s: %s", e.FileID, name, e.Cause)
}

// Reason says why a peer left (a left event's code).
func Reason(e event.Event) string {
	switch e.Code {
	case event.LeftClosed:
		return "closed the chat"
	case event.LeftRefused:
		return "reset the chat"
	case event.LeftConnReset:
		return "connection reset"
	case event.LeftConnLost:
		return "connection lost: " + e.Cause
	case event.LeftWriteFailed:
		return "send failed: " + e.Cause
	case event.LeftNotAnswering:
		return fmt.Sprintf("stopped answering (no ping reply for %v)", millis(e.WaitMS))
	case event.LeftProtocol:
		return "broke the chat protocol"
	case event.LeftWeLeft:
		return "we left"
	case event.LeftBye:
		return "left the room"
	case event.LeftPresenceTimeout:
		return "no presence announcement for three of its intervals"
	case event.LeftPresenceSilent:
		return "no sign on the topic for a while"
	}
	return string(e.Code)
}

// nameOf is the name an event shows its peer by: the name the room gave
// it, or its short ID.
func nameOf(e event.Event) string {
	if e.Name != "" {
		return e.Name
	}
	return event.ShortIDString(e.Peer)
}

// idList lists message IDs for a person, the first few of count.
func idList(ids []string, count int) string {
	const show = 5
	if len(ids) <= show {
		return strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(ids[:show], ", "), count-show)
}

func millis(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// Preview is the start of a line, quoted, for notices about it.
func Preview(text string) string {
	const max = 40
	r := []rune(text)
	if len(r) <= max {
		return fmt.Sprintf("%q", text)
	}
	return fmt.Sprintf("%q…", string(r[:max]))
}
