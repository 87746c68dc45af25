import assert from 'node:assert/strict'
import {join} from 'node:path'
import {test} from 'node:test'

import {FIXTURES, SAMPLES, waitFor} from '../helpers/cluster.js'
import {logMessages} from '../helpers/server-logs.js'
import {assertAllReadBack, holdersOnDisk, replicasOf, startNetCluster} from './net-cluster.js'

const FLAPS = 5

test('a keeper on a lossy, flapping link: no storm of false deaths and repeated copies, no duplicate replica left', async (t) => {
  // A heartbeat timeout of 10 heartbeats: a link down for 1.5 s may cost a death (TCP backs off),
  // but not one per lost packet.
  const net = await startNetCluster(t, {keepers: 4, masterArgs: ['--heartbeat-timeout', '5s'], keeperArgs: ['--heartbeat-interval', '500ms']})
  if (!net) return
  const {lab, cluster} = net
  const files = Object.fromEntries(Object.entries(SAMPLES).map(([name, {sha256}]) => [name, sha256]))
  const names = Object.keys(files)
  for (const name of names) {
    const put = await cluster.dfs(['put', join(FIXTURES, name), '--wait', 'all'])
    assert.equal(put.code, 0, put.stderr)
  }

  const before = await replicasOf(cluster, names)
  const victim = cluster.keeperById(before['sample_1.mp4']!.alive[0]!)
  const held = names.filter((name) => before[name]!.alive.includes(victim.id)).length
  const host = net.hostOf(victim).name
  const logBefore = cluster.master.logs.length
  await lab.loss(host, 20)
  const flapping = lab.flap(host, {downMs: 1500, upMs: 3500})
  await waitFor(`${FLAPS} flaps`, () => flapping.downs >= FLAPS, 120_000)
  await flapping.stop()
  await lab.loss(host, 0)

  // Settled: the victim alive, every file on exactly 3 keepers in the table and on disk.
  await waitFor('the victim alive and every file on exactly 3 keepers, in the table and on disk', async () => {
    if ((await cluster.keeperStatus()).find((keeper) => keeper.id === victim.id)?.alive !== true) return false
    for (const name of names) {
      const {fileId, replicas} = await cluster.stat(name)
      if (replicas.length !== 3 || replicas.some((replica) => !replica.alive)) return false
      if ((await holdersOnDisk(cluster, fileId)).join() !== replicas.map((replica) => replica.keeper).sort().join()) return false
    }

    return true
  })

  const masterLog = logMessages(cluster.master).slice(logBefore)
  const deaths = masterLog.filter((line) => line.includes('missed its heartbeats')).length
  const copies = masterLog.filter((line) => line.startsWith('copied "')).length
  const trims = masterLog.filter((line) => line.startsWith('trimming surplus replica')).length
  t.diagnostic(`${flapping.downs} flaps: ${deaths} deaths, ${copies} copies, ${trims} trims`)
  // Outages of 1.5 s against a timeout of 5 s: TCP's retransmits may at worst make one of them cost
  // a death (seen: none), a storm is one per outage or more. A copy only for a death (each file the
  // victim held, once), and every copy trimmed again once the victim was back.
  assert.ok(deaths <= 1, `${deaths} deaths in ${flapping.downs} outages`)
  assert.ok(copies <= deaths * held, `${copies} copies for ${deaths} deaths`)
  assert.equal(trims, copies)
  await assertAllReadBack(net, files)
})
