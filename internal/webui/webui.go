// Package webui serves the room's page to browsers (-web ADDR): the page
// and its script, built from web/ and embedded in the binary, and the
// binary's current browser addresses, from which the page dials it and
// joins the room's GossipSub topic as a peer of its own. It knows nothing
// of libp2p beyond the addresses it is handed.
package webui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

// Info is what /addrs tells the page: where to dial, and which topics are
// the room's.
type Info struct {
	Peer     string   `json:"peer"`
	Addrs    []string `json:"addrs"`
	Topic    string   `json:"topic"`
	Presence string   `json:"presence"`
	Nick     string   `json:"nick,omitempty"`
}

// Config says what the server serves.
type Config struct {
	// Addr is where to listen (host:port); only there.
	Addr string
	// Files holds index.html and app.js (web/dist).
	Files fs.FS
	// Info returns the current Info: the addresses change (a WebTransport
	// certificate rotates about every 12 days), so it is asked on every
	// request and never cached.
	Info func() Info
}

// A Server serves the page until Close.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	wg   sync.WaitGroup
	addr string
}

// Start listens on cfg.Addr and serves in the background.
func Start(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("-web %s: %w", cfg.Addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", file(cfg.Files, "index.html", "text/html; charset=utf-8"))
	mux.HandleFunc("GET /app.js", file(cfg.Files, "app.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /addrs", func(w http.ResponseWriter, r *http.Request) {
		headers(w, "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(cfg.Info())
	})
	s := &Server{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       time.Minute,
			MaxHeaderBytes:    16 << 10,
		},
		ln:   ln,
		addr: ln.Addr().String(),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// URL is the page's address.
func (s *Server) URL() string { return "http://" + s.addr + "/" }

// Close stops serving and waits for the server's goroutine.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	s.wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// file serves one embedded file.
func file(files fs.FS, name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(files, name)
		if err != nil {
			http.Error(w, "the page is not built into this binary (make web)", http.StatusNotFound)
			return
		}
		headers(w, contentType)
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	}
}

// headers are the page's: no other origin may use it (no CORS header at
// all), it runs only its own script, and it dials out only to libp2p
// peers (WebTransport is an https: connection; WebRTC is outside CSP).
func headers(w http.ResponseWriter, contentType string) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "+
		"connect-src 'self' https:; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
}

// BrowserAddrs keeps the addresses a browser can dial: WebTransport and
// WebRTC-direct, each with its certificate hashes, each ending in
// /p2p/<id>. It reads the address's protocols rather than its text, so
// that a protocol's name inside another (webrtc inside webrtc-direct) or
// in a value cannot fool it.
func BrowserAddrs(addrs []ma.Multiaddr, id string) []string {
	var out []string
	for _, a := range addrs {
		if browserDialable(a) {
			out = append(out, a.String()+"/p2p/"+id)
		}
	}
	return out
}

// browserDialable says whether a browser can dial a directly. A relayed
// address (/p2p-circuit) is not kept, even over WebTransport: a circuit
// relay v2 connection is limited (the relay cuts it after a couple of
// minutes or a little data), GossipSub does not open its streams on a
// limited connection, so the page would connect and never be in the room;
// and the relay's /p2p/<relay> inside it would make our /p2p/<id> suffix
// wrong.
func browserDialable(a ma.Multiaddr) bool {
	var transport, certhash bool
	for _, c := range a {
		switch c.Code() {
		case ma.P_CIRCUIT:
			return false
		case ma.P_WEBTRANSPORT, ma.P_WEBRTC_DIRECT:
			transport = true
		case ma.P_CERTHASH:
			certhash = true // without it, a browser cannot check the peer
		}
	}
	return transport && certhash
}
