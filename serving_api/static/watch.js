// The watch page: hls.js plays the video's HLS ladder, with a quality menu and sprite
// previews on the seek bar. Until the video is ready the page shows its status and polls
// GET /videos/<id>. The hls.js instance is window.hls, for tests and the browser console. What the
// playback does is reported by player_events.js (window.ReelhouseEvents, window.playerEvents).
(() => {
  'use strict'

  const POLL_MS = 2000
  const SEEK_STEP_S = 5
  const $ = (id) => document.getElementById(id)
  const player = $('player')
  const video = $('video')
  const statusText = $('status')
  const playButton = $('play')
  const muteButton = $('mute')
  const quality = $('quality')
  const seek = $('seek')
  const preview = $('preview')
  const previewImage = $('preview-image')
  const previewTime = $('preview-time')
  let sprites = []  // {from, to, image, x, y, w, h} from sprite.vtt
  let events = null  // this playback's reporter (player_events.js)

  function clock(seconds) {
    if (!Number.isFinite(seconds)) return '0:00'
    const whole = Math.floor(seconds)
    const h = Math.floor(whole / 3600)
    const m = Math.floor((whole % 3600) / 60)
    const s = String(whole % 60).padStart(2, '0')
    return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`
  }

  // ------------------------------------------------------------ before the video is ready
  function describe(view) {
    switch (view.status) {
      case 'uploading': return 'This video is still being uploaded.'
      case 'processing':
        return view.stage === 'transcoding'
          ? `Preparing this video for playback: ${Math.round(view.progress || 0)} %`
          : 'This video is queued for processing.'
      case 'failed': return `This video could not be processed: ${view.reason || 'no reason given'}.`
      case 'rejected': return `This file was rejected: ${view.reason || 'no reason given'}.`
      default: return `This video is ${view.status}.`
    }
  }

  function showStatus(message) {
    statusText.textContent = message
    statusText.hidden = false
    player.classList.add('waiting')
  }

  function waitUntilReady(view) {
    showStatus(describe(view))
    if (view.status === 'failed' || view.status === 'rejected') return
    setTimeout(async () => {
      let next = view
      try {
        const answer = await fetch(`/videos/${encodeURIComponent(view.id)}`, { cache: 'no-store' })
        if (answer.ok) next = await answer.json()
      } catch (err) {
        // the API restarting: keep the last status and ask again
      }
      start(next)
    }, POLL_MS)
  }

  // ------------------------------------------------------------ playback
  // Where a shared link starts: ?t=90, ?t=90s or ?t=1m30s (seconds from the start; 0 when absent or bad).
  function startAt() {
    const raw = new URLSearchParams(window.location.search).get('t') || ''
    const parts = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?$/.exec(raw.trim())
    if (!raw || !parts) return 0
    return (Number(parts[1] || 0) * 3600) + (Number(parts[2] || 0) * 60) + Number(parts[3] || 0)
  }

  function start(view) {
    if (view.status !== 'ready' || !view.playback_url) {
      waitUntilReady(view)
      return
    }
    statusText.hidden = true
    player.classList.remove('waiting')
    if (window.ReelhouseEvents && !events) window.playerEvents = events = window.ReelhouseEvents.attach(video, view)
    if (view.poster_url) video.poster = view.poster_url
    if (window.Hls && window.Hls.isSupported()) {
      attachHls(view.playback_url)
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = view.playback_url  // Safari plays HLS itself and picks the quality itself
      if (startAt()) video.addEventListener('loadedmetadata', () => { video.currentTime = startAt() }, { once: true })
      quality.hidden = true
      autoplay()
    } else {
      showStatus('This browser cannot play HLS video (no Media Source Extensions).')
      return
    }
    loadSprites(view.sprite_vtt_url)
  }

  // The first fragment comes from the rendition that fits the player (in device pixels), not from
  // hls.js's bandwidth probe, which loads the lowest rendition's playlist and a segment it never
  // shows before switching up (100-250 ms before the first frame, measured). ABR decides after that.
  function levelForPlayer(levels) {
    const wanted = Math.max(video.clientHeight || 0, 144) * (window.devicePixelRatio || 1)
    let chosen = -1
    levels.forEach((level, index) => {
      const fits = Math.min(level.height, level.width) <= wanted
      if (fits && (chosen === -1 || level.bitrate > levels[chosen].bitrate)) chosen = index
    })
    if (chosen !== -1) return chosen
    return levels.reduce((low, level, index) => (level.bitrate < levels[low].bitrate ? index : low), 0)
  }

  function attachHls(url) {
    const Hls = window.Hls
    const hls = new Hls({ autoStartLoad: false, testBandwidth: false })
    window.hls = hls
    if (events) events.watchHls(hls)
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      hls.startLevel = levelForPlayer(hls.levels)
      hls.startLoad(startAt() || -1)
      buildQualityMenu(hls.levels)
      autoplay()
    })
    hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => showLevel(hls, data.level))
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (!data.fatal) return  // hls.js retries and recovers from these itself
      if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
        hls.startLoad()
      } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError()
      } else {
        hls.destroy()
        showStatus(`Playback stopped: ${data.details}. Reload the page to try again.`)
      }
    })
    hls.loadSource(url)
    hls.attachMedia(video)
  }

  async function autoplay() {
    try {
      await video.play()
    } catch (err) {
      if (err.name !== 'NotAllowedError') return
      // Browsers let a muted video start on its own; the mute button shows it is muted.
      video.muted = true
      try { await video.play() } catch (again) { /* the play button waits for the viewer */ }
    }
  }

  // ------------------------------------------------------------ quality menu
  function buildQualityMenu(levels) {
    const options = [new Option('Auto', '-1')]
    levels
      .map((level, index) => ({ level, index }))
      .sort((a, b) => b.level.height - a.level.height || b.level.bitrate - a.level.bitrate)
      .forEach(({ level, index }) => options.push(new Option(`${level.height}p`, String(index))))
    quality.replaceChildren(...options)
    quality.value = '-1'
  }

  function showLevel(hls, levelIndex) {
    const level = hls.levels[levelIndex]
    quality.options[0].text = hls.autoLevelEnabled && level ? `Auto (${level.height}p)` : 'Auto'
  }

  quality.addEventListener('change', () => {
    if (events) events.manualSwitch()
    if (window.hls) window.hls.currentLevel = Number(quality.value)  // -1: back to automatic
  })

  // ------------------------------------------------------------ controls
  function togglePlay() {
    if (video.paused || video.ended) video.play().catch(() => {})
    else video.pause()
  }

  playButton.addEventListener('click', togglePlay)
  video.addEventListener('click', togglePlay)
  muteButton.addEventListener('click', () => { video.muted = !video.muted })
  $('fullscreen').addEventListener('click', () => {
    if (document.fullscreenElement) document.exitFullscreen()
    else player.requestFullscreen().catch(() => {})
  })

  video.addEventListener('play', () => player.classList.add('playing'))
  video.addEventListener('pause', () => player.classList.remove('playing'))
  video.addEventListener('volumechange', () => {
    player.classList.toggle('muted', video.muted)
    muteButton.setAttribute('aria-label', video.muted ? 'Unmute' : 'Mute')
  })
  video.addEventListener('timeupdate', () => {
    const fraction = video.duration ? video.currentTime / video.duration : 0
    $('seek-played').style.width = `${fraction * 100}%`
    $('time').textContent = `${clock(video.currentTime)} / ${clock(video.duration)}`
    seek.setAttribute('aria-valuenow', String(Math.floor(video.currentTime)))
  })
  video.addEventListener('progress', () => {
    const ranges = video.buffered
    if (!video.duration || !ranges.length) return
    $('seek-buffered').style.width = `${(ranges.end(ranges.length - 1) / video.duration) * 100}%`
  })
  video.addEventListener('durationchange', () => seek.setAttribute('aria-valuemax', String(Math.floor(video.duration))))

  // ------------------------------------------------------------ seek bar and sprite previews
  function fractionAt(event) {
    const box = seek.getBoundingClientRect()
    return Math.min(1, Math.max(0, (event.clientX - box.left) / box.width))
  }

  seek.addEventListener('click', (event) => {
    if (video.duration) video.currentTime = fractionAt(event) * video.duration
  })
  seek.addEventListener('keydown', (event) => {
    const step = { ArrowLeft: -SEEK_STEP_S, ArrowRight: SEEK_STEP_S }[event.key]
    if (step && video.duration) video.currentTime = Math.min(video.duration, Math.max(0, video.currentTime + step))
  })
  seek.addEventListener('mousemove', (event) => {
    if (!video.duration) return
    const at = fractionAt(event) * video.duration
    const cue = sprites.find((candidate) => at >= candidate.from && at < candidate.to) || sprites[sprites.length - 1]
    if (cue && at >= cue.from) {
      previewImage.hidden = false
      previewImage.style.width = `${cue.w}px`
      previewImage.style.height = `${cue.h}px`
      previewImage.style.backgroundImage = `url("${cue.image}")`
      previewImage.style.backgroundPosition = `-${cue.x}px -${cue.y}px`
    } else {
      previewImage.hidden = true  // no sprite (yet): the time alone
    }
    previewTime.textContent = clock(at)
    const playerBox = player.getBoundingClientRect()
    const half = (cue ? cue.w : 40) / 2 + 4
    const x = Math.min(playerBox.width - half, Math.max(half, event.clientX - playerBox.left))
    preview.style.left = `${x}px`
    preview.hidden = false
  })
  seek.addEventListener('mouseleave', () => { preview.hidden = true })

  function seconds(timestamp) {
    // WebVTT: hh:mm:ss.ttt or mm:ss.ttt
    return timestamp.split(':').reduce((total, part) => total * 60 + Number(part), 0)
  }

  function parseSpriteVtt(text, baseUrl) {
    const cues = []
    for (const block of text.replace(/\r/g, '').split(/\n{2,}/)) {
      const lines = block.split('\n')
      const timing = lines.findIndex((line) => line.includes('-->'))
      if (timing < 0 || !lines[timing + 1]) continue
      const [from, to] = lines[timing].split('-->').map((side) => seconds(side.trim().split(/\s+/)[0]))
      const target = new URL(lines[timing + 1].trim(), baseUrl)
      const box = /^#xywh=(\d+),(\d+),(\d+),(\d+)$/.exec(target.hash)
      if (!box) continue
      target.hash = ''
      cues.push({ from, to, image: target.href, x: +box[1], y: +box[2], w: +box[3], h: +box[4] })
    }
    return cues
  }

  async function loadSprites(url) {
    if (!url) return
    try {
      const answer = await fetch(url)
      if (answer.ok) sprites = parseSpriteVtt(await answer.text(), answer.url)
    } catch (err) {
      sprites = []  // previews are a nicety: the seek bar still shows the time
    }
  }

  start(JSON.parse($('video-view').textContent))
})()
