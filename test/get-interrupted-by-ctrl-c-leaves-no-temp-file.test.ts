import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {mkdir, readdir, rm, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {BIN, TestCluster, randomFile, tempDir, waitFor} from './helpers/cluster.js'
import {StallingProxy, freePort} from './helpers/stalling-proxy.js'

const MiB = 1024 * 1024

describe('Ctrl-C during dfs get', () => {
  let cluster: TestCluster
  let proxy: StallingProxy
  let work: string

  // One keeper, reached only through a proxy that can hold back every range but the first: a get
  // then has written exactly one range into its temp file and waits for the rest, for as long as
  // the test needs, so the SIGINT surely lands mid-download.
  before(async () => {
    const port = await freePort()
    proxy = await StallingProxy.start(port)
    cluster = await TestCluster.start({keepers: 1, replicas: 1, keeperArgs: ['--port', String(port), '--advertise', proxy.url]})
    work = await tempDir()
    const source = join(work, 'big.bin')
    await randomFile(source, 8 * MiB)
    const put = await cluster.dfs(['put', source])
    assert.equal(put.code, 0, put.stderr)
    proxy.stallLaterRanges = true
  })

  after(async () => {
    await cluster.stop()
    await proxy.close()
    await rm(work, {recursive: true, force: true})
  })

  test('removes the temp file beside the destination and exits non-zero', async () => {
    const outDir = join(work, 'out')
    await mkdir(outDir)
    const get = run(['get', 'big.bin', '-o', join(outDir, 'big.bin'), '--range-size', '1m', ...cluster.clientFlags])

    const part = await waitFor('the first range in the temp file', async () => {
      for (const entry of await readdir(outDir)) {
        if (entry.endsWith('.dfs-part') && (await stat(join(outDir, entry))).size === MiB) return entry
      }

      return undefined
    })
    assert.ok(part.startsWith('.'), 'the temp file is hidden')
    assert.ok(proxy.stalled > 0, 'the rest of the file is held back: the download is under way')

    get.child.kill('SIGINT')
    const {code, signal} = await get.exit
    assert.equal(signal, null, 'dfs handles the signal itself')
    assert.equal(code, 130, get.stderr())
    assert.deepEqual(await readdir(outDir), [], 'neither the temp file nor a partial destination is left')
  })

  test('with -o -, removes the temp copy in the temp dir, and stdout got nothing', async () => {
    const clientTmp = join(work, 'client-tmp')
    await mkdir(clientTmp)
    const get = run(['get', 'big.bin', '-o', '-', '--range-size', '1m', ...cluster.clientFlags], {TMPDIR: clientTmp})

    await waitFor('the first range in the temp copy', async () => {
      for (const entry of await readdir(clientTmp)) {
        if (entry.endsWith('.dfs-part') && (await stat(join(clientTmp, entry))).size === MiB) return true
      }

      return undefined
    })

    get.child.kill('SIGINT')
    const {code, signal} = await get.exit
    assert.equal(signal, null, 'dfs handles the signal itself')
    assert.equal(code, 130, get.stderr())
    assert.deepEqual(await readdir(clientTmp), [], 'the temp copy is removed')
    assert.equal(get.stdoutBytes(), 0, 'stdout gets nothing that was not verified')
  })
})

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [BIN, ...args], {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, ...env}})
  let stderr = ''
  let stdoutBytes = 0
  child.stdout.on('data', (chunk: Buffer) => (stdoutBytes += chunk.length))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')))
  const exit = once(child, 'close').then(([code, signal]) => ({code: code as number | null, signal: signal as NodeJS.Signals | null}))
  return {child, exit, stderr: () => stderr, stdoutBytes: () => stdoutBytes}
}
