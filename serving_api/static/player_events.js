// Player events (docs/data.md, "Player events"): what a playback does, batched to POST /events every
// FLUSH_MS and on pagehide with navigator.sendBeacon. One session_id per playback. Loaded before
// watch.js, which calls ReelhouseEvents.attach(video, view) and, with hls.js, .watchHls(hls).
window.ReelhouseEvents = (() => {
  'use strict'

  const FLUSH_MS = 10000
  const HEARTBEAT_S = 10  // of playback
  const MAX_BATCH = 500

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID()
    const bytes = crypto.getRandomValues(new Uint8Array(16))
    bytes[6] = (bytes[6] & 0x0f) | 0x40
    bytes[8] = (bytes[8] & 0x3f) | 0x80
    const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
  }

  function attach(video, view) {
    const session = uuid()
    const loadedAt = performance.now()
    const queue = []
    let started = false
    let ended = false
    let pausedAt = null  // position of a pause the viewer made, until playback resumes
    let stalledAt = null  // performance.now() when a rebuffer began
    let seeking = false
    let lastPosition = 0
    let watched = 0  // seconds of playback, counted from timeupdate steps
    let sinceHeartbeat = 0
    let hls = null
    let rendition = null  // {height, bitrate}
    let manualUntil = 0  // a level switch before this time was asked for in the quality menu

    const position = () => Math.max(0, video.currentTime || 0)
    const round = (value, digits = 3) => Number(value.toFixed(digits))

    function emit(type, fields = {}) {
      queue.push({
        event_id: uuid(), event_type: type, schema_version: 1, video_id: view.id, session_id: session,
        client_ts: Date.now(), ...fields,
      })
      if (queue.length >= MAX_BATCH) flush(false)
    }

    function current() {
      const height = rendition ? rendition.height : (video.videoHeight || 0)
      const bitrate = rendition ? rendition.bitrate : 0
      return { rendition: height, bitrate_kbps: round(bitrate / 1000, 1) }
    }

    function bufferAhead() {
      const ranges = video.buffered
      const at = position()
      for (let i = 0; i < ranges.length; i++) {
        if (ranges.start(i) <= at && at <= ranges.end(i)) return round(ranges.end(i) - at)
      }
      return 0
    }

    // The page's CSRF token (serving_api/auth.py): a header for fetch, a query parameter for sendBeacon,
    // which cannot set headers. A response may carry a newer one (after signing in elsewhere).
    let csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || ''

    function flush(leaving) {
      if (!queue.length) return
      const batch = queue.splice(0, MAX_BATCH)
      const body = JSON.stringify(batch)
      const beacon = '/events?csrf=' + encodeURIComponent(csrf)
      if (leaving && navigator.sendBeacon && navigator.sendBeacon(beacon, new Blob([body], { type: 'application/json' }))) {
        return
      }
      fetch('/events', { method: 'POST', body, keepalive: true,
                         headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf } })
        .then((answer) => { csrf = answer.headers.get('X-CSRF-Token') || csrf })
        .catch(() => { if (!leaving) queue.unshift(...batch.slice(0, MAX_BATCH - queue.length)) })  // next flush retries
    }

    function end(completed) {
      if (!started || ended) return
      ended = true
      emit('view_end', { position_s: round(position()), watch_time_s: round(watched), completed })
    }

    video.addEventListener('playing', () => {
      if (!started) {
        started = true
        emit('view_start', { ttff_ms: round(performance.now() - loadedAt, 1), ...current() })
      } else if (stalledAt !== null) {
        emit('rebuffer_end', { position_s: round(position()), stall_ms: round(performance.now() - stalledAt, 1) })
      }
      stalledAt = null
      if (pausedAt !== null) {
        emit('resume', { position_s: round(position()) })
        pausedAt = null
      }
      if (ended) {  // played again after the end: a new view of the same page
        ended = false
      }
    })
    video.addEventListener('pause', () => {
      if (!started || video.ended || seeking) return
      pausedAt = position()
      emit('pause', { position_s: round(pausedAt) })
    })
    video.addEventListener('waiting', () => {
      if (started && !seeking && stalledAt === null && !video.paused) {
        stalledAt = performance.now()
        emit('rebuffer_start', { position_s: round(position()) })
      }
    })
    video.addEventListener('seeking', () => {
      seeking = true
      if (started) emit('seek', { seek_from_s: round(lastPosition), seek_to_s: round(position()) })
      lastPosition = position()
    })
    video.addEventListener('seeked', () => { seeking = false })
    video.addEventListener('timeupdate', () => {
      const at = position()
      const step = at - lastPosition
      if (!seeking && !video.paused && step > 0 && step < 2) {  // a jump is a seek, not playback
        watched += step
        sinceHeartbeat += step
        if (sinceHeartbeat >= HEARTBEAT_S) {
          sinceHeartbeat = 0
          emit('heartbeat', { position_s: round(at), ...current(), buffer_s: bufferAhead() })
        }
      }
      if (!seeking) lastPosition = at
    })
    video.addEventListener('ended', () => end(true))
    video.addEventListener('error', () => {
      const error = video.error
      emit('error', { error_code: error ? `media_error_${error.code}` : 'media_error' })
    })

    setInterval(() => flush(false), FLUSH_MS)
    window.addEventListener('pagehide', () => { end(false); flush(true) })
    document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'hidden') flush(true) })

    return {
      session,
      // hls.js: the rendition playing, quality switches (manual when the menu asked), fatal errors.
      watchHls(instance) {
        hls = instance
        const Hls = window.Hls
        hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => {
          const level = hls.levels[data.level]
          if (!level) return
          const next = { height: level.height, bitrate: level.bitrate }
          if (rendition && rendition.height !== next.height) {
            emit('quality_switch', { rendition_from: rendition.height, rendition_to: next.height,
                                     switch_mode: performance.now() < manualUntil ? 'manual' : 'auto' })
          }
          rendition = next
        })
        hls.on(Hls.Events.ERROR, (_, data) => { if (data.fatal) emit('error', { error_code: String(data.details) }) })
      },
      // The quality menu changed: the next switch is the viewer's.
      manualSwitch() { manualUntil = performance.now() + 15000 },
      flush,
    }
  }

  return { attach }
})()
