package main

import (
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/console"

	"github.com/rendezvous-chat/rendezvous-chat/internal/room"

	"github.com/rendezvous-chat/rendezvous-chat/internal/safetext"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/words"
)

// A view renders events: for a person (humanView) or as JSON lines
// (jsonView). Both render the same event stream, so the JSON output is the
// truth that the human view shows.
type view interface {
	render(e *event.Event) error
	// flush writes out what render buffered. The view loop calls it when no
	// further event is waiting, so bursts are written in few system calls.
	flush() error
}

// humanView renders events as chat lines for a person.
type humanView struct {
	w        io.Writer // a line editor that redraws the prompt, or buffered stdout
	flushOut func() error
	color    bool
	buf      strings.Builder
	// status shows a transfer's progress bar before the prompt, on a
	// terminal; nil otherwise. transfers are the transfers in progress, by
	// file ID, with their last line.
	status    func(string)
	transfers map[string]string
	// screen, on a terminal the line editor owns, lets the view rewrite
	// the typed line as a sent line, and tick it in place when it is
	// acknowledged; nil otherwise. me is how we are shown; own is the last
	// line we sent, while it may still be ticked.
	screen *console.Screen
	me     string
	own    ownLine
}

// ownLine is a line of ours on the screen, waiting for its tick.
type ownLine struct {
	id   string // its message ID, "" when there is none to tick
	text string // as shown, without the newline
	rows int
	mark uint64 // the screen's mark right after it was written
}

const (
	ansiReset = "\x1b[0m"
	ansiDim   = "\x1b[2m"
	ansiBold  = "\x1b[1m"
	ansiRed   = "\x1b[31m"
	ansiGreen = "\x1b[32m"
)

// peerColors are the colours peers are told apart by; each peer gets the
// same one every time, from a hash of its ID.
var peerColors = []string{"\x1b[36m", "\x1b[33m", "\x1b[35m", "\x1b[34m", "\x1b[92m", "\x1b[96m", "\x1b[93m", "\x1b[95m"}

func newHumanView(w io.Writer, flush func() error, color bool) *humanView {
	return &humanView{w: w, flushOut: flush, color: color, transfers: make(map[string]string)}
}

func (v *humanView) paint(code, s string) string {
	if !v.color {
		return s
	}
	return code + s + ansiReset
}

func (v *humanView) flush() error { return v.flushOut() }

// peerName is the name a peer is shown by (its short ID when the event
// has none) in the peer's colour, which its ID decides.
func (v *humanView) peerName(id, name string) string {
	p, err := peer.Decode(id)
	if err != nil {
		return safetext.Sanitize(id)
	}
	if name == "" {
		name = event.ShortID(p)
	}
	h := fnv.New32a()
	h.Write([]byte(p))
	return v.paint(peerColors[h.Sum32()%uint32(len(peerColors))], safetext.Sanitize(name))
}

