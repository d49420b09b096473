// Signs up in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core), then uses a
// watch page's like button, comment form and share button, and reports what a viewer would see, as one
// JSON object on stdout:
//
//   node social.mjs --site http://127.0.0.1:PORT --video <id> --name NAME --password PW --comment TEXT
//                   --screenshot PATH
//
//   signedUpAt      the path the sign-up form led to
//   signedInAs      the header's name once signed in
//   liked           {pressed, likes} after clicking like
//   comment         {text, html, scripts, images} of the new comment's text element
//   afterReload     the same, for the comment as listed by GET .../comments on a fresh page
//   pwned           what the comment's markup would have set on window if it had run (null: nothing)
//   shareUrl        the link the share button showed
//   error           (only on failure, with exit status 1) what went wrong
import { parseArgs } from 'node:util'

import { chromium } from 'playwright-core'

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking']

const { values: opts } = parseArgs({
  options: {
    site: { type: 'string' }, video: { type: 'string' }, name: { type: 'string' }, password: { type: 'string' },
    comment: { type: 'string' }, screenshot: { type: 'string' },
  },
})

async function commentSeen(page, text) {
  const item = page.locator('#comment-list li.comment .text', { hasText: text.slice(0, 20) }).first()
  await item.waitFor({ timeout: 10000 })
  return item.evaluate((node) => ({
    text: node.textContent, html: node.innerHTML,
    scripts: node.querySelectorAll('script').length, images: node.querySelectorAll('img').length,
  }))
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ARGS })
const report = {}
try {
  const page = await browser.newPage()
  await page.goto(`${opts.site}/signup?next=/watch/${opts.video}`)
  await page.fill('input[name=name]', opts.name)
  await page.fill('input[name=password]', opts.password)
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')])
  report.signedUpAt = new URL(page.url()).pathname
  report.signedInAs = await page.locator('#signed-in-as').textContent()

  await page.locator('#like').click()
  await page.waitForFunction(() => document.getElementById('like').getAttribute('aria-pressed') === 'true')
  report.liked = {
    pressed: await page.locator('#like').getAttribute('aria-pressed'),
    likes: await page.locator('#likes').textContent(),
  }

  await page.fill('#comment-text', opts.comment)
  await page.click('#comment-form button[type=submit]')
  report.comment = await commentSeen(page, opts.comment)
  await page.locator('#share').click()
  await page.waitForFunction(() => !document.getElementById('share-url').hidden)
  report.shareUrl = await page.locator('#share-url').inputValue()

  await page.goto(`${opts.site}/watch/${opts.video}?t=1m5s`)
  report.afterReload = await commentSeen(page, opts.comment)
  report.commentCount = await page.locator('#comment-count').textContent()
  report.pwned = await page.evaluate(() => window.pwned ?? null)
  await page.screenshot({ path: opts.screenshot, fullPage: true })
  process.stdout.write(JSON.stringify(report) + '\n')
} catch (err) {
  process.stdout.write(JSON.stringify({ ...report, error: String(err && err.stack || err) }) + '\n')
  process.exitCode = 1
} finally {
  await browser.close()
}
