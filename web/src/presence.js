// Who is in the room: the same rules as the Go peers' presence table
// (internal/gossiproom), in small.
//
// A peer is present from its first sign: an announcement on the presence
// topic, or a line on the chat topic (universal-connectivity's peers never
// announce themselves). It leaves on a "bye", or after no sign for three of
// its intervals (its every_ms, taken between ours and ten of ours) when it
// announces itself, SILENT_TTL_MS when it does not. A "bye" leaves a
// tombstone for three intervals, so that a line or an older "here" still on
// its way does not bring the peer back; a sign with a higher sequence number
// (which grows across restarts) does.

export const INTERVAL_MS = 30_000
export const SILENT_TTL_MS = 5 * 60_000
export const MAX_PEERS = 4096
export const MAX_NICK_CHARS = 32

// The announcement we send, as the Go peers write it.
export function hereAnnouncement (nick) {
  return JSON.stringify({ v: 1, t: 'here', nick, every_ms: INTERVAL_MS })
}

export const BYE = JSON.stringify({ v: 1, t: 'bye' })

const utf8 = new TextDecoder('utf-8', { fatal: true })

// decodeText returns the bytes as a string, or null if they are not UTF-8.
export function decodeText (bytes) {
  try {
    return utf8.decode(bytes)
  } catch {
    return null
  }
}

// parseAnnouncement returns {t, nick, everyMs} or null for anything the Go
// peers would refuse: not UTF-8, not a JSON object, v < 1, t neither "here"
// nor "bye", an oversized nick, a negative interval.
export function parseAnnouncement (bytes) {
  if (bytes.length > 1024) return null
  const text = decodeText(bytes)
  if (text == null) return null
  let a
  try {
    a = JSON.parse(text)
  } catch {
    return null
  }
  if (a == null || typeof a !== 'object' || Array.isArray(a)) return null
  if (typeof a.v !== 'number' || a.v < 1) return null
  if (a.t !== 'here' && a.t !== 'bye') return null
  if (a.nick != null && (typeof a.nick !== 'string' || new TextEncoder().encode(a.nick).length > 64)) return null
  const everyMs = a.every_ms == null ? 0 : a.every_ms
  if (typeof everyMs !== 'number' || !(everyMs >= 0)) return null
  return { t: a.t, nick: a.nick ?? '', everyMs }
}

// Characters that could reorder or hide text around a name: C0 and C1
// controls, bidirectional formatting, zero-width marks, the BOM.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/gu

// cleanNick makes a nick safe to show, as the Go peers' CleanNick does:
// unsafe characters dropped, spaces and "~" replaced by "_", at most 32
// characters, no leading "/" or "_", no trailing "_". It returns "" when
// nothing usable is left (the peer is then shown by its short ID).
export function cleanNick (raw) {
  const chars = [...String(raw).replace(UNSAFE, '').replace(/[\s~]/gu, '_')].slice(0, MAX_NICK_CHARS)
  return chars.join('').replace(/^[/_]+/u, '').replace(/_+$/u, '')
}

// checkNick says what is wrong with a nick the user typed, or returns null:
// 1 to 32 characters, no spaces, not starting with "/", no "~" (the Go
// peers' CheckNick).
export function checkNick (nick) {
  if (nick === '') return 'a nickname cannot be empty'
  if ([...nick].length > MAX_NICK_CHARS) return `a nickname is at most ${MAX_NICK_CHARS} characters`
  if (nick.startsWith('/')) return 'a nickname cannot start with /'
  if (nick.includes('~')) return 'a nickname cannot contain ~'
  if (/\s/u.test(nick) || nick.replace(UNSAFE, '') !== nick) return 'a nickname is one word of letters, digits and punctuation'
  return null
}

// shortID is how a peer without a nick is shown: the last 8 characters of
// its peer ID.
export function shortID (peer) {
  return peer.slice(-8)
}

export class Presence {
  constructor (self, onChange, interval = INTERVAL_MS) {
    this.self = self
    this.interval = interval
    this.onChange = onChange
    this.peers = new Map() // peer ID -> {nick, seen, ttl, seq, announced}
    this.gone = new Map() // peer ID -> {seq, until}
  }

  // announcedTTL: three intervals of the sender's, between ours and ten of ours.
  announcedTTL (everyMs) {
    const every = Math.min(Math.max(everyMs, this.interval), 10 * this.interval)
    return 3 * every
  }

  // tombstoned says whether a sign with this sequence number comes from
  // before the peer's "bye".
  tombstoned (peer, seq, now) {
    const g = this.gone.get(peer)
    if (g == null) return false
    if (now >= g.until || seq > g.seq) {
      this.gone.delete(peer)
      return false
    }
    return true
  }

  // announcement handles a presence message; it returns true when the peer
  // is new to the table (the caller may then announce itself again soon).
  announcement (peer, seq, a, now = Date.now()) {
    if (peer === this.self) return false
    if (a.t === 'bye') {
      this.gone.set(peer, { seq, until: now + 3 * this.interval })
      if (this.peers.delete(peer)) this.onChange()
      return false
    }
    if (this.tombstoned(peer, seq, now)) return false
    const known = this.peers.get(peer)
    if (known == null && this.peers.size >= MAX_PEERS) return false
    const nick = cleanNick(a.nick)
    const e = known ?? { seq: 0n }
    const changed = known == null || !known.announced || known.nick !== nick
    Object.assign(e, { nick, seen: now, ttl: this.announcedTTL(a.everyMs), announced: true })
    if (seq > e.seq) e.seq = seq
    this.peers.set(peer, e)
    if (changed) this.onChange()
    return known == null
  }

  // line handles a chat line: its author is present.
  line (peer, seq, now = Date.now()) {
    if (peer === this.self) return
    if (this.tombstoned(peer, seq, now)) return
    const e = this.peers.get(peer)
    if (e != null) {
      e.seen = now
      if (!e.announced) e.ttl = SILENT_TTL_MS
      if (seq > e.seq) e.seq = seq
      return
    }
    if (this.peers.size >= MAX_PEERS) return
    this.peers.set(peer, { nick: '', seen: now, ttl: SILENT_TTL_MS, seq, announced: false })
    this.onChange()
  }

  // expire drops the peers that have given no sign for long enough.
  expire (now = Date.now()) {
    let changed = false
    for (const [peer, e] of this.peers) {
      if (now - e.seen > e.ttl) {
        this.peers.delete(peer)
        changed = true
      }
    }
    for (const [peer, g] of this.gone) {
      if (now >= g.until) this.gone.delete(peer)
    }
    if (changed) this.onChange()
  }

  nick (peer) {
    return this.peers.get(peer)?.nick ?? ''
  }

  // list returns the peers present, sorted by name then peer ID.
  list () {
    return [...this.peers].map(([peer, e]) => ({ peer, nick: e.nick }))
      .sort((a, b) => (a.nick || shortID(a.peer)).localeCompare(b.nick || shortID(b.peer)) || (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0))
  }
}