func (v *humanView) render(e *event.Event) error {
	words.Fill(e)
	v.buf.Reset()
	b := &v.buf
	b.WriteString(v.paint(ansiDim, e.Time.Format("15:04")))
	b.WriteByte(' ')
	switch e.Kind {
	case event.Ready:
		if e.Server {
			b.WriteString(v.paint(ansiBold, "Server ready: ") + e.ID + "\n")
			b.WriteString("Others can bootstrap from it with any of:\n")
			for _, a := range e.Addrs {
				b.WriteString("  -peer " + a + "\n")
			}
			break
		}
		v.me = e.Nick
		fmt.Fprintf(b, "%s %s\n", v.paint(ansiBold, "You are"), e.ID)
		b.WriteString(v.paint(ansiDim, "listening on "+strings.Join(e.Addrs, " ")) + "\n")
		private := ""
		if e.Private {
			private = " (a private room: only those with its passphrase can find it, enter it and read it)"
		}
		fmt.Fprintf(b, "Looking for peers at rendezvous %q%s. Type a line and press Enter to send it; /help lists the commands; Ctrl-D quits.\n",
			safetext.Sanitize(e.Rendezvous), private)
	case event.Joined:
		if e.Via == event.ViaTopic {
			detail := "on the topic"
			if p, err := peer.Decode(e.Peer); err == nil && e.Name != event.ShortID(p) {
				detail = "…" + event.ShortID(p) + ", " + detail
			}
			fmt.Fprintf(b, "%s %s joined %s\n", v.paint(ansiGreen, "→"), v.peerName(e.Peer, e.Name), v.paint(ansiDim, "("+detail+")"))
			break
		}
		detail := e.Direction + ", " + safetext.Sanitize(e.Addr)
		if p, err := peer.Decode(e.Peer); err == nil && e.Name != event.ShortID(p) {
			detail = "…" + event.ShortID(p) + ", " + detail
		}
		if e.Plain {
			detail += ", plain " + safetext.Sanitize(e.Protocol) + ": no receipts"
		}
		fmt.Fprintf(b, "%s %s joined %s\n", v.paint(ansiGreen, "→"), v.peerName(e.Peer, e.Name), v.paint(ansiDim, "("+detail+")"))
	case event.Message:
		if e.Private {
			fmt.Fprintf(b, "%s %s %s\n", v.peerName(e.Peer, e.Name), v.paint(ansiBold, "(to you only):"), safetext.Sanitize(e.Text))
			break
		}
		fmt.Fprintf(b, "%s: %s\n", v.peerName(e.Peer, e.Name), safetext.Sanitize(e.Text))
	case event.Direct:
		fmt.Fprintf(b, "%s %s %s\n", v.peerName(e.Peer, e.Name), v.paint(ansiBold, "(direct, to you only):"), safetext.Sanitize(e.Text))
	case event.File:
		handle := safetext.Sanitize(room.FileHandle(e.FileID))
		what := "a file " + handle
		if e.Path != "" {
			what = fmt.Sprintf("%s (%s)", safetext.Sanitize(e.Path), byteSize(e.Total))
		}
		fmt.Fprintf(b, "%s shares %s %s\n", v.peerName(e.Peer, e.Name), what,
			v.paint(ansiDim, "(/get "+handle+" [PATH] fetches it)"))
	case event.Shared:
		b.WriteString(v.paint(ansiDim, fmt.Sprintf("· shared %s (%s) as %s: peers fetch it with /get %s",
			safetext.Sanitize(e.Path), byteSize(e.Bytes), safetext.Sanitize(e.FileID), safetext.Sanitize(room.FileHandle(e.FileID)))) + "\n")
	case event.Transfer:
		return v.renderTransfer(e)
	case event.Left:
		fmt.Fprintf(b, "%s %s left %s\n", v.paint(ansiDim, "←"), v.peerName(e.Peer, e.Name), v.paint(ansiDim, "("+safetext.Sanitize(e.Reason)+")"))
	case event.Sent:
		return v.renderSent(e)
	case event.Delivered:
		return v.renderDelivered(e)
	case event.Nick:
		if e.Peer == "" {
			v.me = e.Name
			b.WriteString(v.paint(ansiDim, "· you are now known as "+safetext.Sanitize(e.Name)) + "\n")
			break
		}
		fmt.Fprintf(b, "%s %s is now %s\n", v.paint(ansiDim, "·"), v.paint(ansiDim, safetext.Sanitize(e.Was)), v.peerName(e.Peer, e.Name))
	case event.Peers:
		v.renderPeers(b, e.Room)
	case event.Pending:
		v.renderPending(b, e.Pending)
	case event.Help:
		b.WriteString("Commands:\n")
		for _, line := range strings.Split(e.Text, "\n") {
			b.WriteString("  " + line + "\n")
		}
	case event.Info:
		b.WriteString(v.paint(ansiDim, "· "+safetext.Sanitize(e.Text)) + "\n")
	case event.Error:
		if e.FileID != "" && e.Done {
			v.endTransfer(e.FileID)
		}
		b.WriteString(v.paint(ansiRed, "! "+safetext.Sanitize(e.Error)) + "\n")
	case event.Ping:
		fmt.Fprintf(b, "%s answered ping in %.2f ms\n", v.peerName(e.Peer, e.Name), e.RTTMS)
	case event.Conns:
		v.renderConns(b, e.Conns)
	default:
		return nil
	}
	_, err := io.WriteString(v.w, b.String())
	return err
}

