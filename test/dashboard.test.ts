// The dashboard in a real headless Chromium (playwright-core, Debian's chromium) against a real
// cluster: what a person sees and does on the master's page. Each state is saved as a screenshot
// in the test's temp dir, or in DFS_DASHBOARD_SCREENSHOTS when set (docs/dashboard.png is one).

import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {copyFile, mkdir, readFile, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test, type TestContext} from 'node:test'

import {chromium, type Browser, type Page} from 'playwright-core'
import {request} from 'undici'

import {mintClientToken} from '../src/lib/client-tokens.js'
import {ClusterKey} from '../src/lib/cluster-key.js'
import {FIXTURES, SAMPLES, TestCluster, randomFile, tempDir, waitFor} from './helpers/cluster.js'
import {skipOrFail} from './helpers/skip.js'

const CHROMIUM = process.env.DFS_CHROMIUM ?? '/usr/bin/chromium'
// Only a guard against a hang: every wait below waits on a state, not on time.
const PAGE_DEADLINE_MS = 60_000

describe('the dashboard, in headless Chromium, against a real cluster of 4 keepers', () => {
  let browser: Browser | undefined
  let work = ''

  before(async () => {
    work = await tempDir('dfs-dashboard-')
    // Chromium's own temp files (a PulseAudio runtime dir) go into the work dir, which goes at the end.
    const env = {...process.env, TMPDIR: work}
    if (existsSync(CHROMIUM)) browser = await chromium.launch({executablePath: CHROMIUM, args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'], env})
  })
  after(async () => {
    await browser?.close()
    await rm(work, {recursive: true, force: true})
  })

  /** A page of the browser, or a skip (a failure under CI) where no Chromium exists. */
  async function newPage(t: TestContext): Promise<Page | undefined> {
    if (!browser) {
      skipOrFail(t, `no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set DFS_CHROMIUM)`)
      return undefined
    }

    const context = await browser.newContext({viewport: {width: 1280, height: 900}})
    context.setDefaultTimeout(PAGE_DEADLINE_MS)
    return context.newPage()
  }

  async function screenshot(page: Page, name: string): Promise<void> {
    const path = join(work, `${name}.png`)
    await page.screenshot({path, fullPage: true})
    const keep = process.env.DFS_DASHBOARD_SCREENSHOTS
    if (keep) {
      await mkdir(keep, {recursive: true})
      await copyFile(path, join(keep, `${name}.png`))
    }
  }

  async function logIn(page: Page, token: string): Promise<void> {
    await page.fill('#token', token)
    await page.click('#login-button')
  }

  const fileRow = (name: string) => `#files tbody tr[data-file="${name}"]`

  test('shows 4 keepers alive; a video uploaded reaches 3 replicas, plays and seeks; a dead keeper shows and its file is repaired; a delete asks first', async (t) => {
    const page = await newPage(t)
    if (!page) return
    const cluster = await TestCluster.start({keepers: 4, replicas: 3})
    try {
      await page.goto(`${cluster.masterUrl}/`)
      await logIn(page, cluster.token)
      await page.waitForFunction(() => document.querySelectorAll('#keepers tbody tr[data-alive="true"]').length === 4)
      assert.match(await page.textContent('#who') ?? '', /logged in \(admin\)/)
      const shownIds = await page.$$eval('#keepers tbody tr', (rows) => rows.map((row) => row.getAttribute('data-keeper')))
      assert.deepEqual(shownIds.sort(), cluster.keepers.map((keeper) => keeper.id).sort())
      await screenshot(page, 'keepers')

      // An mp4 through the file input, and random bytes dropped on the page, both hashed by the
      // page (sha256.js) and sent straight to the keeper the master named.
      const video = 'sample_1.mp4'
      await page.setInputFiles('#file-input', join(FIXTURES, video))
      const dropped = 'dropped.bin'
      const droppedPath = join(work, dropped)
      const droppedSha256 = await randomFile(droppedPath, 200_000 + 37)
      const bytes = await readFile(droppedPath)
      await page.evaluate(
        ({name, base64}) => {
          const data = Uint8Array.from(atob(base64), (char) => char.charCodeAt(0))
          const transfer = new DataTransfer()
          transfer.items.add(new File([data], name))
          const zone = document.getElementById('drop')!
          zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: transfer, bubbles: true, cancelable: true}))
          zone.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}))
        },
        {name: dropped, base64: bytes.toString('base64')},
      )
      for (const name of [video, dropped]) {
        await page.waitForSelector(`#uploads li[data-upload="${name}"][data-state="stored"]`)
        await page.waitForSelector(`${fileRow(name)}[data-replicas="3"][data-health="healthy"]`)
      }

      // The page asks the master for the count of the whole listing (a page of `dfs ls` does not).
      await page.waitForFunction(() => document.getElementById('file-count')?.textContent === '(2)' && document.getElementById('page')?.textContent === '1–2 of 2')

      const stored = await cluster.stat(video)
      assert.equal(stored.sha256, SAMPLES[video].sha256)
      assert.equal(stored.size, SAMPLES[video].size)
      assert.equal(stored.replicas.filter((replica) => replica.alive).length, 3)
      assert.equal((await cluster.stat(dropped)).sha256, droppedSha256, 'the page hashed and sent the very bytes dropped')
      await screenshot(page, 'uploaded')

      // The server-side search finds one, and not the other.
      await page.fill('#search', 'DROP')
      await page.waitForFunction((name) => [...document.querySelectorAll('#files tbody tr')].map((row) => row.getAttribute('data-file')).join() === name, dropped)
      await page.fill('#search', '')
      await page.waitForSelector(fileRow(video))

      // Play: the player streams from a keeper with the read grant in its URL, and seeks.
      await page.click(`${fileRow(video)} button.open`)
      const source = await page.waitForFunction(() => (document.getElementById('player') as HTMLVideoElement).src)
      const src = String(await source.jsonValue())
      assert.ok(cluster.keepers.some((keeper) => src.startsWith(`${keeper.url}/files/${video}?grant=`)), `played from a keeper with a grant: ${src}`)
      await page.waitForFunction(() => {
        const player = document.getElementById('player') as HTMLVideoElement
        return !player.paused && player.currentTime > 0.5
      })
      const middle = await page.evaluate(() => {
        const player = document.getElementById('player') as HTMLVideoElement
        player.currentTime = player.duration / 2
        return player.duration / 2
      })
      assert.ok(middle > 5, `a video of ${middle * 2} s`)
      // Past the middle and still playing: the seek landed there and the bytes after it came.
      await page.waitForFunction((from) => {
        const player = document.getElementById('player') as HTMLVideoElement
        return !player.seeking && player.currentTime > from + 0.5
      }, middle)
      // Its poster frame: a still drawn from the keeper's bytes, of the video's size scaled to 320 wide.
      const poster = await page.waitForFunction(() => {
        const image = document.getElementById('poster') as HTMLImageElement | null
        return image?.complete && image.naturalWidth > 0 ? {width: image.naturalWidth, height: image.naturalHeight, src: image.src.slice(0, 23)} : undefined
      })
      assert.deepEqual(await poster.jsonValue(), {width: 320, height: 180, src: 'data:image/jpeg;base64,'})
      await screenshot(page, 'playing')
      await page.evaluate(() => (document.getElementById('player') as HTMLVideoElement).pause())

      // A keeper holding the video dies: the page shows it dead, then the file back at 3 alive replicas.
      const victim = stored.replicas[0]!.keeper
      await cluster.keeperById(victim).stop('SIGKILL')
      await page.waitForSelector(`#keepers tbody tr[data-keeper="${victim}"][data-alive="false"]`)
      await screenshot(page, 'keeper-dead')
      await page.waitForFunction(
        ({row, dead}) => {
          const shown = document.querySelector(row)
          const alive = [...(shown?.querySelectorAll('.holder:not(.gone)') ?? [])].map((holder) => holder.textContent)
          return shown?.getAttribute('data-health') === 'healthy' && alive.length === 3 && !alive.includes(dead)
        },
        {row: fileRow(video), dead: victim},
      )
      const repaired = await cluster.stat(video)
      assert.equal(repaired.replicas.filter((replica) => replica.alive).length, 3)
      assert.ok(!repaired.replicas.some((replica) => replica.alive && replica.keeper === victim))
      await screenshot(page, 'repaired')

      // Delete: the page asks first, then the master forgets the file.
      const asked: string[] = []
      page.once('dialog', (dialog) => {
        asked.push(dialog.message())
        void dialog.accept()
      })
      await page.click(`${fileRow(dropped)} button.delete`)
      await page.waitForSelector(fileRow(dropped), {state: 'detached'})
      assert.equal(asked.length, 1)
      assert.match(asked[0]!, /Delete "dropped\.bin"/)
      assert.equal((await cluster.masterJson(`/files/${dropped}`)).status, 404)
      await screenshot(page, 'deleted')
    } finally {
      await page.context().close()
      await cluster.stop()
    }
  })

  test('with auth on, a page without a token shows nothing and its upload is refused; a read token may look but not upload; a write token uploads', async (t) => {
    const page = await newPage(t)
    if (!page) return
    const cluster = await TestCluster.start({keepers: 4, replicas: 3})
    try {
      await page.goto(`${cluster.masterUrl}/`)
      await page.waitForFunction(() => document.getElementById('summary')!.textContent === 'log in to see this cluster')
      assert.equal(await page.$$eval('#keepers tbody tr', (rows) => rows.length), 0)
      const name = 'sample_2.mp4'
      await page.setInputFiles('#file-input', join(FIXTURES, name))
      await page.waitForSelector(`#uploads li[data-upload="${name}"][data-state="failed"]`)
      assert.match(await page.textContent(`#uploads li[data-upload="${name}"]`) ?? '', /needs a client token of scope write/)
      await screenshot(page, 'logged-out')

      const key = await ClusterKey.load(cluster.secretFile)
      const token = async (scope: 'read' | 'write') => (await mintClientToken(key, {scope, ttlMs: 3_600_000})).token
      await logIn(page, await token('read'))
      await page.waitForFunction(() => document.querySelectorAll('#keepers tbody tr[data-alive="true"]').length === 4)
      await page.evaluate(() => document.getElementById('uploads')!.replaceChildren())
      await page.setInputFiles('#file-input', join(FIXTURES, name))
      await page.waitForSelector(`#uploads li[data-upload="${name}"][data-state="failed"]`)
      assert.match(await page.textContent(`#uploads li[data-upload="${name}"]`) ?? '', /scope/)
      assert.equal((await cluster.masterJson(`/files/${name}`)).status, 404, 'nothing was stored')

      // Keepers answer CORS for their master's origin only: the dashboard's uploads, no other page's.
      const keeper = cluster.keepers[0]!.url
      const preflight = (origin: string) =>
        request(`${keeper}/files/x.mp4?upload=u1`, {method: 'OPTIONS', headers: {origin, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'x-dfs-grant'}})
      const ours = await preflight(new URL(cluster.masterUrl).origin)
      await ours.body.dump()
      assert.equal(ours.statusCode, 204)
      assert.equal(ours.headers['access-control-allow-origin'], new URL(cluster.masterUrl).origin)
      assert.match(String(ours.headers['access-control-allow-headers']), /x-dfs-grant/)
      const theirs = await preflight('http://elsewhere.example')
      await theirs.body.dump()
      assert.equal(theirs.statusCode, 404)
      assert.equal(theirs.headers['access-control-allow-origin'], undefined)

      // The token lives in this tab's session only: a new tab of the same browser has none.
      const other = await page.context().newPage()
      await other.goto(`${cluster.masterUrl}/`)
      await other.waitForFunction(() => document.getElementById('summary')!.textContent === 'log in to see this cluster')
      assert.equal(await other.textContent('#who'), '')
      await other.close()

      await page.click('#logout')
      await logIn(page, await token('write'))
      await page.waitForFunction(() => document.getElementById('who')!.textContent === 'logged in (write)')
      await page.setInputFiles('#file-input', join(FIXTURES, name))
      await page.waitForSelector(`#uploads li[data-upload="${name}"][data-state="stored"]`)
      await waitFor('the upload recorded by the master', async () => (await cluster.stat(name)).sha256 === SAMPLES[name].sha256)
    } finally {
      await page.context().close()
      await cluster.stop()
    }
  })
})
