import assert from 'node:assert/strict'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {clusterPerTest, randomFile, sha256File, waitFor, type ServerProcess, type TestCluster} from './helpers/cluster.js'
import {blobIds, clusterKeepers, replicasInTable, replicasOnDisk, tmpEntries, type KeeperOnDisk} from './helpers/keeper-disk.js'
import {startProxiedKeeper} from './helpers/keeper-proxy.js'

const MiB = 1024 * 1024

/** Every file at `target` alive replicas on distinct keepers, the disks holding exactly what the table records, every read byte-exact. */
async function assertSettled(cluster: TestCluster, keepers: KeeperOnDisk[], files: Array<{name: string; sha256: string}>, target: number, work: string): Promise<void> {
  for (const file of files) {
    const holders = await cluster.waitForReplicas(file.name, target)
    assert.equal(new Set(holders).size, target, `${file.name} on ${holders.join(', ')}`)
  }

  // A restarted master does not know the orders of the one before: copies of both may land, and the
  // surplus is trimmed after; settled is when fsck sees none left, not the first moment disks and table agree.
  await waitFor('no surplus replica, the disks holding exactly the replicas in the table, and no temp file', async () => {
    if ((await cluster.dfsJson<{summary: {overReplicated: number}}>(['fsck'])).summary.overReplicated > 0) return false
    for (const keeper of keepers) if ((await tmpEntries(keeper.dataDir)).length > 0) return false
    return JSON.stringify(await replicasOnDisk(keepers)) === JSON.stringify(await replicasInTable(cluster))
  }).catch(async (error: unknown) => {
    assert.deepEqual(await replicasOnDisk(keepers), await replicasInTable(cluster), String(error))
  })
  const fsck = await cluster.dfsJson<{status: string; summary: {overReplicated: number}}>(['fsck'])
  assert.equal(fsck.status, 'healthy')
  assert.equal(fsck.summary.overReplicated, 0)
  for (const file of files) {
    const info = await cluster.stat(file.name)
    assert.equal(info.replicas.length, target, `${file.name}: ${JSON.stringify(info.replicas)}`)
    for (const replica of info.replicas) assert.equal(await sha256File(cluster.blobPath(replica.keeper, info.fileId)), file.sha256, `${file.name} on ${replica.keeper}`)
    const out = join(work, `${file.name}.copy`)
    assert.equal((await cluster.dfs(['get', file.name, '-o', out])).code, 0)
    assert.equal(await sha256File(out), file.sha256)
  }
}

/** Lines in which a keeper says the report of a copy it made found no master (its log of a batched order, or its answer to a single one). */
function unreportedCopies(keeper: ServerProcess): number {
  return keeper.logs.filter((line) => line.includes('DFS_ERR_MASTER_UNREACHABLE')).length
}

describe('the master restarts while copies are being made', () => {
  const clusters = clusterPerTest()

  test('killed with copies under way and started again: every file reaches its target once, byte-exact', async (t) => {
    const cluster = await clusters.start({keepers: 0})
    const holderDir = join(cluster.dir, 'keeper-behind-proxy')
    const {keeper: holder, proxy} = await startProxiedKeeper(t, cluster, holderDir)
    const files = await Promise.all(['one.bin', 'two.bin', 'three.bin'].map(async (name) => {
      const path = join(clusters.work, name)
      return {name, path, sha256: await randomFile(path, 2 * MiB)}
    }))
    assert.equal((await cluster.dfs(['put', ...files.map((file) => file.path)])).code, 0)

    // Three keepers join and pull 2 copies of each file from the only holder, whose bodies stop after 64 KiB.
    proxy.hold(64 * 1024)
    for (let index = 0; index < 3; index++) await cluster.addKeeper()
    await waitFor('six copies under way', () => proxy.holding === 6)

    await cluster.master.stop('SIGKILL')
    await cluster.startMaster()
    proxy.release()

    const keepers = [{id: holder.id, dataDir: holderDir}, ...clusterKeepers(cluster)]
    await assertSettled(cluster, keepers, files, 3, clusters.work)
  })

  test('copies that finished while the master was down are reported once it is back, and the surplus is trimmed', async (t) => {
    const cluster = await clusters.start({keepers: 0, replicas: 2})
    const holderDir = join(cluster.dir, 'keeper-behind-proxy')
    const {keeper: holder, proxy} = await startProxiedKeeper(t, cluster, holderDir)
    const path = join(clusters.work, 'late.bin')
    const sha256 = await randomFile(path, 2 * MiB)
    assert.equal((await cluster.dfs(['put', path])).code, 0)
    const {fileId} = await cluster.stat('late.bin')

    proxy.hold(64 * 1024)
    const copier = await cluster.addKeeper()
    await waitFor('the copy under way', () => proxy.holding === 1)
    await cluster.addKeeper()
    // The copier is dead in the master's table when the master dies, so that the new master, which
    // never heard of its copy, may have the spare make the second one.
    copier.child.kill('SIGSTOP')
    t.after(() => void copier.child.kill('SIGCONT'))
    await waitFor('the paused copier declared dead', async () => (await cluster.keeperStatus()).find((keeper) => keeper.id === copier.id)?.alive === false)
    await cluster.master.stop('SIGKILL')
    copier.child.kill('SIGCONT')
    proxy.release()
    // The copy lands on the copier's disk, but its report finds no master.
    await waitFor('the copy on disk and its report failed', async () => (await blobIds(cluster.dataDirOf(copier))).includes(fileId) && unreportedCopies(copier) >= 1)

    await cluster.startMaster()
    await waitFor('the copier alive again', async () => (await cluster.keeperStatus()).find((keeper) => keeper.id === copier.id)?.alive)
    await waitFor('the copier to say it reported its copy', () => copier.logs.some((line) => line.includes(`copy of \\"late.bin\\" (${fileId}) whose report found no master was reported`)))
    // Whether the new master had the spare copy the file before the late report came in is a race
    // (both are right); either way it ends with 2 recorded replicas, byte-exact, and no other blob:
    // a surplus copy was trimmed.
    const keepers = [{id: holder.id, dataDir: holderDir}, ...clusterKeepers(cluster)]
    await assertSettled(cluster, keepers, [{name: 'late.bin', sha256}], 2, clusters.work)
  })
})
