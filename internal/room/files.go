package room

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/gossiproom"
	"github.com/rendezvous-chat/rendezvous-chat/internal/node"
	"github.com/rendezvous-chat/rendezvous-chat/internal/ucfile"
	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

const (
	// maxFileOffers bounds the file IDs remembered from the file topic.
	maxFileOffers = 1024
	// fileTopicRate and fileTopicBurst bound each author's announcements
	// on the file topic.
	fileTopicRate  = 1.0
	fileTopicBurst = 5
	// transferProgressEvery spaces the progress events of a fetch.
	transferProgressEvery = 200 * time.Millisecond
	// announceTimeout bounds the announcement of a file we share.
	announceTimeout = 5 * time.Second
)

// files shares files with the room and fetches those others share, with
// universal-connectivity's file protocol: IDs are announced on a side
// topic (<room>-file) and fetched from their announcer. It owns the store
// of files we share and the table of offers heard, keyed by file ID and
// author, so that nobody can take over a file someone else announced
// (bounded by maxFileOffers, the oldest forgotten first).
//
// Our own peers also tell their sessions a file's name and size, in a file
// frame sent before the announcement; a topic announcement from a peer we
// have a framed session with waits (streamGrace at most) for that frame, so
// that the file is shown once, with its name.
type files struct {
	r     *Room
	side  *gossiproom.SideTopic
	store *ucfile.Store
	max   int64 // -max-file

	mu     sync.Mutex
	offers map[offerKey]*offer
	seq    []offerKey // oldest first
	// waiting are topic announcements waiting for their file frame; the
	// topic's loop owns it.
	waiting []waitingOffer
}

// An offerKey names a file offer: one author's file ID.
type offerKey struct {
	id   string
	from peer.ID
}

// An offer is a file a peer shared: its name and size when its author told
// us (a file frame), and whether it was shown.
type offer struct {
	name  string
	size  int64
	shown bool
}

type waitingOffer struct {
	key offerKey
	at  time.Time
}

// handleLen is how many characters of a file ID the view shows, and /get
// takes, as the file's handle.
const handleLen = 8

// newFiles joins the room's file topic.
func newFiles(r *Room, g *gossiproom.Room, cfg TopicConfig) (*files, error) {
	side, err := g.JoinSide(ucfile.Topic(cfg.Topic), ucfile.MaxIDBytes, fileTopicRate, fileTopicBurst,
		func(b []byte) error { _, err := ucfile.ParseAnnouncement(b); return err })
	if err != nil {
		return nil, err
	}
	return &files{r: r, side: side, store: ucfile.NewStore(), max: cfg.MaxFileBytes, offers: make(map[offerKey]*offer)}, nil
}

// serveFailed hears of a file request we did not serve.
func (f *files) serveFailed(from peer.ID, err error) {
	log.Debugw("file request not served", "peer", from, "err", err)
}

// record keeps an offer, unless the table already has it, and returns it.
func (f *files) recordLocked(k offerKey) *offer {
	o := f.offers[k]
	if o == nil {
		if len(f.seq) >= maxFileOffers {
			delete(f.offers, f.seq[0])
			f.seq = f.seq[1:]
		}
		o = &offer{size: -1}
		f.offers[k] = o
		f.seq = append(f.seq, k)
	}
	return o
}

// offered takes a file ID announced on the file topic.
func (f *files) offered(m gossiproom.SideMessage) {
	if !f.r.allowed(m.From) {
		return
	}
	k := offerKey{id: string(m.Data), from: m.From}
	f.mu.Lock()
	o := f.recordLocked(k)
	show := !o.shown && o.name == ""
	f.mu.Unlock()
	if !show {
		return
	}
	if f.r.roster.framedWith(m.From) {
		// Its file frame, sent before the announcement, is on the way.
		f.waiting = append(f.waiting, waitingOffer{key: k, at: time.Now()})
		return
	}
	nick, name := f.r.topic.authorNames(k.from)
	f.show(k, nick, name)
}

// described takes a file frame from a session: the name and size of a file
// its peer shares.
func (f *files) described(s *session, fr wire.Frame) {
	k := offerKey{id: fr.ID, from: s.peer}
	f.mu.Lock()
	o := f.recordLocked(k)
	if o.shown {
		f.mu.Unlock()
		return
	}
	o.name, o.size = fr.Text, fr.Size
	f.mu.Unlock()
	f.show(k, s.nick(), s.name())
}

