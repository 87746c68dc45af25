import assert from 'node:assert/strict'
import {readdir} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test, type TestContext} from 'node:test'

import {ERRORS} from '../src/lib/errors.js'
import {clusterPerTest, randomFile, sha256File, waitFor, type RunResult, type TestCluster} from './helpers/cluster.js'
import {blobIds, clusterKeepers, replicasInTable, replicasOnDisk, tmpEntries, type KeeperOnDisk} from './helpers/keeper-disk.js'
import {startProxiedKeeper, type KeeperProxy} from './helpers/keeper-proxy.js'

const MiB = 1024 * 1024
const CATALOGUE_EXITS = new Set<number>(Object.values(ERRORS).map((error) => error.exit))

/** A get that ran while its file was removed: byte-exact, or a clean one-line catalogue error and nothing written. */
async function assertByteExactOrClean(t: TestContext, get: RunResult, out: string, sha256: string): Promise<void> {
  t.diagnostic(`get into ${out}: exit ${get.code} ${get.stderr.trim()}`)
  if (get.code === 0) {
    assert.equal(await sha256File(out), sha256, 'a get that succeeds has the right bytes')
    return
  }

  assert.ok(CATALOGUE_EXITS.has(get.code!), `exit ${get.code}: ${get.stderr}`)
  assert.match(get.stderr, /^Error: [^\n]+\n$/)
  const dir = join(out, '..')
  const name = out.slice(dir.length + 1)
  assert.deepEqual((await readdir(dir)).filter((entry) => entry.includes(name)), [], 'neither the file nor a temp file')
}

/** Waits until none of these keepers has a blob or a temp file left. */
async function waitForEmptyDisks(keepers: KeeperOnDisk[]): Promise<void> {
  await waitFor('no blob and no temp file on any keeper', async () => {
    for (const keeper of keepers) if ((await blobIds(keeper.dataDir)).length > 0 || (await tmpEntries(keeper.dataDir)).length > 0) return false
    return true
  })
}

/** The name is free again: a new file of that name is stored, copied and read back. */
async function assertNameFree(cluster: TestCluster, keepers: KeeperOnDisk[], name: string, work: string): Promise<void> {
  const fresh = join(work, `${name}.new`)
  const sha256 = await randomFile(fresh, MiB)
  const put = await cluster.dfs(['put', fresh, '--name', name, '--wait', 'all'])
  assert.equal(put.code, 0, put.stderr)
  const out = join(work, `${name}.new-copy`)
  assert.equal((await cluster.dfs(['get', name, '-o', out])).code, 0)
  assert.equal(await sha256File(out), sha256)
  await waitFor('the disks to hold exactly the new replicas', async () => JSON.stringify(await replicasOnDisk(keepers)) === JSON.stringify(await replicasInTable(cluster)))
}

describe('rm racing a get and a replication', () => {
  const clusters = clusterPerTest()

  test('rm while gets are in flight: each get is byte-exact or fails cleanly, then no keeper keeps the blob and the name is free', async (t) => {
    const cluster = await clusters.start({keepers: 0})
    const keepers: KeeperOnDisk[] = []
    const proxies: KeeperProxy[] = []
    for (const index of [1, 2, 3]) {
      const dataDir = join(cluster.dir, `keeper-behind-proxy-${index}`)
      const {keeper, proxy} = await startProxiedKeeper(t, cluster, dataDir)
      keepers.push({id: keeper.id, dataDir})
      proxies.push(proxy)
    }

    // Every range of the small file is requested at once; the big one has ranges still to ask for.
    const files = await Promise.all([['small.bin', MiB], ['big.bin', 8 * MiB]].map(async ([name, size]) => {
      const path = join(clusters.work, name as string)
      return {name: name as string, path, sha256: await randomFile(path, size as number)}
    }))
    for (const file of files) assert.equal((await cluster.dfs(['put', file.path, '--wait', 'all'])).code, 0)

    // Every file body stops after 64 KiB: the gets are under way, holding their ranges open.
    for (const proxy of proxies) proxy.hold(64 * 1024)
    const gets = files.map((file) => cluster.dfs(['get', file.name, '-o', join(clusters.work, `${file.name}.copy`), '--range-size', '256k']))
    // 4 ranges of the small file, and 3 replicas × 2 ranges each of the big one.
    await waitFor('both gets to hold ranges on the keepers', () => proxies.reduce((sum, proxy) => sum + proxy.holding, 0) === 4 + 6)

    for (const file of files) assert.equal((await cluster.dfs(['rm', file.name])).code, 0)
    await waitFor('every keeper to delete its replicas', async () => {
      for (const keeper of keepers) if ((await blobIds(keeper.dataDir)).length > 0) return false
      return true
    })
    for (const proxy of proxies) proxy.release()

    const results = await Promise.all(gets)
    for (const [index, file] of files.entries()) await assertByteExactOrClean(t, results[index]!, join(clusters.work, `${file.name}.copy`), file.sha256)
    await waitForEmptyDisks(keepers)
    assert.deepEqual(await cluster.dfsJson(['ls']), [])
    await assertNameFree(cluster, keepers, 'big.bin', clusters.work)
  })

  test('rm while the file is being copied: the copies are not kept, no keeper holds the blob, and the name is free', async (t) => {
    const cluster = await clusters.start({keepers: 0})
    const sourceDir = join(cluster.dir, 'keeper-behind-proxy')
    const {keeper: holder, proxy} = await startProxiedKeeper(t, cluster, sourceDir)
    const path = join(clusters.work, 'copied.bin')
    await randomFile(path, 4 * MiB)
    assert.equal((await cluster.dfs(['put', path])).code, 0)

    // Two keepers join and pull their copies from the holder, whose bodies stop after 64 KiB.
    proxy.hold(64 * 1024)
    await cluster.addKeeper()
    await cluster.addKeeper()
    const keepers = [{id: holder.id, dataDir: sourceDir}, ...clusterKeepers(cluster)]
    await waitFor('both copies under way', async () => {
      if (proxy.holding !== 2) return false
      for (const keeper of clusterKeepers(cluster)) if ((await tmpEntries(keeper.dataDir)).length === 0) return false
      return true
    })

    assert.equal((await cluster.dfs(['rm', 'copied.bin'])).code, 0)
    await waitFor('the holder to delete its replica', async () => (await blobIds(sourceDir)).length === 0)
    proxy.release()

    await waitForEmptyDisks(keepers)
    assert.equal((await cluster.dfs(['stat', 'copied.bin'])).code, ERRORS.DFS_ERR_NOT_FOUND.exit)
    await waitFor('no keeper to count a file', async () => (await cluster.keeperStatus()).every((keeper) => keeper.files === 0 && keeper.storedBytes === 0))
    await assertNameFree(cluster, keepers, 'copied.bin', clusters.work)
  })
})
