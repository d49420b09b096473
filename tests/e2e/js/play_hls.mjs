// Opens a Reelhouse watch page in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser is downloaded) and reports what a viewer would see, as one JSON
// object on stdout:
//
//   node play_hls.mjs --url http://127.0.0.1:PORT/watch/<id> --screenshot PATH [--timeout-ms 30000]
//
//   title             the page's <h1>
//   levels            [{index, width, height, bitrate}] hls.js parsed from the master playlist
//   firstFrameMs      from navigation start to the first video frame presented (requestVideoFrameCallback)
//   playingMs         from navigation start to the video element's first `playing`
//   advanced          {from, to}: currentTime over 1.5 s of playback
//   lowest            {index, height}: the level chosen in the page's quality menu
//   switched          LEVEL_SWITCHED events [{level, atMs}]
//   fragsAfterSwitch  FRAG_LOADED events [{level, sn}] after the choice
//   heightAfterSwitch the decoded video's height once the lowest level plays
//   advancedAfterSwitch {from, to}: currentTime over 1 s after the switch
//   errors            hls.js ERROR events [{type, details, fatal}]
//   firstFrag         {level, sn}: the first fragment loaded (the start rendition)
//   playerPixels      the video element's height in device pixels
//   preview           {visible, image, size}: the seek bar's sprite preview while hovering its middle
//   seek              {from, to}: currentTime before and after the arrow key moved the seek bar 5 s on
//   pausedAt          currentTime once the play button paused it
//   session           the playback's session_id (player_events.js); the page is then left, so the
//                     player sends what it holds with navigator.sendBeacon
//   error             (only on failure, with exit status 1) what went wrong
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'

import { chromium } from 'playwright-core'

const CHROMIUM = '/usr/bin/chromium'
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
]

// Runs in the page before its own scripts: watch.js assigns window.hls, and this setter hooks
// the instance's events before it loads anything.
function recordPlayback() {
  const record = {
    levels: null, firstFrameMs: null, playingMs: null, switched: [], frags: [], errors: [],
  }
  window.__playback = record
  let instance = null
  Object.defineProperty(window, 'hls', {
    configurable: true,
    get: () => instance,
    set(hls) {
      instance = hls
      const { Events } = window.Hls
      hls.on(Events.MANIFEST_PARSED, (_, data) => {
        record.levels = data.levels.map((level, index) => ({
          index, width: level.width, height: level.height, bitrate: level.bitrate,
        }))
      })
      hls.on(Events.LEVEL_SWITCHED, (_, data) => record.switched.push({ level: data.level, atMs: performance.now() }))
      hls.on(Events.FRAG_LOADED, (_, data) => {
        record.frags.push({ level: data.frag.level, sn: data.frag.sn, atMs: performance.now() })
      })
      hls.on(Events.ERROR, (_, data) => {
        record.errors.push({ type: data.type, details: data.details, fatal: Boolean(data.fatal) })
      })
    },
  })
  document.addEventListener('DOMContentLoaded', () => {
    const video = document.querySelector('video')
    video.addEventListener('playing', () => { record.playingMs ??= performance.now() })
    // `now` counts from the navigation's start, as performance.now() does
    video.requestVideoFrameCallback((now) => { record.firstFrameMs = now })
  })
}

function readOptions() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      screenshot: { type: 'string' },
      'timeout-ms': { type: 'string', default: '30000' },
    },
  })
  if (!values.url || !values.screenshot) throw new Error('--url and --screenshot are required')
  return { url: values.url, screenshot: values.screenshot, timeoutMs: Number(values['timeout-ms']) }
}

const currentTime = (page) => page.evaluate(() => document.querySelector('video').currentTime)
const record = (page) => page.evaluate(() => window.__playback)

async function advanceOver(page, ms) {
  const from = await currentTime(page)
  await page.waitForTimeout(ms)
  return { from, to: await currentTime(page) }
}