// releaseWaiting shows the topic announcements whose file frame did not
// come within streamGrace. The topic's loop calls it; offered too: the
// topic's loop owns waiting, and authorNames may only run there.
func (f *files) releaseWaiting(now time.Time) {
	n := 0
	for n < len(f.waiting) && now.Sub(f.waiting[n].at) >= streamGrace {
		k := f.waiting[n].key
		nick, name := f.r.topic.authorNames(k.from)
		f.show(k, nick, name)
		n++
	}
	if n > 0 {
		f.waiting = f.waiting[n:]
	}
}

// show says that a peer shared a file, once; nick and name are how its
// author is called.
func (f *files) show(k offerKey, nick, shown string) {
	f.mu.Lock()
	o := f.offers[k]
	if o == nil || o.shown {
		f.mu.Unlock()
		return
	}
	o.shown = true
	name, size := o.name, o.size
	f.mu.Unlock()
	e := event.Event{Kind: event.File, Peer: k.from.String(), Nick: nick, Name: shown, FileID: k.id, Path: name}
	if size >= 0 && name != "" {
		e.Total = size
	}
	f.r.emit(e)
}

// find returns the one offer named by arg: a file ID or the start of one
// (its handle), optionally followed by @ and its author (a name, or part
// of a peer ID), which an ID that two peers announced needs.
func (f *files) find(arg string) (offerKey, *FileError) {
	id, author, _ := strings.Cut(arg, "@")
	var who peer.ID
	if author != "" {
		p, err := f.r.FindPeer(author)
		if err != nil {
			return offerKey{}, &FileError{Code: event.FileUnknown, ID: id, Author: author}
		}
		who = p
	}
	var exact, prefix []offerKey
	f.mu.Lock()
	for k := range f.offers {
		if who != "" && k.from != who {
			continue
		}
		switch {
		case k.id == id:
			exact = append(exact, k)
		case len(id) >= 4 && strings.HasPrefix(k.id, id):
			prefix = append(prefix, k)
		}
	}
	f.mu.Unlock()
	for _, found := range [][]offerKey{exact, prefix} {
		switch {
		case len(found) == 1:
			return found[0], nil
		case len(found) > 1:
			return offerKey{}, &FileError{Code: event.AmbiguousFile, ID: id, Count: len(found)}
		}
	}
	return offerKey{}, &FileError{Code: event.FileUnknown, ID: id, Author: author}
}

// A FileError says why a /get names no one file.
type FileError struct {
	Code   event.Code
	ID     string
	Author string
	Count  int
}

func (e *FileError) Error() string { return fmt.Sprintf("%s %q", e.Code, e.ID) }

// handles returns the handles of the files offered, for Tab completion.
func (f *files) handles() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	list := make([]string, 0, len(f.offers))
	for k := range f.offers {
		list = append(list, FileHandle(k.id))
	}
	slices.Sort(list)
	return slices.Compact(list)
}

// FileHandle is the short form of a file ID shown to people.
func FileHandle(id string) string {
	if len(id) <= handleLen {
		return id
	}
	return id[:handleLen]
}

// FileHandles returns the handles of the files shared in the room, for Tab
// completion after /get.
func (r *Room) FileHandles() []string {
	if r.files == nil {
		return nil
	}
	return r.files.handles()
}

