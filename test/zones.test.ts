// Zones on real processes: keepers started with --zone, files whose replicas must span every zone
// that has keepers, fsck and stat flagging a file held in one zone, and repair restoring the spread
// when a zone comes back. Loopback only: a zone is a name a keeper gives, nothing more.

import assert from 'node:assert/strict'
import {join} from 'node:path'
import {describe, test, type TestContext} from 'node:test'

import type {FileInfo, FsckReport, KeeperInfo} from '../src/lib/protocol.js'
import {clusterPerTest, dfs, waitFor, type ServerProcess, type TestCluster} from './helpers/cluster.js'
import {freePort, startKeeper} from './helpers/keeper-process.js'
import {KeeperProxy} from './helpers/keeper-proxy.js'
import {assertReadBack, storeRandomFiles} from './helpers/stored-files.js'

const clusters = clusterPerTest()

/** The file, once exactly `count` of its replicas are alive and they sit in exactly `zones`. */
async function waitForPlacement(cluster: TestCluster, name: string, count: number, zones: string[]): Promise<FileInfo> {
  return waitFor(`${name} on ${count} alive replicas in zones ${zones.join(',')}`, async () => {
    const info = (await cluster.stat(name)) as unknown as FileInfo
    const alive = info.replicas.filter((replica) => replica.alive)
    const held = [...new Set(alive.map((replica) => replica.zone))].sort()
    return alive.length === count && held.join() === zones.join() ? info : undefined
  })
}

async function zoneKeeper(t: TestContext, cluster: TestCluster, dir: string, zone: string): Promise<ServerProcess> {
  return startKeeper(t, cluster, join(cluster.dir, dir), ['--zone', zone])
}

describe('zones', () => {
  test('replicas span both zones; a zone cut off leaves every file readable in the other; when it returns each file spans both again', async (t) => {
    const cluster = await clusters.start({keepers: 0, replicas: 3})
    const dirs = {x1: 'x', x2: 'x', y1: 'y', y2: 'y'}
    const keepers = new Map<string, ServerProcess>()
    for (const [dir, zone] of Object.entries(dirs)) keepers.set(dir, await zoneKeeper(t, cluster, dir, zone))

    const status = await cluster.dfsJson<{keepers: KeeperInfo[]}>(['status'])
    assert.deepEqual(status.keepers.map((keeper) => keeper.zone).sort(), ['x', 'x', 'y', 'y'])
    const table = await cluster.dfs(['status'])
    for (const keeper of status.keepers) assert.match(table.stdout, new RegExp(`^${keeper.id}\\s+\\S+\\s+${keeper.zone}\\s+yes\\s`, 'm'))

    const files = await storeRandomFiles(cluster, clusters.work, 'spread', 4, {baseSize: 100_000, step: 50_000})
    for (const name of files.keys()) {
      const info = await waitForPlacement(cluster, name, 3, ['x', 'y'])
      assert.equal(info.health, 'healthy')
    }

    // Zone y goes away: every file still has a replica in x, and is repaired there.
    await Promise.all([keepers.get('y1')!.stop('SIGKILL'), keepers.get('y2')!.stop('SIGKILL')])
    for (const name of files.keys()) await waitForPlacement(cluster, name, 2, ['x'])
    await assertReadBack(cluster, clusters.work, files)

    // Zone y is back: every file spans both zones again, at exactly 3 replicas.
    keepers.set('y1', await zoneKeeper(t, cluster, 'y1', 'y'))
    keepers.set('y2', await zoneKeeper(t, cluster, 'y2', 'y'))
    for (const name of files.keys()) await waitForPlacement(cluster, name, 3, ['x', 'y'])
    // Polled over HTTP (a CLI start per poll costs more than the wait), then asked of the command.
    await waitFor('fsck healthy', async () => (await cluster.masterJson<FsckReport>('/fsck')).body.status === 'healthy')
    const fsck = await cluster.dfsJson<FsckReport>(['fsck'])
    assert.equal(fsck.status, 'healthy')
    assert.ok(fsck.files.every((file) => file.zones.join() === 'x,y'), JSON.stringify(fsck.files))
    await assertReadBack(cluster, clusters.work, files)
  })

  test('a file held in one zone while another has keepers is SINGLE-ZONE in fsck and stat; it gains a copy there and is trimmed back to 3', async (t) => {
    const cluster = await clusters.start({keepers: 3, replicas: 3, keeperArgs: ['--zone', 'x']})
    const files = await storeRandomFiles(cluster, clusters.work, 'lonely', 2, {baseSize: 100_000, step: 50_000})
    for (const name of files.keys()) await waitForPlacement(cluster, name, 3, ['x'])
    // One zone in all: nothing to spread over.
    assert.equal((await cluster.dfsJson<FsckReport>(['fsck'])).status, 'healthy')

    // A keeper of zone y joins, behind a proxy that refuses its copy orders for now.
    const port = await freePort()
    const proxy = await KeeperProxy.start(`http://127.0.0.1:${port}`)
    t.after(() => proxy.close())
    proxy.refuseCopies = true
    await startKeeper(t, cluster, join(cluster.dir, 'y1'), ['--zone', 'y', '--port', String(port), '--advertise', proxy.url])

    await waitFor('both files single-zone', async () => (await cluster.masterJson<FsckReport>('/fsck')).body.summary.singleZone === 2)
    const report = await cluster.dfsJson<FsckReport>(['fsck'])
    assert.equal(report.summary.singleZone, 2)
    assert.equal(report.status, 'single-zone')
    assert.deepEqual(report.files.map((file) => [file.health, file.zones.join(), file.alive]), [['single-zone', 'x', 3], ['single-zone', 'x', 3]])
    const human = await cluster.dfs(['fsck'])
    assert.equal(human.code, 0, 'single-zone is not missing: fsck exits 0, as for under-replicated')
    assert.match(human.stdout, /SINGLE-ZONE/)
    assert.match(human.stdout, /single-zone: 2/)
    const [first] = files.keys()
    const stat = await cluster.dfs(['stat', first!])
    assert.match(stat.stdout, /health:\s+SINGLE-ZONE/)
    assert.match(stat.stdout, /zones:\s+1\b/)

    proxy.refuseCopies = false
    for (const name of files.keys()) await waitForPlacement(cluster, name, 3, ['x', 'y'])
    assert.ok(proxy.refused > 0, 'the copies into zone y were refused at first')
    assert.equal((await cluster.dfsJson<FsckReport>(['fsck'])).status, 'healthy')
    await assertReadBack(cluster, clusters.work, files)
  })

  test('a bad zone name is refused with one line', async () => {
    const cluster = await clusters.start({keepers: 0, replicas: 1})
    const result = await dfs(['keeper', '--master', cluster.masterUrl, '--data', join(cluster.dir, 'bad'), '--zone', 'no/slash', '--secret-file', cluster.secretFile])
    assert.notEqual(result.code, 0)
    assert.match(result.stderr, /"no\/slash" is not a zone name/)
    assert.doesNotMatch(result.stderr, /\n\s+at /)
  })
})
