// Signs in to the Airflow UI through its real login form in headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core; no browser is downloaded), then opens the DAG
// list, one DAG's page and one DAG run's grid, saving a screenshot of each. Reports one JSON
// object on stdout:
//
//   node airflow_ui.mjs --url http://127.0.0.1:PORT --user admin --password PW --dag transcode_batch
//                       --task find_backlog --run RUN_ID --shots DIR
//
// (--task: a task the DAG's page must show before its text is taken)
//
//   loginUrl      where the UI sent an anonymous visitor
//   afterLogin    the URL after signing in
//   dags          the DAG ids the list shows (links)
//   dagPage       {url, text}: the DAG's page, its text trimmed
//   runPage       {url, text, tasks}: the run's grid page and the task ids it lists
//   screenshots   the files written
//   error         (only on failure, with exit status 1) what went wrong
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'

import { chromium } from 'playwright-core'

const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
]

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' }, user: { type: 'string' }, password: { type: 'string' },
    dag: { type: 'string' }, task: { type: 'string' }, run: { type: 'string' }, shots: { type: 'string' },
  },
})

const report = { screenshots: [] }
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ARGS })
try {
  fs.mkdirSync(opts.shots, { recursive: true })
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } })
  page.setDefaultTimeout(30000)
  const shot = async (name) => {
    const file = path.join(opts.shots, name)
    await page.screenshot({ path: file, fullPage: true })
    report.screenshots.push(file)
  }
  const text = async () => (await page.innerText('body')).replace(/\s+/g, ' ').trim().slice(0, 2000)

  // An anonymous visitor is sent to the login form.
  await page.goto(`${opts.url}/`)
  await page.waitForSelector('input[name="username"]')
  report.loginUrl = page.url()
  await shot('01-login.png')
  await page.fill('input[name="username"]', opts.user)
  await page.fill('input[name="password"]', opts.password)
  await page.click('button[type="submit"]')
  await page.waitForURL((url) => !url.pathname.startsWith('/auth/login'))
  report.afterLogin = page.url()

  await page.goto(`${opts.url}/dags`)
  await page.getByRole('link', { name: opts.dag, exact: true }).first().waitFor()
  report.dags = await page.$$eval('a[href*="/dags/"]', (links) =>
    [...new Set(links.map((a) => a.getAttribute('href').split('/dags/')[1]?.split('/')[0]).filter(Boolean))])
  await shot('02-dag-list.png')

  await page.getByRole('link', { name: opts.dag, exact: true }).first().click()
  await page.waitForURL(new RegExp(`/dags/${opts.dag}`))
  await page.waitForLoadState('networkidle')
  // the grid of task ids arrives after the page settles (later still on a busy machine): wait for
  // the task named on the command line rather than for a quiet network
  await page.getByText(opts.task).first().waitFor()
  report.dagPage = { url: page.url(), text: await text() }
  await shot('03-dag.png')

  await page.goto(`${opts.url}/dags/${opts.dag}/runs/${encodeURIComponent(opts.run)}`)
  await page.waitForLoadState('networkidle')
  await page.getByText('Task Instances').first().waitFor()
  await page.getByText('summarize').first().waitFor()
  report.runPage = { url: page.url(), text: await text() }
  await shot('04-dag-run-grid.png')
  console.log(JSON.stringify(report))
} catch (error) {
  report.error = String(error && error.stack || error)
  console.log(JSON.stringify(report))
  process.exitCode = 1
} finally {
  await browser.close()
}
