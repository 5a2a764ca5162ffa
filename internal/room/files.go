package room

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/gossiproom"
	"github.com/rendezvous-chat/rendezvous-chat/internal/node"
	"github.com/rendezvous-chat/rendezvous-chat/internal/ucfile"
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
// of files we share and the table of offers heard (bounded by
// maxFileOffers, the oldest forgotten first).
type files struct {
	r     *Room
	side  *gossiproom.SideTopic
	store *ucfile.Store
	max   int64 // -max-file

	mu       sync.Mutex
	offers   map[string]peer.ID // file ID → the peer that announced it
	offerSeq []string           // file IDs, oldest first
}

// newFiles joins the room's file topic.
func newFiles(r *Room, g *gossiproom.Room, cfg TopicConfig) (*files, error) {
	side, err := g.JoinSide(ucfile.Topic(cfg.Topic), ucfile.MaxIDBytes, fileTopicRate, fileTopicBurst,
		func(b []byte) error { _, err := ucfile.ParseAnnouncement(b); return err })
	if err != nil {
		return nil, err
	}
	return &files{r: r, side: side, store: ucfile.NewStore(), max: cfg.MaxFileBytes, offers: make(map[string]peer.ID)}, nil
}

// serveFailed hears of a file request we did not serve.
func (f *files) serveFailed(from peer.ID, err error) {
	log.Debugw("file request not served", "peer", from, "err", err)
}

// offered takes a file ID announced on the file topic.
func (f *files) offered(m gossiproom.SideMessage) {
	if !f.r.allowed(m.From) {
		return
	}
	id := string(m.Data)
	f.mu.Lock()
	if _, known := f.offers[id]; !known {
		if len(f.offerSeq) >= maxFileOffers {
			delete(f.offers, f.offerSeq[0])
			f.offerSeq = f.offerSeq[1:]
		}
		f.offerSeq = append(f.offerSeq, id)
	}
	f.offers[id] = m.From
	f.mu.Unlock()
	nick, name := f.r.topic.authorNames(m.From)
	f.r.emit(event.Event{Kind: event.File, Peer: m.From.String(), Nick: nick, Name: name, FileID: id})
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
// after its ID when path is empty: /get ID [PATH]. It goes on in the
// background, with transfer events.
func (r *Room) Fetch(id, path string) {
	f := r.files
	if f == nil {
		r.emit(event.Event{Kind: event.Error, Code: event.FilesOff, Command: "/get"})
		return
	}
	f.mu.Lock()
	from, ok := f.offers[id]
	f.mu.Unlock()
	if !ok {
		r.emit(event.Event{Kind: event.Error, Code: event.FileUnknown, FileID: id})
		return
	}
	if path == "" {
		path = defaultDownloadName(id)
	}
	if !r.lc.add() {
		return
	}
	name := r.roster.nameOf(from)
	r.emit(event.Event{Kind: event.Transfer, FileID: id, Path: path, Peer: from.String(), Name: name})
	go func() {
		defer r.lc.done()
		var last time.Time
		n, err := ucfile.Fetch(r.ctx, r.host, from, id, f.max, path, false, func(got, total int64) {
			if got < total && time.Since(last) < transferProgressEvery {
				return
			}
			last = time.Now()
			r.emit(event.Event{Kind: event.Transfer, FileID: id, Path: path, Peer: from.String(), Name: name, Bytes: got, Total: total})
		})
		if err != nil {
			e := event.Event{Kind: event.Error, Code: event.FetchFailed, FileID: id, Path: path,
				Peer: from.String(), Name: name, Done: true, Why: fetchWhy(err)}
			switch e.Why {
			case event.WhyTooLarge:
				e.Limit = f.max
			case event.WhyOther:
				e.Cause = node.FirstLine(err)
			}
			r.emit(e)
			return
		}
		r.emit(event.Event{Kind: event.Transfer, FileID: id, Path: path, Peer: from.String(), Name: name, Bytes: n, Total: n, Done: true})
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
// file's ID, when it is a safe file name (a UUID is), or else a name made
// of the part of it that is.
func defaultDownloadName(id string) string {
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
