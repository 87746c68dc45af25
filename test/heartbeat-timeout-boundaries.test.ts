import assert from 'node:assert/strict'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {setTimeout as sleep} from 'node:timers/promises'

import {clusterPerTest, randomFile, sha256File, waitFor, type ServerProcess, type TestCluster} from './helpers/cluster.js'
import {clusterKeepers, replicasInTable, replicasOnDisk, type KeeperOnDisk} from './helpers/keeper-disk.js'
import {startProxiedKeeper} from './helpers/keeper-proxy.js'

const MiB = 1024 * 1024

/** The master's last heartbeat from a keeper, as an epoch ms (0: none). */
async function lastHeartbeat(cluster: TestCluster, id: string): Promise<number> {
  const keeper = (await cluster.keeperStatus()).find((candidate) => candidate.id === id) as {lastHeartbeat?: string | null} | undefined
  return keeper?.lastHeartbeat ? Date.parse(keeper.lastHeartbeat) : 0
}

/** Master log lines (from `from` on) that mention these words. */
function masterSaid(master: ServerProcess, from: number, ...words: string[]): string[] {
  return master.logs.slice(from).filter((line) => words.every((word) => line.includes(word)))
}

/** Stores a file and waits for all its replicas; a put --wait all also proves replication passes ran. */
async function putAll(cluster: TestCluster, work: string, name: string): Promise<{sha256: string; holders: string[]}> {
  const path = join(work, name)
  const sha256 = await randomFile(path, MiB)
  const put = await cluster.dfs(['put', path, '--wait', 'all'])
  assert.equal(put.code, 0, put.stderr)
  return {sha256, holders: (await cluster.waitForReplicas(name, 3)).sort()}
}

/** The disks hold exactly the replicas the table records. */
async function waitForDisksToMatchTable(cluster: TestCluster, keepers: KeeperOnDisk[]): Promise<void> {
  await waitFor('the disks to hold exactly the replicas in the table', async () => JSON.stringify(await replicasOnDisk(keepers)) === JSON.stringify(await replicasInTable(cluster))).catch(async (error: unknown) => {
    assert.deepEqual(await replicasOnDisk(keepers), await replicasInTable(cluster), String(error))
  })
}

