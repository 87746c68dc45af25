import assert from 'node:assert/strict'
import {join} from 'node:path'
import {test} from 'node:test'

import type {FsckReport} from '../../src/lib/protocol.js'
import {FIXTURES, SAMPLES, randomFile, waitFor} from '../helpers/cluster.js'
import {copiesLogged, logMessages} from '../helpers/server-logs.js'
import {assertAllReadBack, holdersOnDisk, startNetCluster} from './net-cluster.js'

const ZONES = ['a', 'a', 'b', 'b']

test('a whole zone cut off: every file reads back from the other zone; when it returns each file spans both zones again, at exactly 3 replicas, every copy trimmed', async (t) => {
  const net = await startNetCluster(t, {keepers: 4, replicas: 3, zones: ZONES})
  if (!net) return
  const {lab, cluster} = net
  const files: Record<string, string> = {}
  for (const [name, {sha256}] of Object.entries(SAMPLES)) {
    const put = await cluster.dfs(['put', join(FIXTURES, name), '--wait', 'all'])
    assert.equal(put.code, 0, put.stderr)
    files[name] = sha256
  }

  for (let index = 0; index < 3; index++) {
    const path = join(net.work, `extra-${index}.bin`)
    files[`extra-${index}.bin`] = await randomFile(path, 200_000 + index * 100_000)
    const put = await cluster.dfs(['put', path, '--wait', 'all'])
    assert.equal(put.code, 0, put.stderr)
  }

  const names = Object.keys(files)
  const zoneOf = new Map(cluster.keepers.map((keeper, index) => [keeper.id, ZONES[index]!]))
  const before = new Map<string, string[]>()
  for (const name of names) {
    const {replicas} = await cluster.stat(name)
    const zones = replicas.map((replica) => zoneOf.get(replica.keeper)!)
    assert.deepEqual([...new Set(zones)].sort(), ['a', 'b'], `${name} spans both zones`)
    before.set(name, replicas.map((replica) => replica.keeper))
  }

  // Cut the zone holding two replicas of the most files: the other then holds one of each of them,
  // and each of those needs one copy within the surviving zone.
  const inZone = (name: string, zone: string) => before.get(name)!.filter((id) => zoneOf.get(id) === zone).length
  const doubles = (zone: string) => names.filter((name) => inZone(name, zone) === 2).length
  const cutZone = doubles('a') >= doubles('b') ? 'a' : 'b'
  const stayZone = cutZone === 'a' ? 'b' : 'a'
  const expectedCopies = names.filter((name) => inZone(name, stayZone) === 1).length
  assert.ok(expectedCopies > 0, 'some file has a single replica in the surviving zone')
  const cutHosts = cluster.keepers.filter((keeper) => zoneOf.get(keeper.id) === cutZone).map((keeper) => net.hostOf(keeper).name)
  const otherHosts = ['master', 'client', ...cluster.keepers.filter((keeper) => zoneOf.get(keeper.id) === stayZone).map((keeper) => net.hostOf(keeper).name)]

  const logBefore = cluster.master.logs.length
  // The zone's hosts still reach each other, as a rack cut off by its uplink does.
  await lab.cut(cutHosts, otherHosts)
  await waitFor(`zone ${cutZone} dead and every file on 2 alive keepers of zone ${stayZone}`, async () => {
    const status = await cluster.keeperStatus()
    if (status.some((keeper) => keeper.alive !== (zoneOf.get(keeper.id) === stayZone))) return false
    const report = await cluster.dfsJson<FsckReport>(['fsck'])
    return report.files.every((file) => file.alive === 2 && file.zones.join() === stayZone)
  })
  const duringCut = logMessages(cluster.master).slice(logBefore)
  const copiesDuringCut = copiesLogged(duringCut)
  t.diagnostic(`zone ${cutZone} cut off: ${copiesDuringCut} copies`)
  assert.equal(copiesDuringCut, expectedCopies, duringCut.filter((line) => line.startsWith('copied ')).join('\n'))
  assert.equal(duringCut.filter((line) => line.startsWith('trimming surplus replica')).length, 0)
  await assertAllReadBack(net, files)

  const logAtHeal = cluster.master.logs.length
  await lab.heal(cutHosts, otherHosts)
  const report = await waitFor('every keeper alive, every file on exactly 3 keepers of both zones, in the table and on disk', async () => {
    if (!(await cluster.keeperStatus()).every((keeper) => keeper.alive)) return undefined
    const fsck = await cluster.dfsJson<FsckReport>(['fsck'])
    if (fsck.status !== 'healthy') return undefined
    for (const file of fsck.files) {
      if (file.alive !== 3 || file.dead !== 0 || file.zones.join() !== 'a,b') return undefined
      const {replicas} = await cluster.stat(file.name)
      if ((await holdersOnDisk(cluster, file.fileId)).join() !== replicas.map((replica) => replica.keeper).sort().join()) return undefined
    }

    return fsck
  })
  assert.deepEqual(report.files.map((file) => file.name).sort(), [...names].sort())
  const afterHeal = logMessages(cluster.master).slice(logAtHeal)
  const copiesAfterHeal = copiesLogged(afterHeal)
  const trims = afterHeal.filter((line) => line.startsWith('trimming surplus replica')).length
  t.diagnostic(`zone ${cutZone} back: ${copiesAfterHeal} copies, ${trims} trims`)
  // The zone's keepers return one at a time: a file whose only replica there is on the later one
  // may get a copy on the earlier one, at most once each; every copy is trimmed again.
  assert.ok(copiesAfterHeal <= names.filter((name) => inZone(name, cutZone) === 1).length, `${copiesAfterHeal} copies after the heal`)
  assert.equal(trims, copiesDuringCut + copiesAfterHeal)
  await assertAllReadBack(net, files)
})
