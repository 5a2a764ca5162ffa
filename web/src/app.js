// The browser page of rendezvous-chat: a js-libp2p peer of its own that
// dials the binary that served it (WebTransport first, then WebRTC-direct),
// joins the room's GossipSub topic and its presence topic, and chats there.
//
// Everything a peer sends is shown as text (textContent), never as HTML.

import { createLibp2p } from 'libp2p'
import { webTransport } from '@libp2p/webtransport'
import { webRTCDirect } from '@libp2p/webrtc'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { gossipsub } from '@libp2p/gossipsub'
import { multiaddr } from '@multiformats/multiaddr'
import {
  Presence, INTERVAL_MS, hereAnnouncement, BYE, parseAnnouncement, decodeText,
  checkNick, cleanNick, shortID
} from './presence.js'

// The bounds the Go peers apply to a chat line (internal/gossiproom):
// at most 64 KiB of UTF-8, at most a burst of 50 lines then 10 a second
// from one author. We send at half that rate, as they do.
const MAX_LINE_BYTES = 64 << 10
const SEND_BURST = 25
const SEND_PER_SECOND = 5
// How long a publish is retried until it has a recipient.
const PUBLISH_BOUND_MS = 5000
// How long one address may take to connect, and how long we wait for the
// binary to show up as a subscriber of the room's topic.
const DIAL_TIMEOUT_MS = 10_000
const SUBSCRIBE_TIMEOUT_MS = 10_000
// How long we wait, at most, to be in the binary's GossipSub mesh (should
// our GRAFT not be sent at once, its heartbeat and ours run every second).
const MESH_TIMEOUT_MS = 3000
// Lines kept in the log.
const MAX_LINES = 1000

const $ = (id) => document.getElementById(id)
const ui = {
  status: $('status'),
  lines: $('lines'),
  form: $('send'),
  line: $('line'),
  nick: $('nick'),
  members: $('members'),
  membersLabel: $('members-label')
}

const encoder = new TextEncoder()
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const jitter = (ms) => Math.round(ms * (0.8 + 0.4 * Math.random()))

function setState (state, text) {
  document.body.dataset.state = state
  ui.status.textContent = text
}

function errorText (err) {
  if (err == null) return 'unknown error'
  const name = err.name && err.name !== 'Error' ? `${err.name}: ` : ''
  return `${name}${err.message ?? String(err)}`
}

// ---- The log ------------------------------------------------------------

// addLine appends "who: text" to the log and returns its element. who and
// text are set as text, never parsed as HTML.
function addLine (peer, who, text, cls = '') {
  const li = document.createElement('li')
  li.className = `line ${cls}`.trim()
  if (peer) {
    li.dataset.peer = peer
    li.title = peer
  }
  const whoEl = document.createElement('span')
  whoEl.className = 'who'
  whoEl.textContent = who
  const textEl = document.createElement('span')
  textEl.className = 'text'
  textEl.textContent = text
  li.append(whoEl, ': ', textEl)
  const stick = ui.lines.scrollTop + ui.lines.clientHeight >= ui.lines.scrollHeight - 8
  ui.lines.append(li)
  while (ui.lines.childElementCount > MAX_LINES) ui.lines.firstElementChild.remove()
  if (stick) ui.lines.scrollTop = ui.lines.scrollHeight
  return li
}

function addNote (li, text) {
  const note = document.createElement('span')
  note.className = 'note'
  note.textContent = ` (${text})`
  li.append(note)
}

// ---- The nickname -------------------------------------------------------

function storedNick () {
  try {
    const n = localStorage.getItem('rendezvous-chat.nick')
    if (n != null && checkNick(n) == null) return n
  } catch {}
  return null
}

let nick = storedNick() ?? (checkNick(ui.nick.value) == null ? ui.nick.value : 'browser')
ui.nick.value = nick

// ---- The room -----------------------------------------------------------

let node = null
let pubsub = null
let room = null // what /addrs said: {peer, addrs, topic, presence, nick}
let connected = false // connected to the binary and subscribed
let connecting = false

const presence = new Presence(null, renderMembers)

function renderMembers () {
  const items = []
  if (node != null) {
    const li = document.createElement('li')
    li.dataset.peer = node.peerId.toString()
    li.className = 'self'
    li.append(memberName(nick, node.peerId.toString()), ' (you)')
    items.push(li)
  }
  for (const { peer, nick: n } of presence.list()) {
    const li = document.createElement('li')
    li.dataset.peer = peer
    li.title = peer
    li.append(memberName(n || (room != null && peer === room.peer ? room.nick : ''), peer))
    items.push(li)
  }
  ui.members.replaceChildren(...items)
  ui.membersLabel.textContent = `In the room (${items.length})`
}

