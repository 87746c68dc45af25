import assert from 'node:assert/strict'
import {join} from 'node:path'
import {test} from 'node:test'

import {FIXTURES, randomFile, sha256File, waitFor} from '../helpers/cluster.js'
import {startDfs, whileRunning} from '../helpers/running-dfs.js'
import {copiesLogged, logMessages} from '../helpers/server-logs.js'
import {assertAllReadBack, onExactlyThreeKeepers, replicasOf, startNetCluster, storeSamples} from './net-cluster.js'

const MiB = 1024 * 1024

test('the master cut off from every host and back: a get already granted finishes, and after the heal every file is whole, once, on 3 keepers, with no copy and no trim', async (t) => {
  const net = await startNetCluster(t, {keepers: 4})
  if (!net) return
  const {lab, cluster} = net
  const files = await storeSamples(cluster)

  const source = join(net.work, 'movie.bin')
  files['movie.bin'] = await randomFile(source, 16 * MiB)
  const put = await cluster.dfs(['put', source, '--wait', 'all'])
  assert.equal(put.code, 0, put.stderr)
  const names = Object.keys(files)

  // A get under way (slowed so that it lasts) when the master drops off the network.
  const holders = (await replicasOf(cluster, ['movie.bin']))['movie.bin']!.alive.map((id) => net.hostOf(id).name)
  for (const holder of holders) await lab.shape(holder, '16mbit')
  await lab.countFrom('client', holders[0]!)
  const out = join(net.work, 'movie.copy')
  const get = startDfs(['get', 'movie.bin', '-o', out, '--range-size', '1m', ...cluster.clientFlags], {prefix: lab.host('client').prefix})
  await whileRunning(get, 'the get to receive its first MiB', async () => (await lab.bytesFrom('client', holders[0]!)) > MiB)

  const logBefore = cluster.master.logs.length
  await lab.isolate('master')
  // The test process still sees the master: it declares every keeper dead, having heard none.
  await waitFor('the master to declare every keeper dead', async () => (await cluster.keeperStatus()).every((keeper) => !keeper.alive))
  const got = await get.done
  assert.equal(got.code, 0, got.stderr)
  assert.equal(await sha256File(out), files['movie.bin'])

  await lab.rejoin('master')
  for (const holder of holders) await lab.unshape(holder)
  await waitFor('every keeper alive again, and every file on exactly 3 keepers in the table and on disk', async () => {
    if (!(await cluster.keeperStatus()).every((keeper) => keeper.alive)) return false
    return onExactlyThreeKeepers(cluster, names)
  })
  const masterLog = logMessages(cluster.master).slice(logBefore)
  const copies = copiesLogged(masterLog)
  const trims = masterLog.filter((line) => line.startsWith('trimming surplus replica'))
  t.diagnostic(`after the heal: ${copies} copies, ${trims.length} trims`)
  // Every keeper died at once: the first one back brings the others back on grace, so the master
  // copies nothing to the early returners and has nothing to trim when the rest check in.
  assert.deepEqual({copies, trims: trims.length}, {copies: 0, trims: 0})
  await assertAllReadBack(net, files)
  // And the cluster takes new files again.
  const after = await cluster.dfs(['put', join(FIXTURES, 'sample_1.mp4'), '--name', 'after.mp4', '--wait', 'all'])
  assert.equal(after.code, 0, after.stderr)
  await assertAllReadBack(net, {'after.mp4': files['sample_1.mp4']!})
})