async function watch(page, options, report) {
  const waitFor = (check, arg) => page.waitForFunction(check, arg, { timeout: options.timeoutMs })
  await page.goto(options.url, { waitUntil: 'domcontentloaded', timeout: options.timeoutMs })
  report.title = (await page.textContent('h1'))?.trim()

  await waitFor(() => window.__playback.firstFrameMs !== null && document.querySelector('video').currentTime > 0)
  Object.assign(report, await page.evaluate(() => ({
    levels: window.__playback.levels,
    firstFrameMs: Math.round(window.__playback.firstFrameMs),
    playingMs: Math.round(window.__playback.playingMs),
  })))
  report.advanced = await advanceOver(page, 1500)

  // A viewer picks the lowest quality in the menu (the page sets hls.currentLevel from it).
  const lowest = report.levels.reduce((low, level) => (level.height < low.height ? level : low))
  report.lowest = { index: lowest.index, height: lowest.height }
  const chosenAt = await page.evaluate(() => performance.now())
  await page.selectOption('#quality', String(lowest.index))
  await waitFor(({ index, since }) => {
    const played = window.__playback
    return played.switched.some((s) => s.level === index && s.atMs >= since) &&
      played.frags.some((f) => f.level === index && f.atMs >= since) &&
      document.querySelector('video').videoHeight === window.hls.levels[index].height
  }, { index: lowest.index, since: chosenAt })
  report.heightAfterSwitch = await page.evaluate(() => document.querySelector('video').videoHeight)
  report.advancedAfterSwitch = await advanceOver(page, 1000)

  // Hovering the middle of the seek bar shows that moment's thumbnail from the sprite.
  const bar = await page.locator('#seek').boundingBox()
  await page.mouse.move(bar.x + bar.width / 2, bar.y + bar.height / 2)
  await waitFor(() => !document.getElementById('preview').hidden)
  report.preview = await page.evaluate(() => {
    const image = document.getElementById('preview-image')
    return {
      visible: !document.getElementById('preview').hidden && !image.hidden,
      image: getComputedStyle(image).backgroundImage,
      size: [image.offsetWidth, image.offsetHeight],
    }
  })

  // The viewer skips 5 s ahead with the arrow key, then pauses with the play button.
  await page.focus('#seek')
  const before = await page.evaluate(() => document.querySelector('video').currentTime)
  await page.keyboard.press('ArrowRight')
  await waitFor((from) => document.querySelector('video').currentTime >= from + 4, before)
  report.seek = { from: before, to: await page.evaluate(() => document.querySelector('video').currentTime) }
  await advanceOver(page, 500)
  await page.click('#play')
  await waitFor(() => document.querySelector('video').paused)
  report.pausedAt = await page.evaluate(() => document.querySelector('video').currentTime)
  report.session = await page.evaluate(() => window.playerEvents && window.playerEvents.session)

  const played = await record(page)
  report.switched = played.switched.map(({ level, atMs }) => ({ level, atMs: Math.round(atMs) }))
  report.fragsAfterSwitch = played.frags.filter((f) => f.atMs >= chosenAt).map(({ level, sn }) => ({ level, sn }))
  // Which rendition the first fragment came from, and the player's height in device pixels.
  report.firstFrag = played.frags.length ? { level: played.frags[0].level, sn: played.frags[0].sn } : null
  report.playerPixels = await page.evaluate(() =>
    Math.round(document.querySelector('video').clientHeight * (window.devicePixelRatio || 1)))
  report.errors = played.errors
}

async function main() {
  const options = readOptions()
  const report = {}
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'reelhouse-chromium-'))
  let context = null
  let status = 0
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1280, height: 800 },
    })
    context.setDefaultTimeout(options.timeoutMs)
    const page = context.pages()[0] ?? await context.newPage()
    await page.addInitScript(recordPlayback)
    try {
      await watch(page, options, report)
    } catch (err) {
      status = 1
      report.error = String(err?.message ?? err).split('\n').slice(0, 6).join('\n')
      report.record = await record(page).catch(() => null)
    }
    await page.screenshot({ path: options.screenshot }).catch((err) => { report.screenshotError = String(err) })
    // Leaving the page: pagehide makes the player send its last events with sendBeacon.
    await page.goto('about:blank').catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 1000))
  } catch (err) {
    status = 1
    report.error = String(err?.message ?? err)
  } finally {
    await context?.close().catch(() => {})
    fs.rmSync(profile, { recursive: true, force: true })
  }
  process.stdout.write(`${JSON.stringify(report)}\n`)
  process.exit(status)
}

main()
