import assert from 'node:assert/strict'
import {join} from 'node:path'
import {test} from 'node:test'

import {randomFile, sha256File} from '../helpers/cluster.js'
import {startDfs, whileRunning} from '../helpers/running-dfs.js'
import {replicasOf, startNetCluster} from './net-cluster.js'

const MiB = 1024 * 1024

test('the client cut off from one replica in the middle of a get fails over to the others and gets every byte right', async (t) => {
  const net = await startNetCluster(t, {keepers: 4})
  if (!net) return
  const {lab, cluster} = net
  const size = 32 * MiB
  const source = join(net.work, 'movie.bin')
  const sha256 = await randomFile(source, size)
  const put = await cluster.dfs(['put', source, '--wait', 'all'])
  assert.equal(put.code, 0, put.stderr)

  // Each holder's link slowed to about 2 MB/s, so that the download lasts seconds and the cut
  // comes while the victim still has ranges to serve.
  const holders = (await replicasOf(cluster, ['movie.bin']))['movie.bin']!.alive.map((id) => net.hostOf(id).name)
  for (const holder of holders) await lab.shape(holder, '16mbit')
  const victim = holders[0]!
  await lab.countFrom('client', victim)

  const out = join(net.work, 'movie.copy')
  const get = startDfs(['get', 'movie.bin', '-o', out, '--range-size', '1m', '--json', ...cluster.clientFlags], {prefix: lab.host('client').prefix})
  await whileRunning(get, `the client to receive 3 MiB from ${victim}`, async () => (await lab.bytesFrom('client', victim)) > 3 * MiB)
  await lab.cut('client', victim)
  const received = await lab.bytesFrom('client', victim)

  const result = await get.done
  assert.equal(result.code, 0, result.stderr)
  assert.equal(await sha256File(out), sha256)
  const [report] = JSON.parse(result.stdout) as [{sources: Array<{url: string; bytes: number; ranges: number; failed?: string}>}]
  const fromVictim = report.sources.find((entry) => lab.hostAt(entry.url)?.name === victim)
  assert.ok(fromVictim, `the victim is not among the sources: ${result.stdout}`)
  // It served whole ranges before the cut, and the range it was sending then went to another replica.
  assert.ok(fromVictim.ranges >= 2 && fromVictim.bytes === fromVictim.ranges * MiB && fromVictim.bytes <= received, JSON.stringify(fromVictim))
  assert.ok(fromVictim.failed, `the victim was not dropped: ${JSON.stringify(fromVictim)}`)
  assert.equal(report.sources.reduce((sum, entry) => sum + entry.bytes, 0), size)
  // The cut held: nothing more came from the victim after it.
  assert.equal(await lab.bytesFrom('client', victim), received)
})