function memberName (n, peer) {
  const frag = document.createDocumentFragment()
  const nickEl = document.createElement('span')
  nickEl.className = 'nick'
  nickEl.textContent = n || shortID(peer)
  const idEl = document.createElement('span')
  idEl.className = 'id'
  idEl.textContent = ` …${shortID(peer)}`
  frag.append(nickEl, idEl)
  return frag
}

function nameOf (peer) {
  return presence.nick(peer) || (room != null && peer === room.peer && room.nick) || shortID(peer)
}

// fetchRoom reads /addrs, never from a cache: the certificate hashes in the
// WebTransport and WebRTC-direct addresses rotate.
async function fetchRoom () {
  const res = await fetch('/addrs', { cache: 'no-store', headers: { Accept: 'application/json' } })
  if (!res.ok) throw new Error(`GET /addrs: HTTP ${res.status}`)
  const r = await res.json()
  if (typeof r?.peer !== 'string' || !Array.isArray(r.addrs) || typeof r.topic !== 'string' || r.topic === '' ||
      typeof r.presence !== 'string' || r.presence === '') {
    throw new Error('GET /addrs: not the expected JSON')
  }
  return { peer: r.peer, addrs: r.addrs.filter((a) => typeof a === 'string'), topic: r.topic, presence: r.presence, nick: typeof r.nick === 'string' ? cleanNick(r.nick) : '' }
}

const canWebTransport = () => typeof WebTransport !== 'undefined' && window.isSecureContext

