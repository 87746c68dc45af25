import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {BIN, clusterPerTest, randomFile, sha256File, waitFor} from './helpers/cluster.js'

const MiB = 1024 * 1024

describe('put --wait all when fewer keepers are alive than the replica target', () => {
  const clusters = clusterPerTest()

  test('fails after --wait-timeout with one line and exit 5 (DFS_ERR_NO_KEEPERS); the file stays stored', {timeout: 120_000}, async () => {
    const cluster = await clusters.start({keepers: 2, replicas: 3})
    const source = join(clusters.work, 'short-handed.bin')
    const sha256 = await randomFile(source, 2 * MiB)

    const put = await cluster.dfs(['put', source, '--wait', 'all', '--wait-timeout', '2s'])
    assert.equal(put.code, 5, put.stderr)
    assert.equal(put.stdout, '')
    assert.equal(put.stderr.trim().split('\n').length, 1, put.stderr)
    // 1 or 2 of 3: the copy to the second keeper may still be on its way when the 2 s are over.
    assert.match(put.stderr, /^Error: "short-handed\.bin" is stored but has [12] of the 3 replicas waited for after 2 s$/m)

    // Stored, then copied to the other keeper, and readable.
    assert.equal((await cluster.stat('short-handed.bin')).sha256, sha256)
    await cluster.waitForReplicas('short-handed.bin', 2)
    const out = join(clusters.work, 'short-handed.copy')
    const got = await cluster.dfs(['get', 'short-handed.bin', '-o', out])
    assert.equal(got.code, 0, got.stderr)
    assert.equal(await sha256File(out), sha256)

    // Storing it again is refused as a name that exists: the failed wait did not undo the upload.
    const again = await cluster.dfs(['put', source])
    assert.equal(again.code, 4, again.stderr)
  })

  test('succeeds once a keeper joins while it waits', {timeout: 120_000}, async () => {
    const cluster = await clusters.start({keepers: 2, replicas: 3})
    const source = join(clusters.work, 'rescued.bin')
    const sha256 = await randomFile(source, 2 * MiB)

    const child = spawn(process.execPath, [BIN, 'put', source, '--wait', 'all', '--wait-timeout', '60s', '--json', ...cluster.clientFlags], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
    const exit = once(child, 'close')

    // Stored and copied to the other keeper: put now waits for a third keeper that does not exist yet.
    await cluster.waitForReplicas('rescued.bin', 2)
    assert.equal(child.exitCode, null, `put is still waiting: ${stderr}`)
    const third = await cluster.addKeeper()

    const [code] = (await exit) as [number | null]
    assert.equal(code, 0, stderr)
    const [result] = JSON.parse(stdout) as Array<{sha256: string; replicas: number}>
    assert.equal(result!.sha256, sha256)
    assert.equal(result!.replicas, 3)
    const holders = await waitFor('3 replicas recorded', async () => {
      const alive = (await cluster.stat('rescued.bin')).replicas.filter((replica) => replica.alive)
      return alive.length === 3 ? alive.map((replica) => replica.keeper) : undefined
    })
    assert.ok(holders.includes(third.id), 'the new keeper holds the third copy')
  })
})