// Share shares the file at path with the room: /send.
func (r *Room) Share(path string) {
	f := r.files
	if f == nil {
		r.emit(event.Event{Kind: event.Error, Code: event.FilesOff, Command: "/send"})
		return
	}
	id, err := f.store.Share(path)
	if err != nil {
		r.emit(event.Event{Kind: event.Error, Code: event.ShareFailed, Path: path, Cause: node.FirstLine(err)})
		return
	}
	info, _ := f.store.Lookup(id)
	if info.Size > f.max {
		f.store.Unshare(id)
		r.emit(event.Event{Kind: event.Error, Code: event.FileTooLarge, Path: path, Bytes: info.Size, Limit: f.max})
		return
	}
	// Our peers first hear what the file is, then the topic its ID.
	desc := &wire.Frame{Type: wire.TypeFile, ID: id, Text: filepath.Base(path), Size: info.Size}
	for _, s := range r.roster.sessionList() {
		if s.framed() {
			if _, err := s.enqueue(r.lc.closing, desc); err != nil {
				log.Debugw("file not described to a peer", "peer", s.peer, "err", err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(r.ctx, announceTimeout)
	defer cancel()
	if err := f.side.Publish(ctx, ucfile.Announcement(id)); err != nil {
		f.store.Unshare(id)
		r.emit(event.Event{Kind: event.Error, Code: event.ShareFailed, Path: path, Cause: node.FirstLine(err)})
		return
	}
	r.emit(event.Event{Kind: event.Shared, FileID: id, Path: path, Bytes: info.Size, Topic: f.side.Name()})
}

// Fetch fetches a file announced in the room, into path, or a file named
// after it when path is empty: /get FILE [PATH], FILE being its ID or
// handle, with @AUTHOR when two peers announced it. It goes on in the
// background, with transfer events that say whose file it is.
func (r *Room) Fetch(arg, path string) {
	f := r.files
	if f == nil {
		r.emit(event.Event{Kind: event.Error, Code: event.FilesOff, Command: "/get"})
		return
	}
	k, ferr := f.find(arg)
	if ferr != nil {
		r.emit(event.Event{Kind: event.Error, Code: ferr.Code, Command: "/get", FileID: ferr.ID, Name: ferr.Author, Count: ferr.Count})
		return
	}
	id, from := k.id, k.from
	if !r.admitted(from) {
		// In a private room files come from admitted peers only.
		r.emit(event.Event{Kind: event.Error, Code: event.NotAdmitted, Command: "/get", FileID: id, Peer: from.String(), Name: r.roster.nameOf(from)})
		return
	}
	f.mu.Lock()
	name := f.offers[k].name
	f.mu.Unlock()
	if path == "" {
		path = defaultDownloadName(id, name)
	}
	if !r.lc.add() {
		return
	}
	who := r.roster.nameOf(from)
	r.emit(event.Event{Kind: event.Transfer, FileID: id, Path: path, Peer: from.String(), Name: who})
	go func() {
		defer r.lc.done()
		var last time.Time
		n, err := ucfile.Fetch(r.ctx, r.host, from, id, f.max, path, false, func(got, total int64) {
			if got < total && time.Since(last) < transferProgressEvery {
				return
			}
			last = time.Now()
			r.emit(event.Event{Kind: event.Transfer, FileID: id, Path: path, Peer: from.String(), Name: who, Bytes: got, Total: total})
		})
		if err != nil {
			e := event.Event{Kind: event.Error, Code: event.FetchFailed, FileID: id, Path: path,
				Peer: from.String(), Name: who, Done: true, Why: fetchWhy(err)}
			switch e.Why {
			case event.WhyTooLarge:
				e.Limit = f.max
			case event.WhyOther:
				e.Cause = node.FirstLine(err)
			}
			r.emit(e)
			return
		}
		r.emit(event.Event{Kind: event.Transfer, FileID: id, Path: path, Peer: from.String(), Name: who, Bytes: n, Total: n, Done: true})
	}()
}

// fetchWhy says why a fetch failed.
func fetchWhy(err error) string {
	switch {
	case notSupported(err):
		return event.WhyNotSupported
	case errors.Is(err, ucfile.ErrExists):
		return event.WhyExists
	case errors.Is(err, ucfile.ErrUnavailable):
		return event.WhyUnavailable
	case errors.Is(err, ucfile.ErrTooLarge):
		return event.WhyTooLarge
	case errors.Is(err, ucfile.ErrLengthMismatch):
		return event.WhyLengthMismatch
	}
	return event.WhyOther
}

// defaultDownloadName is where /get puts a file when given no path: the
// name its author gave it (our peers tell it), else its ID, when each is a
// safe file name (a UUID is), or else a name made of the part of it that
// is; never a path, so that a peer cannot make us write elsewhere.
func defaultDownloadName(id, name string) string {
	if name = filepath.Base(name); name != "." && name != ".." && name != "/" && safeName(name) {
		return name
	}
	safe := make([]rune, 0, len(id))
	for _, c := range id {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			safe = append(safe, c)
		}
		if len(safe) == 64 {
			break
		}
	}
	if len(safe) == 0 {
		return "download"
	}
	return string(safe)
}

// notSupported reports whether err says that the peer does not speak the
// protocol we asked for.
func notSupported(err error) bool {
	var ns msmux.ErrNotSupported[protocol.ID]
	return errors.As(err, &ns)
}

// safeName reports whether a peer's name for a file is a plain file name:
// letters, digits, '-', '_', '.', not starting with '.', at most 64 bytes.
func safeName(name string) bool {
	if name == "" || len(name) > 64 || strings.HasPrefix(name, ".") {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
