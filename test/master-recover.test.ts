import assert from 'node:assert/strict'
import {readFile, rm, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import type {FsckReport} from '../src/lib/protocol.js'
import {TestCluster, clusterPerTest, randomFile, sha256File, waitFor} from './helpers/cluster.js'

const MiB = 1024 * 1024

interface Listed {
  name: string
  fileId: string
  size: number
  sha256: string
}

/** Kills the master and wipes its data dir: the table is lost, the keepers keep everything. */
async function loseTheMaster(cluster: TestCluster): Promise<void> {
  await cluster.master.stop('SIGKILL')
  await rm(join(cluster.dir, 'master'), {recursive: true, force: true})
}

/** The master's fsck once it has built its table (the recovery window closed). */
async function fsckAfterRecovery(cluster: TestCluster): Promise<FsckReport> {
  return waitFor('the master to build its table', async () => {
    const {status, body} = await cluster.masterJson<FsckReport>('/fsck')
    return status === 200 && body.recovering === false && body
  })
}

async function readsBack(cluster: TestCluster, work: string, name: string, sha256: string): Promise<void> {
  const out = join(work, `${name}.out`)
  const result = await cluster.dfs(['get', name, '-o', out])
  assert.equal(result.code, 0, result.stderr)
  assert.equal(await sha256File(out), sha256, `"${name}" reads back byte-exact`)
  await rm(out)
}

/**
 * Two generations of one name on two keepers of a cluster of 2: `old` was put, copied to both,
 * then `older` (its keeper) was stopped, the file removed and put again with other bytes, which
 * only `newer` holds. The master's order to delete the old copy waits for `older` to come back.
 */
async function twoGenerations(cluster: TestCluster, work: string, name: string) {
  const first = join(work, 'first')
  const oldSha256 = await randomFile(first, 1 * MiB)
  assert.equal((await cluster.dfs(['put', first, '--name', name, '--wait', 'all'])).code, 0)
  const old = await cluster.stat(name)
  const older = cluster.keepers[0]!
  const newer = cluster.keepers[1]!
  const olderDir = cluster.dataDirOf(older)
  await older.stop('SIGTERM')
  await waitFor(`${older.id} to be dead`, async () => !(await cluster.keeperStatus()).find((keeper) => keeper.id === older.id)!.alive)
  assert.equal((await cluster.dfs(['rm', name])).code, 0)
  // The alive keeper carried out its delete order: from now on only `older` holds the old bytes.
  await waitFor('the old generation gone from the alive keeper', async () => (await stat(join(cluster.dataDirOf(newer), 'blobs', old.fileId)).catch(() => undefined)) === undefined)

  const second = join(work, 'second')
  const newSha256 = await randomFile(second, 1 * MiB + 1)
  assert.equal((await cluster.dfs(['put', second, '--name', name])).code, 0)
  const current = await cluster.stat(name)
  assert.notEqual(current.fileId, old.fileId)
  return {old: {fileId: old.fileId, sha256: oldSha256}, current: {fileId: current.fileId, sha256: newSha256}, older, olderDir, newer, newerDir: cluster.dataDirOf(newer)}
}

describe('dfs master --recover', () => {
  const clusters = clusterPerTest()

  test('rebuilds a wiped table from the keepers: every file with its id, size and sha256, byte-exact, and fsck healthy', async () => {
    const cluster = await clusters.start({keepers: 3})
    const names = ['a.bin', 'b.bin', 'c with spaces.bin', 'empty.bin']
    const sha256s = new Map<string, string>()
    for (const [index, name] of names.entries()) {
      const path = join(clusters.work, `source-${index}`)
      sha256s.set(name, await randomFile(path, name === 'empty.bin' ? 0 : (index + 1) * MiB + index))
      const put = await cluster.dfs(['put', path, '--name', name, '--wait', 'all'])
      assert.equal(put.code, 0, put.stderr)
    }

    const pick = ({name, fileId, size, sha256}: Listed) => ({name, fileId, size, sha256})
    const before = (await cluster.dfsJson<Listed[]>(['ls'])).map(pick)
    assert.equal(before.length, names.length)

    await loseTheMaster(cluster)
    await cluster.startMaster(['--recover', '--recover-keepers', '3'])
    const report = await fsckAfterRecovery(cluster)
    assert.equal(report.status, 'healthy')
    assert.equal(report.summary.healthy, names.length)
    assert.deepEqual(report.setAside, [], 'nothing conflicts, nothing is set aside')

    assert.deepEqual((await cluster.dfsJson<Listed[]>(['ls'])).map(pick), before, 'ids, names, sizes and sha256 as before')
    for (const name of names) await readsBack(cluster, clusters.work, name, sha256s.get(name)!)
    const fsck = await cluster.dfs(['fsck'])
    assert.equal(fsck.code, 0, fsck.stderr)
    assert.match(fsck.stdout, /The filesystem is HEALTHY/)
  })

  test('refuses a --data whose table holds files, with one line', async () => {
    const cluster = await clusters.start({keepers: 1})
    const path = join(clusters.work, 'kept')
    await randomFile(path, 1000)
    assert.equal((await cluster.dfs(['put', path])).code, 0)
    await cluster.master.stop('SIGTERM')
    await assert.rejects(cluster.startMaster(['--recover']), (error: Error) => {
      assert.match(error.message, /Error: --recover rebuilds a lost table, but the one in \S+ holds files/)
      return true
    })
  })

  test('two generations of one name heard in the window: the newest is served, the older set aside, reported and kept on its keeper', async () => {
    const cluster = await clusters.start({keepers: 2, replicas: 2})
    const {old, current, olderDir} = await twoGenerations(cluster, clusters.work, 'doc')

    await loseTheMaster(cluster)
    await cluster.startMaster(['--recover', '--recover-keepers', '2'])
    const older = await cluster.addKeeper(olderDir)
    const report = await fsckAfterRecovery(cluster)

    assert.equal((await cluster.stat('doc')).fileId, current.fileId, 'the newer generation is the file')
    await readsBack(cluster, clusters.work, 'doc', current.sha256)
    assert.deepEqual(
      report.setAside?.map(({fileId, keeperId, sha256}) => ({fileId, keeperId, sha256})),
      [{fileId: old.fileId, keeperId: older.id, sha256: old.sha256}],
    )
    assert.match(report.setAside![0]!.reason, new RegExp(`older generation of "doc" than ${current.fileId}`))
    const fsck = await cluster.dfs(['fsck'])
    assert.match(fsck.stdout, new RegExp(`Set aside by the recovery[^]*doc\\s+${old.fileId}\\s+${older.id}`))

    // The newer generation is copied to the older keeper too; the old bytes stay on its disk.
    await cluster.waitForReplicas('doc', 2)
    assert.equal(await sha256File(join(olderDir, 'blobs', old.fileId)), old.sha256, 'the set-aside generation is never deleted')
    assert.equal(JSON.parse(await readFile(join(olderDir, 'blobs', `${old.fileId}.json`), 'utf8')).name, 'doc')
    // The copy's description carries the generation's creation time, for the next rebuild to weigh.
    const [listed] = await cluster.dfsJson<Array<{createdAt: string}>>(['ls'])
    const copy = JSON.parse(await readFile(join(olderDir, 'blobs', `${current.fileId}.json`), 'utf8')) as {createdAt?: number}
    assert.equal(copy.createdAt, Date.parse(listed!.createdAt))
  })

  test('a keeper that registers after the table was built: its newer generation replaces the recorded one, which is set aside', async () => {
    const cluster = await clusters.start({keepers: 2, replicas: 2})
    const {old, current, olderDir, newer, newerDir} = await twoGenerations(cluster, clusters.work, 'doc')
    await newer.stop('SIGTERM')

    await loseTheMaster(cluster)
    // Only the keeper of the old generation is back: the table is built from its inventory alone.
    await cluster.startMaster(['--recover', '--recover-keepers', '1'])
    const older = await cluster.addKeeper(olderDir)
    await fsckAfterRecovery(cluster)
    assert.equal((await cluster.stat('doc')).fileId, old.fileId, 'the only generation heard is the file for now')

    await cluster.addKeeper(newerDir)
    await waitFor('the late newer generation to replace the old one', async () => (await cluster.stat('doc')).fileId === current.fileId)
    await readsBack(cluster, clusters.work, 'doc', current.sha256)
    const report = (await cluster.masterJson<FsckReport>('/fsck')).body
    assert.deepEqual(
      report.setAside?.map(({fileId, keeperId}) => ({fileId, keeperId})),
      [{fileId: old.fileId, keeperId: older.id}],
    )
    await cluster.waitForReplicas('doc', 2)
    assert.equal(await sha256File(join(olderDir, 'blobs', old.fileId)), old.sha256, 'the set-aside generation is never deleted')
  })
})
