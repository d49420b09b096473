// Time to first frame in headless Chromium (Debian's /usr/bin/chromium, driven by the
// playwright-core that tests/e2e/js pins; no browser is downloaded): a Reelhouse watch page
// (hls.js) against a plain <video src> of a progressive MP4, each play in a fresh browser
// context (empty cache, new renderer), alternating which kind goes first. Driven by
// bench/first_frame.py, which starts the stack and reads the one JSON object printed on stdout:
//
//   node bench/first_frame.mjs --hls-url http://127.0.0.1:PORT/watch/<id>
//                              --mp4-url http://127.0.0.1:PORT/media/<id>/progressive.mp4
//                              [--plays 10] [--timeout-ms 20000]
//
//   chromium   the browser's version
//   plays      [{kind: "hls"|"progressive", round, firstFrameMs, playingMs, advancingMs,
//               domContentLoadedMs, frame: [w, h], fetched: [{path, startMs, endMs}]}]
//              in the order they ran; `fetched` lists what the page loaded before its first frame
//   error      (only on failure, with exit status 1) what went wrong
//
// firstFrameMs is navigation start -> the first video frame presented (the `now` of the first
// requestVideoFrameCallback, on the page's performance.now() clock, whose origin is the
// navigation's start), as tests/e2e/js/play_hls.mjs measures it. The play counts once
// currentTime > 0 with readyState >= 2 (advancingMs: the first animation frame that saw it).
import http from 'node:http'
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'

// playwright-core is installed (npm ci, `make npm-deps`) for the browser tests only.
const require = createRequire(new URL('../tests/e2e/js/package.json', import.meta.url))
const { chromium } = require('playwright-core')

const CHROMIUM = '/usr/bin/chromium'
// The flags of tests/e2e/js/play_hls.mjs, so the figures describe the browser the tests drive.
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
]
const VIEWPORT = { width: 1280, height: 800 }

// Runs in each page before its own scripts.
function recordFirstFrame() {
  const record = { firstFrameMs: null, frame: null, playingMs: null, advancingMs: null }
  window.__firstFrame = record
  document.addEventListener('DOMContentLoaded', () => {
    const video = document.querySelector('video')
    video.requestVideoFrameCallback((now, metadata) => {
      record.firstFrameMs = now
      record.frame = [metadata.width, metadata.height]
    })
    video.addEventListener('playing', () => { record.playingMs ??= performance.now() })
    const watchTime = () => {
      if (video.currentTime > 0 && video.readyState >= 2) record.advancingMs = performance.now()
      else requestAnimationFrame(watchTime)
    }
    requestAnimationFrame(watchTime)
  })
}

// The baseline page: nothing but the video element, sized as the watch page sizes its player.
function progressivePage(mp4Url) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>progressive MP4</title>
<style>body{margin:0;background:#111}video{display:block;width:960px;aspect-ratio:16/9;background:#000}</style>
</head><body><video src="${mp4Url}" autoplay muted playsinline preload="auto"></video></body></html>`
}

function servePage(html) {
  const server = http.createServer((request, response) => {
    response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' })
    response.end(request.url === '/blank' ? '<!doctype html><title>blank</title>' : html)
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

function readOptions() {
  const { values } = parseArgs({
    options: {
      'hls-url': { type: 'string' },
      'mp4-url': { type: 'string' },
      plays: { type: 'string', default: '10' },
      'timeout-ms': { type: 'string', default: '20000' },
    },
  })
  if (!values['hls-url'] || !values['mp4-url']) throw new Error('--hls-url and --mp4-url are required')
  return {
    hlsUrl: values['hls-url'], mp4Url: values['mp4-url'],
    plays: Number(values.plays), timeoutMs: Number(values['timeout-ms']),
  }
}

async function play(browser, url, timeoutMs) {
  const context = await browser.newContext({ viewport: VIEWPORT })
  try {
    const page = await context.newPage()
    page.setDefaultTimeout(timeoutMs)
    await page.addInitScript(recordFirstFrame)
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: timeoutMs })
    await page.waitForFunction(() => {
      const record = window.__firstFrame
      return record.firstFrameMs !== null && record.advancingMs !== null
    }, null, { timeout: timeoutMs })
    return await page.evaluate(() => {
      const record = window.__firstFrame
      const [navigation] = performance.getEntriesByType('navigation')
      const round = (ms) => (ms === null ? null : Math.round(ms))
      return {
        firstFrameMs: round(record.firstFrameMs),
        playingMs: round(record.playingMs),
        advancingMs: round(record.advancingMs),
        domContentLoadedMs: round(navigation?.domContentLoadedEventEnd ?? null),
        frame: record.frame,
        // what the page fetched before its first frame, to tell where the time went
        fetched: performance.getEntriesByType('resource')
          .filter((entry) => entry.startTime < record.firstFrameMs)
          .map((entry) => ({
            path: new URL(entry.name).pathname.split('/').slice(-2).join('/'),
            startMs: round(entry.startTime),
            endMs: round(entry.responseEnd),
          })),
      }
    })
  } finally {
    await context.close()
  }
}

async function main() {
  const options = readOptions()
  const server = await servePage(progressivePage(options.mp4Url))
  const pageUrl = `http://127.0.0.1:${server.address().port}`
  const report = { plays: [] }
  let browser = null
  let status = 0
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS })
    report.chromium = browser.version()
    // Start-up work of the browser (its GPU and network processes) is not the first play's to pay.
    const warmUp = await browser.newContext()
    await (await warmUp.newPage()).goto(`${pageUrl}/blank`)
    await warmUp.close()

    const urls = { hls: options.hlsUrl, progressive: `${pageUrl}/progressive` }
    for (let round = 0; round < options.plays; round += 1) {
      const kinds = round % 2 === 0 ? ['hls', 'progressive'] : ['progressive', 'hls']
      for (const kind of kinds) {
        report.plays.push({ kind, round, ...await play(browser, urls[kind], options.timeoutMs) })
      }
    }
  } catch (err) {
    status = 1
    report.error = String(err?.message ?? err).split('\n').slice(0, 6).join('\n')
  } finally {
    await browser?.close().catch(() => {})
    server.close()
  }
  process.stdout.write(`${JSON.stringify(report)}\n`)
  process.exit(status)
}

main()
