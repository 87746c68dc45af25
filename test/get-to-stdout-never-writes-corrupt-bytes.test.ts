import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {once} from 'node:events'
import {readdir, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {flipEvery} from './chaos/disk-faults.js'
import {BIN, TestCluster, randomFile, sha256File, tempDir, waitFor} from './helpers/cluster.js'

const MiB = 1024 * 1024

describe('dfs get -o - meeting corrupt replicas', () => {
  let cluster: TestCluster
  let work: string
  // The client's temp dir, to see that it keeps nothing once get is over.
  let clientTmp: string

  before(async () => {
    cluster = await TestCluster.start({keepers: 4})
    work = await tempDir()
    clientTmp = await tempDir('dfs-client-tmp-')
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
    await rm(clientTmp, {recursive: true, force: true})
  })

  test('stdout gets exactly the file; the corrupt replica is dropped and copied again', async () => {
    const source = join(work, 'rotten.bin')
    const sha256 = await randomFile(source, 8 * MiB)
    assert.equal((await cluster.dfs(['put', source, '--wait', 'all'])).code, 0)
    const {fileId, replicas} = await cluster.stat('rotten.bin')
    const bad = replicas[0]!
    // Damage every 64 KiB: whichever 256 KiB ranges this replica serves (it serves some: every
    // replica gets the first ones) are wrong.
    await flipEvery(cluster.blobPath(bad.keeper, fileId), 64 * 1024)

    const got = await getToStdout(['get', 'rotten.bin', '-o', '-', '--range-size', '256k', ...cluster.clientFlags])
    assert.equal(got.code, 0, got.stderr)
    assert.equal(got.stdout.length, 8 * MiB)
    assert.equal(createHash('sha256').update(got.stdout).digest('hex'), sha256, 'stdout holds exactly the stored bytes')
    assert.deepEqual(await readdir(clientTmp), [], 'no temp copy is left behind')

    assert.ok(cluster.keeperById(bad.keeper).logs.some((line) => line.includes('is corrupt')), 'the keeper found its replica corrupt')
    await cluster.waitForReplicas('rotten.bin', 3)
    for (const replica of (await cluster.stat('rotten.bin')).replicas) {
      assert.equal(await sha256File(cluster.blobPath(replica.keeper, fileId)), sha256, `replica on ${replica.keeper} after the repair`)
    }
  })

  test('with no good replica left, stdout gets nothing and get fails with one clear line', async () => {
    const source = join(work, 'lost.bin')
    await randomFile(source, 2 * MiB)
    assert.equal((await cluster.dfs(['put', source, '--wait', 'all'])).code, 0)
    const lost = await cluster.stat('lost.bin')
    for (const replica of lost.replicas) await flipEvery(cluster.blobPath(replica.keeper, lost.fileId), 256 * 1024)

    const got = await getToStdout(['get', 'lost.bin', '-o', '-', '--range-size', '256k', ...cluster.clientFlags])
    assert.notEqual(got.code, 0)
    assert.equal(got.stdout.length, 0, 'not one byte reached stdout')
    assert.equal(got.stderr.trim().split('\n').length, 1, got.stderr)
    assert.match(got.stderr, /^Error: .*lost\.bin/)
    assert.deepEqual(await readdir(clientTmp), [], 'no temp copy is left behind')
    // Every replica was verified by its keeper and dropped: none is served any more.
    await waitFor('every corrupt replica dropped', async () => (await cluster.stat('lost.bin')).replicas.length === 0)
  })

  function getToStdout(args: string[]): Promise<{code: number | null; stdout: Buffer; stderr: string}> {
    const child = spawn(process.execPath, [BIN, ...args], {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, TMPDIR: clientTmp}})
    const stdout: Buffer[] = []
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')))
    return once(child, 'close').then(([code]) => ({code: code as number | null, stdout: Buffer.concat(stdout), stderr}))
  }
})