// dialOrder returns the addresses we can dial, WebTransport ones first (in a
// secure context only: elsewhere the browser has no WebTransport), then
// WebRTC-direct ones, each ending in /p2p/ and the binary's peer ID.
function dialOrder (r) {
  const wt = []
  const rtc = []
  for (const a of r.addrs) {
    let ma
    try {
      ma = multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${r.peer}`)
    } catch {
      continue
    }
    const s = ma.toString()
    if (s.includes('/webtransport/')) {
      if (canWebTransport()) wt.push(ma)
    } else if (s.includes('/webrtc-direct/')) {
      rtc.push(ma)
    }
  }
  return [...wt, ...rtc]
}

function transportName (ma) {
  const s = ma.toString()
  if (s.includes('/webtransport')) return 'WebTransport'
  if (s.includes('/webrtc-direct')) return 'WebRTC'
  return s
}

async function createNode () {
  return createLibp2p({
    addresses: { listen: [] },
    transports: [webTransport(), webRTCDirect()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: {
      // The browser build refuses loopback and private addresses unless
      // allowed; the page dials only the binary that served it.
      denyDialMultiaddr: async () => false,
      denyDialPeer: async (peerId) => room == null || peerId.toString() !== room.peer
    },
    services: {
      identify: identify(),
      pubsub: gossipsub({
        globalSignaturePolicy: 'StrictSign',
        allowPublishToZeroTopicPeers: true,
        emitSelf: false
      })
    }
  })
}

// waitForSubscriber resolves once peer is subscribed to topic (as seen by
// our router), or rejects after ms.
function waitForSubscriber (peer, topic, ms) {
  const has = () => pubsub.getSubscribers(topic).some((p) => p.toString() === peer)
  if (has()) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const done = (err) => {
      clearTimeout(timer)
      pubsub.removeEventListener('subscription-change', check)
      err ? reject(err) : resolve()
    }
    const check = () => { if (has()) done() }
    const timer = setTimeout(() => done(new Error(`the peer did not join the topic within ${ms / 1000} s`)), ms)
    pubsub.addEventListener('subscription-change', check)
  })
}

// waitForMesh resolves once peer is in our GossipSub mesh for every topic
// (which means that we sent it a GRAFT, or it sent us one), or after ms in
// any case.
async function waitForMesh (peer, topics, ms) {
  if (typeof pubsub.getMeshPeers !== 'function') return
  const inMesh = () => topics.every((t) => pubsub.getMeshPeers(t).includes(peer))
  const deadline = Date.now() + ms
  while (Date.now() < deadline && !inMesh()) await sleep(10)
}

// publish sends data on topic, again and again until a publish reaches a
// recipient or PUBLISH_BOUND_MS has passed: until our outgoing GossipSub
// stream to the binary is open, a publish reaches nobody. It returns the
// number of recipients (0 when it failed).
async function publish (topic, data) {
  const deadline = Date.now() + PUBLISH_BOUND_MS
  let lastErr = null
  for (;;) {
    // Publish only once someone is subscribed: a message published to
    // nobody stays in the router's cache and might still be gossiped
    // later, next to its retry.
    if (pubsub.getSubscribers(topic).length > 0) {
      try {
        const { recipients } = await pubsub.publish(topic, data)
        if (recipients.length > 0) return recipients.length
      } catch (err) {
        lastErr = err
      }
    }
    if (Date.now() >= deadline) {
      if (lastErr != null) throw lastErr
      return 0
    }
    await sleep(50)
  }
}

// connect dials the binary and joins the room; it throws on failure.
async function connect () {
  setState('connecting', 'fetching the room’s addresses…')
  const r = await fetchRoom()
  if (room != null && (r.topic !== room.topic || r.presence !== room.presence)) {
    // The binary restarted in another room: start afresh.
    location.reload()
    return
  }
  room = r
  if (node == null) {
    node = await createNode()
    pubsub = node.services.pubsub
    presence.self = node.peerId.toString()
    document.body.dataset.peer = node.peerId.toString()
    pubsub.addEventListener('message', (e) => onMessage(e.detail))
    node.addEventListener('peer:disconnect', (e) => {
      if (room != null && e.detail.toString() === room.peer && connected) {
        connected = false
        ui.line.disabled = false
        reconnect('the connection to the chat was lost')
      }
    })
    renderMembers()
  }

  const addrs = dialOrder(room)
  if (addrs.length === 0) {
    throw new Error(window.isSecureContext
      ? 'the chat offers no WebTransport or WebRTC-direct address'
      : 'no WebRTC-direct address, and WebTransport needs a secure context (https, or http on 127.0.0.1 or localhost)')
  }
  const failures = []
  let conn = null
  for (const ma of addrs) {
    setState('connecting', `connecting via ${transportName(ma)}…`)
    try {
      conn = await node.dial(ma, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
      break
    } catch (err) {
      failures.push(`${transportName(ma)}: ${errorText(err)}`)
    }
  }
  if (conn == null) throw new Error(`could not connect (${failures.join('; ')})`)
  const via = transportName(conn.remoteAddr)
  document.body.dataset.transport = via === 'WebTransport' ? 'webtransport' : 'webrtc-direct'
  setState('connecting', `connected via ${via}, joining the room…`)
  await waitForSubscriber(room.peer, room.topic, SUBSCRIBE_TIMEOUT_MS)
  connected = true
  // Our first announcement (published before we subscribe: publishing needs
  // no subscription) also tells us that our own stream to the binary is
  // open, so that the user's first line goes through at once...
  const announced = await announce()
  // ... and that subscribing now grafts the binary into our mesh at once.
  // The binary forwards other peers' messages only to its mesh; had we
  // subscribed before our stream was open, we would join it only at the
  // next heartbeat (up to a second later), and lines and announcements
  // forwarded until then would never reach us.
  pubsub.subscribe(room.topic)
  pubsub.subscribe(room.presence)
  await waitForMesh(room.peer, [room.topic, room.presence], MESH_TIMEOUT_MS)
  ui.line.disabled = false
  setState('ready', `connected via ${via} to the room “${room.topic}”` + (announced ? '' : ' (could not announce ourselves yet)'))
}

async function reconnect (why) {
  if (connecting) return
  connecting = true
  let delay = 1000
  let reason = why
  for (;;) {
    if (reason != null) {
      setState('error', `error: ${reason}; trying again in ${delay / 1000} s`)
      await sleep(delay)
      delay = Math.min(delay * 2, 30_000)
    }
    try {
      await connect()
      break
    } catch (err) {
      console.error(err)
      reason = errorText(err)
    }
  }
  connecting = false
}

// nameAnonLines shows the nick of a peer, once known, on its lines that
// were shown with its short ID only. Lines shown with a nick keep it.
function nameAnonLines (peer) {
  const n = presence.nick(peer)
  if (n === '') return
  for (const li of ui.lines.querySelectorAll(`.line.anon[data-peer="${CSS.escape(peer)}"]`)) {
    li.classList.remove('anon')
    li.querySelector('.who').textContent = n
  }
}

function onMessage (m) {
  if (room == null || m.type !== 'signed') return
  const from = m.from.toString()
  if (m.topic === room.topic) {
    if (m.data.length > MAX_LINE_BYTES) return
    const text = decodeText(m.data)
    if (text == null) return
    presence.line(from, m.sequenceNumber)
    const who = nameOf(from)
    addLine(from, who, text, who === shortID(from) ? 'anon' : '')
  } else if (m.topic === room.presence) {
    const a = parseAnnouncement(m.data)
    if (a == null) return
    if (presence.announcement(from, m.sequenceNumber, a)) announceSoon()
    nameAnonLines(from)
  }
}

// ---- Presence: our own announcements -------------------------------------

let announceTimer = null
let lastAnnounce = 0
// After a newcomer, we announce ourselves again soon (so that it learns of
// us within a second or two), spending tokens of a bucket of 4 refilled at
// 2 per interval, as the Go peers do; never within 200 ms of the last one.
const extra = { tokens: 4, at: Date.now() }

async function announce () {
  if (!connected) return false
  clearTimeout(announceTimer)
  announceTimer = setTimeout(announce, jitter(INTERVAL_MS))
  lastAnnounce = Date.now()
  try {
    return (await publish(room.presence, encoder.encode(hereAnnouncement(nick)))) > 0
  } catch (err) {
    console.warn('presence announcement', err)
    return false
  }
}

function announceSoon () {
  const now = Date.now()
  extra.tokens = Math.min(4, extra.tokens + (now - extra.at) * 2 / INTERVAL_MS)
  extra.at = now
  if (extra.tokens < 1) return
  extra.tokens--
  const delay = Math.max(100 + Math.random() * 900, lastAnnounce + 200 - now)
  clearTimeout(announceTimer)
  announceTimer = setTimeout(announce, delay)
}

setInterval(() => presence.expire(), 5000)

window.addEventListener('pagehide', () => {
  // Best effort: the page may be gone before this is sent.
  if (connected) pubsub.publish(room.presence, encoder.encode(BYE)).catch(() => {})
})

// ---- Sending lines -------------------------------------------------------

const bucket = { tokens: SEND_BURST, at: Date.now() }
let sendChain = Promise.resolve()

async function takeToken () {
  for (;;) {
    const now = Date.now()
    bucket.tokens = Math.min(SEND_BURST, bucket.tokens + (now - bucket.at) * SEND_PER_SECOND / 1000)
    bucket.at = now
    if (bucket.tokens >= 1) {
      bucket.tokens--
      return
    }
    await sleep(Math.ceil((1 - bucket.tokens) * 1000 / SEND_PER_SECOND))
  }
}

function send (text) {
  const data = encoder.encode(text)
  const li = addLine(node?.peerId.toString() ?? '', 'you', text, 'self pending')
  if (data.length > MAX_LINE_BYTES) {
    li.classList.replace('pending', 'failed')
    addNote(li, `not sent: longer than ${MAX_LINE_BYTES >> 10} KiB`)
    return
  }
  sendChain = sendChain.then(async () => {
    await takeToken()
    let n = 0
    let why = 'nobody in the room received it'
    try {
      if (room != null && pubsub != null) n = await publish(room.topic, data)
      else why = 'not connected'
    } catch (err) {
      why = errorText(err)
    }
    if (n > 0) {
      li.classList.remove('pending')
      li.dataset.sent = 'true'
    } else {
      li.classList.replace('pending', 'failed')
      addNote(li, `not delivered: ${why}`)
    }
  })
}

ui.form.addEventListener('submit', (e) => {
  e.preventDefault()
  const text = ui.line.value
  if (text.trim() === '') return
  ui.line.value = ''
  send(text)
})

ui.nick.addEventListener('input', () => ui.nick.setCustomValidity(''))
ui.nick.addEventListener('change', () => {
  const n = ui.nick.value.trim()
  const problem = checkNick(n)
  if (problem != null) {
    ui.nick.setCustomValidity(problem)
    ui.nick.reportValidity()
    return
  }
  ui.nick.value = n
  if (n === nick) return
  nick = n
  try { localStorage.setItem('rendezvous-chat.nick', n) } catch {}
  renderMembers()
  // At once, but never within a second of the last announcement: receivers
  // accept only a few per interval.
  clearTimeout(announceTimer)
  announceTimer = setTimeout(announce, Math.max(0, lastAnnounce + 1000 - Date.now()))
})

reconnect(null)
