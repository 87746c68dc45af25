import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {mountSmallDisk} from './chaos/disk-faults.js'
import {ClusterKey} from '../src/lib/cluster-key.js'
import {MEMBER_HEADER, mintMemberCredential, newMember} from '../src/lib/member-auth.js'
import {clusterPerTest, json, randomFile, sha256File, waitFor, type ServerProcess} from './helpers/cluster.js'
import {blobIds, tmpEntries} from './helpers/keeper-disk.js'
import {startProxiedKeeper} from './helpers/keeper-proxy.js'

const MiB = 1024 * 1024

describe('a keeper whose disk fills up while it receives a copy', () => {
  const clusters = clusterPerTest()

  test('the failed copy leaves no partial file and is not counted; the copy is made on another keeper', async (t) => {
    const smallDisk = await mountSmallDisk(t, 8 * MiB)
    if (!smallDisk) return
    const disk = smallDisk.path

    let small: ServerProcess | undefined
    try {
      const cluster = await clusters.start({keepers: 0})
      const {proxy} = await startProxiedKeeper(t, cluster, join(cluster.dir, 'keeper-behind-proxy'))
      const path = join(clusters.work, 'copied.bin')
      const sha256 = await randomFile(path, 3 * MiB)
      assert.equal((await cluster.dfs(['put', path])).code, 0)

      // The keeper on the small disk joins first and gets the first copy, then a keeper on a big one:
      // both pull from the holder, whose bodies stop after 64 KiB.
      proxy.hold(64 * 1024)
      small = await cluster.addKeeper(disk)
      await waitFor('the copy to the small disk under way', async () => proxy.holding === 1 && (await tmpEntries(disk)).length > 0)
      await cluster.addKeeper()
      await waitFor('both copies under way', () => proxy.holding === 2)
      const spare = await cluster.addKeeper()

      // Something else takes the rest of the small disk; then the copies go on.
      await writeFile(join(disk, 'filler'), randomBytes(8 * MiB)).catch(() => {})
      proxy.release()

      await waitFor('the copy to the small disk to fail', () => cluster.master.logs.some((line) => line.includes(`to ${small!.id} failed`)))
      assert.match(cluster.master.logs.find((line) => line.includes(`to ${small!.id} failed`))!, /no space left/)
      const holders = await cluster.waitForReplicas('copied.bin', 3)
      assert.ok(holders.includes(spare.id), `the copy went to the spare keeper: ${holders.join(', ')}`)
      assert.ok(!holders.includes(small.id))
      assert.deepEqual(await tmpEntries(disk), [], 'no partial copy left on the small disk')
      assert.deepEqual(await blobIds(disk), [])
      const status = (await cluster.keeperStatus()).find((keeper) => keeper.id === small!.id)
      assert.equal(status?.files, 0)
      assert.equal(status?.storedBytes, 0)

      const copied = await cluster.stat('copied.bin')
      for (const replica of copied.replicas) assert.equal(await sha256File(cluster.blobPath(replica.keeper, copied.fileId)), sha256, `replica on ${replica.keeper}`)
      const out = join(clusters.work, 'copied.copy')
      assert.equal((await cluster.dfs(['get', 'copied.bin', '-o', out])).code, 0)
      assert.equal(await sha256File(out), sha256)
    } finally {
      await small?.stop('SIGKILL')
      await smallDisk.release()
    }
  })

  test('a copy order it has no room for is refused before a byte is read, and the keeper stays up', async (t) => {
    // The chaos run found this: a keeper whose disk filled between its heartbeat and the master's
    // order refused the copy, and the connection it dropped unread took its process down.
    const smallDisk = await mountSmallDisk(t, 8 * MiB)
    if (!smallDisk) return
    const disk = smallDisk.path

    let small: ServerProcess | undefined
    try {
      const cluster = await clusters.start({keepers: 1, replicas: 1})
      const source = cluster.keepers[0]!
      // Small: the source's whole answer is in before the keeper refuses it, the state in which an
      // unread body's abort is an error nobody listens to.
      const path = join(clusters.work, 'too-big.bin')
      const sha256 = await randomFile(path, 10_000)
      assert.equal((await cluster.dfs(['put', path])).code, 0)
      const {fileId, size} = await cluster.stat('too-big.bin')
      small = await cluster.addKeeper(disk)
      // Something else fills the disk up to its last byte.
      await writeFile(join(disk, 'filler'), randomBytes(8 * MiB)).catch(() => {})

      // The master's order, as the master sends it: its member credential, the source's grant.
      const order = {fileId, name: 'too-big.bin', size, sha256, source: source.url, grant: await cluster.grant('replicate-from', source.id, {name: 'too-big.bin', fileId, size, sha256})}
      const headers = {
        'content-type': 'application/json',
        [MEMBER_HEADER]: await mintMemberCredential(await ClusterKey.load(cluster.secretFile), newMember('master'), {method: 'POST', path: '/replicate', to: {keeperId: small.id}}),
      }
      const answer = await json<{error: string; message: string}>(`${small.url}/replicate`, {method: 'POST', headers, body: JSON.stringify(order)})
      assert.equal(answer.status, 507, JSON.stringify(answer.body))
      assert.equal(answer.body.error, 'DFS_ERR_INSUFFICIENT_STORAGE')

      // Still up and serving: its health, and its readiness (which writes a probe file) while the master hears it.
      const health = await json<{status: string}>(`${small.url}/health`)
      assert.equal(health.status, 200)
      assert.equal(small.exited, false, small.logs.join('\n'))
      assert.deepEqual(await tmpEntries(disk), [], 'nothing of the copy left in tmp/')
      assert.deepEqual(await blobIds(disk), [])
      assert.ok((await cluster.keeperStatus()).find((keeper) => keeper.id === small!.id)?.alive)
    } finally {
      await small?.stop('SIGKILL')
      await smallDisk.release()
    }
  })
})
