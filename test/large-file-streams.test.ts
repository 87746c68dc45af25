import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {readFile, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {BIN, TestCluster, randomFile, sha256File, tempDir} from './helpers/cluster.js'

const MiB = 1024 * 1024
const SIZE = 256 * MiB
// Far below the file: a role that held the file whole could not stay under it.
const LIMIT = 200 * MiB

/** Peak resident memory of a process so far (VmHWM), in bytes. */
async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status)
  assert.ok(match, 'VmHWM in /proc/PID/status')
  return Number(match[1]) * 1024
}

/** Runs the CLI and samples its peak RSS until it exits. */
async function runMeasured(args: string[]): Promise<{code: number | null; stderr: string; peak: number}> {
  const child = spawn(process.execPath, [BIN, ...args], {stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
  let peak = 0
  const timer = setInterval(() => {
    peakRss(child.pid!).then((value) => (peak = Math.max(peak, value)), () => {})
  }, 20)
  const [code] = (await once(child, 'close')) as [number | null]
  clearInterval(timer)
  return {code, stderr, peak}
}

describe('no role holds a whole file in memory', {skip: process.platform !== 'linux' && 'needs /proc'}, () => {
  let cluster: TestCluster
  let work: string
  let sha256: string

  before(async () => {
    cluster = await TestCluster.start({keepers: 3})
    work = await tempDir()
    sha256 = await randomFile(join(work, 'big.bin'), SIZE)
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  })

  test(`a ${SIZE / MiB} MiB file goes up, is copied twice and comes down with every process under ${LIMIT / MiB} MiB`, async (t) => {
    const put = await runMeasured(['put', join(work, 'big.bin'), '--wait', 'all', ...cluster.clientFlags])
    assert.equal(put.code, 0, put.stderr)
    const get = await runMeasured(['get', 'big.bin', '-o', join(work, 'copy.bin'), ...cluster.clientFlags])
    assert.equal(get.code, 0, get.stderr)
    assert.equal(await sha256File(join(work, 'copy.bin')), sha256)

    const peaks: Record<string, number> = {'put client': put.peak, 'get client': get.peak, master: await peakRss(cluster.master.child.pid!)}
    for (const keeper of cluster.keepers) peaks[`keeper ${keeper.id}`] = await peakRss(keeper.child.pid!)
    t.diagnostic(Object.entries(peaks).map(([role, peak]) => `${role}: ${Math.round(peak / MiB)} MiB`).join(', '))
    for (const [role, peak] of Object.entries(peaks)) {
      assert.ok(peak > 0 && peak < LIMIT, `${role} peaked at ${Math.round(peak / MiB)} MiB`)
    }
  })
})