// renderConns lists connections one a line: who, path, transport, security,
// muxer, direction, address, age and round-trip time.
func (v *humanView) renderConns(b *strings.Builder, conns []event.ConnInfo) {
	if len(conns) == 0 {
		b.WriteString("no connections to anyone in the room\n")
		return
	}
	fmt.Fprintf(b, "%d connection(s) to the room:\n", len(conns))
	for _, c := range conns {
		path := v.paint(ansiGreen, "direct ")
		if c.Relayed {
			path = "relayed"
		}
		rtt := "rtt ?"
		if c.RTTMS > 0 {
			rtt = fmt.Sprintf("rtt %.2f ms", c.RTTMS)
		}
		fmt.Fprintf(b, "  %s %s %-7s %-12s %-14s %-8s age %-8s %s  %s\n",
			v.peerName(c.Peer, c.Name), path, c.Transport, c.Security, c.Muxer, c.Direction,
			(time.Duration(c.AgeMS) * time.Millisecond).Round(time.Second), rtt, safetext.Sanitize(c.Addr))
	}
}

// renderTransfer shows a /get: a line when it starts and ends, and a
// progress bar before the prompt meanwhile (on a terminal).
func (v *humanView) renderTransfer(e *event.Event) error {
	var line string
	switch {
	case e.Done:
		v.endTransfer(e.FileID)
		line = fmt.Sprintf("· fetched %s from %s: %s in %s", safetext.Sanitize(e.FileID), safetext.Sanitize(e.Name), byteSize(e.Bytes), safetext.Sanitize(e.Path))
	case e.Total == 0 && e.Bytes == 0:
		line = fmt.Sprintf("· fetching %s from %s into %s", safetext.Sanitize(e.FileID), safetext.Sanitize(e.Name), safetext.Sanitize(e.Path))
	default:
		v.transfers[e.FileID] = progressBar(e.Bytes, e.Total)
		v.showTransfers()
		return nil
	}
	b := &v.buf
	b.Reset()
	b.WriteString(v.paint(ansiDim, e.Time.Format("15:04")+" "+line) + "\n")
	_, err := io.WriteString(v.w, b.String())
	return err
}

// endTransfer removes a transfer's bar.
func (v *humanView) endTransfer(id string) {
	if _, ok := v.transfers[id]; ok {
		delete(v.transfers, id)
		v.showTransfers()
	}
}

// showTransfers puts the bars of the transfers in progress before the
// prompt.
func (v *humanView) showTransfers() {
	if v.status == nil {
		return
	}
	bars := make([]string, 0, len(v.transfers))
	for _, bar := range v.transfers {
		bars = append(bars, bar)
	}
	slices.Sort(bars)
	v.status(strings.Join(bars, " "))
}

