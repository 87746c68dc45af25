import assert from 'node:assert/strict'
import {test} from 'node:test'

import {waitFor} from '../helpers/cluster.js'
import {copiesLogged, logMessages} from '../helpers/server-logs.js'
import {assertAllReadBack, onExactlyThreeKeepers, replicasOf, startNetCluster, storeSamples} from './net-cluster.js'

const FLAPS = 5

test('a keeper on a lossy, flapping link: no storm of false deaths and repeated copies, no duplicate replica left', async (t) => {
  // A heartbeat timeout of 10 heartbeats: a link down for 1.5 s may cost a death (TCP backs off),
  // but not one per lost packet.
  const net = await startNetCluster(t, {keepers: 4, masterArgs: ['--heartbeat-timeout', '5s'], keeperArgs: ['--heartbeat-interval', '500ms']})
  if (!net) return
  const {lab, cluster} = net
  const files = await storeSamples(cluster)
  const names = Object.keys(files)

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
    return onExactlyThreeKeepers(cluster, names)
  })

  const masterLog = logMessages(cluster.master).slice(logBefore)
  const deaths = masterLog.filter((line) => line.includes('missed its heartbeats')).length
  const copies = copiesLogged(masterLog)
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
