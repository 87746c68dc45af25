import assert from 'node:assert/strict'
import {test} from 'node:test'

import {waitFor} from '../helpers/cluster.js'
import {copiesLogged, logMessages} from '../helpers/server-logs.js'
import {assertAllReadBack, onExactlyThreeKeepers, replicasOf, startNetCluster, storeSamples} from './net-cluster.js'

test('a keeper cut off from the master only is declared dead and its files copied elsewhere; healed, it rejoins, the surplus is trimmed and nothing is lost', async (t) => {
  const net = await startNetCluster(t, {keepers: 4})
  if (!net) return
  const {lab, cluster} = net
  const files = await storeSamples(cluster)
  const names = Object.keys(files)

  const before = await replicasOf(cluster, names)
  const victim = cluster.keeperById(before['sample_1.mp4']!.alive[0]!)
  const victimHost = net.hostOf(victim)
  const held = names.filter((name) => before[name]!.alive.includes(victim.id))
  const others = cluster.keepers.filter((keeper) => keeper !== victim).map((keeper) => keeper.id).sort()

  const logBefore = cluster.master.logs.length
  await lab.cut('master', victimHost.name)
  // The cut is between those two only: the client and the other keepers still reach the victim.
  assert.equal(await lab.reach('master', `${victim.url}/health`), 'timeout')
  assert.equal(await lab.reach('client', `${victim.url}/health`), '200')
  assert.equal(await lab.reach('k1' === victimHost.name ? 'k2' : 'k1', `${victim.url}/health`), '200')

  await waitFor('the master to declare the cut-off keeper dead', async () => (await cluster.keeperStatus()).find((keeper) => keeper.id === victim.id)?.alive === false)
  // Every file it held gets its third alive replica on the one keeper that lacked it.
  const during = await waitFor('every file back to 3 alive replicas on the other keepers', async () => {
    const state = await replicasOf(cluster, names)
    return names.every((name) => state[name]!.alive.length === 3) ? state : undefined
  })
  for (const name of held) {
    assert.deepEqual(during[name]!.alive, others, `${name} is not on the 3 keepers that are not cut off`)
    assert.deepEqual(during[name]!.dead, [victim.id])
  }

  await assertAllReadBack(net, files)

  await lab.heal('master', victimHost.name)
  await waitFor('the healed keeper to be alive again', async () => (await cluster.keeperStatus()).find((keeper) => keeper.id === victim.id)?.alive === true)
  // The surplus is trimmed: each file ends with exactly 3 replicas, in the table and on disk alike.
  await waitFor('each file on exactly 3 keepers, in the table and on disk', async () => {
    return onExactlyThreeKeepers(cluster, names)
  })
  await assertAllReadBack(net, files)

  const masterLog = logMessages(cluster.master).slice(logBefore)
  const deaths = masterLog.filter((line) => line.includes(`keeper ${victim.id} missed its heartbeats`))
  assert.equal(deaths.length, 1, `the victim was declared dead ${deaths.length} times`)
  const copies = copiesLogged(masterLog)
  assert.equal(copies, held.length, `copies made: ${masterLog.filter((line) => line.startsWith('copied ')).join('; ')}`)
  const trims = masterLog.filter((line) => line.startsWith('trimming surplus replica'))
  assert.equal(trims.length, held.length, `trims: ${trims.join('; ')}`)
})
