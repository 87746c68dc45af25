import assert from 'node:assert/strict'
import {join} from 'node:path'
import {test} from 'node:test'

import {FIXTURES, SAMPLES, waitFor} from '../helpers/cluster.js'
import {logMessages} from '../helpers/server-logs.js'
import {assertAllReadBack, holdersOnDisk, replicasOf, startNetCluster} from './net-cluster.js'

test('a keeper cut off from the other keepers is no source of copies: the repair copies from a holder the destination reaches', async (t) => {
  const net = await startNetCluster(t, {keepers: 4})
  if (!net) return
  const {lab, cluster} = net
  const name = 'sample_1.mp4'
  const put = await cluster.dfs(['put', join(FIXTURES, name), '--wait', 'all'])
  assert.equal(put.code, 0, put.stderr)

  // Holders: the one cut off from its fellow keepers, one that dies, one that stays; and the keeper
  // that lacks the file, which the repair must copy to.
  const [cutOff, dying, staying] = (await replicasOf(cluster, [name]))[name]!.alive.map((id) => cluster.keeperById(id))
  const destination = cluster.keepers.find((keeper) => ![cutOff, dying, staying].includes(keeper))!
  await lab.cut(net.hostOf(cutOff!).name, [dying!, staying!, destination].map((other) => net.hostOf(other).name))
  assert.equal(await lab.reach(net.hostOf(destination).name, `${cutOff!.url}/health`), 'timeout')
  assert.equal(await lab.reach('master', `${cutOff!.url}/health`), '200')

  const logBefore = cluster.master.logs.length
  await dying!.stop('SIGKILL')
  await waitFor('the killed holder declared dead', async () => (await cluster.keeperStatus()).find((keeper) => keeper.id === dying!.id)?.alive === false)
  // The one keeper that may receive the copy has it, from the only source it can reach.
  await waitFor(`${name} on 3 alive keepers again`, async () => {
    const {alive} = (await replicasOf(cluster, [name]))[name]!
    return alive.length === 3
  })
  const {alive} = (await replicasOf(cluster, [name]))[name]!
  assert.deepEqual(alive, [cutOff!.id, staying!.id, destination.id].sort())
  const masterLog = logMessages(cluster.master).slice(logBefore)
  const copies = masterLog.filter((line) => line.startsWith(`copied "${name}"`))
  assert.deepEqual(copies, [`copied "${name}" from ${staying!.id} to ${destination.id}`])
  // The master may try the cut-off holder first (it does not know of the cut), but not again once
  // that failed while another holder is alive.
  const failed = masterLog.filter((line) => line.startsWith(`copy of "${name}" from ${cutOff!.id} `))
  assert.ok(failed.length <= 1, `copies tried from the cut-off keeper: ${failed.join('; ')}`)
  // The cut-off keeper still holds its copy, and the master still counts it: it reaches the master.
  assert.deepEqual(await holdersOnDisk(cluster, (await cluster.stat(name)).fileId), [cutOff!.id, dying!.id, staying!.id, destination.id].sort())
  assert.equal((await cluster.keeperStatus()).find((keeper) => keeper.id === cutOff!.id)?.alive, true)
  await assertAllReadBack(net, {[name]: SAMPLES[name].sha256})
})