// progressBar draws got of total as "[#####-----] 50% 3.0 MiB/6.0 MiB".
func progressBar(got, total int64) string {
	const width = 20
	filled := 0
	pct := 0
	if total > 0 {
		filled = int(got * width / total)
		pct = int(got * 100 / total)
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat("-", width-filled) + "] " +
		fmt.Sprintf("%d%% %s/%s", pct, byteSize(got), byteSize(total))
}

// byteSize renders a size for people.
func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// renderPeers lists the room one peer a line: name, peer ID, protocol,
// path, direction and address.
func (v *humanView) renderPeers(b *strings.Builder, peers []event.PeerInfo) {
	if len(peers) == 0 {
		b.WriteString("nobody is in the room yet\n")
		return
	}
	fmt.Fprintf(b, "%d peer(s) in the room:\n", len(peers))
	for _, p := range peers {
		fmt.Fprintf(b, "  %s  %s  %s  %s, %s  %s\n", v.peerName(p.Peer, p.Name), v.paint(ansiDim, p.Peer),
			safetext.Sanitize(p.Protocol), p.Path, p.Direction, v.paint(ansiDim, safetext.Sanitize(p.Addr)))
	}
}

// renderPending lists our lines that wait for receipts, and from whom.
func (v *humanView) renderPending(b *strings.Builder, pending []event.PendingInfo) {
	if len(pending) == 0 {
		b.WriteString("every line you sent has been acknowledged\n")
		return
	}
	fmt.Fprintf(b, "%d line(s) not yet acknowledged by everyone:\n", len(pending))
	for _, p := range pending {
		fmt.Fprintf(b, "  %s  waiting for %s %s\n", safetext.Sanitize(words.Preview(p.Text)), safetext.Sanitize(strings.Join(p.Names, ", ")),
			v.paint(ansiDim, fmt.Sprintf("(%v)", (time.Duration(p.AgeMS)*time.Millisecond).Round(time.Second))))
	}
}

// renderSent shows lines we sent once, in the form of everyone's lines:
// "15:04 alice: hi bob". On a terminal the line the user typed is still on
// the screen after the prompt; when it is the last thing there, it is
// rewritten in that form, so that the scroll holds each line once. A line
// from a paste or a pipe is shown as typed lines are; a batch of lines
// without its text (a pipe) is not shown again: the input is.
func (v *humanView) renderSent(e *event.Event) error {
	if e.Text == "" {
		return nil
	}
	me := v.me
	if me == "" {
		me = "you"
	}
	line := v.paint(ansiDim, e.Time.Format("15:04")) + " " + v.paint(ansiBold, safetext.Sanitize(me))
	if e.To != "" {
		line += " " + v.paint(ansiBold, "(to "+safetext.Sanitize(event.ShortIDString(e.To))+" only)")
	}
	line += ": " + safetext.Sanitize(e.Text)
	prefix := ""
	if v.screen != nil {
		if rows, ok := v.screen.TakeEcho(); ok {
			prefix = eraseUp(rows)
		}
	}
	if _, err := io.WriteString(v.w, prefix+line+"\n"); err != nil {
		return err
	}
	v.own = ownLine{}
	if v.screen != nil && len(e.MsgIDs) == 1 {
		v.own = ownLine{id: e.MsgIDs[0], text: line, rows: v.screen.Rows(visibleWidth(line)), mark: v.screen.Mark()}
	}
	return nil
}

// renderDelivered ticks a line of ours in place when every peer it went to
// has acknowledged it and it is still the last line on the screen; other
// receipts are not shown: the scroll says only what stays unacknowledged
// (not_delivered, unacked_on_leave).
func (v *humanView) renderDelivered(e *event.Event) error {
	own := v.own
	if v.screen == nil || own.id == "" || len(e.MsgIDs) != 1 || e.MsgIDs[0] != own.id || v.screen.Mark() != own.mark {
		return nil
	}
	v.own = ownLine{}
	_, err := io.WriteString(v.w, eraseUp(own.rows)+own.text+" "+v.paint(ansiGreen, "✓")+"\n")
	return err
}

// eraseUp moves the cursor up rows rows, to the start of the line, and
// clears from there to the end of the screen.
func eraseUp(rows int) string {
	return fmt.Sprintf("\x1b[%dA\r\x1b[J", rows)
}

// visibleWidth is how many characters s shows, its colours left out.
func visibleWidth(s string) int {
	n, esc := 0, false
	for _, r := range s {
		switch {
		case r == '\x1b':
			esc = true
		case esc:
			if r >= '@' && r <= '~' && r != '[' {
				esc = false
			}
		default:
			n++
		}
	}
	return n
}
