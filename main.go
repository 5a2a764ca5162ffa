// Command rendezvous-chat is a terminal peer-to-peer chat on libp2p: people
// who start it with the same rendezvous string find each other through the
// DHT (or mDNS on a LAN) and talk over encrypted libp2p streams.
package main

import "os"

func main() {
	os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