describe('heartbeat timeout boundaries', () => {
  const clusters = clusterPerTest()

  test('a keeper paused for less than the timeout is never marked dead, and nothing is copied', async (t) => {
    const cluster = await clusters.start({keepers: 4, masterArgs: ['--heartbeat-timeout', '8s']})
    const file = await putAll(cluster, clusters.work, 'steady.bin')
    const paused = cluster.keeperById(file.holders[0]!)
    const from = cluster.master.logs.length

    paused.child.kill('SIGSTOP')
    t.after(() => void paused.child.kill('SIGCONT'))
    const before = await lastHeartbeat(cluster, paused.id)
    // The pause itself, an eighth of the timeout (room for a loaded machine): the stimulus, not something asserted.
    await sleep(1000)
    assert.equal(await lastHeartbeat(cluster, paused.id), before, 'the keeper really was silent')
    paused.child.kill('SIGCONT')
    await waitFor('a heartbeat after the pause', async () => (await lastHeartbeat(cluster, paused.id)) > before)

    // Another file stored and copied: replication passes ran after the pause.
    await putAll(cluster, clusters.work, 'later.bin')
    assert.deepEqual(masterSaid(cluster.master, from, 'marked dead'), [])
    assert.deepEqual(masterSaid(cluster.master, from, 'copied', 'steady.bin'), [])
    assert.deepEqual((await cluster.waitForReplicas('steady.bin', 3)).sort(), file.holders)
    assert.equal((await cluster.stat('steady.bin')).replicas.length, 3)
  })

  test('a keeper paused for longer is marked dead and repaired; resumed, it rejoins and the surplus is trimmed', async (t) => {
    const cluster = await clusters.start({keepers: 4})
    const file = await putAll(cluster, clusters.work, 'endangered.bin')
    const paused = cluster.keeperById(file.holders[0]!)
    const from = cluster.master.logs.length

    paused.child.kill('SIGSTOP')
    t.after(() => void paused.child.kill('SIGCONT'))
    await waitFor('the paused keeper marked dead', async () => (await cluster.keeperStatus()).find((keeper) => keeper.id === paused.id)?.alive === false)
    const repaired = await cluster.waitForReplicas('endangered.bin', 3)
    assert.ok(!repaired.includes(paused.id))
    // The two others kept theirs, and one new copy took the paused keeper's place.
    assert.deepEqual(repaired.filter((id) => file.holders.includes(id)).sort(), file.holders.slice(1).sort())
    assert.equal(repaired.filter((id) => !file.holders.includes(id)).length, 1)
    // The master logs a copy once the table has it: the line may come just after the table shows it.
    await waitFor('the master to log the copy', () => masterSaid(cluster.master, from, 'copied', 'endangered.bin').length > 0)

    paused.child.kill('SIGCONT')
    await waitFor('the resumed keeper alive again', async () => (await cluster.keeperStatus()).find((keeper) => keeper.id === paused.id)?.alive)
    await waitFor('the surplus trimmed', () => masterSaid(cluster.master, from, 'trimming surplus replica', 'endangered.bin').length === 1)
    assert.equal((await cluster.waitForReplicas('endangered.bin', 3)).length, 3)
    await waitForDisksToMatchTable(cluster, clusterKeepers(cluster))
    assert.equal(masterSaid(cluster.master, from, 'copied', 'endangered.bin').length, 1, 'one copy made, and no other')
    const out = join(clusters.work, 'endangered.copy')
    assert.equal((await cluster.dfs(['get', 'endangered.bin', '-o', out])).code, 0)
    assert.equal(await sha256File(out), file.sha256)
  })

  test('a keeper paused while a copy is made to it: once it is dead the copy is made elsewhere, without waiting for that one', async (t) => {
    const cluster = await clusters.start({keepers: 0, replicas: 2})
    const holderDir = join(cluster.dir, 'keeper-behind-proxy')
    const {keeper: holder, proxy} = await startProxiedKeeper(t, cluster, holderDir)
    const path = join(clusters.work, 'stalled.bin')
    const sha256 = await randomFile(path, 2 * MiB)
    assert.equal((await cluster.dfs(['put', path])).code, 0)

    proxy.hold(64 * 1024)
    const receiver = await cluster.addKeeper()
    await waitFor('the copy to the receiver under way', () => proxy.holding === 1)
    const spare = await cluster.addKeeper()
    receiver.child.kill('SIGSTOP')
    t.after(() => void receiver.child.kill('SIGCONT'))
    await waitFor('the paused receiver marked dead', async () => (await cluster.keeperStatus()).find((keeper) => keeper.id === receiver.id)?.alive === false)
    proxy.release()

    assert.deepEqual((await cluster.waitForReplicas('stalled.bin', 2)).sort(), [holder.id, spare.id].sort())
    // The copy to the paused keeper was still under way (it can only end when that keeper answers
    // or the order times out): the repair did not wait for it.
    assert.deepEqual(masterSaid(cluster.master, 0, 'stalled.bin', `to ${receiver.id} failed`), [])

    receiver.child.kill('SIGCONT')
    await waitFor('the receiver alive again', async () => (await cluster.keeperStatus()).find((keeper) => keeper.id === receiver.id)?.alive)
    assert.equal((await cluster.waitForReplicas('stalled.bin', 2)).length, 2)
    await waitForDisksToMatchTable(cluster, [{id: holder.id, dataDir: holderDir}, ...clusterKeepers(cluster)])
    const out = join(clusters.work, 'stalled.copy')
    assert.equal((await cluster.dfs(['get', 'stalled.bin', '-o', out])).code, 0)
    assert.equal(await sha256File(out), sha256)
  })
})
